/**
 * @file Generation's GEMV split by rows across the main thread and one worker, synchronously: the forward
 * pass is synchronous code, so a piscina task per GEMV (a message round trip through the event loop) cannot
 * be awaited inside it. Instead one long task (`gemvServe`, below) keeps a worker
 * waiting on a futex in a control block of the shared memory; the main thread posts a row block
 * (Atomics.notify), computes the other block itself and waits (Atomics.wait) for the worker's. Split points
 * are multiples of 8 rows, where every split kernel (row-major f32_gemv, the p8 GEMVs, the 2:4 GEMVs, the integer
 * kernels on their 4-row panels, with the activations rounded once by the main thread) is row-split
 * invariant: the same tokens for any thread count.
 *
 * Measured on this 2-core machine (other jobs running, load ~6, so ±30 %): greedy decoding of a seeded
 * 4096-wide LLaMA (randomLlama, 2 layers, hidden 11008, vocab 32000) 1.67 → 2.81 tok/s (1.68x, same tokens);
 * stories260K (64-wide; a GEMV is ~3 µs of work) forced to split: 3637 → 858 tok/s (0.24x). Single GEMVs:
 * 2048x2048 ~1.9x, 11008x4096 ~1.5x, 1024x1024 0.6x; with a piscina task per GEMV instead of the futex,
 * 4096x4096 was only ~1.4x and 2048x2048 0.8x. Hence a split only from 4M weights (MIN_SPLIT_WEIGHTS), and
 * `gemvHelper` declines models whose largest GEMV is smaller (no pool is started for them at all).
 *
 * Both sides poll their slot for SPIN_MS before sleeping on the futex: a generated TinyLlama-1.1B (bf16, 2
 * threads, Node 24, 6 interleaved runs each) went from 10.0–14.0 tok/s (median 11.1) sleeping at once to
 * 10.8–14.6 (median 14.4) polling first, the same tokens; a 7B-shaped 2:4 int4 model 4.62–4.63 → 4.77–5.02.
 * Between a token's GEMVs the worker otherwise sleeps, and waking it cost a good part of a GEMV half at
 * TinyLlama's width (on this VM presumably a parked vCPU; the wake alone was not measured).
 */
import type { Wasm } from "../wasm/runtime.js";
import type { Kernels } from "../wasm/contract.js";
import type { LinearWeight, Model } from "../model/types.js";
import type { Executor } from "../exec/executor.js";
import { weightBytes } from "../model/packed.js";
import { intPanelBytes, linearScratchBytes, roundActivations } from "../model/linear.js";
import { WorkerError } from "../errors.js";

/** Below this many weights a split GEMV costs more than it saves (measured, see the file comment). */
export const MIN_SPLIT_WEIGHTS = 4 << 20;

/**
 * control block (Int32 slots): the posted job is `SPLIT_KERNELS[fn](a, b, x, y, N, K)`; the integer kernels also
 * read xs (the activations' block scales; x is then their int16 or int8 copy), ng, blk and zc (assembly/qgemm.ts)
 */
export const CTRL = { seq: 0, done: 1, stop: 2, fn: 3, a: 4, b: 5, x: 6, y: 7, N: 8, K: 9, xs: 10, ng: 11, blk: 12, zc: 13, sc: 14, ints: 15 } as const;

/** The one-position kernels a split may run (index = CTRL.fn); rows split at multiples of 8 are row-split invariant in each. */
const SPLIT_KERNELS = [
  "f32_gemv", "f32_gemv_p8", "bf16_gemv_p8", "f16_gemv_p8", "f32_spmv_2of4_4x", "bf16_spmv_2of4_4x", "f16_spmv_2of4_4x",
  "qu8_gemm_nt", "qu4_gemm_nt", "qu4_gemm_2of4_nt", "qu8a8_gemm_nt", "qu4a8_gemm_nt",
] as const;
type SplitKernel = (typeof SPLIT_KERNELS)[number];

/** The integer kernels' extra operands: block scales of the rounded activations, scale groups per row, block. */
interface IntArgs {
  xs: number;
  /** zero-point terms (2:4: zero points) of the rows run (0: symmetric) */
  zc: number;
  /** the 2:4 kernel's scales of the rows run (the others pass theirs as b) */
  sc: number;
  ng: number;
  blk: number;
}

/**
 * Run split kernel `fn` on rows [0, N) at weight pointers a (values / panels / rows / code panels) and b (2:4
 * indices, the integer kernels' scales).
 */
