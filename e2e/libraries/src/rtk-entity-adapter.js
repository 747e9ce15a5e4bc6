// Redux Toolkit: an entity adapter slice (sorted by priority then title, so
// `ids` is not insertion order; some ids are numbers) persisted under "rtk",
// and a "ui" slice with its own nested persistReducer (key "ui") that the
// root blacklists, as redux-persist's README shows for nested persists.
import { combineReducers, configureStore, createEntityAdapter, createSlice } from "@reduxjs/toolkit";
import { FLUSH, PAUSE, PERSIST, PURGE, REGISTER, REHYDRATE, persistReducer, persistStore } from "redux-persist";
import storage from "redux-persist/lib/storage";
import { TODOS } from "./common/fixtures.js";

const todosAdapter = createEntityAdapter({
  sortComparer: (a, b) => a.priority - b.priority || a.title.localeCompare(b.title),
});

const todosSlice = createSlice({
  name: "todos",
  initialState: todosAdapter.getInitialState({ status: "idle", lastFetchedAt: null }),
  reducers: {
    todosReceived(state, action) {
      todosAdapter.upsertMany(state, action.payload);
      state.status = "succeeded";
      state.lastFetchedAt = "2025-06-06T07:45:00.000Z";
    },
    todoToggled(state, action) {
      const todo = state.entities[action.payload];
      todo.done = !todo.done;
    },
  },
});

const uiSlice = createSlice({
  name: "ui",
  initialState: { sidebarOpen: false, density: "comfortable" },
  reducers: {
    sidebarToggled(state) {
      state.sidebarOpen = !state.sidebarOpen;
    },
  },
});

const rootReducer = combineReducers({
  todos: todosSlice.reducer,
  ui: persistReducer({ key: "ui", storage }, uiSlice.reducer),
});

let app;

async function boot() {
  if (!app) {
    const store = configureStore({
      reducer: persistReducer({ key: "rtk", storage, version: 1, blacklist: ["ui"] }, rootReducer),
      middleware: (getDefaultMiddleware) =>
        getDefaultMiddleware({ serializableCheck: { ignoredActions: [FLUSH, REHYDRATE, PAUSE, PERSIST, PURGE, REGISTER] } }),
    });
    let persistor;
    await new Promise((resolve) => {
      persistor = persistStore(store, null, resolve);
    });
    app = { store, persistor };
  }
  await app.persistor.flush();
}

async function seed() {
  await boot();
  const numbered = [
    { ...TODOS[2], id: 42 },
    { ...TODOS[3], id: 7 },
  ];
  app.store.dispatch(todosSlice.actions.todosReceived([TODOS[0], TODOS[1], ...numbered, TODOS[4]]));
  app.store.dispatch(todosSlice.actions.todoToggled(7));
  app.store.dispatch(uiSlice.actions.sidebarToggled());
  await app.persistor.flush();
}

window.libraryScenario = { seed, boot };
