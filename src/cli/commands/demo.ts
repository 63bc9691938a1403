/**
 * @file The main job (`npm start`): on the built-in model (or a model path) show what the engine does, with
 * timings: inspect, text sampled from the model itself, perplexity on that text, and greedy generation.
 */
import { generate } from "../../generate/generate.js";
import { inspectModel } from "../../model/inspect.js";
import type { Model } from "../../model/types.js";
import { evalModel, renderEval } from "./eval.js";
import { renderInspect } from "./inspect.js";
import { openModel } from "../open-model.js";
import { fmt } from "../format.js";

export interface DemoOptions {
  json?: boolean;
  tokenizer?: string;
  text?: string;
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

  const t1 = performance.now();
  const text = selfText(model, 16, Math.min(128, model.config.maxSeqLen), 1000);
  const tText = (performance.now() - t1) / 1000;
  say(`\n== eval: 16 paragraphs sampled from the model itself (${fmt(tText, 2)} s to sample)`);
  const ev = evalModel(model, text, { ctx: model.config.maxSeqLen, json: opts.json });
  say(renderEval(ev));

  say(`\n== generate: greedy, 96 steps, prompt "Once upon a time"`);
  const gen = generate(model, {
    prompt: "Once upon a time", steps: 96, temperature: 0, topP: 0.9, seed: 42,
    onText: opts.json ? undefined : (s) => process.stdout.write(s),
  });
  say(`\nachieved tok/s: ${fmt(gen.tokensPerSecond, 1)}`);
  const result = { model: modelPath, loadSeconds: tLoad, inspect: { params: report.params, linear: report.linear }, eval: ev, generate: gen };
  if (opts.json) console.log(JSON.stringify(result, null, 2));
  return result;
}
