/**
 * @file The library in a browser — `import { loadModel, generate } from "wasprune"` with a bundler's `browser`
 * condition (or `wasprune/browser`), or build/web/wasprune.js as it is: the inference path of the Node library
 * (src/api) on the same code — the WeightFiles and their checks, the forward pass over dense / 2:4 / CSR weights,
 * the tokenizers, the sampler, the WASM SIMD kernels — with browser sources and Web Workers.
 *
 * - `loadModel(source, opts)`: a URL (a model directory ending in "/", or a llama2.c .bin), `File`s, a
 *   `FileSystemDirectoryHandle`, or `{ name: ArrayBuffer }`; refused by name when it is bigger than `maxBytes`.
 * - `generate(model, opts)`: an async iterator of tokens, the prompt's first; its return value carries tok/s and
 *   how it ran (threads, GEMVs split with a worker, the device).
 * - `describeModel(model)`: architecture, parameters, formats, bytes and zeros per tensor.
 * - `environment()`: cross-origin isolation, cores, whether this thread may block, whether relaxed SIMD runs.
 *
 * Threads: the GEMVs of generation are split by rows with a Web Worker (src/generate/gemv.ts: a futex in the
 * shared memory, the same tokens for any thread count). That needs a cross-origin isolated page (COOP/COEP, as
 * `wasprune serve` sends) and a thread that may block (Atomics.wait): a worker, not a page's main thread; the
 * page of `wasprune serve` runs the engine in a worker (src/web/page/engine.ts). Elsewhere it runs on one thread.
 * WebGPU: `attachWebGpu(model)` puts the linear layers on the adapter navigator.gpu gives (in an isolated worker;
 * src/web/gpu.ts), or says why not and leaves the model on WASM. The result's `device` says where they ran.
 */
import { UsageError } from "../errors.js";
import { generateTokens, withSamplingDefaults, type GenerateResult, type GeneratedToken, type SamplingOptions } from "../generate/generate.js";
import { gemvHelper, largestLinear, MIN_SPLIT_WEIGHTS } from "../generate/gemv.js";
import { inspectModel, type InspectReport } from "../model/inspect.js";
import { residentStore } from "../model/residency.js";
import type { Model } from "../model/types.js";
import { localExecutor, type Executor } from "../exec/executor.js";
import { relaxedSimdSupported } from "../wasm/memory.js";
import { WEB_HANDLERS } from "./handlers.js";
import { isolated, webExecutor } from "./pool.js";
import { loadBrowserModel, type BrowserLoadOptions } from "./load.js";
import type { BrowserModelSource } from "./files.js";

export type { Model, ModelConfig, LinearWeight } from "../model/types.js";
export type { GenerateResult, GeneratedToken, SamplingOptions } from "../generate/generate.js";
export type { InspectReport, TensorReport } from "../model/inspect.js";
export type { Tokenizer } from "../tokenizer/types.js";
export type { BrowserModelSource } from "./files.js";
export type { BrowserLoadOptions } from "./load.js";
export { WaspruneError, FormatError, MissingFileError, ConfigError, UsageError, WasmError, WorkerError } from "../errors.js";
export { compileKernels, createBrowserWasm, KERNELS_URL, KERNEL_URLS, type BrowserKernels } from "./kernels.js";
export { attachWebGpu, type WebGpuChoice } from "./gpu.js";

/** A model, every weight in the kernels' memory, with its tokenizer (see ./files.ts for the sources). */
export async function loadModel(source: BrowserModelSource, opts: BrowserLoadOptions = {}): Promise<Model> {
  return loadBrowserModel(source, opts);
}

/** Architecture, parameters, per-tensor zeros, N:M patterns and stored formats of a loaded model. */
export function describeModel(model: Model): InspectReport {
  return inspectModel(residentStore(model));
}

