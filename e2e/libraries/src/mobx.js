// MobX stores persisted by mobx-persist-store's makePersistable into
// localStorage: "TodoStore" (an array, a Map and a plain field) with the
// library's defaults, and "SessionStore" with a version and expireIn, the two
// options that add the library's "__mps__" marker to the stored object.
import { makeAutoObservable } from "mobx";
import { makePersistable } from "mobx-persist-store";
import { TODOS, until } from "./common/fixtures.js";

const PROJECTS = [
  ["p-home", { id: "p-home", name: "Home", color: "#2e7d32", archived: false }],
  ["p-work", { id: "p-work", name: "Work", color: "#1565c0", archived: false }],
];

class TodoStore {
  todos = [];
  projectsById = new Map();
  filter = "all";

  constructor() {
    makeAutoObservable(this, {}, { autoBind: true });
    this.hydration = makePersistable(this, {
      name: "TodoStore",
      properties: ["todos", "projectsById", "filter"],
      storage: window.localStorage,
    });
  }

  add(todo) {
    this.todos.push(todo);
  }

  addProject(id, project) {
    this.projectsById.set(id, project);
  }

  setFilter(filter) {
    this.filter = filter;
  }
}

class SessionStore {
  lastOpenedProjectId = null;

  constructor() {
    makeAutoObservable(this, {}, { autoBind: true });
    this.hydration = makePersistable(this, {
      name: "SessionStore",
      properties: ["lastOpenedProjectId"],
      storage: window.localStorage,
      version: 2,
      expireIn: 7 * 24 * 60 * 60 * 1000,
    });
  }

  open(projectId) {
    this.lastOpenedProjectId = projectId;
  }
}

let stores;

async function boot() {
  if (!stores) {
    stores = { todos: new TodoStore(), session: new SessionStore() };
    await Promise.all([stores.todos.hydration, stores.session.hydration]);
  }
}

async function seed() {
  await boot();
  TODOS.forEach(stores.todos.add);
  for (const [id, project] of PROJECTS) stores.todos.addProject(id, project);
  stores.todos.setFilter("active");
  stores.session.open("p-work");
  // A reaction saves each change through the library's async storage adapter.
  await until(() => localStorage.getItem("SessionStore")?.includes("p-work"));
  await until(() => localStorage.getItem("TodoStore")?.includes('"filter":"active"'));
}

window.libraryScenario = { seed, boot };
