// The /admin page: fetches GET v1/admin/analytics every few seconds with the token it was
// given and draws the series as inline SVG. No framework, no external fetch.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const REFRESH_MS = 5000;
const W = 440, H = 180, LEFT = 44, RIGHT = 8, TOP = 22, BOTTOM = 20;
let token = "";
let timer = null;

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

function clock(ms) {
  const d = new Date(ms);
  return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
}

// series: [{name, values: [number|null]}], times: minute starts in ms
function lineChart(id, times, series) {
  const svg = document.getElementById(id);
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const values = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  const max = Math.max(1, ...values);
  const total = values.reduce((a, b) => a + b, 0);
  const x = (i) => LEFT + (times.length > 1 ? i * (W - LEFT - RIGHT) / (times.length - 1) : 0);
  const y = (v) => H - BOTTOM - (v / max) * (H - TOP - BOTTOM);
  for (const frac of [0, 0.5, 1]) {
    el("line", {x1: LEFT, x2: W - RIGHT, y1: y(max * frac), y2: y(max * frac),
                class: frac ? "grid" : "axis"}, svg);
    el("text", {x: LEFT - 4, y: y(max * frac) + 4, "text-anchor": "end"}, svg)
      .textContent = formatNumber(max * frac);
  }
  if (times.length) {
    el("text", {x: LEFT, y: H - 4}, svg).textContent = clock(times[0]);
    el("text", {x: W - RIGHT, y: H - 4, "text-anchor": "end"}, svg)
      .textContent = clock(times[times.length - 1]);
  }
  const latest = [];
  series.forEach((s, n) => {
    // a line through each run of minutes with a value (a minute without one breaks it),
    // and a dot where a value stands alone
    let run = [];
    const endRun = () => {
      if (run.length > 1) {
        const line = el("polyline", {points: run.map(([i, v]) => `${x(i)},${y(v)}`).join(" "),
                                     class: `s${n % 6}`}, svg);
        el("title", {}, line).textContent = s.name;
      } else if (run.length === 1) {
        const [i, v] = run[0];
        el("title", {}, el("circle", {cx: x(i), cy: y(v), r: 3, class: `s${n % 6}`}, svg))
          .textContent = `${s.name} ${formatNumber(v)}`;
      }
      run = [];
    };
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) endRun(); else run.push([i, v]);
    });
    endRun();
    const last = [...s.values].reverse().find((v) => v !== null && v !== undefined);
    latest.push(`${s.name} ${last === undefined ? "none" : formatNumber(last)}`);
    el("rect", {x: LEFT + 4 + n * 100, y: 4, width: 10, height: 10, class: `s${n % 6}`}, svg);
    el("text", {x: LEFT + 18 + n * 100, y: 13, class: "legend"}, svg).textContent = s.name;
  });
  svg.dataset.total = String(total);
  svg.setAttribute("aria-description", "Latest minute: " + latest.join(", "));
}

function formatNumber(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

function fillTable(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren();
  if (!rows.length) {
    const tr = body.insertRow();
    const td = tr.insertCell();
    td.colSpan = document.querySelectorAll(`#${id} thead th`).length;
    td.textContent = "Nothing yet";
    return;
  }
  for (const cells of rows) {
    const tr = body.insertRow();
    cells.forEach((value, i) => {
      const td = tr.insertCell();
      td.textContent = String(value);
      if (i) td.className = "n";
    });
  }
}

function draw(data) {
  const s = data.series;
  const times = s.map((m) => m.minute_ms);
  const kinds = ["room", "party", "playlist"];
  lineChart("c-connections", times, [
    {name: "connections", values: s.map((m) => m.connections)},
    {name: "users", values: s.map((m) => m.users)}]);
  lineChart("c-messages", times, kinds.map((k) => ({name: k, values: s.map((m) => m.messages[k])})));
  lineChart("c-latency", times, [
    {name: "p50", values: s.map((m) => m.latency_ms.p50)},
    {name: "p99", values: s.map((m) => m.latency_ms.p99)}]);
  const codes = [...new Set(s.flatMap((m) => Object.keys(m.errors)))].sort();
  lineChart("c-errors", times, codes.length
    ? codes.map((c) => ({name: c, values: s.map((m) => m.errors[c] || 0)}))
    : [{name: "errors", values: s.map(() => 0)}]);
  const states = [...new Set(data.notifications.map((n) => n.state))].sort();
  const byMinute = new Map();
  for (const n of data.notifications) {
    const key = `${n.minute_ms}|${n.state}`;
    byMinute.set(key, (byMinute.get(key) || 0) + n.count);
  }
  lineChart("c-notifications", times, states.length
    ? states.map((st) => ({name: st, values: times.map((t) => byMinute.get(`${t}|${st}`) || 0)}))
    : [{name: "deliveries", values: s.map(() => 0)}]);
  const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
  lineChart("c-clicks", times, [
    {name: "shown", values: s.map((m) => sum(m.recommendations.tracks_shown))},
    {name: "added", values: s.map((m) => sum(m.recommendations.tracks_added))}]);

  fillTable("t-rooms", data.top.room.map((r) => [r.id, r.messages]));
  fillTable("t-parties", data.top.party.map((p) => [p.id, p.messages, p.active_users]));
  fillTable("t-playlists", data.top.playlist.map((p) => [p.id, p.messages]));
  fillTable("t-skips", data.top.skipped_tracks.map((t) => [t.track, t.skips]));
  const errors = {};
  for (const m of s) for (const [c, n] of Object.entries(m.errors)) errors[c] = (errors[c] || 0) + n;
  fillTable("t-errors", Object.entries(errors).sort((a, b) => b[1] - a[1]));

  const shown = s.reduce((a, m) => a + sum(m.recommendations.tracks_shown), 0);
  const added = s.reduce((a, m) => a + sum(m.recommendations.tracks_added), 0);
  const last = s[s.length - 1] || {connections: 0};
  document.getElementById("summary").textContent =
    `Tenant ${data.tenant}: connections now ${last.connections}; distinct users in ` +
    `${data.minutes} minutes ${data.distinct_users}; recommendation click-through ` +
    (shown ? `${(100 * added / shown).toFixed(1)}% (${added} of ${shown} tracks)` : "n/a") + ".";
}

function status(text, isError) {
  const node = document.getElementById("status");
  node.textContent = text;
  node.classList.toggle("error", Boolean(isError));
}

async function refresh() {
  clearTimeout(timer);
  try {
    const response = await fetch("v1/admin/analytics?minutes=60", {
      headers: {Authorization: `Bearer ${token}`}, cache: "no-store"});
    const body = await response.json();
    if (!response.ok) {
      status(`Refused (${response.status}): ${body.error ? body.error.message : ""}`, true);
      if (response.status === 401 || response.status === 403) return;
    } else {
      draw(body);
      status(`Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`);
    }
  } catch (err) {
    status(`Could not fetch the analytics: ${err}`, true);
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function start(value) {
  token = value.trim();
  if (token) refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  const params = new URLSearchParams(location.search);
  const form = document.getElementById("login");
  if (params.has("token")) {
    document.getElementById("token").value = params.get("token");
    history.replaceState(null, "", location.pathname);  // keep the token out of the history
    start(params.get("token"));
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    start(document.getElementById("token").value);
  });
});
