/**
 * Debian's Chromium as scripts/install-chromium.sh unpacked it (.cache/chromium), driven by playwright-core with
 * executablePath and the flags a closed network needs: no sandbox as root, no background networking or
 * component updates, no first-run or sync, a fresh user-data-dir per launch (removed on close). Used by the browser
 * tests (test/web/) and `bench page`; playwright-core is a devDependency, so this runs from a checkout.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { BrowserContext } from "playwright-core";
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
