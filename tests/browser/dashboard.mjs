// Loads the gateway's live page in the system Chromium (headless, through
// playwright-core: no browser download), waits until it has rendered the
// stats JSON, and prints what a person sees as one JSON object on stdout.
// Run by tests/it/dashboard.rs:
//
//   node tests/browser/dashboard.mjs URL SCREENSHOT_DIR [USER:PASSWORD]
//
// It takes a laptop-sized and a phone-sized screenshot into SCREENSHOT_DIR
// and reports whether the phone layout overflows sideways.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const [url, shots, credentials] = process.argv.slice(2);
if (!url || !shots) {
  console.error("usage: node dashboard.mjs URL SCREENSHOT_DIR [USER:PASSWORD]");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "switchyard-chromium-"));
const httpCredentials = credentials
  ? { username: credentials.split(":")[0], password: credentials.slice(credentials.indexOf(":") + 1) }
  : undefined;

// What the page shows, read from the DOM.
function read() {
  const text = (id) => document.getElementById(id)?.textContent ?? null;
  const cache = {};
  for (const g of ["answers", "embeddings", "rerank"]) {
    cache[g] = {
      window: text(`cache-${g}-window`),
      total: text(`cache-${g}-total`),
      lookups: text(`cache-${g}-lookups`),
    };
  }
  const providers = {};
  for (const card of document.querySelectorAll("[data-provider]")) {
    providers[card.dataset.provider] = {
      breaker: card.querySelector(".breaker")?.textContent ?? null,
      in_flight: card.querySelector(".in-flight")?.textContent ?? null,
      recent: card.querySelector(".recent")?.textContent ?? null,
    };
  }
  const routes = [...document.querySelectorAll("#routes tbody tr[data-route]")].map((r) => r.dataset.route);
  return {
    renders: Number(document.body.dataset.renders || 0),
    banner: document.getElementById("banner").hidden ? null : text("banner"),
    live: text("live-text"),
    cache,
    providers,
    routes,
    coalesced_total: text("coalesced-total"),
    sub_batches_total: text("sub-batches-total"),
    usage_rows: document.querySelectorAll("#usage tbody tr").length,
    sparklines: document.querySelectorAll("svg polyline").length,
    html: document.documentElement.outerHTML,
    overflows: document.documentElement.scrollWidth > window.innerWidth + 1,
  };
}

const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  httpCredentials,
  viewport: { width: 1280, height: 900 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let status = 0;
try {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  const response = await page.goto(url, { waitUntil: "load", timeout: 20000 });
  const report = { status: response.status(), errors };
  if (response.ok()) {
    // Two renders: the first poll, and one more two seconds later (the
    // page keeps updating by itself).
    await page.waitForFunction(() => Number(document.body.dataset.renders || 0) >= 2, null, {
      timeout: 20000,
    });
    report.laptop = await page.evaluate(read);
    report.laptop_png = path.join(shots, "dashboard-laptop.png");
    await page.screenshot({ path: report.laptop_png, fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload({ waitUntil: "load" });
    await page.waitForFunction(() => Number(document.body.dataset.renders || 0) >= 1, null, {
      timeout: 20000,
    });
    report.phone = await page.evaluate(read);
    report.phone_png = path.join(shots, "dashboard-phone.png");
    await page.screenshot({ path: report.phone_png, fullPage: true });
  } else {
    report.body = await response.text();
  }
  console.log(JSON.stringify(report));
} catch (e) {
  console.error(String(e && e.stack ? e.stack : e));
  status = 1;
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(status);
