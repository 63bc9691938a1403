import { generate, type GenerateResult } from "../../generate/generate.js";
import { openModel } from "../open-model.js";
import type { WeightsOption } from "../../model/weight-file.js";
import { fmt } from "../format.js";
import { openExecutor } from "../../workers/index.js";
import { gemvHelper, largestLinear, MIN_SPLIT_WEIGHTS } from "../../generate/gemv.js";
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
  /** linear weights in memory (--weights-dtype; src/model/weight-file.ts): default "stored"; ignored with --device webgpu/auto */
  weightsDtype?: WeightsOption;
  /** where linear layers run (src/gpu/offload.ts); `auto` measures them at one position */
  device?: DeviceKind;
}

export async function generateCommand(modelPath: string, opts: GenerateCliOptions): Promise<GenerateResult> {
  // packed for the kernels unless linear layers go to a device (its kernels read row-major f32)
  const onDevice = !!opts.device && opts.device !== "wasm";
  const model = await openModel(modelPath, { tokenizer: opts.tokenizer, weights: onDevice ? undefined : opts.weightsDtype ?? "stored" });
  const gpu = opts.device && opts.device !== "wasm" ? await (await import("../../gpu/offload.js")).attachGpuLinears(opts.device, model, 1) : undefined;
  // a pool only where the split pays (small models would lose to the handshake; the pool start-up is ~0.5 s)
  const exec = openExecutor(model.wasm, largestLinear(model) >= MIN_SPLIT_WEIGHTS ? opts.threads ?? 1 : 1);
  const helper = gemvHelper(exec, model);
  let r: GenerateResult;
  try {
    r = generate(model, { ...opts, gemv: helper?.gemv, onText: opts.json ? undefined : (s) => process.stdout.write(s) });
  } finally {
    await gpu?.close();
    await helper?.close();
    await exec.close();
  }
  if (opts.json) console.log(JSON.stringify({ model: modelPath, ...opts, ...r }, null, 2));
  else {
    process.stdout.write("\n");
    process.stderr.write(`${renderGenerateSpeed(r)}\n`);
  }
  return r;
}

export function renderGenerateSpeed(r: GenerateResult): string {
  return `achieved tok/s: ${fmt(r.tokensPerSecond, 1)} (${r.generatedTokens} generated after a ${r.promptTokens}-token prompt, ${fmt(r.seconds, 2)} s)`;
}
