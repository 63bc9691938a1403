/**
 * @file The main job (`npm start`): on the built-in model (or a model path) show what the engine does, with
 * timings: inspect, greedy generation, then pruning with every method at 50% and 2:4, calibrated on text the
 * dense model writes itself (or `--calib`), compared by relative error, perplexity and time on held-out text
 * (sampled with other seeds, or `--text`). The model is restored to dense between runs; nothing is written.
 */
import { generate } from "../../generate/generate.js";
import { inspectModel } from "../../model/inspect.js";
import type { Model } from "../../model/types.js";
import { closeParallel, Parallel } from "../../parallel/pool.js";
import { renderInspect } from "./inspect.js";
import { openModel } from "../open-model.js";
import { fmt, table } from "../format.js";

import { readTextFile } from "../../eval/text.js";
import { calibrationSet } from "../../prune/calibration.js";
import type { PruneSettings } from "../../prune/driver.js";
import { compareSettings, type Comparison } from "../../prune/compare.js";
import { evalSequences } from "../../eval/protocol.js";
import { METHOD_NAMES } from "../../prune/methods/types.js";
import { parsePattern } from "../../prune/pattern.js";
import { progress } from "../progress.js";

export interface DemoOptions {
  json?: boolean;
  tokenizer?: string;
  /** held-out text for perplexity (default: sampled from the model) */
  text?: string;
  /** calibration text (default: sampled from the model) */
  calib?: string;
  nsamples?: number;
  /** worker threads (1 = no pool) */
  threads?: number;
}

/** Text sampled from the model itself (seeded): calibration/eval text when the user gives none. */
export function selfText(model: Model, paragraphs: number, steps: number, seed: number): string {
  const out: string[] = [];
  for (let i = 0; i < paragraphs; i++) {
    const r = generate(model, { prompt: "", steps, temperature: 1, topP: 0.9, seed: seed + i });
    out.push(r.text.replace(/\n\s*\n/g, "\n").trim() || "?");
  }
  return out.join("\n\n");
}

export async function demoCommand(modelPath: string, opts: DemoOptions): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const model = await openModel(modelPath, { tokenizer: opts.tokenizer });
  Parallel.attach(model.wasm, opts.threads ?? 1);
  try {
    return await demoRun(model, modelPath, opts, t0);
  } finally {
    await closeParallel(model.wasm);
  }
}

async function demoRun(model: Model, modelPath: string, opts: DemoOptions, t0: number): Promise<Record<string, unknown>> {
  const tLoad = (performance.now() - t0) / 1000;
  const report = inspectModel(model);
  const say = (s: string) => {
    if (!opts.json) console.log(s);
  };
  say(`== wasprune demo: ${modelPath} (loaded in ${fmt(tLoad, 2)} s)\n`);
  say(renderInspect({ ...report, tensors: report.tensors.slice(0, 12) }));
  if (report.tensors.length > 12) say(`… ${report.tensors.length - 12} more tensors (wasprune inspect ${modelPath})`);

  say(`\n== generate: greedy, 96 steps, prompt "Once upon a time"`);
  const gen = generate(model, {
    prompt: "Once upon a time", steps: 96, temperature: 0, topP: 0.9, seed: 42,
    onText: opts.json ? undefined : (s) => process.stdout.write(s),
  });
  say(`\nachieved tok/s: ${fmt(gen.tokensPerSecond, 1)}`);

  const nsamples = opts.nsamples ?? 64;
  const seqLen = Math.min(256, model.config.maxSeqLen);
  const t1 = performance.now();
  const calibText = opts.calib ? readTextFile(opts.calib, "--calib") : selfText(model, nsamples, seqLen, 7);
  const evalText = opts.text ? readTextFile(opts.text, "--text") : selfText(model, 32, seqLen, 100_000);
  say(
    `\n== prune: calibration ${opts.calib ?? `${nsamples} paragraphs sampled from the dense model`}, ` +
      `eval ${opts.text ?? "32 other sampled paragraphs"} (${fmt((performance.now() - t1) / 1000, 2)} s to prepare)`,
  );
  const calib = calibrationSet(model.tokenizer!, calibText, opts.calib ?? "(sampled)", nsamples, seqLen);
  const evalSeqs = evalSequences(model.tokenizer!, evalText, { protocol: "paragraphs", ctx: seqLen }, model.config.maxSeqLen);
  const grid: PruneSettings[] = ["0.5", "2:4"].flatMap((pat) =>
    METHOD_NAMES.map((method) => ({ method, pattern: parsePattern(pat), schedule: "sequential" as const, errorCorrection: method === "fista" })),
  );
  const bar = progress("prune", grid.length, { json: opts.json, extra: "{run}" });
  let cmp: Comparison;
  try {
    cmp = await compareSettings(model, calib, evalSeqs, grid, (done, _total, run) => bar.update(done, { run }));
  } finally {
    bar.stop();
  }
  say(renderComparison(cmp));
  say(`\ntotal ${fmt((performance.now() - t0) / 1000, 1)} s. Prune a model to disk with: wasprune prune MODEL --method fista --sparsity 0.5 --calib FILE --out DIR`);
  const result = { model: modelPath, loadSeconds: tLoad, inspect: { params: report.params, linear: report.linear }, generate: gen, dense: cmp.dense, prune: cmp.rows };
  if (opts.json) console.log(JSON.stringify(result, null, 2));
  return result;
}

export function renderComparison(cmp: Comparison): string {
  return table(
    ["method", "pattern", "schedule", "error corr.", "sparsity %", "mean rel. error", "perplexity", "seconds"],
    [
      ["dense", "-", "-", "-", "", "", fmt(cmp.dense.perplexity, 4), ""],
      ...cmp.rows.map((r) => [
        r.method, r.pattern, r.schedule, r.errorCorrection ? "yes" : "no", fmt(100 * r.sparsity, 2),
        fmt(r.meanRelErr, 4), fmt(r.perplexity, 4), fmt(r.seconds, 2),
      ]),
    ],
    { align: ["l", "l", "l", "l", "r", "r", "r", "r"] },
  );
}
