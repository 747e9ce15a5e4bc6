// Pinia with pinia-plugin-persistedstate: the "todos" store, persisted whole
// (a token included, as apps do) under its id "todos" in localStorage.
import { createPinia, defineStore } from "pinia";
import piniaPluginPersistedstate from "pinia-plugin-persistedstate";
import { createApp, nextTick } from "vue";
import { TODOS } from "./common/fixtures.js";

const useTodoStore = defineStore("todos", {
  state: () => ({ items: [], lastSync: null, token: null }),
  actions: {
    synced(items, token) {
      this.items = items;
      this.lastSync = "2025-06-06T07:45:00.000Z";
      this.token = token;
    },
  },
  persist: true,
});

let store;

async function boot() {
  if (!store) {
    const pinia = createPinia().use(piniaPluginPersistedstate);
    // Pinia installs its plugins when an app uses it; the app is never mounted.
    createApp({}).use(pinia);
    store = useTodoStore(pinia);
  }
  await nextTick();
}

async function seed() {
  await boot();
  store.synced(TODOS.slice(0, 4), "secret-token-value-123");
  store.items.push(TODOS[4]);
  await nextTick();
}

window.libraryScenario = { seed, boot };
