// Drives the control plane's page (/_miroir/ui) in headless Chromium for an e2e test
// (tests/e2e/tests/chromium.rs), which decides what to check and when.
//
// Protocol: one JSON command a line on stdin, one JSON answer a line on stdout
// (`{"ok": true, ...}` or `{"ok": false, "error": "..."}`; `pageErrors` lists what the page threw
// or logged as an error since the last answer). Commands:
//   {"op": "open", "url": U}          load U; answers whether the key form is shown
//   {"op": "login", "key": K}         type K in the key form and submit it
//   {"op": "state"}                   what the page shows (see `shown` below)
//   {"op": "screenshot", "path": P}   a PNG of the whole page
//   {"op": "quit"}
// The process ends when stdin closes, closing Chromium and removing its profile.
import { createInterface } from "node:readline";
import { launch, dieWithParent } from "./chromium.mjs";

const TIMEOUT_MS = 15000;

// Runs in the page: every table row and summary field as the operator reads it (innerText, so
// hidden elements read as empty), and the shard map's cells counted by node and state.
function shown() {
  const text = (node) => (node ? node.innerText.trim() : "");
  const visible = (id) => {
    const node = document.getElementById(id);
    return !!node && !node.hidden && node.offsetParent !== null;
  };
  const rows = (selector, key) =>
    [...document.querySelectorAll(selector)].map((tr) => {
      const fields = {};
      for (const td of tr.querySelectorAll("[data-field]")) fields[td.dataset.field] = text(td);
      return { [key]: tr.dataset[key], ...fields };
    });
  const summary = {};
  for (const dd of document.querySelectorAll("#summary [data-field]")) summary[dd.dataset.field] = text(dd);
  const map = {};
  for (const grid of document.querySelectorAll("#map .grid")) {
    const nodes = {};
    for (const c of grid.querySelectorAll(".cell[data-node]")) {
      const n = (nodes[c.dataset.node] ||= {});
      n[c.dataset.state] = (n[c.dataset.state] || 0) + 1;
    }
    map[grid.dataset.group] = nodes;
  }
  return {
    refreshes: Number(document.body.dataset.refreshes || 0),
    login: visible("login"),
    loginError: text(document.getElementById("login-error")),
    dashboard: visible("dashboard"),
    error: visible("error") ? text(document.getElementById("error")) : "",
    summary,
    nodes: rows("#nodes tbody tr", "node"),
    map,
    jobs: rows("#jobs tbody tr", "job"),
    envoys: rows("#envoys tbody tr", "envoy"),
    rollout: text(document.querySelector('#fleet-section [data-field="rollout"]')),
  };
}

const { page, errors, close } = await launch();
// Chromium logs every refused request; the page is refused on purpose without the key or with a
// wrong one. Any other failed load stays an error.
const expected = /^console: Failed to load resource: the server responded with a status of 40[13] /;
const unexpected = () => errors.splice(0).filter((e) => !expected.test(e));
page.setDefaultTimeout(TIMEOUT_MS);
const end = dieWithParent(close);

async function run(command) {
  switch (command.op) {
    case "open": {
      await page.goto(command.url, { waitUntil: "load" });
      // The first refresh decides between the key form and the dashboard.
      await page.waitForFunction(
        () => !document.getElementById("login").hidden || !document.getElementById("dashboard").hidden,
      );
      return { login: await page.locator("#login").isVisible() };
    }
    case "login": {
      await page.fill("#key", command.key);
      await page.click('#login button[type="submit"]');
      await page.waitForFunction(
        () =>
          !document.getElementById("dashboard").hidden ||
          document.getElementById("login-error").textContent !== "",
      );
      return { state: await page.evaluate(shown) };
    }
    case "state":
      return { state: await page.evaluate(shown) };
    case "screenshot":
      await page.screenshot({ path: command.path, fullPage: true });
      return {};
    default:
      throw new Error(`unknown op ${JSON.stringify(command.op)}`);
  }
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let answer;
  let command = {};
  try {
    command = JSON.parse(line);
    if (command.op === "quit") break;
    answer = { ok: true, ...(await run(command)) };
  } catch (e) {
    answer = { ok: false, error: `${command.op || "?"}: ${e.message}` };
  }
  answer.pageErrors = unexpected();
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
await end(0);
