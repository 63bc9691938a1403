import type { PerplexityResult } from "../../eval/perplexity.js";
import { perplexityOf } from "../../api/index.js";
import { readTextFile } from "../../eval/text.js";
import { describeProtocol, protocolFromOptions, protocolLabel, type EvalSequences, type ProtocolName } from "../../eval/protocol.js";
import { intActivationsOption, openModelStore } from "../open-model.js";
import type { WeightsOption } from "../../model/weight-file.js";
import { progress } from "../progress.js";
import { fmt } from "../format.js";
import { linearLayouts } from "../../model/linear.js";
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
  /** linear weights in memory (--weights-dtype; src/model/weight-file.ts): default "stored"; with --device webgpu/auto "device" (row-major f32 for the device, quantized operators on the integer kernels) */
  weightsDtype?: WeightsOption;
  /** --int-activations: "8" / "16" run the integer operators on int8 / int16 activations; default "stored" (as the checkpoint declares) */
  intActivations?: "stored" | "16" | "8";
  /** where linear layers run (src/gpu/offload.ts) */
  device?: DeviceKind;
  /** auto | resident | streamed (src/model/residency.ts) */
  residency?: "auto" | "resident" | "streamed";
}

/** `wasprune eval`: the library's perplexity (src/api) on a store, with a progress bar over sequences (resident) or layers (streamed). */
export async function evalCommand(modelPath: string, opts: EvalOptions): Promise<PerplexityResult> {
  protocolFromOptions(opts); // flags checked before the model is read
  const text = readTextFile(opts.text, "--text");
  // packed for the kernels unless linear layers go to a device (its kernels read row-major f32; quantized
  // operators keep their integer layouts and stay on WASM); a streamed
  // store reads its layers as f32 whatever is asked
  const onDevice = !!opts.device && opts.device !== "wasm";
  const store = await openModelStore(modelPath, { tokenizer: opts.tokenizer, residency: opts.residency, weights: onDevice ? "device" : opts.weightsDtype ?? "stored", intActivations: intActivationsOption(opts.intActivations) });
  let bar: ReturnType<typeof progress> | undefined;
  const { result: r, seqs } = await perplexityOf(store, text, {
    ...opts,
    protocol: opts.protocol as ProtocolName | undefined,
    onProgress: (done, total) => (bar ??= progress(store.resident ? "eval" : "eval (layers)", total, { json: opts.json })).update(done),
  }).finally(() => {
    bar?.stop();
    store.close();
  });
  const residency = store.resident ? "resident" : "streamed";
  // how the linear weights were held (resident: the kernels they ran on)
  const weights = store.model ? linearLayouts(store.model) : undefined;
  if (opts.json) console.log(JSON.stringify({ model: modelPath, text: opts.text, residency, ...(weights && { weights }), ...describeProtocol(seqs), ...r }, null, 2));
  else console.log(renderEval(r, seqs) + (store.resident ? "" : " (layer-major: the model streamed a decoder layer at a time)"));
  return r;
}

export function renderEval(r: PerplexityResult, seqs: EvalSequences): string {
  return `perplexity ${fmt(r.perplexity, 4)} (mean NLL ${fmt(r.meanNll, 4)} nats) over ${r.tokens} predicted tokens in ${protocolLabel(seqs)}; ${fmt(r.seconds, 2)} s, ${fmt(r.tokensPerSecond, 1)} tok/s`;
}
