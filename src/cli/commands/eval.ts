import type { PerplexityResult } from "../../eval/perplexity.js";
import { storePerplexity } from "../../eval/layer-major.js";
import type { ModelStore } from "../../model/residency.js";
import { openExecutor } from "../../workers/index.js";
import type { Executor } from "../../exec/executor.js";
import { readTextFile } from "../../eval/text.js";
import { describeProtocol, evalSequences, protocolFromOptions, protocolLabel, type EvalProtocol, type EvalSequences } from "../../eval/protocol.js";
import { UsageError } from "../../errors.js";
import { openModelStore } from "../open-model.js";
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
  /** auto | resident | streamed (src/model/residency.ts) */
  residency?: "auto" | "resident" | "streamed";
}

export async function evalCommand(modelPath: string, opts: EvalOptions): Promise<PerplexityResult> {
  const protocol = protocolFromOptions(opts);
  const text = readTextFile(opts.text, "--text");
  // packed for the kernels unless linear layers go to a device (its kernels read row-major f32); a streamed
  // store reads its layers as f32 whatever is asked
  const onDevice = !!opts.device && opts.device !== "wasm";
  const store = await openModelStore(modelPath, { tokenizer: opts.tokenizer, residency: opts.residency, weights: onDevice ? undefined : opts.weightsDtype ?? "stored" });
  if (!store.model && opts.device && opts.device !== "wasm") {
    store.close();
    throw new UsageError(`--device ${opts.device}: ${modelPath} is streamed a layer at a time (it does not fit in memory whole); linear layers on WebGPU need the model resident, use --device wasm`);
  }
  const gpu = store.model && opts.device && opts.device !== "wasm"
    ? await (await import("../../gpu/offload.js")).attachGpuLinears(opts.device, store.model, Math.min(opts.ctx, store.config.maxSeqLen))
    : undefined;
  // with linear layers on the device, the forward pass runs on the main thread (the backend is not for workers)
  const exec = openExecutor(store.wasm, gpu ? 1 : opts.threads ?? 1);
  const { result: r, seqs } = await evalModel(store, text, protocol, opts, exec).finally(async () => {
    await gpu?.close();
    await exec.close();
    store.close();
  });
  const residency = store.resident ? "resident" : "streamed";
  if (opts.json) console.log(JSON.stringify({ model: modelPath, text: opts.text, residency, ...describeProtocol(seqs), ...r }, null, 2));
  else console.log(renderEval(r, seqs) + (store.resident ? "" : " (layer-major: the model streamed a decoder layer at a time)"));
  return r;
}

/**
 * Perplexity with a progress bar: over sequences (finished on any slot of `exec`) for a resident model, over
 * layers for a streamed one (layer-major evaluation, src/eval/layer-major.ts).
 */
export async function evalModel(store: ModelStore, text: string, protocol: EvalProtocol, opts: { json?: boolean }, exec: Executor): Promise<{ result: PerplexityResult; seqs: EvalSequences }> {
  if (!store.tokenizer) throw new UsageError("eval needs a tokenizer");
  const seqs = evalSequences(store.tokenizer, text, protocol, store.config.maxSeqLen);
  const bar = progress(store.resident ? "eval" : "eval (layers)", store.resident ? seqs.sequences.length : store.config.nLayers, { json: opts.json });
  try {
    return { result: await storePerplexity(store, seqs.sequences, exec, seqs.countFrom, (done) => bar.update(done)), seqs };
  } finally {
    bar.stop();
  }
}

export function renderEval(r: PerplexityResult, seqs: EvalSequences): string {
  return `perplexity ${fmt(r.perplexity, 4)} (mean NLL ${fmt(r.meanNll, 4)} nats) over ${r.tokens} predicted tokens in ${protocolLabel(seqs)}; ${fmt(r.seconds, 2)} s, ${fmt(r.tokensPerSecond, 1)} tok/s`;
}
