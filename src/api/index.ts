/**
 * @file The library in Node — `import { loadModel, generate, perplexity, prune, compress } from "wasprune"` — and
 * what the CLI's commands call (src/cli/commands/*: they add flags, progress bars and printing, nothing else).
 *
 * - `loadModel(source, { weights })`: a path (llama2.c `.bin` or a Hugging Face directory, dense or compressed),
 *   `hf:ORG/NAME` (fetched once into the local cache) or `"builtin"`; the weights are read into a WebAssembly
 *   memory (row-major f32, or packed for the inference kernels: `--weights-dtype`).
 * - `openModelStore(source, { residency })`: the same sources as a ModelStore, resident or streamed one decoder
 *   layer at a time (a model larger than the WebAssembly memory); `perplexity` and `prune` take one.
 * - `generate(model, opts)`: an async iterator of tokens (`{ id, text, prompt }`); its return value is the
 *   GenerateResult (text, tokens, tok/s). The prompt's tokens come first, as llama2.c prints them.
 * - `perplexity(model | store, text, opts)`: paragraphs or the papers' windows protocol (layer-major when streamed).
 * - `prune(model | store, calib, settings)`: prune every linear operator, writing the output to `settings.out` as
 *   it is produced (src/prune/run.ts), progress through `onProgress`; `calib` is text (undefined: text the model
 *   samples itself).
 * - `compress(model, out)`: store a pruned model compressed (2:4 and bitmask formats).
 *
 * Errors are WaspruneError subclasses with a message naming the file, field or option (src/errors.ts).
 * The browser build has the same shape from `wasprune/browser` (src/web/index.ts).
 */
import type { QuantizeSettings } from "../prune/quantize.js";
import os from "node:os";
import { BUILTIN_NAME, builtinModel } from "../model/builtin.js";
import { fetchHubModel, isHubRef, parseHubRef } from "../model/hub.js";
import { loadModel as loadResident, openStore, type StoreOptions } from "../model/load.js";
import { residentStore, withIntActivations, type ModelStore } from "../model/residency.js";
import { packModel, type IntActivationBits } from "../model/linear.js";
import { weightDTypeOf, type WeightsOption } from "../model/weight-file.js";
import { DTYPES, type DType, type Model } from "../model/types.js";
import { generateTokens, selfText, withSamplingDefaults, type GenerateResult, type GeneratedToken, type SamplingOptions } from "../generate/generate.js";
import { gemvHelper, largestLinear, MIN_SPLIT_WEIGHTS } from "../generate/gemv.js";
import { openExecutor } from "../workers/index.js";
import type { PerplexityResult } from "../eval/perplexity.js";
import { storePerplexity } from "../eval/layer-major.js";
import { describeProtocol, evalSequences, protocolFromOptions, type EvalSequences, type ProtocolName, type ProtocolReport } from "../eval/protocol.js";
import { UsageError } from "../errors.js";
import type { DeviceKind } from "../gpu/device-kind.js";
import { compressModel, type CompressReport } from "../model/compressed.js";
import { runPrune, type LayerRunner, type PruneSummary } from "../prune/run.js";
import { SCHEDULES, statsKind, type OperatorReport, type Schedule } from "../prune/driver.js";
import { parsePattern, type Pattern } from "../prune/pattern.js";
import type { CalibProtocol } from "../prune/calibration.js";
import { parseSize } from "../io/sharded-writer.js";
import { METHOD_NAMES, type MethodName, type PruneOptions as MethodOptions } from "../prune/methods/types.js";
import { inspectModel, type InspectReport } from "../model/inspect.js";

export type { Model, ModelConfig, LinearWeight } from "../model/types.js";
export type { GenerateResult, GeneratedToken, SamplingOptions } from "../generate/generate.js";
export type { PerplexityResult } from "../eval/perplexity.js";
export type { PruneSummary } from "../prune/run.js";
export type { OperatorReport } from "../prune/driver.js";
export type { CompressReport } from "../model/compressed.js";
export type { InspectReport, TensorReport } from "../model/inspect.js";
export type { Tokenizer } from "../tokenizer/types.js";
export { WaspruneError, FormatError, MissingFileError, ConfigError, UsageError, WasmError, OutputExistsError, WorkerError, DiskFullError, GpuError } from "../errors.js";
export type { DeviceKind } from "../gpu/device-kind.js";

