import type { PerplexityResult } from "../../eval/perplexity.js";
import { perplexityOf } from "../../api/index.js";
import { readTextFile } from "../../eval/text.js";
import { describeProtocol, protocolFromOptions, protocolLabel, type EvalSequences, type ProtocolName } from "../../eval/protocol.js";
import { openModel } from "../open-model.js";
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
  /** where linear layers run (src/gpu/offload.ts) */
  device?: DeviceKind;
}

/** `wasprune eval`: the library's perplexity (src/api) with a progress bar over sequences. */
export async function evalCommand(modelPath: string, opts: EvalOptions): Promise<PerplexityResult> {
  protocolFromOptions(opts); // flags checked before the model is read
  const text = readTextFile(opts.text, "--text");
  const model = await openModel(modelPath, { tokenizer: opts.tokenizer });
  let bar: ReturnType<typeof progress> | undefined;
  const { result: r, seqs } = await perplexityOf(model, text, {
    ...opts,
    protocol: opts.protocol as ProtocolName | undefined,
    onProgress: (done, total) => (bar ??= progress("eval", total, { json: opts.json })).update(done),
  }).finally(() => bar?.stop());
  if (opts.json) console.log(JSON.stringify({ model: modelPath, text: opts.text, ...describeProtocol(seqs), ...r }, null, 2));
  else console.log(renderEval(r, seqs));
  return r;
}

export function renderEval(r: PerplexityResult, seqs: EvalSequences): string {
  return `perplexity ${fmt(r.perplexity, 4)} (mean NLL ${fmt(r.meanNll, 4)} nats) over ${r.tokens} predicted tokens in ${protocolLabel(seqs)}; ${fmt(r.seconds, 2)} s, ${fmt(r.tokensPerSecond, 1)} tok/s`;
}
