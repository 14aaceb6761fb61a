// Debian's Chromium (/usr/bin/chromium, or CHROMIUM_BIN), launched headless by playwright-core.
// playwright-core never downloads a browser; a missing Chromium is an error, never a skip.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";

// The flags Chromium needs on a machine without a network beyond loopback: no background
// connections, no component updates, no sync, no QUIC.
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

// A browser in a fresh profile directory (removed by `close`), and a page 1280 pixels wide.
export async function launch() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}: \`make setup\` installs Debian's chromium and chromium-driver`,
    );
  }
  const profile = mkdtempSync(join(tmpdir(), "miroir-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 900 },
    // Times are shown in the machine's zone; tests and the screenshot read the same.
    timezoneId: "UTC",
    locale: "en-GB",
  });
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  const close = async () => {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, page, errors, close };
}

// Ends the process (and so its Chromium) on a signal or when stdin closes: the Rust test that
// spawned it may be killed, and nothing it started may outlive it.
export function dieWithParent(close) {
  const end = async (code) => {
    await close().catch(() => {});
    process.exit(code);
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => end(1));
  return end;
}
