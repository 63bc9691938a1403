import { UsageError } from "../../errors.js";
import { readTextFile } from "../../eval/text.js";
import { evalFlagProtocol, type EvalFlagOptions, type EvalProtocol } from "../../eval/protocol.js";
import { SCHEDULES, statsKind, type Schedule } from "../../prune/driver.js";
import { METHOD_NAMES, type MethodName, type PruneOptions } from "../../prune/methods/types.js";
import { parseDeviceKind, selectDevice } from "../../gpu/device.js";
import { gpuFistaSolvers } from "../../gpu/fista.js";
import { parsePattern } from "../../prune/pattern.js";
import { runPrune, type LayerRunner, type PruneSummary } from "../../prune/run.js";
import { openCoordinator } from "./distributed.js";
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
  /** calibration shards whose statistics are summed in order */
  calibShards?: number;
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
  /** redis://… : run as the coordinator of a distributed prune (src/distributed) */
  queue?: string;
  /** the working directory every worker shares (with --queue) */
  workDir?: string;
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
  if (!(SCHEDULES as readonly string[]).includes(o.schedule)) throw new UsageError(`--schedule ${o.schedule}: expected one of ${SCHEDULES.join(", ")}`);
  if (o.dtype !== undefined && !(DTYPES as readonly string[]).includes(o.dtype)) throw new UsageError(`--dtype ${o.dtype}: expected one of ${DTYPES.join(", ")}`);
  const calibText = o.calib ? readTextFile(o.calib, "--calib") : undefined;
  const evalProtocol = evalFlagProtocol(o);
  const evalText = o.eval ? readTextFile(o.eval, "--eval") : undefined;
  const maxShardBytes = o.maxShardSize !== undefined ? parseSize(o.maxShardSize, "--max-shard-size") : undefined;
  const maxMemory = o.maxMemory !== undefined ? parseSize(o.maxMemory, "--max-memory") : defaultMaxMemory();
  if ((o.queue === undefined) !== (o.workDir === undefined)) throw new UsageError(o.queue ? "--queue needs --work-dir DIR (the folder every worker shares)" : "--work-dir is the shared folder of a distributed prune: it needs --queue");
  if (o.calibShards !== undefined && !(Number.isInteger(o.calibShards) && o.calibShards >= 1)) throw new UsageError(`--calib-shards must be a positive integer, got ${o.calibShards}`);
  if (o.queue && (o.device ?? "wasm") !== "wasm") throw new UsageError(`--queue: workers solve on WASM; --device ${o.device} is not distributed`);
  const distributed = o.queue ? await openCoordinator(o.queue, o.workDir!) : undefined;
  const store = await openModelStore(modelPath, { tokenizer: o.tokenizer, residency: o.residency }).catch(async (e) => {
    await distributed?.close();
    throw e;
  });
  const exec = openExecutor(store.wasm, o.threads ?? 1);
  const gpu = method === "fista" ? await selectDevice(parseDeviceKind(o.device ?? "wasm")) : undefined;
  const summary = await pruneWithProgress(store, exec, {
    method, pattern, schedule: o.schedule as Schedule, errorCorrection: o.errorCorrection ?? method === "fista", calibShards: o.calibShards ?? 1,
    calibText, calibFile: o.calib, nsamples: o.nsamples, seqlen: o.seqlen, out: o.out, force: o.force,
    dtype: o.dtype as DType | undefined, evalText, evalFile: o.eval, evalProtocol, json: o.json,
    maxShardBytes, streamBudget: streamBudget(maxMemory), measureError: !!o.measureError,
    calibProtocol: (o.calibProtocol ?? "paragraphs") as CalibProtocol, calibSeed: o.calibSeed ?? 0,
    methodOptions: {
      ...(gpu ? { fistaSolver: gpuFistaSolvers(gpu) } : {}),
      ...(o.fistaLasso || o.fistaBudget !== undefined
        ? { fista: { ...(o.fistaLasso ? { lassoPath: true } : {}), ...(o.fistaBudget !== undefined ? { budget: o.fistaBudget } : {}) } }
        : {}),
    },
    runner: distributed?.runner,
  }).finally(async () => {
    gpu?.destroy();
    store.close();
    await distributed?.close();
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
  calibShards?: number;
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
  /** where the layers are pruned (default: here) */
  runner?: LayerRunner;
}

/**
 * Prune with a progress bar over operators (the operators finish in the main thread, so the bar counts the
 * work of every worker); without calibration text, calibrate on text the model writes itself.
 */
export async function pruneWithProgress(store: ModelStore, exec: Executor, o: PruneRunOptions): Promise<PruneSummary> {
  const settings = {
    method: o.method, pattern: o.pattern, schedule: o.schedule, errorCorrection: o.errorCorrection, methodOptions: o.methodOptions,
    measureError: o.measureError, ...(o.calibShards && o.calibShards > 1 ? { calibShards: o.calibShards } : {}),
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
        runner: o.runner,
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
  if (s.perplexity) {
    lines.push(`perplexity: dense ${fmt(s.perplexity.dense.perplexity, 4)} → pruned ${fmt(s.perplexity.pruned.perplexity, 4)} (${s.perplexity.pruned.tokens} tokens)`);
  }
  lines.push(`written: ${s.out}`);
  return lines.join("\n");
}
