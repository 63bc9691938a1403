import { UsageError } from "../../errors.js";
import { readTextFile } from "../../eval/text.js";
import { evalFlagProtocol, type EvalFlagOptions, type EvalProtocol } from "../../eval/protocol.js";
import { SCHEDULES, statsKind, type Schedule } from "../../prune/driver.js";
import { METHOD_NAMES, type MethodName, type PruneOptions } from "../../prune/methods/types.js";
import { parseDeviceKind, selectDevice } from "../../gpu/device.js";
import { gpuFistaSolvers } from "../../gpu/fista.js";
import { parsePattern } from "../../prune/pattern.js";
import { runPrune, type PruneSummary } from "../../prune/run.js";
import type { CalibProtocol } from "../../prune/calibration.js";
import { DTYPES, type DType } from "../../model/types.js";
import { openModelStore } from "../open-model.js";
import type { ModelStore } from "../../model/residency.js";
import { parseSize } from "../../io/sharded-writer.js";
import os from "node:os";
import { progress } from "../progress.js";
import { fmt, table } from "../format.js";
import { selfText } from "./demo.js";
import { openExecutor } from "../../workers/index.js";
import { parseQuantMethod, parseScheme } from "../../quant/scheme.js";
import type { QuantizeSettings } from "../../prune/quantize.js";
import type { Executor } from "../../exec/executor.js";

export interface PruneCliOptions extends EvalFlagOptions {
  method: string;
  sparsity: string;
  /** FISTA: also run the lasso path (λ bisected per row) as a candidate */
  fistaLasso?: boolean;
  /** FISTA: W·H products per operator */
  fistaBudget?: number;
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
  /** the largest output shard, e.g. "5GB" (save_pretrained's default) */
  maxShardSize?: string;
  /** host-memory budget, e.g. "16GiB" (default: 3/4 of the free RAM) */
  maxMemory?: string;
  /** collect the Gram for every method, to report each operator's relative error */
  measureError?: boolean;
  /** auto | resident | streamed (src/model/residency.ts) */
  residency?: "auto" | "resident" | "streamed";
  /** paragraphs | windows (src/prune/calibration.ts) */
  calibProtocol?: string;
  calibSeed?: number;
  /** quantize every pruned operator: w8 | w4g128 | w4g64 | w4g32 (src/quant/scheme.ts) */
  quantize?: string;
  /** rtn | gptq (default) */
  quantizeMethod?: string;
  /** asymmetric grids (a zero point per group) */
  asym?: boolean;
  /** GPTQ in act-order (columns by decreasing H_jj, static groups) */
  actOrder?: boolean;
}

/** `--quantize` / `--quantize-method` / `--asym` as the driver's setting (none without --quantize). */
export function quantizeSettings(o: { quantize?: string; quantizeMethod?: string; asym?: boolean; actOrder?: boolean }): QuantizeSettings | undefined {
  if (o.quantize === undefined) {
    if (o.asym || o.actOrder || o.quantizeMethod !== undefined) throw new UsageError("--quantize-method, --asym and --act-order need --quantize SCHEME");
    return undefined;
  }
  const method = parseQuantMethod(o.quantizeMethod ?? "gptq");
  if (o.actOrder && method !== "gptq") throw new UsageError("--act-order is an option of GPTQ (--quantize-method gptq)");
  return { scheme: parseScheme(o.quantize, !!o.asym), method, ...(o.actOrder ? { actOrder: true } : {}) };
}

/** The default of --max-memory: three quarters of the memory free now. */
export function defaultMaxMemory(): number {
  return Math.floor(0.75 * os.freemem());
}

/**
 * What the calibration stream may take in host memory: the budget less what the WebAssembly memory (≤ 4 GiB)
 * and the runtime may take, at least 256 MiB; beyond it the stream spills to a file in the checkpoint folder.
 */
export function streamBudget(maxMemory: number): number {
  return Math.max(256 << 20, maxMemory - (4.5 * 1024 ** 3));
}

