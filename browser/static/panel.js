/* <lsmigrate-panel>: the migration as the end user sees it.
 *
 * <script type="module" src="/lsmigrate/static/panel.js"></script>
 * <lsmigrate-panel></lsmigrate-panel>    (after loader.js, which it drives)
 *
 * Buttons "Migrate now" and "Dry run"; the stages, a progress bar
 * (role="progressbar"), records done / total, records/s and ETA, a throughput
 * chart (SVG); per store: records found, what became of them, bytes, cleaned
 * up or kept and why; the backups with restore and download (listed when
 * opened or after a run, so an idle page loads nothing more; another user's
 * listed as theirs, without either; how long backups are kept); an event log;
 * the final state in a live region. Before Pyodide has loaded it shows the
 * keys it found and their sizes, while it loads that it is loading.
 *
 * Record content is only ever set as text (textContent, SVG attributes),
 * never as markup; styles come from panel.css, so the page needs no inline
 * script or style (a Content-Security-Policy without 'unsafe-inline' works).
 */

const PHASES = ["boot", "check", "extract", "validate", "backup", "upload", "verify", "cleanup", "done"];
const PHASE_NAMES = {
  boot: "Loading", check: "Checking", extract: "Reading", validate: "Validating", backup: "Backing up",
  upload: "Uploading", verify: "Verifying", cleanup: "Cleaning up", done: "Done",
};
const OUTCOMES = ["inserted", "updated", "unchanged", "quarantined", "conflict"];
const OUTCOME_NAMES = ["Inserted", "Updated", "Unchanged", "Quarantined", "In conflict"];
const LOG_LIMIT = 200;
const STYLES = new URL("panel.css", import.meta.url).href;

function element(tag, attributes = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = String(text);
  return node;
}