export interface BrowserEnvironment {
  /** the page may share memory with workers (COOP/COEP) */
  crossOriginIsolated: boolean;
  /** logical cores (navigator.hardwareConcurrency) */
  cores: number;
  /** this thread may block on a futex (a worker; not a page's main thread) */
  canBlock: boolean;
  /** this browser runs the relaxed-SIMD build of the kernels (what `kernels: "auto"` loads then) */
  relaxedSimd: boolean;
}

/** What this page or worker allows. */
export function environment(): BrowserEnvironment {
  const g = globalThis as { document?: unknown; navigator?: { hardwareConcurrency?: number } };
  return { crossOriginIsolated: isolated(), cores: g.navigator?.hardwareConcurrency ?? 1, canBlock: g.document === undefined, relaxedSimd: relaxedSimdSupported() };
}

export interface BrowserGenerateOptions extends SamplingOptions {
  /**
   * threads (default 1): ≥ 2 splits the GEMVs with a Web Worker — in a cross-origin isolated worker only; on
   * one thread otherwise (the result's `threads` says)
   */
  threads?: number;
  /** a GEMV is split from this many weights (default MIN_SPLIT_WEIGHTS, where a split pays; 0: every one) */
  splitWeights?: number;
}

/** A generation's result, and how it ran. */
export interface BrowserGenerateResult extends GenerateResult {
  /** threads that ran it (1, or 2 with a GEMV worker) */
  threads: number;
  /** GEMVs split with the worker */
  splitGemvs: number;
  /** why it ran on one thread when more were asked for */
  singleThreadReason?: string;
  /** where the linear layers ran: "wasm", or the WebGPU adapter (`attachWebGpu`) */
  device: string;
}

/** Yield to the event loop (a message, not a timer: timers are clamped to ≥ 4 ms when nested). */
function macrotask(): Promise<void> {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => {
      ch.port1.close();
      resolve();
    };
    ch.port2.postMessage(0);
  });
}

/**
 * Tokens as they are generated (the prompt's own first), on the same code as Node's `generate`. One generation
 * per model at a time. The event loop gets a turn every ~50 ms (so a worker sees its messages, e.g. an abort).
 */
export async function* generate(model: Model, opts: BrowserGenerateOptions = {}): AsyncGenerator<GeneratedToken, BrowserGenerateResult, void> {
  const o = withSamplingDefaults(opts);
  const threads = opts.threads ?? 1;
  const split = opts.splitWeights ?? MIN_SPLIT_WEIGHTS;
  if (!(Number.isInteger(threads) && threads >= 1)) throw new UsageError(`threads must be a positive integer, got ${threads}`);
  const env = environment();
  let reason: string | undefined;
  if (threads > 1) {
    if (!env.crossOriginIsolated) reason = "the page is not cross-origin isolated (it needs COOP/COEP headers to share memory with workers)";
    else if (!env.canBlock) reason = "threads need a worker (a page's main thread may not block on Atomics.wait)";
    else if (largestLinear(model) < split) reason = `the model's largest GEMV is below ${split} weights, where a split does not pay`;
  }
  const exec: Executor = reason || threads === 1 ? localExecutor(model.wasm, WEB_HANDLERS) : await webExecutor(model.wasm, 2, WEB_HANDLERS);
  const helper = gemvHelper(exec, model, split);
  const it = generateTokens(model, { ...o, gemv: helper?.gemv });
  let last = performance.now();
  try {
    for (;;) {
      opts.signal?.throwIfAborted();
      const r = it.next();
      if (r.done) {
        const device = (model.backend as { device?: string } | undefined)?.device ?? "wasm";
        return { ...r.value, threads: exec.slots, splitGemvs: helper?.splits ?? 0, device, ...(reason ? { singleThreadReason: reason } : {}) };
      }
      yield r.value;
      if (performance.now() - last > 50) {
        await macrotask();
        last = performance.now();
      }
    }
  } finally {
    it.return(undefined as never);
    await helper?.close();
    await exec.close();
  }
}