function callSplit(k: Kernels, fn: number, a: number, b: number, x: number, y: number, N: number, K: number, q: IntArgs): void {
  const name: SplitKernel = SPLIT_KERNELS[fn]!;
  if (name === "f32_gemv") k.f32_gemv(a, x, y, N, K, 0);
  else if (name.endsWith("_gemv_p8")) k[name as "f32_gemv_p8"](a, x, y, N, K);
  else if (name === "qu4_gemm_2of4_nt") k.qu4_gemm_2of4_nt(x, q.xs, a, b, q.sc, q.zc, y, 1, N, K, q.ng, q.blk);
  else if (name.startsWith("qu")) k[name as "qu8_gemm_nt"](x, q.xs, a, b, q.zc, y, 1, N, K, q.ng, q.blk);
  else k[name as "f32_spmv_2of4_4x"](a, b, x, y, N, K);
}

/** How `w` is split: its kernel, pointers, and the pointers of the rows from `split` (a multiple of 8) on. */
function splitPlan(w: LinearWeight, split: number): { fn: number; a: number; b: number; a2: number; b2: number; c?: number; c2?: number; s?: number; s2?: number } | undefined {
  const K = w.shape[1]!;
  const fnOf = (n: SplitKernel) => SPLIT_KERNELS.indexOf(n);
  if (w.format === "dense") return { fn: fnOf("f32_gemv"), a: w.ptr, b: 0, a2: w.ptr + 4 * split * K, b2: 0 };
  if (w.format === "p8") return { fn: fnOf(`${w.dtype}_gemv_p8`), a: w.ptr, b: 0, a2: w.ptr + (split / 8) * K * 8 * weightBytes(w.dtype), b2: 0 };
  if (w.format === "2:4") {
    const blocks = split / 4, G = K / 4;
    return { fn: fnOf(`${w.dtype}_spmv_2of4_4x`), a: w.vals, b: w.idx, a2: w.vals + blocks * G * 8 * weightBytes(w.dtype), b2: w.idx + blocks * G * 2 };
  }
  if (w.format === "int" && w.pattern === "2:4") {
    // 4-row blocks of kept codes, positions, scales and zero points
    const blocks = split / 4, Kp = Math.ceil(K / w.block) * w.block, q = blocks * w.ng * 16;
    return {
      fn: fnOf("qu4_gemm_2of4_nt"), a: w.codes, b: w.idx, a2: w.codes + blocks * Kp, b2: w.idx + blocks * (Kp / 2),
      s: w.scales, s2: w.scales + q, c: w.zeroPoints, c2: w.zeroPoints && w.zeroPoints + q,
    };
  }
  if (w.format === "int") {
    // 4-row code panels; scales (and zero-point terms) per row
    return { fn: fnOf(`qu${w.bits}${w.activationBits === 8 ? "a8" : ""}_gemm_nt`), a: w.codes, b: w.scales, a2: w.codes + (split / 4) * intPanelBytes(K, w.bits, w.block), b2: w.scales + split * w.ng * 4, c: w.zeroTerms, c2: w.zeroTerms && w.zeroTerms + split * w.ng * 4 };
  }
  return undefined; // panel CSR: its row pointers are per panel and row, so its rows are not one contiguous block
}

export interface GemvHelper {
  /**
   * y[N] = W·x for one position, split over the two threads when W is large enough and its layout splits; false:
   * not done (the caller runs its kernel). `scratch` (16-aligned, `scratchBytes`): the integer kernels' rounded
   * activations (intScratchBytes for one position).
   */
  gemv(w: LinearWeight, x: number, y: number, scratch: number, scratchBytes: number): boolean;
  /** GEMVs split with the worker so far */
  readonly splits: number;
  /** stop the worker's loop and wait for its task to end */
  close(): Promise<void>;
}

/** The largest linear operator of `model` (rows × cols), the GEMV the split would have to pay for. */
export function largestLinear(model: Model): number {
  let best = 0;
  for (const lw of model.weights.layers) {
    for (const t of Object.values(lw)) {
      if (t && typeof t === "object" && "shape" in t && t.shape.length === 2) best = Math.max(best, t.shape[0] * t.shape[1]);
    }
  }
  const h = model.weights.lmHead.shape;
  return Math.max(best, h[0]! * h[1]!);
}

/** The long task of the helper's worker: serve GEMV row blocks posted in the control block until told to stop. */
export interface GemvServeTask {
  op: "gemvServe";
  /** the control block (CTRL) */
  ctrl: number;
}

/**
 * How long a waiting side polls its slot before it sleeps on the futex (measured gain: the file comment): the
 * worker for the next job (between a token's GEMVs the main thread is busy only briefly), the main thread for the
 * worker's half. After SPIN_MS without a change the side sleeps, so an idle generation costs no CPU.
 */
const SPIN_MS = 2;

/** Poll `c[slot]` until it differs from `from` or `ms` have passed (then the caller sleeps on Atomics.wait). */
function spinWhile(c: Int32Array, slot: number, from: number, ms: number): void {
  const end = performance.now() + ms;
  for (let i = 1; Atomics.load(c, slot) === from; i++) {
    if ((i & 255) === 0 && performance.now() > end) return;
  }
}

