/* The demo app: seeds realistic localStorage stores, shows the migration's
 * progress and what the server holds. Record content is always set as
 * text, never as markup. */
(() => {
  "use strict";
  const token = document.body.dataset.token;
  const $ = (selector) => document.querySelector(selector);

  const STATUSES = ["IN_PROGRESS", "DONE", "MERGED", "PAUSED", "CANCELLED"];
  const WORDS = ["refactor", "billing", "webhook", "flaky test", "login page", "cache", "migration",
    "dark mode", "export", "search index", "rate limit", "onboarding", "avatar upload", "audit log"];
  const REPOS = ["acme/web", "acme/api", "acme/mobile", "acme/infra"];

  function pick(list, i) { return list[i % list.length]; }

  function message(i, j) {
    const text = `Step ${j + 1} for task ${i + 1}: looked at the ${pick(WORDS, i + j)} code path, ` +
      "reproduced the problem locally, wrote a failing test, and drafted a fix that keeps the public " +
      "interface unchanged while removing the duplicated branch.";
    return { role: j % 2 ? "assistant" : "user", type: "message", data: { text } };
  }

  function seedTasks(n) {
    const now = Date.now();
    const tasks = [];
    for (let i = 0; i < n; i += 1) {
      const created = new Date(now - (n - i) * 3600_000).toISOString();
      tasks.push({
        id: i === 0 ? "task-1" : crypto.randomUUID(),
        title: `${i % 3 ? "Fix" : "Add"} ${pick(WORDS, i)} (${i + 1})`,
        description: `Users reported a problem with the ${pick(WORDS, i * 7)}. Investigate and fix.`,
        status: pick(STATUSES, i),
        branch: `feature/${pick(WORDS, i).replace(/ /g, "-")}-${i + 1}`,
        sessionId: `sess-${1000 + i}`,
        repository: pick(REPOS, i),
        statusMessage: i % 4 === 0 ? "Waiting for review" : "",
        isArchived: i % 11 === 0,
        mode: i % 5 === 0 ? "ask" : "code",
        hasChanges: i % 3 === 0,
        messages: [0, 1, 2, 3, 4].map((j) => message(i, j)),
        pullRequest: i % 4 === 1 ? { url: `https://github.com/${pick(REPOS, i)}/pull/${100 + i}`, number: 100 + i, status: "open" } : undefined,
        createdAt: created,
        updatedAt: i % 6 === 0 ? Date.parse(created) + 60_000 : created,
      });
    }
    return tasks;
  }

  // What a real store also holds: records the migration cannot map (each is quarantined with its reasons,
  // nothing is lost), a duplicate with an older timestamp, and a title that is markup.
  function malformedTasks() {
    return [
      { id: "bad-title", title: { text: "an object where a title belongs" }, status: "DONE" },
      { id: ["not", "an", "id"], title: "An id that is a list" },
      null,
      { id: "task-1", title: "An older copy of task 1", updatedAt: "2020-01-01T00:00:00.000Z" },
      { id: "markup", title: '<img src=x onerror="alert(1)"> <script>alert(2)</script>', status: "IN_PROGRESS" },
    ];
  }

  function seedEnvironments() {
    const now = new Date().toISOString();
    return ["Production", "Staging", "Preview"].map((name, i) => ({
      id: i === 0 ? "env-1" : crypto.randomUUID(),
      name,
      description: `${name} environment`,
      githubOrganization: "acme",
      githubRepository: pick(REPOS, i),
      githubToken: `ghp_${crypto.randomUUID().replace(/-/g, "")}`,
      createdAt: now,
      updatedAt: now,
    }));
  }

  // What react-hook-form's persist plugin leaves behind: the form's values, as raw JSON.
  function seedDraft() {
    return {
      title: "Add <em>dark mode</em> to the settings page",
      description: "Users keep asking for it — « thème sombre » 🌙\n\n- respect prefers-color-scheme\n- remember the choice",
      repository: "acme/web",
      branch: "feature/dark-mode",
      mode: "code",
      labels: ["ui", "settings"],
      assignee: null,
      estimate: { points: 3, confidence: 0.8 },
    };
  }

  function seedPreferences() {
    return {
      theme: "dark",
      language: "en-GB",
      sidebarCollapsed: false,
      defaultRepository: "acme/web",
      taskListColumns: ["title", "status", "repository", "updatedAt"],
      notifications: { email: true, desktop: false, digest: "weekly" },
    };
  }

  function seed() {
    const n = Math.max(1, Math.min(20000, Number($("#seed-count").value) || 25));
    const tasks = seedTasks(n).concat($("#seed-malformed").checked ? malformedTasks() : []);
    // Beside the records, what a Zustand store keeps of the UI: no store claims it, the server keeps it too
    // (the key's remainder), and cleanup leaves it where it is.
    const selectedTaskId = tasks[0] && tasks[0].id;
    localStorage.setItem("task-store", JSON.stringify({ state: { tasks, selectedTaskId }, version: 0 }));
    const environments = seedEnvironments();
    const activeEnvironmentId = environments[0].id;
    localStorage.setItem("environments", JSON.stringify({ state: { environments, activeEnvironmentId }, version: 0 }));
    localStorage.setItem("react-hook-form-task-form", JSON.stringify(seedDraft()));
    localStorage.setItem("user-preferences", JSON.stringify({ state: seedPreferences(), version: 0 }));
    // Keys lsmigrate does not migrate: reported, never touched.
    localStorage.setItem("theme", "dark");
    localStorage.setItem("platform-settings", JSON.stringify({ region: "eu-west-1", betaFeatures: ["new-editor"] }));
    window.location.reload();
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    row.appendChild(td);
  }

  function fillTable(selector, items, columns) {
    const body = $(`${selector} tbody`);
    body.replaceChildren();
    for (const item of items) {
      const row = document.createElement("tr");
      for (const column of columns) cell(row, column(item));
      body.appendChild(row);
    }
  }

  async function api(path) {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    return response.json();
  }

  async function showServerData() {
    const [{ tasks }, { environments }] = await Promise.all([api("/api/tasks"), api("/api/environments")]);
    $("#task-count").textContent = String(tasks.length);
    $("#env-count").textContent = String(environments.length);
    fillTable("#tasks", tasks.slice(-200).reverse(), [
      (t) => t.title, (t) => t.status, (t) => t.priority, (t) => t.repository,
      (t) => ((t.metadata && Array.isArray(t.metadata.messages)) ? t.metadata.messages.length : 0),
      (t) => new Date(t.updated_at).toLocaleString(),
    ]);
    fillTable("#environments", environments, [
      (e) => e.name, (e) => e.github_repository, (e) => e.github_token_hint || "—",
    ]);
  }

  function showLocalKeys() {
    const keys = Object.keys(localStorage).sort();
    $("#local-keys").textContent = keys.length
      ? `localStorage keys: ${keys.map((k) => `${k} (${(localStorage.getItem(k) || "").length.toLocaleString()} chars)`).join(", ")}`
      : "localStorage is empty.";
  }

  // The <lsmigrate-panel> shows the migration; the app shows what the server now has.
  window.addEventListener("lsmigrate:done", () => {
    showLocalKeys();
    showServerData();
  });
  window.addEventListener("lsmigrate:error", showLocalKeys);

  $("#seed").addEventListener("click", seed);
  showLocalKeys();
  showServerData().catch((error) => console.error(error));
})();