export function parseMethod(m: string): MethodName {
  if (!(METHOD_NAMES as readonly string[]).includes(m)) throw new UsageError(`--method ${m}: expected one of ${METHOD_NAMES.join(", ")}`);
  return m as MethodName;
}

export async function pruneCommand(modelPath: string, o: PruneCliOptions): Promise<PruneSummary> {
  const method = parseMethod(o.method);
  const pattern = parsePattern(o.sparsity);
  const quantize = quantizeSettings(o);
  if (!(SCHEDULES as readonly string[]).includes(o.schedule)) throw new UsageError(`--schedule ${o.schedule}: expected one of ${SCHEDULES.join(", ")}`);
  if (o.dtype !== undefined && !(DTYPES as readonly string[]).includes(o.dtype)) throw new UsageError(`--dtype ${o.dtype}: expected one of ${DTYPES.join(", ")}`);
  const calibText = o.calib ? readTextFile(o.calib, "--calib") : undefined;
  const evalProtocol = evalFlagProtocol(o);
  const evalText = o.eval ? readTextFile(o.eval, "--eval") : undefined;
  const maxShardBytes = o.maxShardSize !== undefined ? parseSize(o.maxShardSize, "--max-shard-size") : undefined;
  const maxMemory = o.maxMemory !== undefined ? parseSize(o.maxMemory, "--max-memory") : defaultMaxMemory();
  const store = await openModelStore(modelPath, { tokenizer: o.tokenizer, residency: o.residency });
  const exec = openExecutor(store.wasm, o.threads ?? 1);
  const gpu = method === "fista" ? await selectDevice(parseDeviceKind(o.device ?? "wasm")) : undefined;
  const summary = await pruneWithProgress(store, exec, {
    method, pattern, schedule: o.schedule as Schedule, errorCorrection: o.errorCorrection ?? method === "fista",
    calibText, calibFile: o.calib, nsamples: o.nsamples, seqlen: o.seqlen, out: o.out, force: o.force,
    dtype: o.dtype as DType | undefined, evalText, evalFile: o.eval, evalProtocol, json: o.json,
    maxShardBytes, streamBudget: streamBudget(maxMemory), measureError: !!o.measureError,
    calibProtocol: (o.calibProtocol ?? "paragraphs") as CalibProtocol, calibSeed: o.calibSeed ?? 0, quantize,
    methodOptions: {
      ...(gpu ? { fistaSolver: gpuFistaSolvers(gpu) } : {}),
      ...(o.fistaLasso || o.fistaBudget !== undefined
        ? { fista: { ...(o.fistaLasso ? { lassoPath: true } : {}), ...(o.fistaBudget !== undefined ? { budget: o.fistaBudget } : {}) } }
        : {}),
    },
  }).finally(() => {
    gpu?.destroy();
    store.close();
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
  maxShardBytes?: number;
  streamBudget?: number;
  measureError?: boolean;
  calibProtocol?: CalibProtocol;
  calibSeed?: number;
  quantize?: QuantizeSettings;
}

/**
 * Prune with a progress bar over operators (the operators finish in the main thread, so the bar counts the
 * work of every worker); without calibration text, calibrate on text the model writes itself.
 */
export async function pruneWithProgress(store: ModelStore, exec: Executor, o: PruneRunOptions): Promise<PruneSummary> {
  const settings = {
    method: o.method, pattern: o.pattern, schedule: o.schedule, errorCorrection: o.errorCorrection, methodOptions: o.methodOptions,
    measureError: o.measureError, ...(o.quantize ? { quantize: o.quantize } : {}),
  };
  const calibrated = statsKind(settings) !== "none";
  if (calibrated && !o.calibText && !store.model) {
    throw new UsageError(`${store.source.path}: the model is streamed a layer at a time (it does not fit in memory whole), so it cannot write its own calibration text; pass --calib FILE`);
  }
  const calibText = !calibrated ? undefined : o.calibText ?? selfText(store.model!, Math.min(o.nsamples, 128), Math.min(o.seqlen, store.config.maxSeqLen), 7);
  const calibFile = o.calibFile ?? "(text sampled from the dense model, seed 7)";
  const c = store.config;
  const total = c.nLayers * 7;
  const bar = progress(`prune ${o.method}`, total, { json: o.json, extra: "{op}" });
  try {
    return await runPrune(
      {
        store,
        exec,
        settings,
        calib: calibText === undefined ? undefined : { text: calibText, file: calibFile, nsamples: o.nsamples, seqlen: o.seqlen, protocol: o.calibProtocol, seed: o.calibSeed },
        out: o.out,
        force: o.force,
        dtype: o.dtype,
        maxShardBytes: o.maxShardBytes,
        streamBudget: o.streamBudget,
        evalText: o.evalText && o.evalProtocol ? { text: o.evalText, file: o.evalFile ?? "", protocol: o.evalProtocol } : undefined,
      },
      {
        onOperator: (r, done) => bar.update(done, { op: `layer ${r.layer + 1}/${c.nLayers} ${r.op}${r.relErr === null ? "" : ` relErr ${fmt(r.relErr, 3)}`}` }),
        onLayer: (l, _r, p) => bar.update((l + 1) * 7, { op: `layer ${l + 1}/${c.nLayers} done${p.resumed ? " (resumed)" : ""}` }),
        onPhase: (phase) => bar.update(phase === "prune" ? 0 : phase === "write" || phase === "eval pruned" ? total : 0, { op: phase }),
      },
    );
  } finally {
    bar.stop();
  }
}

export function renderPruneSummary(s: PruneSummary): string {
  const rows = s.operators.map((r) => [
    String(r.layer), r.op, `${r.rows}x${r.cols}`, fmt(100 * r.sparsity, 2), r.relErr === null ? "-" : fmt(r.relErr, 4), fmt(r.seconds, 3),
  ]);
  const lines = [
    table(["layer", "op", "shape", "sparsity %", "rel. error", "seconds"], rows, { align: ["r", "l", "r", "r", "r", "r"] }),
    "",
    `${s.method} ${s.pattern} (${s.schedule}${s.errorCorrection ? ", error correction" : ""}): ` +
      `${fmt(100 * s.sparsity, 2)}% of linear weights zero, ` +
      (s.meanRelErr === null ? `rel. error not measured (--measure-error measures it)` : `mean rel. error ${fmt(s.meanRelErr, 4)}`) +
      `, ${fmt(s.seconds, 2)} s, peak RSS ${fmt(s.resources.peakRss / 1024 ** 3, 2)} GiB (${s.resources.residency})` +
      (s.resumedLayers.length ? ` (resumed: layers ${s.resumedLayers.join(", ")} from checkpoints)` : ""),
  ];
  const q = s.quantization;
  if (q) {
    lines.push(`quantized ${q.scheme} (${q.symmetric ? "symmetric" : "asymmetric"}, ${q.method}${q.actOrder ? " act-order" : ""}${q.joint ? " in SparseGPT's sweep" : ""}; ${Object.entries(q.grids).map(([g, n]) => `${n}× ${g}`).join(", ")}), ${q.format}: ` +
      `linear weights ${q.linearBytes} B against ${q.linearF32Bytes} B in f32 (${fmt(q.linearF32Bytes / q.linearBytes, 2)}x smaller)`);
  }
  if (s.perplexity) {
    // `quantize` runs this driver with nothing pruned: its input may be pruned already, its output is quantized
    const [before, after] = s.targetSparsity === 0 && q ? ["input", "quantized"] : ["dense", q ? "pruned and quantized" : "pruned"];
    lines.push(`perplexity: ${before} ${fmt(s.perplexity.dense.perplexity, 4)} → ${after} ${fmt(s.perplexity.pruned.perplexity, 4)} (${s.perplexity.pruned.tokens} tokens)`);
  }
  lines.push(`written: ${s.out}`);
  return lines.join("\n");
}
