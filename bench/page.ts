/**
 * @file `bench page`: tokens/s of greedy generation in the browser page (`wasprune serve`'s page in Debian's Chromium,
 * scripts/install-chromium.sh, driven by playwright-core: a devDependency, so this runs from a checkout) next to the
 * Node library, for the same model, prompt and step count, one thread each, in interleaved rounds (node, page, node,
 * page, …) so both sides see the same machine. Models: stories260K dense and a 50% Wanda copy stored compressed
 * (CSR), pruned and compressed here, or the one model given. When the page runs the relaxed-SIMD build (Chromium
 * has it), each round also runs the page on the baseline build, so the two builds are compared side by side. The page's figure is its own `#tps` (tokens over the generation's wall time,
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
import { defaultBuild, type KernelBuild } from "../src/wasm/runtime.js";

export interface PageRow {
  model: string;
  node: number[];
  page: number[];
  /** median page tok/s over median Node tok/s */
  pageOverNode: number;
  /** when the page ran the relaxed build: the same page on the baseline build, in the same rounds */
  pageBaseline?: number[];
  /** median relaxed-build page tok/s over median baseline-build page tok/s */
  relaxedOverBaseline?: number;
}

export interface PageReport {
  browser: string;
  node: string;
  /** the page's device: auto (row-major f32 weights without WebGPU) or wasm (packed panels; Node then packs too) */
  device: "auto" | "wasm";
  /** the kernel build each side ran: the page's as it reported it (asked for: `kernels`), Node's as its runtime picks */
  kernels: { asked: "auto" | KernelBuild; page: string; node: KernelBuild };
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

export async function benchPage(opts: { model?: string; rounds?: number; steps?: number; screenshot?: string; device?: "auto" | "wasm"; kernels?: "auto" | KernelBuild; log?: (s: string) => void } = {}): Promise<PageReport> {
  const device = opts.device ?? "auto";
  const kernels = opts.kernels ?? "auto";
  let pageBuild = "";
  const missing = chromiumMissing();
  if (missing) throw new UsageError(`bench page: ${missing}`);
  const rounds = opts.rounds ?? 6;
  const steps = opts.steps ?? 200;
  const log = opts.log ?? (() => {});
  const shared = sharedDir();
  const bin = path.join(shared, "models/stories260K/stories260K.bin");
  const hf = path.join(shared, "models/stories260K-hf");
  const calib = path.join(shared, "data/tinystories-train-head/tinystories_train_head.txt");
  if (opts.model !== undefined && !fs.existsSync(opts.model)) throw new UsageError(`bench page: ${opts.model} does not exist`);
  if (opts.model === undefined) for (const f of [bin, hf, calib]) if (!fs.existsSync(f)) throw new UsageError(`bench page: ${f} does not exist (../shared beside the checkout)`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-bench-page-"));
  const notes: string[] = [];
  try {
    let models: { name: string; dir: string }[];
    if (opts.model !== undefined) models = [{ name: path.basename(path.resolve(opts.model)), dir: opts.model }];
    else {
      const pruned = path.join(tmp, "wanda-50");
      await prune(await loadModel(hf), fs.readFileSync(calib, "utf8"), { method: "wanda", sparsity: "0.5", nsamples: 16, seqlen: 128, out: pruned });
      const csr = path.join(tmp, "wanda-50-csr");
      await compress(await loadModel(pruned), csr);
      models = [{ name: "stories260K dense", dir: bin }, { name: "stories260K wanda 50%, compressed (CSR)", dir: csr }];
    }
    const { server, url } = await startServer(servedModels(models.map((m) => m.dir)), { port: 0 });
    const browser = await launchChromium();
    try {
      // the same settings on both sides (the page takes them as its deep link)
      const greedy = { prompt: PROMPT, steps, temperature: 0, seed: 42, threads: 1 };
      const page = { ...greedy, device, kernels };
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
          pageBuild = got.kernels;
          rows[i]!.node.push(nodeTps);
          rows[i]!.page.push(got.tps);
          let also = "";
          if (got.kernels === "relaxed") {
            // the same page on the baseline build, side by side in the same round
            const b = await openPage(browser, url, { ...page, kernels: "baseline", model: i, model2: "none" }, { tab });
            if (b.status !== "done") throw new UsageError(`bench page: the page (baseline build) failed on ${m.name}: ${b.error}`);
            if (b.output !== text) throw new UsageError(`bench page: the page's text on the baseline build differs from Node's for ${m.name}`);
            (rows[i]!.pageBaseline ??= []).push(b.tps);
            also = `, page (baseline build) ${b.tps.toFixed(0)} tok/s`;
          }
          log(`round ${r + 1}/${rounds} ${m.name}: Node ${nodeTps.toFixed(0)} tok/s, page ${got.tps.toFixed(0)} tok/s${also}`);
        }
      }
      for (const row of rows) {
        row.pageOverNode = median(row.page) / median(row.node);
        if (row.pageBaseline) row.relaxedOverBaseline = median(row.page) / median(row.pageBaseline);
      }
      if (opts.screenshot) await openPage(browser, url, { ...page, model: 0, model2: models.length > 1 ? 1 : "none" }, { two: models.length > 1, screenshot: opts.screenshot, tab });
      notes.push(`one thread on each side, the same layouts (${device === "wasm" ? "packed for the kernels: weights \"stored\"" : "row-major f32"}); kernels: the page's ${pageBuild} build (asked: ${kernels}), Node's ${defaultBuild()} build (the one its runtime picks)`);
      return { browser: browser.context.browser()?.version() ?? "chromium", node: process.version, device, kernels: { asked: kernels, page: pageBuild, node: defaultBuild() }, steps, rounds, rows, ...(opts.screenshot ? { screenshot: opts.screenshot } : {}), notes };
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
    `greedy generation, ${r.steps} steps, one thread, ${r.rounds} interleaved rounds (Node ${r.node}, Chromium ${r.browser}; device ${r.device}; kernels: page ${r.kernels.page}, Node ${r.kernels.node})`,
    ...r.rows.map((row) => `${row.model}: Node ${f(row.node)} tok/s; page ${f(row.page)} tok/s; page/Node (medians) ${row.pageOverNode.toFixed(2)}x` +
      (row.pageBaseline ? `; page on the baseline build ${f(row.pageBaseline)} tok/s; relaxed/baseline (medians) ${row.relaxedOverBaseline!.toFixed(2)}x` : "")),
    ...r.notes.map((n) => `note: ${n}`),
  ].join("\n");
}