export const GEMV_HANDLERS = {
  gemvServe(wasm: Wasm, t: GemvServeTask): number {
    const c = new Int32Array(wasm.memory.buffer, t.ctrl, CTRL.ints);
    const k = wasm.exports;
    let seen = 0;
    for (;;) {
      spinWhile(c, CTRL.seq, seen, SPIN_MS);
      Atomics.wait(c, CTRL.seq, seen);
      seen = Atomics.load(c, CTRL.seq);
      if (Atomics.load(c, CTRL.stop)) return 0;
      callSplit(k, c[CTRL.fn]!, c[CTRL.a]!, c[CTRL.b]!, c[CTRL.x]!, c[CTRL.y]!, c[CTRL.N]!, c[CTRL.K]!, { xs: c[CTRL.xs]!, ng: c[CTRL.ng]!, blk: c[CTRL.blk]!, zc: c[CTRL.zc]!, sc: c[CTRL.sc]! });
      Atomics.store(c, CTRL.done, seen);
      Atomics.notify(c, CTRL.done);
    }
  },
} as const;

/**
 * A GEMV helper on a worker of `exec` when there is one and the model's GEMVs are large enough to pay, else
 * undefined. Allocates its control block from the arena (call outside scoped blocks that end before `close`).
 */
export function gemvHelper(exec: Executor, model: Model, minWeights = MIN_SPLIT_WEIGHTS): GemvHelper | undefined {
  const wasm = exec.wasm;
  if (exec.slots < 2 || largestLinear(model) < minWeights) return undefined;
  return gemvSplitter(exec, minWeights);
}

/** The GEMV splitter itself (gemvHelper decides whether a model pays for it; the benchmarks use it directly). */
export function gemvSplitter(exec: Executor, minWeights = MIN_SPLIT_WEIGHTS): GemvHelper {
  const wasm = exec.wasm;
  const ctrlPtr = wasm.arena.allocBytes(CTRL.ints * 4);
  const ctrl = new Int32Array(wasm.memory.buffer, ctrlPtr, CTRL.ints);
  ctrl.fill(0);
  let failed: unknown;
  const task: GemvServeTask = { op: "gemvServe", ctrl: ctrlPtr };
  const serving = exec.run<number>(task, "generation GEMV helper", 1).catch((e) => {
    failed = e;
    Atomics.store(ctrl, CTRL.done, -1);
    Atomics.notify(ctrl, CTRL.done);
  });
  const k = wasm.exports;
  let seq = 0;
  let splits = 0;
  return {
    get splits() {
      return splits;
    },
    gemv(w, x, y, scratch, scratchBytes) {
      const [N, K] = w.shape as [number, number];
      if (failed || N * K < minWeights || N < 16) return false;
      const split = Math.ceil(N / 2 / 8) * 8;
      const plan = splitPlan(w, split);
      if (!plan) return false;
      let q: IntArgs = { xs: 0, ng: 0, blk: 0, zc: 0, sc: 0 };
      if (w.format === "int") {
        // the activations rounded once, here; both halves read the copy
        if (linearScratchBytes(k, w, 1) > scratchBytes) return false;
        q = { xs: roundActivations(k, w, x, 1, scratch), ng: w.ng, blk: w.block, zc: plan.c ?? 0, sc: plan.s ?? 0 };
        x = scratch;
      }
      splits++;
      ctrl[CTRL.fn] = plan.fn;
      ctrl[CTRL.a] = plan.a2;
      ctrl[CTRL.b] = plan.b2;
      ctrl[CTRL.xs] = q.xs;
      ctrl[CTRL.zc] = plan.c2 ?? 0;
      ctrl[CTRL.sc] = plan.s2 ?? 0;
      ctrl[CTRL.ng] = q.ng;
      ctrl[CTRL.blk] = q.blk;
      ctrl[CTRL.x] = x;
      ctrl[CTRL.y] = y + 4 * split;
      ctrl[CTRL.N] = N - split;
      ctrl[CTRL.K] = K;
      seq++;
      Atomics.store(ctrl, CTRL.seq, seq);
      Atomics.notify(ctrl, CTRL.seq);
      callSplit(k, plan.fn, plan.a, plan.b, x, y, split, K, q);
      for (;;) {
        const d = Atomics.load(ctrl, CTRL.done);
        if (d === seq) return true;
        if (d === -1) throw failed instanceof Error ? failed : new WorkerError("generation GEMV helper: worker thread failed");
        spinWhile(ctrl, CTRL.done, d, SPIN_MS);
        Atomics.wait(ctrl, CTRL.done, d, 1000);
      }
    },
    async close() {
      Atomics.store(ctrl, CTRL.stop, 1);
      Atomics.store(ctrl, CTRL.seq, ++seq);
      Atomics.notify(ctrl, CTRL.seq);
      await serving;
    },
  };
}
