// jotai's atomWithStorage over createJSONStorage(() => localStorage), one
// localStorage key per atom, driven through a vanilla store.
import { createStore } from "jotai/vanilla";
import { atomWithStorage, createJSONStorage } from "jotai/vanilla/utils";
import { TODOS } from "./common/fixtures.js";

const storage = createJSONStorage(() => localStorage);
const atoms = {
  darkMode: atomWithStorage("darkMode", false, storage),
  userName: atomWithStorage("userName", "", storage),
  todos: atomWithStorage("todos-atom", [], storage),
  counter: atomWithStorage("counter", 0, storage),
  lastVisit: atomWithStorage("lastVisit", null, storage),
};

let store;

async function boot() {
  if (!store) {
    store = createStore();
    // Mounting an atom (a subscriber, as a component would be) reads its stored value.
    for (const atom of Object.values(atoms)) store.sub(atom, () => {});
  }
}

async function seed() {
  await boot();
  store.set(atoms.darkMode, true);
  store.set(atoms.userName, "Zoë O'Brien");
  store.set(atoms.todos, TODOS);
  store.set(atoms.counter, (count) => count + 41);
  store.set(atoms.counter, (count) => count + 1);
  store.set(atoms.lastVisit, null);
}

window.libraryScenario = { seed, boot };