/** Bytes of a file fetched from the Hub so far (`total` when the server said). */
export type FetchProgress = (file: string, received: number, total?: number) => void;

export interface LoadModelOptions {
  /** tokenizer file instead of the one beside the model */
  tokenizer?: string;
  /** false: load without a tokenizer when none is found (default true) */
  requireTokenizer?: boolean;
  /** progress of `hf:` downloads */
  onFetch?: FetchProgress;
  /**
   * how the linear weights are held (`--weights-dtype`): "f32" | "bf16" | "f16" packed for the inference
   * kernels, "stored" each tensor's stored precision, "device" what a WebGPU device reads (row-major f32,
   * quantized operators in their integer layouts, run on WASM); absent: row-major f32 (what editing weights needs)
   */
  weights?: WeightsOption;
  /**
   * an untied embedding table in host memory instead of the WebAssembly memory (rows copied per token; for
   * generation, whose forward runs on one thread: src/model/load.ts LoadOptions)
   */
  hostEmbedding?: boolean;
  /** 8: int8 / int4 operators on int8 activations (W8A8 / W4A8), 16: on int16; absent: as the checkpoint declares (`--int-activations`; src/model/load.ts LoadOptions) */
  intActivations?: IntActivationBits;
}

/** A local path for `source`: `hf:` references are fetched into the cache (or found there) first. */
export async function resolveSource(source: string, onFetch?: FetchProgress): Promise<string> {
  return isHubRef(source) ? fetchHubModel(parseHubRef(source), onFetch) : source;
}

/** A model, every weight in WebAssembly memory: a path, `hf:ORG/NAME[@REV]`, or `"builtin"`. */
export async function loadModel(source: string, opts: LoadModelOptions = {}): Promise<Model> {
  if (source === BUILTIN_NAME) {
    const m = builtinModel();
    // built f32, packed after ("device": row-major f32, as built: the built-in model has no quantized operators)
    if (opts.weights && opts.weights !== "device") packModel(m, weightDTypeOf(opts.weights, m.source.dtype));
    return withIntActivations(m, opts.intActivations, source);
  }
  return loadResident(await resolveSource(source, opts.onFetch), {
    tokenizer: opts.tokenizer, requireTokenizer: opts.requireTokenizer ?? true, weights: opts.weights, hostEmbedding: opts.hostEmbedding, intActivations: opts.intActivations,
  });
}

/** A model as a store: resident when it fits, streamed one decoder layer at a time otherwise (inspect, eval). */
export async function openModelStore(source: string, opts: StoreOptions & { onFetch?: FetchProgress } = {}): Promise<ModelStore> {
  if (source === BUILTIN_NAME) return residentStore(withIntActivations(builtinModel(), opts.intActivations, source));
  return openStore(await resolveSource(source, opts.onFetch), { ...opts, requireTokenizer: opts.requireTokenizer ?? true });
}

/** Architecture, parameters, per-tensor zeros, N:M patterns and stored formats of a loaded model. */
export function describeModel(model: Model): InspectReport {
  return inspectModel(residentStore(model));
}

export interface GenerateOptions extends SamplingOptions {
  /** worker threads: GEMVs of large models are split by rows (the same tokens for any count; default 1) */
  threads?: number;
  /** where linear layers run (default "wasm"; "webgpu" needs the optional webgpu package and an adapter) */
  device?: DeviceKind;
}

/**
 * Tokens as they are generated (the prompt's own first). One generation per model at a time: its run state
 * lives in the model's memory until the iterator finishes or is left (`break` closes it).
 */
export async function* generate(model: Model, opts: GenerateOptions = {}): AsyncGenerator<GeneratedToken, GenerateResult, void> {
  const o = withSamplingDefaults(opts);
  const device = opts.device ?? "wasm";
  const gpu = device !== "wasm" ? await (await import("../gpu/offload.js")).attachGpuLinears(device, model, 1) : undefined;
  // a pool only where the split pays (small models would lose to the handshake; the pool start-up is ~0.5 s)
  const exec = openExecutor(model.wasm, largestLinear(model) >= MIN_SPLIT_WEIGHTS ? opts.threads ?? 1 : 1);
  const helper = gemvHelper(exec, model);
  const it = generateTokens(model, { ...o, gemv: helper?.gemv });
  try {
    for (;;) {
      opts.signal?.throwIfAborted();
      const r = it.next();
      if (r.done) return r.value;
      yield r.value;
    }
  } finally {
    it.return(undefined as never);
    await gpu?.close();
    await helper?.close();
    await exec.close();
  }
}

