// The operator's page (docs/ui.md): reads the admin JSON routes with the admin key, every second,
// and shows the nodes, the shard map, the jobs and the fleet. It only reads.
//
// Everything the API returns is put in the page as text (textContent), never as HTML.
"use strict";

const KEY_ITEM = "miroir-admin-key";
const POLL_MS = 1000;
const POLL_HIDDEN_MS = 5000;
const JOBS_SHOWN = 20;
const STATES = ["active", "copying", "leaving", "outOfSync"];

let timer = null;
let refreshes = 0;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = String(v);
    // Through the CSSOM: a `style` attribute is inline style, which the page's CSP refuses.
    else if (k === "style") Object.assign(node.style, v);
    else if (k.startsWith("data-") || k === "title") node.setAttribute(k, String(v));
    else node[k] = v;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

const cell = (field, text, cls) => el("td", { "data-field": field, class: cls, text });

function key() {
  return sessionStorage.getItem(KEY_ITEM);
}

class AuthError extends Error {}

// A GET of an admin route, relative to this page (`/_miroir/ui` → `/_miroir/<route>`), so the
// page also works behind a proxy that serves the control plane under a prefix.
async function admin(route) {
  const headers = { Accept: "application/json" };
  const k = key();
  if (k) headers.Authorization = `Bearer ${k}`;
  const response = await fetch(route, { headers, cache: "no-store", credentials: "omit" });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (response.status === 401 || response.status === 403) {
    throw new AuthError((body && body.message) || `HTTP ${response.status}`);
  }
  if (!response.ok) {
    const why = body && body.message ? `${body.code}: ${body.message}` : `HTTP ${response.status}`;
    throw new Error(`GET ${route}: ${why}`);
  }
  return body;
}

function showLogin(message) {
  $("dashboard").hidden = true;
  $("summary").hidden = true;
  $("forget").hidden = true;
  $("error").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("key").focus();
}

function showError(message) {
  const banner = $("error");
  banner.textContent = message;
  banner.hidden = !message;
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(refresh, document.hidden ? POLL_HIDDEN_MS : POLL_MS);
}

async function refresh() {
  clearTimeout(timer);
  try {
    // Without a key, one route first: a control plane run without `adminKey` (development)
    // answers, any other asks for the key.
    if (key() === null) await admin("topology");
    const [topology, shards, jobs, fleet] = await Promise.all([
      admin("topology"),
      admin("shards"),
      admin("jobs"),
      admin("fleet"),
    ]);
    render(topology, shards, jobs, fleet);
    showError("");
    schedule();
  } catch (e) {
    if (e instanceof AuthError) {
      const had = key() !== null;
      sessionStorage.removeItem(KEY_ITEM);
      showLogin(had ? `The control plane refused the key: ${e.message}` : "");
      return;
    }
    // Keep what was shown; say it is stale, and try again.
    showError(`Not refreshed (${new Date().toLocaleTimeString()}): ${e.message}`);
    schedule();
  }
}

// Copies of every node by state, from `GET /_miroir/shards`: node → {state → count}.
function copiesByNode(shards) {
  const counts = new Map();
  for (const shard of shards.shards) {
    for (const list of Object.values(shard.copies)) {
      for (const copy of list) {
        if (!counts.has(copy.node)) counts.set(copy.node, Object.fromEntries(STATES.map((s) => [s, 0])));
        const c = counts.get(copy.node);
        c[copy.state] = (c[copy.state] || 0) + 1;
      }
    }
  }
  return counts;
}

function render(topology, shards, jobs, fleet) {
  refreshes += 1;
  $("login").hidden = true;
  $("dashboard").hidden = false;
  $("summary").hidden = false;
  $("forget").hidden = false;

  const set = (field, text) => {
    document.querySelector(`#summary [data-field="${field}"]`).textContent = text;
  };
  set("epoch", topology.epoch);
  set("shards", topology.shards);
  set(
    "replication",
    Object.entries(topology.replication || {})
      .map(([g, rf]) => `${g}: RF ${rf}`)
      .join(", "),
  );
  set("minCopies", `${topology.minCopies} (${topology.unavailableShards})`);
  set("leader", fleet.leader ? "leader" : "follower");
  set("updated", new Date().toLocaleTimeString());

  const counts = copiesByNode(shards);
  renderNodes(topology, counts);
  renderMap(topology, shards);
  renderJobs(jobs.results || []);
  renderFleet(fleet, topology.epoch);
  document.body.dataset.refreshes = String(refreshes);
}

