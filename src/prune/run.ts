/**
 * @file A whole `wasprune prune` job: output policy (never clobber, atomic, resumable), perplexity before and
 * after, the driver, the written model, memory and time reports, and `pruning.json`.
 *
 * Output layout for `--out DIR` (src/prune/output.ts): while running, DIR holds `.wasprune-checkpoint/` (the
 * settings manifest and a record per finished layer) and `.wasprune-partial/` (the model files being written,
 * each layer at its planned offsets as soon as it is pruned). At the end the files are moved into DIR (shards,
 * the index last), config.json and the tokenizer are written, the pruned model is evaluated from the written
 * files (`--eval`), and `pruning.json` is written last — its presence marks a finished output — and the
 * checkpoints are removed. A run killed at any point, or stopped by a full disk, resumes from the finished layers
 * on a rerun of the same command and gives byte-identical files. `--out FILE.bin` writes a llama2.c checkpoint
 * instead (the model in memory, per-layer checkpoints in FILE.bin.wasprune-checkpoint/).
 */
import fs from "node:fs";
import path from "node:path";
import { OutputExistsError, UsageError } from "../errors.js";
import type { PerplexityResult } from "../eval/perplexity.js";
import { storePerplexity } from "../eval/layer-major.js";
import type { Executor } from "../exec/executor.js";
import { describeProtocol, evalSequences, type EvalSequences, type EvalText, type ProtocolReport } from "../eval/protocol.js";
import { PARTIAL_DIR } from "../io/sharded-writer.js";
import type { DType } from "../io/dtype.js";
import { saveLlama2c } from "../model/save.js";
import { openStore } from "../model/load.js";
import type { ModelStore } from "../model/residency.js";
import { calibrationSet, type CalibProtocol, type CalibrationSet } from "./calibration.js";
import { CHECKPOINT_DIR, LayerCheckpoints, writeFileAtomic } from "./checkpoint.js";
import { pruneModel, pruneMemoryFloor, statsKind, type DriverHooks, type LayerPhases, type OperatorReport, type PruneSettings, type PruneSink, type DriverOptions } from "./driver.js";
import { MemorySink, ShardedOutput } from "./output.js";
import { formatPattern, targetSparsity, type Pattern } from "./pattern.js";
import { formatFor, operatorBytes, type QuantConfigInput } from "../quant/compressed-tensors.js";

export const REPORT_FILE = "pruning.json";

export interface QuantizationReport {
  scheme: string;
  bits: number;
  groupSize: number | null;
  symmetric: boolean;
  method: string;
  /** SparseGPT's sweep chose the mask and quantized in one pass */
  joint: boolean;
  /** GPTQ in act-order (static groups) */
  actOrder: boolean;
  format: string;
  /** "int8": the config declares dynamic int8 input activations (W4A8 / W8A8); null: weight-only */
  activations: "int8" | null;
  /** operators per grid, e.g. {"int4 g64": 28, "int4 channel": 7} (a group size that does not divide an operator's inputs: per channel) */
  grids: Record<string, number>;
  /** bytes of the quantized linear operators (codes, scales, zero points, shapes) against their f32 dense bytes */
  linearBytes: number;
  linearF32Bytes: number;
}

/** Prunes the layers elsewhere instead of `pruneModel` in this process (src/distributed: jobs on a queue). */
export interface LayerRunner {
  run(store: ModelStore, calib: CalibrationSet, settings: PruneSettings, exec: Executor, sink: PruneSink, hooks: DriverHooks, opts: DriverOptions): Promise<OperatorReport[]>;
  /** what pruning.json records of it (as `distributed`) */
  report(): object;
}

export interface PruneJob {
  /** the dense model: resident, or streamed a layer at a time (src/model/residency.ts) */
  store: ModelStore;
  /** where the work runs (src/exec/executor.ts) */
  exec: Executor;
  settings: PruneSettings;
  /** the calibration text; not read (and not needed) when the method collects no statistics (magnitude) */
  calib?: { text: string; file: string; nsamples: number; seqlen: number; protocol?: CalibProtocol; seed?: number };
  /** output directory, or a path ending in .bin for a llama2.c checkpoint */
  out: string;
  force?: boolean;
  /** stored dtype of the output (default: the input's) */
  dtype?: DType;
  /** the largest output shard (default 5 GB) */
  maxShardBytes?: number;
  /** host-memory bytes the calibration stream may take before it spills to a file */
  streamBudget?: number;
  evalText?: EvalText;
  /** where the layers are pruned (default: here, by `pruneModel` on `exec`) */
  runner?: LayerRunner;
}