export interface PerplexityOptions {
  /** "paragraphs" (default: blank-line separated, each with BOS, truncated at ctx) or "windows" (the papers') */
  protocol?: ProtocolName;
  /** tokens per paragraph at most, or per window (default 512, capped at the model's context) */
  ctx?: number;
  /** paragraphs: the first N */
  paragraphs?: number;
  /** windows: Hugging Face's sliding windows advanced by `stride` tokens */
  stride?: number;
  /** windows: the first N windows */
  maxWindows?: number;
  /** worker threads (the same result for any count; default 1) */
  threads?: number;
  /** where linear layers run (default "wasm") */
  device?: DeviceKind;
  /** sequences finished over all threads; decoder layers finished for a streamed store (layer-major) */
  onProgress?: (done: number, total: number) => void;
}

export type PerplexityReport = PerplexityResult & ProtocolReport;

/** A store rather than a resident model (a model has no `acquire`). */
function isStore(m: Model | ModelStore): m is ModelStore {
  return "acquire" in m;
}

/**
 * Perplexity on `text` (the sequences of the protocol; see src/eval/protocol.ts) of a model, or of a store
 * (`openModelStore`): a resident one token-major, a streamed one layer-major (src/eval/layer-major.ts), the same
 * numbers bit for bit.
 */
export async function perplexity(model: Model | ModelStore, text: string, opts: PerplexityOptions = {}): Promise<PerplexityReport> {
  const { result, seqs } = await perplexityOf(model, text, opts);
  return { ...result, ...describeProtocol(seqs) };
}

/** perplexity, with the sequences it ran (what the CLI prints from). A store given is not closed. */
export async function perplexityOf(model: Model | ModelStore, text: string, opts: PerplexityOptions = {}): Promise<{ result: PerplexityResult; seqs: EvalSequences }> {
  const store = isStore(model) ? model : residentStore(model);
  if (!store.tokenizer) throw new UsageError("eval needs a tokenizer");
  const protocol = protocolFromOptions({ ...opts, ctx: opts.ctx ?? 512 });
  const seqs = evalSequences(store.tokenizer, text, protocol, store.config.maxSeqLen);
  const device = opts.device ?? "wasm";
  if (!store.model && device !== "wasm") {
    throw new UsageError(`--device ${device}: ${store.source.path} is streamed a layer at a time (it does not fit in memory whole); linear layers on WebGPU need the model resident, use --device wasm`);
  }
  const gpu = store.model && device !== "wasm"
    ? await (await import("../gpu/offload.js")).attachGpuLinears(device, store.model, Math.min(protocol.ctx, store.config.maxSeqLen))
    : undefined;
  // with linear layers on the device, the forward pass runs on the main thread (the backend is not for workers)
  const exec = openExecutor(store.wasm, gpu ? 1 : opts.threads ?? 1);
  try {
    const result = await storePerplexity(store, seqs.sequences, exec, seqs.countFrom, opts.onProgress && ((done, total) => opts.onProgress!(done, total)));
    return { result, seqs };
  } finally {
    await gpu?.close();
    await exec.close();
  }
}

/** How far a prune is: operators finished over all layers (`operator` is the one just finished). */
export interface PruneProgress {
  done: number;
  total: number;
  operator?: OperatorReport;
  /** a decoder layer finished (`resumed`: from its checkpoint of an earlier, interrupted run) */
  layer?: number;
  resumed?: boolean;
  /** a phase of the job began: "eval dense", "prune", "write", "eval pruned" */
  phase?: string;
}

