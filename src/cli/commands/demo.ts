/**
 * @file The main job (`npm start`): on the embedded stories260K (src/model/embedded.ts) or a model path, show
 * what the engine does, with timings: inspect; greedy generation of the dense model (llama2.c's own text on
 * stories260K); pruning with every method at 50% and 2:4, calibrated on text the dense model writes itself
 * (or `--calib`) and compared by relative error, perplexity on the shipped TinyStories excerpt (or `--text`)
 * and time; the greedy text of the best pruned model; that model compressed (src/sparse/compress.ts, into a
 * temporary directory that is removed), loaded back, its bytes and tok/s against dense. The model is restored
 * to dense between runs; nothing is left on disk.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { generate, selfText, type GenerateResult } from "../../generate/generate.js";
import { inspectModel } from "../../model/inspect.js";
import { residentStore } from "../../model/residency.js";
import { EMBEDDED_MODEL, EMBEDDED_TEXT } from "../../model/embedded.js";
import { loadModel } from "../../model/load.js";
import type { Model } from "../../model/types.js";
import { openExecutor } from "../../workers/index.js";
import type { Executor } from "../../exec/executor.js";
import { renderInspect } from "./inspect.js";
import { openModel } from "../open-model.js";
import { fmt, humanBytes, table } from "../format.js";
import { readTextFile } from "../../eval/text.js";
import { describeProtocol, evalSequences } from "../../eval/protocol.js";
import { calibrationSet } from "../../prune/calibration.js";
import type { PruneSettings } from "../../prune/driver.js";
import { compareSettings, setLinearWeights, type Comparison } from "../../prune/compare.js";
import { METHOD_NAMES } from "../../prune/methods/types.js";
import { parsePattern } from "../../prune/pattern.js";
import { compressModel } from "../../model/compressed.js";
import { progress } from "../progress.js";

export interface DemoOptions {
  json?: boolean;
  tokenizer?: string;
  /** held-out text for perplexity (default: the shipped TinyStories excerpt) */
  text?: string;
  /** calibration text (default: sampled from the model) */
  calib?: string;
  nsamples?: number;
  /** worker threads (1 = no pool) */
  threads?: number;
}

export const DEMO_PROMPT = "Once upon a time";
/** forward positions of the greedy runs: llama2.c's `-n 200` (its documented stories260K output) */
export const DEMO_STEPS = 200;

/** Greedy text of the prompt; tok/s is the best of `repeats` runs (the model is tiny: one run is a few ms). */
function greedy(model: Model, repeats: number, onText?: (s: string) => void): GenerateResult {
  const run = (first: boolean) => generate(model, { prompt: DEMO_PROMPT, steps: DEMO_STEPS, temperature: 0, topP: 0.9, seed: 42, onText: first ? onText : undefined });
  const r = run(true);
  for (let i = 1; i < repeats; i++) {
    const again = run(false);
    if (again.tokensPerSecond > r.tokensPerSecond) Object.assign(r, { seconds: again.seconds, tokensPerSecond: again.tokensPerSecond });
  }
  return r;
}

export async function demoCommand(modelPath: string | undefined, opts: DemoOptions): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const spec = modelPath ?? EMBEDDED_MODEL;
  const evalFile = opts.text ?? EMBEDDED_TEXT;
  const evalText = readTextFile(evalFile, "--text");
  const calibText = opts.calib ? readTextFile(opts.calib, "--calib") : undefined;
  const model = await openModel(spec, { tokenizer: opts.tokenizer });
  const exec = openExecutor(model.wasm, opts.threads ?? 1);
  try {
    return await demoRun(model, exec, modelPath === undefined ? "embedded stories260K" : spec, { ...opts, text: evalFile }, evalText, calibText, t0);
  } finally {
    await exec.close();
  }
}

const shown = (p: string) => path.relative(process.cwd(), p) || p;