/** Memory and I/O of the whole job. */
export interface ResourceReport {
  /** peak resident set of the process (bytes) */
  peakRss: number;
  /** the WebAssembly memory's size at the end (bytes; it only grows, so this is its high-water mark) */
  wasmMemory: number;
  /** WebAssembly memory in use at most (bytes: the arena's high-water mark, static data included; the memory grows in steps) */
  arenaPeak: number;
  /** the least WebAssembly memory the prune needs at its largest operator, from the shapes (src/prune/memory-floor.ts) */
  memoryFloor: { bytes: number; operator: string };
  /** decoder layers in the arena at most at once (streamed: 1), and their arena bytes at most */
  maxLayersResident: number;
  maxLayerBytes: number;
  residency: "resident" | "streamed";
  /** bytes read from the input model, and written to the output */
  bytesRead: number;
  bytesWritten: number;
}

export interface PruneSummary {
  out: string;
  method: string;
  pattern: string;
  schedule: string;
  errorCorrection: boolean;
  /** calibration shards whose statistics were summed in order (absent: 1) */
  calibShards?: number;
  /** the statistics collected per operator group (src/prune/stats.ts) */
  statistics: string;
  /** the method's options as set (JSON: functions such as a device solver are left out) */
  methodOptions: Record<string, unknown>;
  targetSparsity: number;
  /** measured over all linear operators */
  sparsity: number;
  /** mean over operators; null when the method collected no Gram (see `statistics`, `--measure-error`) */
  meanRelErr: number | null;
  dtype: DType;
  seconds: number;
  resumedLayers: number[];
  calibration: Record<string, unknown>;
  /** a quantizing prune: the scheme, the quantizer, whether it ran in SparseGPT's sweep, the stored bytes */
  quantization?: QuantizationReport;
  perplexity?: { dense: PerplexityResult; pruned: PerplexityResult; file: string } & ProtocolReport;
  resources: ResourceReport;
  /** seconds per phase per layer */
  layers: LayerPhases[];
  operators: OperatorReport[];
  /** the jobs of a distributed prune (src/distributed) */
  distributed?: object;
}

function isBinOut(out: string): boolean {
  return out.endsWith(".bin");
}

/** Check the output path before any work, and decide where checkpoints go. Throws on a finished output without --force. */
export function prepareOutput(out: string, force: boolean): { checkpointDir: string } {
  if (isBinOut(out)) {
    if (fs.existsSync(out)) {
      if (fs.statSync(out).isDirectory()) throw new UsageError(`--out ${out}: is a directory, expected a .bin file path`);
      if (!force) throw new OutputExistsError(`--out ${out}: already exists; pass --force to overwrite it`);
    }
    const ck = `${out}.wasprune-checkpoint`;
    if (force) fs.rmSync(ck, { recursive: true, force: true });
    return { checkpointDir: ck };
  }
  if (fs.existsSync(out)) {
    if (!fs.statSync(out).isDirectory()) throw new UsageError(`--out ${out}: is a file, expected a directory (or a path ending in .bin)`);
    const entries = fs.readdirSync(out);
    const finished = entries.includes(REPORT_FILE);
    const partial = entries.includes(CHECKPOINT_DIR) || entries.includes(PARTIAL_DIR);
    if (finished && !force) throw new OutputExistsError(`--out ${out}: holds a finished pruned model (${REPORT_FILE}); pass --force to overwrite it`);
    if (!finished && !partial && entries.length > 0 && !force) {
      throw new OutputExistsError(`--out ${out}: is a non-empty directory that is not a wasprune output; pass --force to write into it`);
    }
    if (force) {
      // --force: the old result is no longer a finished output once we start
      fs.rmSync(path.join(out, REPORT_FILE), { force: true });
      fs.rmSync(path.join(out, CHECKPOINT_DIR), { recursive: true, force: true });
      fs.rmSync(path.join(out, PARTIAL_DIR), { recursive: true, force: true });
    }
  }
  return { checkpointDir: path.join(out, CHECKPOINT_DIR) };
}

/** What a prune that reads no calibration reports as its calibration. */
const NO_CALIBRATION: CalibrationSet = {
  samples: [], offsets: [], totalTokens: 0,
  source: { file: "(none: the method reads no calibration)", sha256: "", nsamples: 0, seqlen: 0, paragraphsUsed: 0, protocol: "paragraphs" },
};

