// zustand's persist middleware (vanilla store: zustand's `create` is the React
// hook and needs react) under "todo-app", version 2, in localStorage.
import { createStore } from "zustand/vanilla";
import { persist } from "zustand/middleware";
import { TODOS } from "./common/fixtures.js";

function createTodoStore() {
  return createStore(
    persist(
      (set) => ({
        todos: [],
        filter: "all",
        selectedTaskId: null,
        composerDraft: "",
        addTodo: (todo) => set((state) => ({ todos: [...state.todos, todo] })),
        setFilter: (filter) => set({ filter }),
        select: (selectedTaskId) => set({ selectedTaskId }),
        setDraft: (composerDraft) => set({ composerDraft }),
      }),
      { name: "todo-app", version: 2 },
    ),
  );
}

let store;

async function boot() {
  store ??= createTodoStore();
  if (!store.persist.hasHydrated()) await new Promise((resolve) => store.persist.onFinishHydration(resolve));
}

async function seed() {
  await boot();
  const { addTodo, setFilter, select, setDraft } = store.getState();
  TODOS.forEach(addTodo);
  setFilter("active");
  select(TODOS[0].id);
  setDraft("Call the plumber about the");
}

window.libraryScenario = { seed, boot };
