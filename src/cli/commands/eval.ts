import { perplexity, type PerplexityResult } from "../../eval/perplexity.js";
import { openExecutor } from "../../workers/index.js";
import type { Executor } from "../../exec/executor.js";
import { readTextFile } from "../../eval/text.js";
import { describeProtocol, evalSequences, protocolFromOptions, protocolLabel, type EvalProtocol, type EvalSequences } from "../../eval/protocol.js";
import { UsageError } from "../../errors.js";
import type { Model } from "../../model/types.js";
import { openModel } from "../open-model.js";
import type { WeightsOption } from "../../model/weight-file.js";
import { progress } from "../progress.js";
import { fmt } from "../format.js";
import type { DeviceKind } from "../../gpu/device.js";

export interface EvalOptions {
  text: string;
  /** paragraphs | windows (src/eval/protocol.ts) */
  protocol?: string;
  paragraphs?: number;
  stride?: number;
  maxWindows?: number;
  ctx: number;
  json?: boolean;
  tokenizer?: string;
  /** worker threads (1 = no pool; not with linear layers on WebGPU) */
  threads?: number;
  /** linear weights in memory (--weights-dtype; src/model/weight-file.ts): default "stored"; ignored with --device webgpu/auto */
  weightsDtype?: WeightsOption;
  /** where linear layers run (src/gpu/offload.ts) */
  device?: DeviceKind;
}

export async function evalCommand(modelPath: string, opts: EvalOptions): Promise<PerplexityResult> {
  const protocol = protocolFromOptions(opts);
  const text = readTextFile(opts.text, "--text");
  // packed for the kernels unless linear layers go to a device (its kernels read row-major f32)
  const onDevice = !!opts.device && opts.device !== "wasm";
  const model = await openModel(modelPath, { tokenizer: opts.tokenizer, weights: onDevice ? undefined : opts.weightsDtype ?? "stored" });
  const gpu = opts.device && opts.device !== "wasm"
    ? await (await import("../../gpu/offload.js")).attachGpuLinears(opts.device, model, Math.min(opts.ctx, model.config.maxSeqLen))
    : undefined;
  // with linear layers on the device, the forward pass runs on the main thread (the backend is not for workers)
  const exec = openExecutor(model.wasm, gpu ? 1 : opts.threads ?? 1);
  const { result: r, seqs } = await evalModel(model, text, protocol, opts, exec).finally(async () => {
    await gpu?.close();
    await exec.close();
  });
  if (opts.json) console.log(JSON.stringify({ model: modelPath, text: opts.text, ...describeProtocol(seqs), ...r }, null, 2));
  else console.log(renderEval(r, seqs));
  return r;
}

/** Perplexity with a progress bar over sequences (finished on any slot of `exec`). */
export async function evalModel(model: Model, text: string, protocol: EvalProtocol, opts: { json?: boolean }, exec: Executor): Promise<{ result: PerplexityResult; seqs: EvalSequences }> {
  if (!model.tokenizer) throw new UsageError("eval needs a tokenizer");
  const seqs = evalSequences(model.tokenizer, text, protocol, model.config.maxSeqLen);
  const bar = progress("eval", seqs.sequences.length, { json: opts.json });
  try {
    return { result: await perplexity(model, seqs.sequences, exec, (done) => bar.update(done), seqs.countFrom), seqs };
  } finally {
    bar.stop();
  }
}

export function renderEval(r: PerplexityResult, seqs: EvalSequences): string {
  return `perplexity ${fmt(r.perplexity, 4)} (mean NLL ${fmt(r.meanNll, 4)} nats) over ${r.tokens} predicted tokens in ${protocolLabel(seqs)}; ${fmt(r.seconds, 2)} s, ${fmt(r.tokensPerSecond, 1)} tok/s`;
}
