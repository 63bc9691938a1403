import { UsageError } from "../../errors.js";
import { readTextFile } from "../../eval/text.js";
import { evalFlagProtocol, type EvalFlagOptions, type EvalProtocol } from "../../eval/protocol.js";
import { SCHEDULES, type Schedule } from "../../prune/driver.js";
import { METHOD_NAMES, type MethodName, type PruneOptions } from "../../prune/methods/types.js";
import { parseDeviceKind, selectDevice } from "../../gpu/device.js";
import { gpuFistaSolvers } from "../../gpu/fista.js";
import { parsePattern } from "../../prune/pattern.js";
import { runPrune, type PruneSummary } from "../../prune/run.js";
import { DTYPES, type DType, type Model } from "../../model/types.js";
import { openModel } from "../open-model.js";
import { progress } from "../progress.js";
import { fmt, table } from "../format.js";
import { selfText } from "../../generate/generate.js";
import { openExecutor } from "../../workers/index.js";
import type { Executor } from "../../exec/executor.js";

export interface PruneCliOptions extends EvalFlagOptions {
  method: string;
  sparsity: string;
  /** FISTA: also run the lasso path (λ bisected per row) as a candidate */
  fistaLasso?: boolean;
  calib?: string;
  nsamples: number;
  seqlen: number;
  schedule: string;
  errorCorrection?: boolean;
  out: string;
  force?: boolean;
  dtype?: string;
  json?: boolean;
  tokenizer?: string;
  /** worker threads (1 = no pool) */
  threads?: number;
  /** auto | wasm | webgpu: where FISTA's per-operator solve runs (src/gpu) */
  device?: string;
}

export function parseMethod(m: string): MethodName {
  if (!(METHOD_NAMES as readonly string[]).includes(m)) throw new UsageError(`--method ${m}: expected one of ${METHOD_NAMES.join(", ")}`);
  return m as MethodName;
}

export async function pruneCommand(modelPath: string, o: PruneCliOptions): Promise<PruneSummary> {
  const method = parseMethod(o.method);
  const pattern = parsePattern(o.sparsity);
  if (!(SCHEDULES as readonly string[]).includes(o.schedule)) throw new UsageError(`--schedule ${o.schedule}: expected one of ${SCHEDULES.join(", ")}`);
  if (o.dtype !== undefined && !(DTYPES as readonly string[]).includes(o.dtype)) throw new UsageError(`--dtype ${o.dtype}: expected one of ${DTYPES.join(", ")}`);
  const calibText = o.calib ? readTextFile(o.calib, "--calib") : undefined;
  const evalProtocol = evalFlagProtocol(o);
  const evalText = o.eval ? readTextFile(o.eval, "--eval") : undefined;
  const model = await openModel(modelPath, { tokenizer: o.tokenizer });
  const exec = openExecutor(model.wasm, o.threads ?? 1);
  const gpu = method === "fista" ? await selectDevice(parseDeviceKind(o.device ?? "wasm")) : undefined;
  const summary = await pruneWithProgress(model, exec, {
    method, pattern, schedule: o.schedule as Schedule, errorCorrection: o.errorCorrection ?? method === "fista",
    calibText, calibFile: o.calib, nsamples: o.nsamples, seqlen: o.seqlen, out: o.out, force: o.force,
    dtype: o.dtype as DType | undefined, evalText, evalFile: o.eval, evalProtocol, json: o.json,
    methodOptions: {
      ...(gpu ? { fistaSolver: gpuFistaSolvers(gpu) } : {}),
      ...(o.fistaLasso ? { fista: { lassoPath: true } } : {}),
    },
  }).finally(() => {
    gpu?.destroy();
    return exec.close();
  });
  if (o.json) console.log(JSON.stringify(summary, null, 2));
  else console.log(renderPruneSummary(summary));
  return summary;
}

export interface PruneRunOptions {
  method: MethodName;
  pattern: ReturnType<typeof parsePattern>;
  schedule: Schedule;
  errorCorrection: boolean;
  calibText?: string;
  calibFile?: string;
  nsamples: number;
  seqlen: number;
  out: string;
  force?: boolean;
  dtype?: DType;
  evalText?: string;
  evalFile?: string;
  evalProtocol?: EvalProtocol;
  json?: boolean;
  /** per-method options (e.g. the WebGPU FISTA solver) */
  methodOptions?: PruneOptions;
}

/**
 * Prune with a progress bar over operators (the operators finish in the main thread, so the bar counts the
 * work of every worker); without calibration text, calibrate on text the model writes itself.
 */
export async function pruneWithProgress(model: Model, exec: Executor, o: PruneRunOptions): Promise<PruneSummary> {
  const calibText = o.calibText ?? selfText(model, Math.min(o.nsamples, 128), Math.min(o.seqlen, model.config.maxSeqLen), 7);
  const calibFile = o.calibFile ?? "(text sampled from the dense model, seed 7)";
  const total = model.config.nLayers * 7;
  const bar = progress(`prune ${o.method}`, total, { json: o.json, extra: "{op}" });
  try {
    return await runPrune(
      {
        model,
        exec,
        settings: { method: o.method, pattern: o.pattern, schedule: o.schedule, errorCorrection: o.errorCorrection, methodOptions: o.methodOptions },
        calib: { text: calibText, file: calibFile, nsamples: o.nsamples, seqlen: o.seqlen },
        out: o.out,
        force: o.force,
        dtype: o.dtype,
        evalText: o.evalText && o.evalProtocol ? { text: o.evalText, file: o.evalFile ?? "", protocol: o.evalProtocol } : undefined,
      },
      {
        onOperator: (r, done) => bar.update(done, { op: `${r.name} relErr ${fmt(r.relErr, 3)}` }),
        onLayer: (l) => bar.update((l + 1) * 7, { op: `layer ${l} done` }),
      },
    );
  } finally {
    bar.stop();
  }
}

export function renderPruneSummary(s: PruneSummary): string {
  const rows = s.operators.map((r) => [
    String(r.layer), r.op, `${r.rows}x${r.cols}`, fmt(100 * r.sparsity, 2), fmt(r.relErr, 4), fmt(r.seconds, 3),
  ]);
  const lines = [
    table(["layer", "op", "shape", "sparsity %", "rel. error", "seconds"], rows, { align: ["r", "l", "r", "r", "r", "r"] }),
    "",
    `${s.method} ${s.pattern} (${s.schedule}${s.errorCorrection ? ", error correction" : ""}): ` +
      `${fmt(100 * s.sparsity, 2)}% of linear weights zero, mean rel. error ${fmt(s.meanRelErr, 4)}, ${fmt(s.seconds, 2)} s` +
      (s.resumedLayers.length ? ` (resumed: layers ${s.resumedLayers.join(", ")} from checkpoints)` : ""),
  ];
  if (s.perplexity) {
    lines.push(`perplexity: dense ${fmt(s.perplexity.dense.perplexity, 4)} → pruned ${fmt(s.perplexity.pruned.perplexity, 4)} (${s.perplexity.pruned.tokens} tokens)`);
  }
  lines.push(`written: ${s.out}`);
  return lines.join("\n");
}