function renderNodes(topology, counts) {
  // A node's share of its group's shards × RF copies, by weight: what the allocator aims at
  // (every node within one copy of it). Leaving copies are not counted: they are on their way out.
  const weights = new Map();
  for (const n of topology.nodes) weights.set(n.group, (weights.get(n.group) || 0) + n.weight);
  const target = (n) => {
    const copies = topology.shards * ((topology.replication || {})[n.group] ?? topology.replicationFactor);
    const weight = weights.get(n.group) || 0;
    return weight > 0 ? (copies * n.weight) / weight : 0;
  };
  const most = Math.max(1, ...[...counts.values()].map((c) => STATES.reduce((s, k) => s + (c[k] || 0), 0)));
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren(
    ...topology.nodes.map((n) => {
      const c = counts.get(n.id) || {};
      const total = STATES.reduce((s, k) => s + (c[k] || 0), 0);
      const kept = total - (c.leaving || 0);
      const share = target(n);
      const diff = kept - share;
      const balance = el(
        "td",
        { "data-field": "balance", class: Math.abs(diff) > 1 ? "warn" : "" },
        el("span", { class: "bar", style: { width: `${Math.round((60 * total) / most)}px` } }),
        ` ${kept} of ${share.toFixed(1)} (${diff >= 0 ? "+" : ""}${diff.toFixed(1)})`,
      );
      const health = n.state === "active" ? (n.draining ? "active, draining" : "active") : n.state;
      return el(
        "tr",
        { "data-node": n.id, class: n.state === "active" ? "" : "failed" },
        cell("id", n.id),
        cell("group", n.group),
        cell("address", n.address),
        cell("health", health, `health ${n.state}`),
        cell("weight", n.weight),
        cell("copies", total),
        cell("active", c.active || 0),
        cell("copying", c.copying || 0, c.copying ? "copying" : ""),
        cell("leaving", c.leaving || 0, c.leaving ? "leaving" : ""),
        cell("outOfSync", c.outOfSync || 0, c.outOfSync ? "outOfSync" : ""),
        balance,
      );
    }),
  );
}