export interface PruneSettings {
  /** magnitude | wanda | sparsegpt | fista (default fista) */
  method?: MethodName;
  /** a fraction in [0, 1) or N:M, e.g. 0.5 or "2:4" (default 0.5) */
  sparsity?: number | string;
  /** sequential (default: each layer fed by the pruned layers before it) | parallel */
  schedule?: Schedule;
  /** intra-layer error correction (default: on for fista) */
  errorCorrection?: boolean;
  /** calibration samples (default 128) and tokens per sample at most (default 512) */
  nsamples?: number;
  seqlen?: number;
  /** "paragraphs" (default: the first `nsamples` paragraphs) | "windows" (SparseGPT's: `nsamples` windows of exactly `seqlen` tokens at seeded random starts) */
  calibProtocol?: CalibProtocol;
  /** windows: seed of the window starts (default 0) */
  calibSeed?: number;
  /** output directory (Hugging Face's sharded layout), or a path ending in .bin (llama2.c) */
  out: string;
  /** replace a finished output / restart a partial one */
  force?: boolean;
  /** stored dtype of the output (default: as the input) */
  dtype?: DType;
  /** the largest output shard: bytes or a size such as "5GB", "2GiB" (default 5GB, as save_pretrained) */
  maxShardSize?: number | string;
  /** host-memory budget: bytes or a size such as "16GiB" (default 3/4 of the free RAM); the calibration stream spills to disk beyond it */
  maxMemory?: number | string;
  /** collect the Gram for every method (wanda and magnitude need less) to report each operator's relative error */
  measureError?: boolean;
  /** where `calib` came from, for the report (default: the text given) */
  calibFile?: string;
  /** perplexity before and after on this text (the prune's report carries it) */
  evalText?: string;
  evalFile?: string;
  evalProtocol?: PerplexityOptions;
  /** per-method options: `fista: { budget, lassoPath }` (W·H products per operator; the lasso path as a candidate), a device solver */
  methodOptions?: MethodOptions;
  /** quantize every pruned operator (scheme, rtn | gptq, act-order; src/prune/quantize.ts), written pack-quantized (int-quantized with int8 activations declared) */
  quantize?: QuantizeSettings;
  /** the calibration samples as this many shards whose statistics are summed in shard order (default 1; src/prune/driver.ts) */
  calibShards?: number;
  /** where the layers are pruned (default: in this process; src/distributed's coordinator runs them as queue jobs) */
  runner?: LayerRunner;
  /** worker threads (the same model for any count; default 1) */
  threads?: number;
  /** where FISTA's per-operator solve runs (default "wasm") */
  device?: DeviceKind;
  onProgress?: (p: PruneProgress) => void;
}

/** The default of `maxMemory`: three quarters of the memory free now. */
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

/** The settings every prune checks before any file is read (method, pattern, schedule, dtype, sizes). */
export function checkPruneSettings(settings: Omit<PruneSettings, "out">): { method: MethodName; pattern: Pattern; schedule: Schedule; maxShardBytes?: number; maxMemory: number } {
  const m = settings.method ?? "fista";
  if (!(METHOD_NAMES as readonly string[]).includes(m)) throw new UsageError(`--method ${m}: expected one of ${METHOD_NAMES.join(", ")}`);
  const pattern = parsePattern(String(settings.sparsity ?? "0.5"));
  const schedule = settings.schedule ?? "sequential";
  if (!(SCHEDULES as readonly string[]).includes(schedule)) throw new UsageError(`--schedule ${schedule}: expected one of ${SCHEDULES.join(", ")}`);
  if (settings.dtype !== undefined && !(DTYPES as readonly string[]).includes(settings.dtype)) throw new UsageError(`--dtype ${settings.dtype}: expected one of ${DTYPES.join(", ")}`);
  if (settings.calibShards !== undefined && !(Number.isInteger(settings.calibShards) && settings.calibShards >= 1)) throw new UsageError(`--calib-shards must be a positive integer, got ${settings.calibShards}`);
  const maxShardBytes = settings.maxShardSize !== undefined ? parseSize(settings.maxShardSize, "--max-shard-size") : undefined;
  const maxMemory = settings.maxMemory !== undefined ? parseSize(settings.maxMemory, "--max-memory") : defaultMaxMemory();
  return { method: m as MethodName, pattern, schedule, ...(maxShardBytes !== undefined ? { maxShardBytes } : {}), maxMemory };
}

