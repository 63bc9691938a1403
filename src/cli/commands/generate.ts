import { generate } from "../../api/index.js";
import type { GenerateResult } from "../../generate/generate.js";
import { intActivationsOption, openModel } from "../open-model.js";
import type { WeightsOption } from "../../model/weight-file.js";
import { linearLayouts } from "../../model/linear.js";
import { fmt } from "../format.js";
import type { DeviceKind } from "../../gpu/device.js";

export interface GenerateCliOptions {
  prompt: string;
  steps: number;
  temperature: number;
  topP: number;
  seed: number;
  json?: boolean;
  tokenizer?: string;
  /** worker threads: with ≥ 2 and GEMVs large enough to pay (src/generate/gemv.ts), each is split by rows */
  threads?: number;
  /** linear weights in memory (--weights-dtype; src/model/weight-file.ts): default "stored"; with --device webgpu/auto "device" (row-major f32 for the device, quantized operators on the integer kernels) */
  weightsDtype?: WeightsOption;
  /** --int-activations: "8" / "16" run the integer operators on int8 / int16 activations; default "stored" (as the checkpoint declares) */
  intActivations?: "stored" | "16" | "8";
  /** where linear layers run (src/gpu/offload.ts); `auto` measures them at one position */
  device?: DeviceKind;
}

/** `wasprune generate`: the library's token stream (src/api), printed as it comes. */
export async function generateCommand(modelPath: string, opts: GenerateCliOptions): Promise<GenerateResult> {
  // packed for the kernels unless linear layers go to a device (its kernels read row-major f32)
  const onDevice = !!opts.device && opts.device !== "wasm";
  // generation's forward runs on this thread (a worker only takes GEMV rows), so an untied embedding table can
  // stay in host memory: its rows are copied per token
  const t0 = performance.now();
  const model = await openModel(modelPath, { tokenizer: opts.tokenizer, weights: onDevice ? "device" : opts.weightsDtype ?? "stored", hostEmbedding: !onDevice, intActivations: intActivationsOption(opts.intActivations) });
  const loadSeconds = (performance.now() - t0) / 1000;
  const it = generate(model, opts);
  let r: IteratorResult<{ text: string }, GenerateResult>;
  while (!(r = await it.next()).done) if (!opts.json && r.value.text) process.stdout.write(r.value.text);
  const result = r.value;
  // how the model was held: the linear weights' layouts and bytes, and the WebAssembly memory in use
  const held = { loadSeconds, weights: linearLayouts(model), arenaBytes: model.wasm.arena.mark() };
  if (opts.json) console.log(JSON.stringify({ model: modelPath, ...opts, ...held, ...result }, null, 2));
  else {
    process.stdout.write("\n");
    process.stderr.write(`${renderGenerateSpeed(result)}\n`);
  }
  return result;
}

export function renderGenerateSpeed(r: GenerateResult): string {
  return `achieved tok/s: ${fmt(r.tokensPerSecond, 1)} (${r.generatedTokens} generated after a ${r.promptTokens}-token prompt, ${fmt(r.seconds, 2)} s)`;
}