function renderMap(topology, shards) {
  const blocks = [];
  for (const group of shards.groups) {
    const nodes = topology.nodes.filter((n) => n.group === group);
    const state = new Map(); // `${node}/${shard}` → state
    for (const s of shards.shards) {
      for (const copy of s.copies[group] || []) state.set(`${copy.node}/${s.shard}`, copy.state);
    }
    const grid = el("div", {
      class: "grid",
      "data-group": group,
      style: { gridTemplateColumns: `5em repeat(${shards.shards.length}, minmax(6px, 1fr))` },
    });
    grid.append(el("span", { class: "label" }));
    for (const s of shards.shards) {
      grid.append(el("span", { class: "shard-no", text: s.shard % 8 === 0 ? s.shard : "" }));
    }
    for (const n of nodes) {
      grid.append(el("span", { class: "label", text: n.id }));
      for (const s of shards.shards) {
        const st = state.get(`${n.id}/${s.shard}`) || "none";
        grid.append(
          el("span", {
            class: `cell ${st}`,
            "data-node": n.id,
            "data-shard": s.shard,
            "data-state": st,
            title: `shard ${s.shard} on ${n.id}: ${st === "none" ? "no copy" : st}`,
          }),
        );
      }
    }
    blocks.push(el("div", { class: "group" }, el("h3", { text: `group ${group}` }), grid));
  }
  $("map").replaceChildren(...blocks);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// A time of day from an RFC 3339 text or Unix milliseconds.
function time(value) {
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value || "–" : d.toLocaleTimeString();
}

function renderJobs(jobs) {
  const shown = jobs.slice(-JOBS_SHOWN).reverse();
  $("jobs-empty").hidden = jobs.length > 0;
  $("jobs").hidden = jobs.length === 0;
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren(
    ...shown.map((j) => {
      const total = j.shardsTotal || 0;
      const done = j.shardsDone || 0;
      const pct = total > 0 ? Math.round((100 * done) / total) : 100;
      const progress = el(
        "td",
        { "data-field": "progress" },
        el("progress", { max: Math.max(total, 1), value: total > 0 ? done : 1 }),
        ` ${done} / ${total} shards (${pct}%)`,
      );
      const why = [j.reason, ...(j.errors || [])].filter(Boolean).join("; ");
      return el(
        "tr",
        { "data-job": j.id, class: `job ${j.state}` },
        cell("id", j.id),
        cell("kind", j.kind),
        cell("state", j.state, `state ${j.state}`),
        cell("phase", j.phase),
        progress,
        cell("documents", j.documentsCopied || 0),
        cell("rate", j.documentsPerSecond ? Math.round(j.documentsPerSecond) : "–"),
        cell("eta", j.state === "running" ? duration(j.etaSeconds) : "–"),
        cell("updated", time(j.finishedAt || j.updatedAt)),
        cell("reason", why || ""),
      );
    }),
  );
}

function rolloutText(rollout, epoch, servedEpoch) {
  const served = `serving epoch ${servedEpoch ?? "–"} (stored ${epoch ?? "–"})`;
  if (!rollout || rollout.state === "idle") return `Rollout: idle, ${served}.`;
  if (rollout.state === "inProgress") {
    return `Rollout of epoch ${rollout.epoch}: step ${rollout.stepNumber} (${rollout.step}), waiting for ${rollout.waitingFor.join(", ") || "nobody"}; ${served}.`;
  }
  if (rollout.state === "stoppedByNack") {
    return `Rollout of epoch ${rollout.epoch} stopped at ${rollout.step}: ${rollout.envoy} rejected ${rollout.typeUrl} ${rollout.version}: ${rollout.message}; ${served}.`;
  }
  if (rollout.state === "timedOut") {
    return `Rollout of epoch ${rollout.epoch} timed out at ${rollout.step}, waiting for ${rollout.waitingFor.join(", ")}; ${served}.`;
  }
  return `Rollout: ${rollout.state}; ${served}.`;
}

function renderFleet(fleet, epoch) {
  const rollout = document.querySelector('#fleet-section [data-field="rollout"]');
  rollout.textContent = rolloutText(fleet.rollout, fleet.epoch ?? epoch, fleet.servedEpoch);
  rollout.className = fleet.rollout && fleet.rollout.state !== "idle" && fleet.rollout.state !== "inProgress" ? "error" : "";
  const envoys = (fleet.fleet && fleet.fleet.envoys) || [];
  $("fleet-empty").hidden = envoys.length > 0;
  $("envoys").hidden = envoys.length === 0;
  const stored = fleet.epoch ?? epoch;
  document.querySelector("#envoys tbody").replaceChildren(
    ...envoys.map((e) => {
      const nacks = Object.entries(e.types || {})
        .filter(([, t]) => t.lastNack)
        .map(([url, t]) => el("div", { class: "nack", text: `${url.split(".").pop()} ${t.lastNack.version} at ${time(t.lastNack.atMs)}: ${t.lastNack.message}` }));
      const behind = e.epoch !== stored;
      return el(
        "tr",
        { "data-envoy": e.nodeId },
        cell("id", e.nodeId),
        cell("cluster", e.cluster),
        cell("connected", time(e.connectedSinceMs)),
        cell("epoch", e.epoch === null || e.epoch === undefined ? "none" : behind ? `${e.epoch} (behind)` : e.epoch, behind ? "warn" : ""),
        el("td", { "data-field": "nacks", class: nacks.length ? "error" : "" }, ...(nacks.length ? nacks : ["none"])),
      );
    }),
  );
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("key").value.trim();
    if (!value) return;
    sessionStorage.setItem(KEY_ITEM, value);
    $("key").value = "";
    $("login-error").textContent = "";
    refresh();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_ITEM);
    clearTimeout(timer);
    showLogin("");
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && key() !== null) refresh();
  });
  // Without a key, try once anyway: a control plane run without `adminKey` (development) answers.
  refresh();
});