/**
 * Prune every linear operator of a model (resident, or a store from `openModelStore`: a model larger than
 * memory is streamed a decoder layer at a time), calibrated on `calib`, and write the result to `settings.out`
 * as it is produced (atomic, resumable from the finished layers; see src/prune/run.ts). `calib` undefined: text
 * the model samples itself (seed 7; a resident model only), and none for a method that reads no calibration
 * (magnitude). A directory output leaves `model` as it was (load the output to use it); a `.bin` output is
 * written from the model in memory, pruned in place. A thin wrapper of `runPrune`: what the CLI's `prune` runs.
 */
export async function prune(model: Model | ModelStore, calib: string | undefined, settings: PruneSettings): Promise<PruneSummary> {
  const { method, pattern, schedule, maxShardBytes, maxMemory } = checkPruneSettings(settings);
  const store = isStore(model) ? model : residentStore(model);
  const nsamples = settings.nsamples ?? 128;
  const seqlen = settings.seqlen ?? 512;
  const evalProtocol = settings.evalText !== undefined ? protocolFromOptions({ ...settings.evalProtocol, ctx: settings.evalProtocol?.ctx ?? 512 }, "eval-") : undefined;
  const exec = openExecutor(store.wasm, settings.threads ?? 1);
  const { parseDeviceKind, selectDevice } = await import("../gpu/device.js");
  const gpu = method === "fista" ? await selectDevice(parseDeviceKind(settings.device ?? "wasm")) : undefined;
  try {
    const fistaSolver = gpu ? (await import("../gpu/fista.js")).gpuFistaSolvers(gpu) : undefined;
    const prune = {
      method, pattern, schedule, errorCorrection: settings.errorCorrection ?? method === "fista",
      methodOptions: { ...settings.methodOptions, ...(fistaSolver ? { fistaSolver } : {}) },
      measureError: !!settings.measureError,
      ...(settings.quantize ? { quantize: settings.quantize } : {}),
      ...(settings.calibShards && settings.calibShards > 1 ? { calibShards: settings.calibShards } : {}),
    };
    const calibrated = statsKind(prune) !== "none";
    if (calibrated && calib === undefined && !store.model) {
      throw new UsageError(`${store.source.path}: the model is streamed a layer at a time (it does not fit in memory whole), so it cannot write its own calibration text; pass --calib FILE`);
    }
    const text = !calibrated ? undefined : calib ?? selfText(store.model!, Math.min(nsamples, 128), Math.min(seqlen, store.config.maxSeqLen), 7);
    const file = settings.calibFile ?? (calib === undefined ? "(text sampled from the dense model, seed 7)" : "(text)");
    const total = store.config.nLayers * 7;
    const progress = settings.onProgress;
    return await runPrune(
      {
        store,
        exec,
        settings: prune,
        calib: text === undefined ? undefined : { text, file, nsamples, seqlen, protocol: settings.calibProtocol ?? "paragraphs", seed: settings.calibSeed ?? 0 },
        out: settings.out,
        force: settings.force,
        dtype: settings.dtype,
        maxShardBytes,
        streamBudget: streamBudget(maxMemory),
        runner: settings.runner,
        evalText: settings.evalText !== undefined && evalProtocol ? { text: settings.evalText, file: settings.evalFile ?? "", protocol: evalProtocol } : undefined,
      },
      {
        onOperator: (r, done) => progress?.({ done, total, operator: r }),
        onLayer: (l, _r, p) => progress?.({ done: (l + 1) * 7, total, layer: l, resumed: p.resumed }),
        onPhase: (phase) => progress?.({ done: phase === "write" || phase === "eval pruned" ? total : 0, total, phase }),
      },
    );
  } finally {
    gpu?.destroy();
    await exec.close();
  }
}

/**
 * Store a pruned `model` compressed in directory `out` (2:4 operators as sparse-24-bitmask, other ≥ 50%-sparse
 * ones as sparse-bitmask, the rest dense; atomic, an existing `out` refused unless `force`). A thin wrapper of
 * `compressModel`.
 */
export async function compress(model: Model, out: string, opts: { force?: boolean } = {}): Promise<CompressReport> {
  return compressModel(model, out, opts);
}