export async function runPrune(job: PruneJob, hooks: DriverHooks & { onPhase?(phase: string): void } = {}): Promise<PruneSummary> {
  const { store, settings } = job;
  // magnitude (without a measured error) reads no calibration at all
  const calibrated = statsKind(settings) !== "none";
  if (calibrated && !store.tokenizer) throw new UsageError("prune needs a tokenizer for the calibration text (pass --tokenizer)");
  if (calibrated && !job.calib) throw new UsageError(`prune --method ${settings.method} needs calibration text (--calib FILE)`);
  const t0 = performance.now();
  const { checkpointDir } = prepareOutput(job.out, !!job.force);
  const dtype = job.dtype ?? store.source.dtype;
  const bin = isBinOut(job.out);
  if (bin && settings.quantize) throw new UsageError(`--out ${job.out}: a llama2.c .bin has no quantized format; write a Hugging Face directory for --quantize`);
  if (bin && !store.model) throw new UsageError(`--out ${job.out}: a llama2.c .bin output is written from a model in memory, and this one is streamed; write a Hugging Face directory instead`);
  const calib = calibrated ? calibrationSet(store.tokenizer!, job.calib!.text, job.calib!.file, job.calib!.nsamples, job.calib!.seqlen, job.calib!.protocol, job.calib!.seed) : NO_CALIBRATION;
  if (job.evalText && !store.tokenizer) throw new UsageError("the evaluation after the prune needs a tokenizer (pass --tokenizer)");
  const evalSeqs = job.evalText ? evalSequences(store.tokenizer!, job.evalText.text, job.evalText.protocol, store.config.maxSeqLen, "eval-") : undefined;
  const full: PruneSettings = { ...settings, storeDtype: bin ? "F32" : dtype };

  const manifest = {
    model: store.source.path,
    method: settings.method,
    pattern: formatPattern(settings.pattern),
    schedule: settings.schedule,
    errorCorrection: settings.errorCorrection,
    ...(settings.calibShards && settings.calibShards > 1 ? { calibShards: settings.calibShards } : {}),
    methodOptions: settings.methodOptions ?? {},
    measureError: !!settings.measureError,
    ...(settings.quantize ? { quantize: settings.quantize } : {}),
    calibration: calib.source,
    dtype: full.storeDtype,
    ...(job.maxShardBytes ? { maxShardBytes: job.maxShardBytes } : {}),
  };
  if (!bin) fs.mkdirSync(job.out, { recursive: true });
  const checkpoints = new LayerCheckpoints(checkpointDir, manifest);

  let dense: PerplexityResult | undefined;
  if (evalSeqs) {
    hooks.onPhase?.("eval dense");
    dense = await storePerplexity(store, evalSeqs.sequences, job.exec, evalSeqs.countFrom);
  }
  hooks.onPhase?.("prune");
  const floor = pruneMemoryFloor(store, full);
  const phases: LayerPhases[] = [];
  let arenaPeak = 0;
  const onLayer: DriverHooks["onLayer"] = (l, r, p) => {
    phases.push(p);
    arenaPeak = Math.max(arenaPeak, store.wasm.arena.peak);
    hooks.onLayer?.(l, r, p);
  };
  let operators: OperatorReport[];
  let bytesWritten = 0;
  let pruned: PerplexityResult | undefined;
  let quantization: QuantizationReport | undefined;
  if (bin) {
    // the pruned model in memory: a copy of the dense one's linear weights is overwritten layer by layer
    const sink = new MemorySink(store.model!, checkpoints);
    operators = await (job.runner ?? { run: pruneModel }).run(store, calib, full, job.exec, sink, { ...hooks, onLayer }, { streamBudget: job.streamBudget });
    if (evalSeqs) {
      hooks.onPhase?.("eval pruned");
      pruned = await storePerplexity(store, evalSeqs.sequences, job.exec, evalSeqs.countFrom);
    }
  } else {
    const sink = new ShardedOutput(job.out, store, { dtype, maxShardBytes: job.maxShardBytes, checkpointDir, quantize: settings.quantize?.scheme, actOrder: settings.quantize?.actOrder && settings.quantize.method === "gptq", activations: settings.quantize?.activations });
    try {
      operators = await (job.runner ?? { run: pruneModel }).run(store, calib, full, job.exec, sink, { ...hooks, onLayer }, { streamBudget: job.streamBudget, spillDir: checkpointDir });
      hooks.onPhase?.("write");
      sink.finish(quantSparsity(settings.pattern, operators));
      if (settings.quantize) quantization = quantReport(settings, sink, operators);
    } catch (e) {
      sink.close();
      throw e;
    }
    bytesWritten = sink.bytesWritten;
    if (evalSeqs) pruned = await evalWritten(job, evalSeqs, hooks);
  }

  let params = 0;
  let zeros = 0;
  for (const r of operators) {
    params += r.rows * r.cols;
    zeros += r.sparsity * r.rows * r.cols;
  }
  const errs = operators.map((r) => r.relErr);
  const summary: PruneSummary = {
    out: job.out,
    method: settings.method,
    pattern: formatPattern(settings.pattern),
    schedule: settings.schedule,
    errorCorrection: settings.errorCorrection,
    ...(settings.calibShards && settings.calibShards > 1 ? { calibShards: settings.calibShards } : {}),
    statistics: statsKind(full),
    methodOptions: JSON.parse(JSON.stringify(settings.methodOptions ?? {})) as Record<string, unknown>,
    targetSparsity: targetSparsity(settings.pattern),
    sparsity: params ? zeros / params : 0,
    meanRelErr: errs.every((e) => e !== null) && errs.length ? (errs as number[]).reduce((a, e) => a + e, 0) / errs.length : null,
    dtype: full.storeDtype!,
    seconds: (performance.now() - t0) / 1000,
    resumedLayers: phases.filter((p) => p.resumed).map((p) => p.layer),
    calibration: { ...calib.source, tokens: calib.totalTokens },
    ...(quantization ? { quantization } : {}),
    perplexity: dense && pruned && job.evalText ? { dense, pruned, file: job.evalText.file, ...describeProtocol(evalSeqs!) } : undefined,
    resources: {
      peakRss: process.resourceUsage().maxRSS * 1024,
      wasmMemory: store.wasm.memory.buffer.byteLength,
      arenaPeak,
      memoryFloor: { bytes: floor.bytes, operator: floor.operator },
      maxLayersResident: store.stats.maxLayersResident,
      maxLayerBytes: store.stats.maxLayerBytes,
      residency: store.resident ? "resident" : "streamed",
      bytesRead: store.stats.bytesRead,
      bytesWritten,
    },
    layers: phases,
    operators,
    ...(job.runner ? { distributed: job.runner.report() } : {}),
  };
  const report = JSON.stringify({ wasprune: summary }, null, 2) + "\n";
  if (bin) {
    saveLlama2c(store.model!, job.out, { force: true });
    writeFileAtomic(`${job.out}.${REPORT_FILE}`, report);
  } else {
    writeFileAtomic(path.join(job.out, REPORT_FILE), report);
  }
  checkpoints.remove();
  return summary;
}