async function demoRun(model: Model, exec: Executor, name: string, opts: DemoOptions & { text: string }, evalText: string, calibText: string | undefined, t0: number): Promise<Record<string, unknown>> {
  const tLoad = (performance.now() - t0) / 1000;
  const tok = model.tokenizer!;
  const report = inspectModel(residentStore(model));
  const say = (s: string) => {
    if (!opts.json) console.log(s);
  };
  say(`== wasprune demo: ${name} (${shown(model.source.path)}, loaded in ${fmt(tLoad, 2)} s)\n`);
  say(renderInspect({ ...report, tensors: report.tensors.slice(0, 12) }));
  if (report.tensors.length > 12) say(`… ${report.tensors.length - 12} more tensors (wasprune inspect ${shown(model.source.path)})`);

  say(`\n== generate: dense model, greedy, ${DEMO_STEPS} steps, prompt "${DEMO_PROMPT}"`);
  const dense = greedy(model, 5, opts.json ? undefined : (s) => process.stdout.write(s));
  say(`\nachieved tok/s: ${fmt(dense.tokensPerSecond, 1)}`);

  const nsamples = opts.nsamples ?? 32;
  const seqLen = Math.min(256, model.config.maxSeqLen);
  const t1 = performance.now();
  let calibFile = opts.calib;
  if (!calibText) {
    const bar = progress("sampling calibration text", nsamples, { json: opts.json });
    try {
      calibText = selfText(model, nsamples, seqLen, 7, (done) => bar.update(done));
    } finally {
      bar.stop();
    }
    calibFile = `(${nsamples} paragraphs sampled from the dense model, seed 7)`;
  }
  const calib = calibrationSet(tok, calibText, calibFile!, nsamples, seqLen);
  const evalSeqs = evalSequences(tok, evalText, { protocol: "paragraphs", ctx: 512 }, model.config.maxSeqLen);
  say(
    `\n== prune every linear operator: calibration ${calibFile} (${calib.totalTokens} tokens, ${fmt((performance.now() - t1) / 1000, 2)} s to prepare); ` +
      `perplexity on ${shown(opts.text)} (${evalSeqs.sequences.length} paragraphs)`,
  );
  const grid: PruneSettings[] = ["0.5", "2:4"].flatMap((pat) =>
    METHOD_NAMES.map((method) => ({ method, pattern: parsePattern(pat), schedule: "sequential" as const, errorCorrection: method === "fista" })),
  );
  const bar = progress("prune", grid.length, { json: opts.json, extra: "{run}" });
  let cmp: Comparison;
  try {
    cmp = await compareSettings(model, calib, evalSeqs, grid, exec, (done, _total, run) => bar.update(done, { run }), { keepBest: true });
  } finally {
    bar.stop();
  }
  say(renderComparison(cmp));

  const best = cmp.rows[cmp.best!.row]!;
  const label = `${best.method} ${best.pattern}${best.errorCorrection ? " (error correction)" : ""}`;
  say(`\n== best pruned model: ${label}, perplexity ${fmt(best.perplexity, 4)} (dense ${fmt(cmp.dense.perplexity, 4)}); greedy, same prompt`);
  const denseWarm = greedy(model, 5); // compareSettings left the model dense; tok/s of warmed-up code, for the comparison below
  setLinearWeights(model, cmp.best!.weights);
  const pruned = greedy(model, 5, opts.json ? undefined : (s) => process.stdout.write(s));
  say(`\nachieved tok/s: ${fmt(pruned.tokensPerSecond, 1)} (zeros stored dense)`);

  const compressed = await compressAndRun(model, opts.tokenizer);
  const c = compressed.report;
  const formats: Record<string, number> = {};
  for (const o of c.operators) formats[o.format] = (formats[o.format] ?? 0) + 1;
  const ratio = c.denseFileBytes / c.fileBytes;
  say(`\n== compress the best pruned model (src/sparse/compress.ts)`);
  say(table(
    ["form", "model.safetensors", "tok/s (greedy)", "operators"],
    [
      ["dense", humanBytes(c.denseFileBytes), fmt(denseWarm.tokensPerSecond, 1), `${c.operators.length} dense`],
      ["pruned, compressed", humanBytes(c.fileBytes), fmt(compressed.generate.tokensPerSecond, 1), Object.entries(formats).map(([f, n]) => `${n} ${f}`).join(", ")],
    ],
    { align: ["l", "r", "r", "l"] },
  ));
  const storedDense = c.operators.filter((o) => o.format === "dense");
  say(
    `dense/compressed bytes ${fmt(ratio, 2)}x; the compressed model's greedy text ${compressed.generate.text === pruned.text ? "is the same as" : "DIFFERS from"} the pruned model's` +
      (storedDense.length ? `. ${storedDense.length} of ${c.operators.length} operators were stored dense: compress found ${fmt(100 * Math.max(...storedDense.map((o) => o.sparsity)), 2)}% ` +
        `zeros (+0.0 bits) at most in them, while ${fmt(100 * best.sparsity, 2)}% of the pruned linear weights are zero` : ""),
  );
  say(`\ntotal ${fmt((performance.now() - t0) / 1000, 1)} s. Prune a model to disk with: wasprune prune MODEL --method fista --sparsity 0.5 --calib FILE --out DIR`);
  const result = {
    model: model.source.path,
    loadSeconds: tLoad,
    inspect: { params: report.params, linear: report.linear },
    generate: { prompt: DEMO_PROMPT, ...dense },
    calibration: { ...calib.source, tokens: calib.totalTokens },
    eval: { file: opts.text, ...describeProtocol(evalSeqs) },
    dense: cmp.dense,
    prune: cmp.rows,
    best: { ...best, generate: pruned },
    compress: {
      formats, denseFileBytes: c.denseFileBytes, fileBytes: c.fileBytes, ratio, operators: c.operators,
      denseTokensPerSecond: denseWarm.tokensPerSecond, generate: compressed.generate, sameText: compressed.generate.text === pruned.text,
    },
    seconds: (performance.now() - t0) / 1000,
  };
  if (opts.json) console.log(JSON.stringify(result, null, 2));
  return result;
}

/** compressModel into a temporary directory, load it back as `wasprune eval/generate` do, greedy text; the directory is removed. */
async function compressAndRun(model: Model, tokenizer: string | undefined) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-demo-"));
  try {
    const dir = path.join(tmp, "compressed");
    const report = compressModel(model, dir);
    const loaded = await loadModel(dir, { tokenizer });
    return { report, generate: greedy(loaded, 5) };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export function renderComparison(cmp: Comparison): string {
  const products = cmp.rows.some((r) => r.products !== undefined);
  return table(
    ["method", "pattern", "schedule", "error corr.", "sparsity %", "mean rel. error", "perplexity", "seconds", ...(products ? ["W·H products/op"] : [])],
    [
      ["dense", "-", "-", "-", "", "", fmt(cmp.dense.perplexity, 4), "", ...(products ? [""] : [])],
      ...cmp.rows.map((r) => [
        r.method, r.pattern, r.schedule, r.errorCorrection ? "yes" : "no", fmt(100 * r.sparsity, 2),
        fmt(r.meanRelErr, 4), fmt(r.perplexity, 4), fmt(r.seconds, 2), ...(products ? [r.products === undefined ? "" : fmt(r.products, 0)] : []),
      ]),
    ],
    { align: ["l", "l", "l", "l", "r", "r", "r", "r", "r"] },
  );
}
