/**
 * Debian's Chromium as scripts/install-chromium.sh unpacked it (.cache/chromium), driven by playwright-core with
 * executablePath and the flags a closed network needs: no sandbox as root, no background networking or
 * component updates, no first-run or sync, a fresh user-data-dir per launch (removed on close). Used by the browser
 * tests (test/web/) and `bench page`; playwright-core is a devDependency, so this runs from a checkout.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { checkoutRoot } from "./shared.js";

const DIR = path.join(checkoutRoot(), ".cache", "chromium");

/** Why the browser tests cannot run here (undefined when they can). */
export function chromiumMissing(): string | undefined {
  if (!fs.existsSync(path.join(DIR, "installed"))) return `Chromium is not installed in ${DIR} (run sh scripts/install-chromium.sh)`;
  return undefined;
}

export interface LaunchedBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Launch headless Chromium (`extraArgs` e.g. --enable-unsafe-webgpu). */
export async function launchChromium(extraArgs: string[] = []): Promise<LaunchedBrowser> {
  const exe = path.join(DIR, fs.readFileSync(path.join(DIR, "chromium-path"), "utf8").trim());
  const libs = fs.readFileSync(path.join(DIR, "ld-path.txt"), "utf8").split("\n").filter(Boolean).map((p) => path.join(DIR, p));
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-chromium-"));
  const env = { ...process.env, LD_LIBRARY_PATH: [...libs, process.env.LD_LIBRARY_PATH].filter(Boolean).join(":") } as Record<string, string>;
  // a devDependency: loaded only when a browser is launched (never by the CLI's other commands)
  const { chromium } = await import("playwright-core");
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: exe,
    headless: true,
    env,
    args: [
      ...(process.getuid?.() === 0 ? ["--no-sandbox"] : []),
      "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync",
      "--disable-default-apps", "--disable-quic", "--metrics-recording-only", "--no-default-browser-check",
      ...extraArgs,
    ],
  });
  return {
    context: ctx,
    async close() {
      await ctx.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** What the page of `wasprune serve` shows (src/web/page: panes A and B). */
export interface PageResult {
  status: string;
  output: string;
  tps: number;
  error: string;
  info: string;
  /** the build of the kernels pane A ran on ("baseline" | "relaxed"; empty before a model loaded) */
  kernels: string;
  run: { threads?: string; splits?: string; device?: string; text: string };
  status2: string;
  output2: string;
  info2: string;
}

/** The page's fields (a string, not a function: tsx would name the function's inner arrows with a helper the page lacks). */
const READ = `(() => {
  const $ = (id) => document.getElementById(id);
  return {
    status: $("status").textContent, output: $("output").textContent, tps: Number($("tps").textContent), error: $("error").textContent,
    info: $("infoA").textContent, kernels: $("infoA").dataset.kernels ?? "", run: { ...$("runA").dataset, text: $("runA").textContent },
    status2: $("status2").textContent, output2: $("output2").textContent, info2: $("infoB").textContent,
  };
})()`;

async function readPage(page: Page): Promise<PageResult> {
  return (await page.evaluate(READ)) as PageResult;
}

/**
 * Open the page at `base` with the deep-link `query` in a new tab (or in `tab`, kept open and warm between calls, as a
 * benchmark's rounds want), wait (≤ 90 s) until pane A (and B when `two`) is done or in error, optionally save a
 * full-page screenshot, and read it. `isolated: false` serves it without the isolation headers. An uncaught error
 * in the page throws.
 */
export async function openPage(
  b: LaunchedBrowser, base: string, query: Record<string, string | number>,
  opts: { two?: boolean; isolated?: boolean; screenshot?: string; tab?: Page } = {},
): Promise<PageResult> {
  const page = opts.tab ?? (await b.context.newPage());
  const errors: string[] = [];
  const onError = (e: Error) => errors.push(e.message);
  page.on("pageerror", onError);
  try {
    if (opts.isolated === false) {
      // the same server without the isolation headers: the page must run on one thread
      await page.route("**/*", async (route) => {
        const res = await route.fetch();
        const headers = { ...res.headers() };
        delete headers["cross-origin-opener-policy"];
        delete headers["cross-origin-embedder-policy"];
        await route.fulfill({ response: res, headers });
      });
    }
    const q = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]));
    await page.goto(`${base}?${q}`);
    const ids = opts.two ? ["status", "status2"] : ["status"];
    const settled = ids.map((id) => `["done", "error"].includes(document.getElementById("${id}").textContent)`).join(" && ");
    await page.waitForFunction(`(${settled}) || document.getElementById("status").textContent === "error"`, undefined, { timeout: 90_000 });
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
    const r = await readPage(page);
    if (errors.length) throw new Error(`uncaught errors in the page: ${errors.join("; ")}`);
    return r;
  } finally {
    page.off("pageerror", onError);
    if (!opts.tab) await page.close();
  }
}