/** Perplexity of the written output, opened as a user would open it (resident when it fits, else streamed). */
async function evalWritten(job: PruneJob, evalSeqs: EvalSequences, hooks: { onPhase?(phase: string): void }): Promise<PerplexityResult> {
  hooks.onPhase?.("eval pruned");
  const arena = job.store.wasm.arena;
  const mark = arena.mark();
  // in the same memory as the input (the executor's workers are on it); given back when done
  const written = await openStore(job.out, { wasm: job.store.wasm, requireTokenizer: false });
  try {
    return await storePerplexity(written, evalSeqs.sequences, job.exec, evalSeqs.countFrom);
  } finally {
    written.close();
    arena.release(mark);
  }
}

/**
 * The sparsity_config of a quantized output: the pattern and measured sparsity of a pruned model. When nothing was
 * pruned in this run (`quantize` of a model pruned before), the pattern is the one the weights have: 2:4 when every
 * operator keeps at most 2 of each 4 inputs, else unstructured, and none below 5% zeros (a dense model).
 */
function quantSparsity(pattern: Pattern, operators: OperatorReport[]): QuantConfigInput["sparsity"] {
  let params = 0;
  let zeros = 0;
  for (const r of operators) {
    params += r.rows * r.cols;
    zeros += r.sparsity * r.rows * r.cols;
  }
  const globalSparsity = params ? zeros / params : 0;
  const pruned = targetSparsity(pattern) > 0;
  if (!pruned && globalSparsity < MIN_DECLARED_SPARSITY) return undefined;
  const twoOfFour = pruned ? pattern.kind === "nm" && pattern.n === 2 && pattern.m === 4 : operators.length > 0 && operators.every((r) => r.twoOfFour === 1);
  return { structure: twoOfFour ? "2:4" : "unstructured", globalSparsity, targets: ["Linear"] };
}

/** Below this fraction of zeros an input quantized as it is counts as dense (no sparsity_config). */
const MIN_DECLARED_SPARSITY = 0.05;

function quantReport(settings: PruneSettings, sink: ShardedOutput, operators: OperatorReport[]): QuantizationReport {
  const q = settings.quantize!;
  const grids: Record<string, number> = {};
  for (const r of operators) grids[String(r.quant)] = (grids[String(r.quant)] ?? 0) + 1;
  let linearBytes = 0;
  let linearF32Bytes = 0;
  for (const r of operators) {
    const grid = sink.grids.get(r.name.replace(/\.weight$/, ""));
    if (grid) linearBytes += operatorBytes(r.rows, r.cols, grid, sink.format);
    linearF32Bytes += 4 * r.rows * r.cols;
  }
  return {
    scheme: q.scheme.name, bits: q.scheme.bits, groupSize: q.scheme.groupSize, symmetric: q.scheme.symmetric, method: q.method,
    joint: q.method === "gptq" && settings.method === "sparsegpt" && !q.actOrder, actOrder: q.method === "gptq" && !!q.actOrder, format: formatFor(q.activations), activations: q.activations ?? null, grids, linearBytes, linearF32Bytes,
  };
}
