/**
 * @file The main job (`npm start`): on the built-in model (or a model path) show what the engine does, with
 * timings: inspect, greedy generation, then pruning with every method at 50% and 2:4, calibrated on text the
 * dense model writes itself (or `--calib`), compared by relative error, perplexity and time on held-out text
 * (sampled with other seeds, or `--text`). The model is restored to dense between runs; nothing is written.
 */
import { generate } from "../../generate/generate.js";
import { inspectModel } from "../../model/inspect.js";
import type { Model } from "../../model/types.js";
import { evalModel } from "./eval.js";
import { renderInspect } from "./inspect.js";
import { openModel } from "../open-model.js";
import { fmt, table } from "../format.js";
import { readTextFile } from "../../eval/text.js";
import { calibrationSet } from "../../prune/calibration.js";
import { pruneModel, type PruneSettings } from "../../prune/driver.js";
import { METHOD_NAMES } from "../../prune/methods/types.js";
import { parsePattern } from "../../prune/pattern.js";
import { LINEAR_OPS } from "../../model/types.js";
import { progress } from "../progress.js";

export interface DemoOptions {
  json?: boolean;
  tokenizer?: string;
  /** held-out text for perplexity (default: sampled from the model) */
  text?: string;
  /** calibration text (default: sampled from the model) */
  calib?: string;
  nsamples?: number;
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
  const dense = evalModel(model, evalText, { ctx: seqLen, json: true });
  const calib = calibrationSet(model.tokenizer!, calibText, opts.calib ?? "(sampled)", nsamples, seqLen);
  // dense weights, restored before each run
  const snapshot = model.weights.layers.map((lw) => LINEAR_OPS.map((op) => lw[op].data.slice()));
  const restore = () => model.weights.layers.forEach((lw, l) => LINEAR_OPS.forEach((op, i) => lw[op].data.set(snapshot[l][i])));
  const runs: Array<Record<string, unknown>> = [];
  const patterns = ["0.5", "2:4"];
  const bar = progress("prune", METHOD_NAMES.length * patterns.length, { json: opts.json, extra: "{run}" });
  let done = 0;
  for (const pat of patterns) {
    for (const method of METHOD_NAMES) {
      bar.update(done, { run: `${method} ${pat}` });
      const settings: PruneSettings = { method, pattern: parsePattern(pat), schedule: "sequential", errorCorrection: method === "fista" };
      const tp = performance.now();
      const ops = pruneModel(model, calib, settings);
      const seconds = (performance.now() - tp) / 1000;
      const ppl = evalModel(model, evalText, { ctx: seqLen, json: true });
      restore();
      runs.push({
        method, pattern: pat, errorCorrection: settings.errorCorrection, seconds,
        meanRelErr: ops.reduce((a, r) => a + r.relErr, 0) / ops.length, perplexity: ppl.perplexity,
      });
      bar.update(++done, { run: `${method} ${pat}` });
    }
  }
  bar.stop();
  say(
    table(
      ["method", "pattern", "error corr.", "mean rel. error", "perplexity", "seconds"],
      [
        ["dense", "-", "-", "", fmt(dense.perplexity, 3), ""],
        ...runs.map((r) => [
          String(r.method), String(r.pattern), r.errorCorrection ? "yes" : "no",
          fmt(r.meanRelErr as number, 4), fmt(r.perplexity as number, 3), fmt(r.seconds as number, 2),
        ]),
      ],
      { align: ["l", "l", "l", "r", "r", "r"] },
    ),
  );
  say(`\ntotal ${fmt((performance.now() - t0) / 1000, 1)} s. Prune a model to disk with: wasprune prune MODEL --method fista --sparsity 0.5 --calib FILE --out DIR`);
  const result = { model: modelPath, loadSeconds: tLoad, inspect: { params: report.params, linear: report.linear }, generate: gen, dense: dense, prune: runs };
  if (opts.json) console.log(JSON.stringify(result, null, 2));
  return result;
}
