// A page that uses the official `meilisearch` npm client (its ESM build, served from
// node_modules by a tiny static server: no CDN, no bundler) to create an index, add documents
// and search through Miroir, in headless Chromium. The page is served from
// http://localhost:<port>, Miroir is another origin: the browser sends CORS preflights.
//
//   MIROIR_URL=http://127.0.0.1:7700 MIROIR_KEY=<key> MIROIR_INDEX=movies node sdk.mjs [screenshot.png]
//
// Prints one JSON line (what the page got); exits 1 with the reason on failure.
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { launch, dieWithParent } from "./chromium.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const FILES = {
  "/": ["sdk-page/index.html", "text/html; charset=utf-8"],
  "/page.js": ["sdk-page/page.js", "text/javascript; charset=utf-8"],
  "/meilisearch/index.js": ["node_modules/meilisearch/dist/index.js", "text/javascript; charset=utf-8"],
};

const [host, key, index] = ["MIROIR_URL", "MIROIR_KEY", "MIROIR_INDEX"].map((name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
});
const screenshot = process.argv[2];

const server = createServer((request, response) => {
  const file = FILES[new URL(request.url, "http://localhost").pathname];
  if (!file) {
    response.writeHead(404).end();
    return;
  }
  response.writeHead(200, { "content-type": file[1], "cache-control": "no-store" });
  response.end(readFileSync(join(here, file[0])));
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const port = server.address().port;

const { page, errors, close } = await launch();
const end = dieWithParent(async () => {
  server.close();
  await close();
});
page.setDefaultTimeout(30000);
// Every request the page sent to Miroir (method and path), with the Origin header Chromium gave it.
const toMiroir = [];
page.on("requestfinished", (r) => {
  if (!r.url().startsWith(host)) return;
  toMiroir.push(
    r.allHeaders().then((headers) => ({
      request: `${r.method()} ${new URL(r.url()).pathname}`,
      origin: headers.origin || null,
    })),
  );
});
// Identical requests once, with how many times they were sent (the client polls tasks).
async function requests() {
  const counted = new Map();
  for (const { request, origin } of await Promise.all(toMiroir)) {
    const k = `${request} ${origin}`;
    const entry = counted.get(k) || { request, origin, times: 0 };
    entry.times += 1;
    counted.set(k, entry);
  }
  return [...counted.values()];
}

try {
  const url = `http://localhost:${port}/?${new URLSearchParams({ host, key, index })}`;
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => window.setUpResult || window.setUpError);
  const failed = await page.evaluate(() => window.setUpError);
  if (failed) throw new Error(`the page's set-up failed: ${failed}`);
  const setUp = await page.evaluate(() => window.setUpResult);
  // Typed as a person types: the page searches on every keystroke.
  await page.locator("#q").pressSequentially("mirror", { delay: 30 });
  await page.waitForFunction(() => document.body.dataset.searched === "mirror");
  const hits = await page.locator("#hits li").evaluateAll((items) =>
    items.map((li) => ({ id: Number(li.dataset.id), text: li.innerText })),
  );
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  process.stdout.write(
    `${JSON.stringify({ ok: true, pageOrigin: `http://localhost:${port}`, setUp, hits, requests: await requests(), pageErrors: errors })}\n`,
  );
  await end(0);
} catch (e) {
  process.stdout.write(`${JSON.stringify({ ok: false, error: e.message, requests: await requests(), pageErrors: errors })}\n`);
  await end(1);
}
