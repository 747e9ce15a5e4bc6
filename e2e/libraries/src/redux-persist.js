// Plain redux: combineReducers of a todos and a settings slice under one
// persistReducer (key "root", so localStorage "persist:root"), version 3.
import { combineReducers, legacy_createStore as createStore } from "redux";
import { persistReducer, persistStore } from "redux-persist";
import storage from "redux-persist/lib/storage";
import { TODOS } from "./common/fixtures.js";

function todos(state = { items: [] }, action) {
  switch (action.type) {
    case "todos/added":
      return { items: [...state.items, action.payload] };
    case "todos/toggled":
      return { items: state.items.map((todo) => (todo.id === action.payload ? { ...todo, done: !todo.done } : todo)) };
    default:
      return state;
  }
}

function settings(state = { theme: "system", locale: "en-US", notifications: true }, action) {
  return action.type === "settings/changed" ? { ...state, ...action.payload } : state;
}

const rootReducer = persistReducer({ key: "root", storage, version: 3 }, combineReducers({ todos, settings }));

let app;

async function boot() {
  if (!app) {
    const store = createStore(rootReducer);
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
  for (const todo of TODOS) app.store.dispatch({ type: "todos/added", payload: todo });
  app.store.dispatch({ type: "todos/toggled", payload: "todo-7" });
  app.store.dispatch({ type: "settings/changed", payload: { theme: "dark", locale: "de-DE" } });
  await app.persistor.flush();
}

window.libraryScenario = { seed, boot };
