// The operator page (lsmigrate.server.operator.views): the figures of `lsmigrate stats`, a live chart, the
// newest sessions and one session's audit trail. Read-only. The operator token lives in this tab's
// sessionStorage (never localStorage) and goes out only as a bearer header to this origin. Everything the
// server sends is put in the page as text (textContent), never as markup: user ids and keys are anyone's.
"use strict";

(() => {
  const TOKEN_KEY = "lsmigrate-operator-token";
  const POLL_MS = 5000;
  const SAMPLES = 60; // five minutes of the chart
  const COLOURS = ["#2f5bd3", "#1f9d55", "#d97706", "#b91c1c", "#7c3aed", "#0e7490"];

  const api = document.body.dataset.api;
  const byId = (id) => document.getElementById(id);
  const samples = []; // {written, sessions}: one per poll
  let timer = null;
  let polling = false;

  class Refused extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  async function call(path) {
    const response = await fetch(api + path, {
      headers: { Authorization: `Bearer ${token()}`, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const error = (body && body.error) || {};
      throw new Refused(response.status, error.code || "error", error.message || response.statusText);
    }
    return body;
  }

  function element(tag, text, attributes = {}) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    return node;
  }

  function table(header, rows) {
    const node = element("table");
    const head = node.createTHead().insertRow();
    for (const name of header) head.appendChild(element("th", name));
    const body = node.createTBody();
    for (const row of rows) {
      const line = body.insertRow();
      for (const cell of row) {
        const td = line.insertCell();
        if (cell instanceof Node) td.appendChild(cell);
        else td.textContent = cell === null || cell === undefined ? "" : String(cell);
      }
    }
    if (!rows.length) {
      const line = body.insertRow();
      const td = line.insertCell();
      td.colSpan = header.length;
      td.className = "muted";
      td.textContent = "none";
    }
    return node;
  }

  function block(title, content, wide = false) {
    const node = element("div", null, { class: wide ? "figure wide" : "figure" });
    node.appendChild(element("h3", title));
    node.appendChild(content);
    return node;
  }

  function sessionLink(sid) {
    const button = element("button", sid, { type: "button", class: "link" });
    button.addEventListener("click", () => showTrail(sid));
    return button;
  }

  function say(text) {
    byId("status").textContent = text;
  }

  function renderFigures(stats) {
    const figures = byId("figures");
    figures.replaceChildren(
      block(`Sessions by state (dry runs apart: ${stats.dry_runs})`, table(["state", "sessions"], Object.entries(stats.sessions))),
      block(`Records by outcome (written: ${stats.written})`, table(["outcome", "records"], Object.entries(stats.records))),
      block("Top quarantine reasons", table(["reason", "records"], stats.quarantine_reasons.map((r) => [r.code, r.count]))),
      block(
        `Conflict kinds (open: ${stats.open_conflicts})`,
        table(["kind", "conflicts", "open"], stats.conflict_kinds.map((k) => [k.kind, k.count, k.open])),
      ),
      block(
        "Slowest sessions (opened to verified)",
        table(
          ["session", "user", "status", "records", "seconds"],
          stats.slowest.map((s) => [sessionLink(s.session_id), s.user_id, s.status, s.records, s.seconds]),
        ),
        true,
      ),
    );
  }

  function drawChart() {
    const canvas = byId("chart");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || canvas.width;
    const height = canvas.clientHeight || canvas.height;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const context = canvas.getContext("2d");
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    context.clearRect(0, 0, width, height);
    const pad = { left: 8, right: 8, top: 26, bottom: 18 };
    const plotWidth = width - pad.left - pad.right;
    const plotHeight = height - pad.top - pad.bottom;
    const step = plotWidth / SAMPLES;
    const x = (i) => pad.left + (SAMPLES - samples.length + i + 0.5) * step;
    // Records written per interval: the difference between one poll's total and the one before, as bars.
    const written = samples.map((s, i) => (i === 0 ? 0 : Math.max(0, s.written - samples[i - 1].written)));
    const mostWritten = Math.max(1, ...written);
    context.fillStyle = "#c7d3f4";
    written.forEach((n, i) => {
      const h = (n / mostWritten) * plotHeight;
      context.fillRect(x(i) - step * 0.4, pad.top + plotHeight - h, Math.max(1, step * 0.8), h);
    });
    // Sessions by state, as lines on their own scale.
    const states = [...new Set(samples.flatMap((s) => Object.keys(s.sessions)))].sort();
    const mostSessions = Math.max(1, ...samples.flatMap((s) => Object.values(s.sessions)));
    states.forEach((state, k) => {
      context.strokeStyle = COLOURS[k % COLOURS.length];
      context.lineWidth = 2;
      context.beginPath();
      samples.forEach((s, i) => {
        const y = pad.top + plotHeight - ((s.sessions[state] || 0) / mostSessions) * plotHeight;
        if (i === 0) context.moveTo(x(i), y);
        else context.lineTo(x(i), y);
      });
      context.stroke();
    });
    context.strokeStyle = "#dde2ea";
    context.lineWidth = 1;
    context.beginPath();
    context.moveTo(pad.left, pad.top + plotHeight + 0.5);
    context.lineTo(pad.left + plotWidth, pad.top + plotHeight + 0.5);
    context.stroke();
    context.font = "12px system-ui, sans-serif";
    let at = pad.left;
    for (const [k, state] of states.entries()) {
      context.fillStyle = COLOURS[k % COLOURS.length];
      context.fillRect(at, 4, 10, 10);
      context.fillStyle = "#1d2330";
      context.fillText(state, at + 14, 14);
      at += 24 + context.measureText(state).width;
    }
    context.fillStyle = "#5b6475";
    context.fillText(`last ${samples.length} polls, every ${POLL_MS / 1000} s`, pad.left, height - 4);
    byId("legend").textContent =
      `Bars: records written per interval (highest: ${mostWritten}). ` +
      `Lines: sessions by state (highest: ${mostSessions}).`;
  }

  async function poll() {
    if (polling || !token() || document.hidden) return;
    polling = true;
    try {
      const stats = await call("/stats");
      samples.push({ written: stats.written, sessions: stats.sessions });
      if (samples.length > SAMPLES) samples.shift();
      renderFigures(stats);
      drawChart();
      say(`Signed in. Figures of ${stats.generated_at}.`);
    } catch (error) {
      refused(error);
    } finally {
      polling = false;
    }
  }

  function refused(error) {
    if (error instanceof Refused && error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      stop();
      say(`Refused (${error.code}): ${error.message}`);
    } else {
      say(`Could not load (${error.code || error.name}): ${error.message}`);
    }
  }

  async function showSessions() {
    const user = byId("user").value.trim();
    const query = new URLSearchParams({ limit: "50" });
    if (user) query.set("user", user);
    try {
      const answer = await call(`/sessions?${query}`);
      byId("sessions").replaceChildren(
        table(
          ["session", "user", "status", "dry run", "created", "records"],
          answer.sessions.map((s) => [
            sessionLink(s.session_id),
            s.user_id,
            s.status + (s.pruned_at ? " (pruned)" : ""),
            s.dry_run ? "yes" : "no",
            s.created_at,
            Object.entries(s.records).map(([outcome, n]) => `${outcome} ${n}`).join(", "),
          ]),
        ),
      );
    } catch (error) {
      refused(error);
    }
  }

  async function showTrail(sid) {
    try {
      const trail = await call(`/sessions/${encodeURIComponent(sid)}`);
      const session = trail.session;
      const summary = table(
        ["session", "user", "status", "created", "completed", "rolled back", "pruned"],
        [[
          session.session_id,
          session.user_id,
          session.status + (session.dry_run ? " (dry run)" : ""),
          session.created_at,
          session.completed_at,
          session.rolled_back_at ? `${session.rolled_back_at} by ${session.rolled_back_by}` : null,
          session.pruned_at,
        ]],
      );
      const events = table(
        ["at", "actor", "action", "details"],
        trail.events.map((e) => [e.at, e.actor, e.action, JSON.stringify(e.details)]),
      );
      byId("trail").replaceChildren(summary, element("h3", `${trail.events.length} events`), events);
    } catch (error) {
      refused(error);
    }
  }

  function start() {
    stop();
    samples.length = 0;
    poll();
    showSessions();
    timer = setInterval(poll, POLL_MS);
  }

  function stop() {
    if (timer !== null) clearInterval(timer);
    timer = null;
  }

  byId("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const field = byId("token");
    const value = field.value.trim();
    field.value = "";
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    start();
  });
  byId("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    stop();
    say("Not signed in.");
  });
  byId("filter").addEventListener("submit", (event) => {
    event.preventDefault();
    showSessions();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) poll();
  });
  if (token()) start();
})();