function svgElement(tag, attributes = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

function bytes(count) {
  if (count < 1024) return `${count} B`;
  if (count < 1024 * 1024) return `${(count / 1024).toFixed(1)} KB`;
  return `${(count / 1024 / 1024).toFixed(2)} MB`;
}

function seconds(value) {
  if (value == null) return "—";
  return value < 60 ? `${value.toFixed(1)} s` : `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
}

class LsmigratePanel extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    const root = this.attachShadow({ mode: "open" });
    root.append(element("link", { rel: "stylesheet", href: STYLES }));
    const box = element("section", { class: "panel", "aria-label": "Data migration" });
    root.append(box);

    const head = element("div", { class: "head" });
    head.append(element("h2", {}, "Moving your data to your account"));
    this.badge = element("span", { class: "badge", "data-state": "idle" }, "Idle");
    head.append(this.badge);
    box.append(head);

    this.status = element("p", { class: "status", role: "status", "aria-live": "polite" });
    box.append(this.status);

    const controls = element("div", { class: "controls" });
    this.migrateButton = element("button", { type: "button", class: "primary" }, "Migrate now");
    this.dryRunButton = element("button", { type: "button" }, "Dry run");
    this.migrateButton.addEventListener("click", () => this.start(false));
    this.dryRunButton.addEventListener("click", () => this.start(true));
    controls.append(this.migrateButton, this.dryRunButton);
    box.append(controls);

    this.stages = element("ol", { class: "stages", "aria-label": "Stages" });
    for (const phase of PHASES) this.stages.append(element("li", { "data-phase": phase }, PHASE_NAMES[phase]));
    box.append(this.stages);

    this.bar = element("div", {
      class: "bar", role: "progressbar", "aria-label": "Migration progress",
      "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0",
    });
    this.fill = element("div", { class: "fill" });
    this.bar.append(this.fill);
    this.figures = element("p", { class: "figures" }, "");
    box.append(this.bar, this.figures);

    const figure = element("figure", { class: "throughput" });
    this.chart = svgElement("svg", { class: "chart", viewBox: "0 0 300 60", role: "img", "aria-label": "Upload speed" });
    this.line = svgElement("polyline", { points: "", fill: "none" });
    this.chart.append(this.line);
    this.caption = element("figcaption", {}, "Upload speed (records/s) appears here during the upload.");
    figure.append(this.chart, this.caption);
    box.append(figure);

    box.append(element("h3", {}, "Stores"));
    this.stores = element("table", { class: "stores" });
    const header = element("tr");
    for (const name of ["Key", "Size", "Found", ...OUTCOME_NAMES, "Result"]) {
      header.append(element("th", { scope: "col" }, name));
    }
    this.stores.append(element("thead"), element("tbody"));
    this.stores.tHead.append(header);
    box.append(this.stores);

    this.conflictBox = element("section", { class: "conflicts", hidden: "" });
    this.conflictBox.append(element("h3", {}, "Conflicts to resolve"));
    const all = element("div", { class: "controls" });
    const allMine = element("button", { type: "button" }, "Keep all mine");
    const allServer = element("button", { type: "button" }, "Keep all the server's");
    allMine.addEventListener("click", () => this.resolveAll("local"));
    allServer.addEventListener("click", () => this.resolveAll("server"));
    all.append(allMine, allServer);
    this.conflictList = element("div");
    this.conflictBox.append(all, this.conflictList);
    box.append(this.conflictBox);

    this.quarantineBox = element("section", { class: "quarantine", hidden: "" });
    this.quarantineBox.append(element("h3", {}, "Set aside (quarantined)"));
    this.quarantineBox.append(element("p", { class: "muted" },
      "These records could not be moved as they are. They are kept on the server, whole, with the reasons."));
    this.quarantineList = element("ul");
    this.quarantineBox.append(this.quarantineList);
    box.append(this.quarantineBox);

    // Listed when opened (or after a run): an idle page loads nothing more, backups.js included.
    const shelf = element("details", { class: "shelf" });
    shelf.append(element("summary", {}, "Backups"));
    this.retention = element("p", { class: "muted retention" });
    this.backups = element("ul", { class: "backups" });
    shelf.append(this.retention, this.backups);
    shelf.addEventListener("toggle", () => { if (shelf.open) this.showBackups(); });
    this.shelf = shelf;
    box.append(shelf);

    // A new device, or a browser cleared: the keys as the server holds them, rebuilt there.
    const fromServer = element("button", { type: "button", class: "from-server" }, "Restore this browser from the server");
    fromServer.addEventListener("click", () => this.restoreFromServer());
    box.append(fromServer);

    box.append(element("h3", {}, "Events"));
    this.log = element("ol", { class: "log", "aria-label": "Event log" });
    box.append(this.log);

    this.samples = [];
    this.sizes = {};
    this.phase = null;
    for (const name of ["lsmigrate:progress", "lsmigrate:conflict", "lsmigrate:done", "lsmigrate:error"]) {
      window.addEventListener(name, (event) => this.hear(name, event.detail || {}));
    }
    this.showFound();
    const status = window.lsmigrate ? window.lsmigrate.status() : { state: "idle" };
    if (status.state === "running") this.setState("running", "Migrating…");
    else if (status.report) this.finish(status.report);
    else this.setState("idle", window.lsmigrate && window.lsmigrate.needsMigration()
      ? "Your data in this browser is ready to be moved." : "Nothing in this browser needs moving.");
  }

  setState(state, message) {
    this.badge.dataset.state = state;
    this.badge.textContent = { idle: "Idle", loading: "Loading", running: "Running", done: "Done", failed: "Failed" }[state];
    this.status.textContent = message;
    const busy = state === "loading" || state === "running";
    this.migrateButton.disabled = busy;
    this.dryRunButton.disabled = busy;
  }

  async start(dryRun) {
    this.samples = [];
    this.setState("loading", "Loading the migration runtime…");
    this.entry(dryRun ? "Dry run started" : "Migration started");
    await window.lsmigrate.start({ dryRun });
  }

  hear(name, detail) {
    if (name === "lsmigrate:progress") return this.progress(detail);
    if (name === "lsmigrate:conflict") return this.entry(`Conflict in ${detail.key} #${detail.index}`);
    this.finish(detail);
  }

  progress({ phase, done, total, rate, eta, waiting }) {
    if (phase !== this.phase) {
      this.phase = phase;
      if (phase !== "done") this.entry(PHASE_NAMES[phase] || phase);
    }
    if (phase === "boot") this.setState("loading", "Loading the migration runtime…");
    else if (phase !== "done") this.setState("running", `${PHASE_NAMES[phase] || phase}…`);
    const current = PHASES.indexOf(phase);
    for (const item of this.stages.children) {
      const index = PHASES.indexOf(item.dataset.phase);
      item.classList.toggle("past", index < current);
      if (index === current) item.setAttribute("aria-current", "step");
      else item.removeAttribute("aria-current");
    }
    if (phase === "done") {
      this.stages.lastChild.classList.add("past");
      this.bar.setAttribute("aria-valuenow", "100");
      this.fill.style.width = "100%";
      return; // the figures of the last phase stay
    }
    const percent = total > 0 ? Math.round((100 * done) / total) : 0;
    this.bar.setAttribute("aria-valuenow", String(percent));
    this.bar.setAttribute("aria-valuetext", `${PHASE_NAMES[phase] || phase}: ${done} of ${total}`);
    this.fill.style.width = `${percent}%`;
    const unit = { extract: "stores", backup: "backups", cleanup: "stores" }[phase] || "records";
    const parts = [`${(done || 0).toLocaleString()} / ${(total || 0).toLocaleString()} ${unit}`];
    if (rate) parts.push(`${Math.round(rate).toLocaleString()} records/s`);
    if (eta != null && phase !== "done") parts.push(`about ${seconds(eta)} left`);
    if (waiting) parts.push(waiting.reason === "offline" ? "waiting for the network" : `retrying in ${seconds(waiting.seconds)}`);
    this.figures.textContent = parts.join(" · ");
    if (waiting) this.entry(`Waiting: ${waiting.reason}`);
    if (phase === "upload" && rate) this.plot(rate);
  }

  plot(rate) {
    this.samples.push(rate);
    const top = Math.max(...this.samples, 1);
    // One sample is a flat line across; more are spread over the width.
    const values = this.samples.length === 1 ? [rate, rate] : this.samples;
    const step = 300 / (values.length - 1);
    const points = values.map((value, index) => `${(index * step).toFixed(1)},${(58 - (value / top) * 54).toFixed(1)}`);
    this.line.setAttribute("points", points.join(" "));
    this.caption.textContent = `Upload speed: ${Math.round(rate).toLocaleString()} records/s now, ` +
      `${Math.round(top).toLocaleString()} at the peak.`;
  }

  finish(report) {
    const keys = Object.entries(report.keys || {});
    const cleaned = keys.filter(([, counts]) => counts.cleaned_up).map(([key]) => key);
    const kept = keys.filter(([, counts]) => !counts.cleaned_up).map(([key, counts]) => `${key} (${this.why(counts)})`);
    if (report.state === "done") {
      const what = report.dry_run ? "Dry run finished: nothing was changed."
        : kept.length ? "Your data is on the server, except what is kept below." : "Your data is on the server.";
      const parts = [what];
      if (cleaned.length) parts.push(`Removed from this browser: ${cleaned.join(", ")}.`);
      if (kept.length) parts.push(`Kept in this browser: ${kept.join(", ")}.`);
      this.setState("done", parts.join(" "));
    } else {
      const error = report.error || {};
      this.setState("failed", `The migration stopped: ${error.message || error.code || "unknown error"}. Nothing was deleted.`);
    }
    const found = keys.reduce((total, [, counts]) => total + (counts.found || 0), 0);
    const plural = (count, word) => `${count.toLocaleString()} ${word}${count === 1 ? "" : "s"}`;
    this.figures.textContent = `${plural(found, "record")} in ${plural(keys.length, "store")}`;
    this.entry(report.state === "done" ? "Finished" : `Failed: ${(report.error || {}).code || "error"}`);
    this.showStores(report);
    if (report.dry_run) return;
    if (keys.some(([, counts]) => counts.kept && counts.kept.reason === "open_conflicts")) this.showConflicts(report);
    if (keys.some(([, counts]) => counts.quarantined > 0)) this.showQuarantine(report);
    if (this.shelf.open) this.showBackups();
    else this.shelf.open = true; // its toggle event lists them
  }

  async showQuarantine(report) {
    const { records } = await window.lsmigrate.api("GET", `/sessions/${report.session_id}/quarantine`);
    this.quarantineBox.hidden = records.length === 0;
    this.quarantineList.replaceChildren();
    for (const record of records) {
      const item = element("li");
      const reasons = (record.reasons || []).map((reason) => reason.message || reason.code).join("; ");
      item.append(element("strong", {}, `${record.key} #${record.index}: `), element("span", {}, reasons));
      item.append(element("code", {}, JSON.stringify(record.raw)));
      this.quarantineList.append(item);
    }
  }

  async showConflicts(report) {
    const { conflicts } = await window.lsmigrate.api("GET", `/sessions/${report.session_id}/conflicts`);
    this.open = conflicts.filter((conflict) => conflict.status === "open");
    this.conflictBox.hidden = this.open.length === 0;
    this.conflictList.replaceChildren();
    for (const conflict of this.open) this.conflictList.append(this.conflictCard(report, conflict));
  }

  conflictCard(report, conflict) {
    const card = element("article", { class: "conflict", "data-id": conflict.id });
    card.append(element("h4", {}, `${conflict.key} #${conflict.index}`));
    const table = element("table", { class: "diff" });
    const head = element("tr");
    for (const name of ["Field", "In this browser", "On the server"]) head.append(element("th", { scope: "col" }, name));
    table.append(head);
    const local = conflict.local || {};
    const server = conflict.server || {};
    for (const field of [...new Set([...Object.keys(local), ...Object.keys(server)])].sort()) {
      const mine = JSON.stringify(local[field]);
      const theirs = JSON.stringify(server[field]);
      if (mine === theirs) continue; // only what differs
      const row = element("tr");
      row.append(element("th", { scope: "row" }, field), element("td", {}, mine ?? "(none)"), element("td", {}, theirs ?? "(none)"));
      table.append(row);
    }
    const choices = element("div", { class: "controls" });
    for (const [keep, label] of [["local", "Keep mine"], ["server", "Keep the server's"]]) {
      const button = element("button", { type: "button" }, label);
      button.addEventListener("click", () => this.resolve(report, conflict, keep, card));
      choices.append(button);
    }
    card.append(table, choices);
    return card;
  }

  async resolve(report, conflict, keep, card) {
    await window.lsmigrate.api("POST", `/sessions/${report.session_id}/conflicts/${conflict.id}`, { keep });
    this.entry(`Resolved ${conflict.key} #${conflict.index}: kept ${keep === "local" ? "this browser's" : "the server's"}`);
    card.remove();
    this.open = this.open.filter((other) => other.id !== conflict.id);
    if (this.open.length === 0) {
      this.conflictBox.hidden = true;
      await window.lsmigrate.finish(); // its lsmigrate:done event shows the final state
    }
  }

  async resolveAll(keep) {
    const report = window.lsmigrate.status().report;
    for (const conflict of [...this.open]) {
      const card = [...this.conflictList.children].find((node) => node.dataset.id === conflict.id);
      await this.resolve(report, conflict, keep, card || element("article"));
    }
  }

  why(counts) {
    if (counts.error) return "could not be read";
    if (counts.kept) return counts.kept.reason === "open_conflicts" ? "conflicts to resolve" : "records not accounted for";
    if (counts.rewritten) return "changed during the migration";
    return "not removed";
  }

  showFound() {
    const keys = window.lsmigrate ? window.lsmigrate.migratableKeys() : [];
    for (const key of keys) this.sizes[key] = (localStorage.getItem(key) || "").length * 2; // UTF-16, as stored
    this.fillStores(keys.map((key) => [key, {}]));
  }

  showStores(report) {
    this.fillStores(Object.entries(report.keys || {}));
  }

  fillStores(rows) {
    const body = this.stores.tBodies[0];
    body.replaceChildren();
    for (const [key, counts] of rows) {
      const row = element("tr");
      row.append(element("th", { scope: "row" }, key));
      const size = this.sizes[key];
      row.append(element("td", {}, size == null ? "—" : bytes(size)));
      row.append(element("td", {}, counts.found == null ? "—" : counts.found));
      for (const outcome of OUTCOMES) row.append(element("td", {}, counts[outcome] == null ? "—" : counts[outcome]));
      const result = counts.cleaned_up ? (counts.cleanup === "stripped" ? "records removed" : "removed") : counts.found === undefined && !counts.error ? "found" : this.why(counts);
      row.append(element("td", {}, result));
      body.append(row);
    }
  }

  async showBackups() {
    if (!window.lsmigrate) return;
    let list = [];
    try {
      list = await window.lsmigrate.backups();
      const days = await window.lsmigrate.backupDays();
      this.retention.textContent = `Backups are kept ${days} days in this browser, then deleted.`;
    } catch (error) {
      this.backups.replaceChildren(element("li", {}, `Backups are not available: ${error.message || error}`));
      return;
    }
    this.backups.replaceChildren();
    if (list.length === 0) this.backups.append(element("li", { class: "muted" }, "No backup yet."));
    for (const backup of list) {
      const item = element("li", { "data-owner": backup.owner });
      const when = new Date(backup.created_at).toLocaleString();
      if (backup.owner !== "you") {
        // Not this user's to restore or download: what it holds is someone else's data.
        const whose = backup.owner === "another_user" ? "another user's backup"
          : "a backup that may be another user's (whose it is cannot be checked)";
        item.append(element("span", { class: "muted" }, `${when} — ${whose}`));
        this.backups.append(item);
        continue;
      }
      const size = backup.keys.reduce((total, entry) => total + entry.compressed_bytes, 0);
      const label = `${when} — ${backup.keys.map((entry) => entry.key).join(", ")} (${bytes(size)} gzipped)`;
      item.append(element("span", {}, label));
      const restore = element("button", { type: "button" }, "Restore");
      restore.addEventListener("click", async () => {
        const keys = await window.lsmigrate.restore(backup.id);
        this.entry(`Restored ${keys.join(", ")}`);
        this.setState("idle", `Restored from the backup: ${keys.join(", ")}. This data is back in this browser.`);
        this.showFound();
      });
      const download = element("button", { type: "button" }, "Download");
      download.addEventListener("click", () => window.lsmigrate.downloadBackup(backup.id));
      item.append(restore, download);
      this.backups.append(item);
    }
  }

  async restoreFromServer() {
    if (!window.lsmigrate) return;
    try {
      const keys = await window.lsmigrate.restoreFromServer();
      const named = keys.length ? keys.join(", ") : "nothing (the server holds no key of yours)";
      this.entry(`Restored from the server: ${named}`);
      this.setState("idle", `Restored from the server: ${named}.`);
      this.showFound();
    } catch (error) {
      this.entry(`Restoring from the server failed: ${error.message || error}`);
      this.setState("failed", `Restoring from the server failed: ${error.message || error}`);
    }
  }

  entry(text) {
    const item = element("li");
    item.append(element("time", {}, new Date().toLocaleTimeString()), element("span", {}, text));
    this.log.prepend(item);
    while (this.log.children.length > LOG_LIMIT) this.log.lastChild.remove();
  }
}

customElements.define("lsmigrate-panel", LsmigratePanel);
