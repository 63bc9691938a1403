/**
 * @file `bench page`: tokens/s of greedy generation in the browser page (`wasprune serve`'s page in Debian's Chromium,
 * scripts/install-chromium.sh, driven by playwright-core: a devDependency, so this runs from a checkout) next to the
 * Node library, for the same model, prompt and step count, one thread each, in interleaved rounds (node, page, node,
 * page, …) so both sides see the same machine. Models: stories260K dense and a 50% Wanda copy stored compressed
 * (CSR), pruned and compressed here. The page's figure is its own `#tps` (tokens over the generation's wall time,
 * as the Node figure); both must give the same text, checked every round.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { compress, generate, loadModel, prune } from "../src/api/index.js";
import { servedModels, startServer } from "../src/serve/server.js";
import { UsageError } from "../src/errors.js";
import { chromiumMissing, launchChromium, openPage } from "./browser.js";
import { sharedDir } from "./shared.js";

export interface PageRow {
  model: string;
  node: number[];
  page: number[];
  /** median page tok/s over median Node tok/s */
  pageOverNode: number;
}

export interface PageReport {
  browser: string;
  node: string;
  /** the page's device: auto (row-major f32 weights without WebGPU) or wasm (packed panels; Node then packs too) */
  device: "auto" | "wasm";
  steps: number;
  rounds: number;
  rows: PageRow[];
  screenshot?: string;
  notes: string[];
}

const PROMPT = "Once upon a time";

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export async function benchPage(opts: { rounds?: number; steps?: number; screenshot?: string; device?: "auto" | "wasm"; log?: (s: string) => void } = {}): Promise<PageReport> {
  const device = opts.device ?? "auto";
  const missing = chromiumMissing();
  if (missing) throw new UsageError(`bench page: ${missing}`);
  const rounds = opts.rounds ?? 6;
  const steps = opts.steps ?? 200;
  const log = opts.log ?? (() => {});
  const shared = sharedDir();
  const bin = path.join(shared, "models/stories260K/stories260K.bin");
  const hf = path.join(shared, "models/stories260K-hf");
  const calib = path.join(shared, "data/tinystories-train-head/tinystories_train_head.txt");
  for (const f of [bin, hf, calib]) if (!fs.existsSync(f)) throw new UsageError(`bench page: ${f} does not exist (../shared beside the checkout)`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-bench-page-"));
  const notes: string[] = [];
  try {
    const pruned = path.join(tmp, "wanda-50");
    await prune(await loadModel(hf), fs.readFileSync(calib, "utf8"), { method: "wanda", sparsity: "0.5", nsamples: 16, seqlen: 128, out: pruned });
    const csr = path.join(tmp, "wanda-50-csr");
    await compress(await loadModel(pruned), csr);
    const models = [{ name: "stories260K dense", dir: bin }, { name: "stories260K wanda 50%, compressed (CSR)", dir: csr }];
    const { server, url } = await startServer(servedModels(models.map((m) => m.dir)), { port: 0 });
    const browser = await launchChromium();
    try {
      // the same settings on both sides (the page takes them as its deep link)
      const greedy = { prompt: PROMPT, steps, temperature: 0, seed: 42, threads: 1 };
      const page = { ...greedy, device };
      // one tab for every round, as one user would keep it open
      const tab = await browser.context.newPage();
      const rows: PageRow[] = models.map((m) => ({ model: m.name, node: [], page: [], pageOverNode: NaN }));
      // the layouts the page holds: row-major f32 (auto, no WebGPU here), or packed for the kernels (wasm: "stored")
      const loaded = await Promise.all(models.map((m) => loadModel(m.dir, device === "wasm" ? { weights: "stored" } : {})));
      for (let r = 0; r < rounds; r++) {
        for (const [i, m] of models.entries()) {
          let text = "";
          let tokens = 0;
          const t0 = performance.now();
          for await (const tok of generate(loaded[i]!, greedy)) {
            text += tok.text;
            tokens++;
          }
          // tokens generated (a generation ends early at the end-of-text token), as the page counts them
          const nodeTps = tokens / ((performance.now() - t0) / 1000);
          const got = await openPage(browser, url, { ...page, model: i, model2: "none" }, { tab });
          if (got.status !== "done") throw new UsageError(`bench page: the page failed on ${m.name}: ${got.error}`);
          if (got.output !== text) throw new UsageError(`bench page: the page's text differs from Node's for ${m.name}`);
          rows[i]!.node.push(nodeTps);
          rows[i]!.page.push(got.tps);
          log(`round ${r + 1}/${rounds} ${m.name}: Node ${nodeTps.toFixed(0)} tok/s, page ${got.tps.toFixed(0)} tok/s`);
        }
      }
      for (const row of rows) row.pageOverNode = median(row.page) / median(row.node);
      if (opts.screenshot) await openPage(browser, url, { ...page, model: 0, model2: 1 }, { two: true, screenshot: opts.screenshot, tab });
      notes.push(`one thread on each side, the same layouts (${device === "wasm" ? "packed for the kernels: weights \"stored\"" : "row-major f32"}); the page runs the baseline kernels, Node the build its runtime picks`);
      return { browser: browser.context.browser()?.version() ?? "chromium", node: process.version, device, steps, rounds, rows, ...(opts.screenshot ? { screenshot: opts.screenshot } : {}), notes };
    } finally {
      await browser.close();
      server.close();
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export function renderPage(r: PageReport): string {
  const f = (v: number[]) => v.map((x) => x.toFixed(0)).join(" ");
  return [
    `greedy generation, ${r.steps} steps, one thread, ${r.rounds} interleaved rounds (Node ${r.node}, Chromium ${r.browser}; device ${r.device})`,
    ...r.rows.map((row) => `${row.model}: Node ${f(row.node)} tok/s; page ${f(row.page)} tok/s; page/Node (medians) ${row.pageOverNode.toFixed(2)}x`),
    ...r.notes.map((n) => `note: ${n}`),
  ].join("\n");
}
