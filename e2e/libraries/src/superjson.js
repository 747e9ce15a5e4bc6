// superjson as zustand persist's storage, the pattern zustand's docs give for
// state holding Map, Set and Date: the whole {state, version} envelope goes
// through superjson.stringify into "superjson-state".
import superjson from "superjson";
import { persist } from "zustand/middleware";
import { createStore } from "zustand/vanilla";
import { TODOS } from "./common/fixtures.js";

const storage = {
  getItem: (name) => {
    const text = localStorage.getItem(name);
    return text === null ? null : superjson.parse(text);
  },
  setItem: (name, value) => localStorage.setItem(name, superjson.stringify(value)),
  removeItem: (name) => localStorage.removeItem(name),
};

function createSyncStore() {
  return createStore(
    persist(
      (set) => ({
        todosById: new Map(),
        tags: new Set(),
        lastSyncedAt: null,
        syncCursor: 0n,
        pendingDeletion: undefined,
        received: (todos, cursor) =>
          set((state) => ({
            todosById: new Map([
              ...state.todosById,
              ...todos.map((todo) => [todo.id, { ...todo, updatedAt: new Date(todo.updatedAt) }]),
            ]),
            tags: new Set([...state.tags, ...todos.flatMap((todo) => todo.tags)]),
            lastSyncedAt: new Date("2025-06-06T07:45:00.000Z"),
            syncCursor: cursor,
          })),
      }),
      {
        name: "superjson-state",
        storage,
        partialize: ({ received, ...data }) => data,
      },
    ),
  );
}

let store;

async function boot() {
  store ??= createSyncStore();
  if (!store.persist.hasHydrated()) await new Promise((resolve) => store.persist.onFinishHydration(resolve));
}

async function seed() {
  await boot();
  store.getState().received(TODOS, 9007199254740993n);
}

window.libraryScenario = { seed, boot };
