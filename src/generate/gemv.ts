/**
 * @file Generation's GEMV split by rows across the main thread and one worker, synchronously: the forward
 * pass is synchronous code, so a piscina task per GEMV (a message round trip through the event loop) cannot
 * be awaited inside it. Instead one long task (`gemvServe`, below) keeps a worker
 * waiting on a futex in a control block of the shared memory; the main thread posts a row block
 * (Atomics.notify), computes the other block itself and waits (Atomics.wait) for the worker's. Split points
 * are multiples of 8 rows, where f32_gemv is row-split invariant: the same tokens for any thread count.
 *
 * Measured on this 2-core machine (other jobs running, load ~6, so ±30 %): greedy decoding of a seeded
 * 4096-wide LLaMA (randomLlama, 2 layers, hidden 11008, vocab 32000) 1.67 → 2.81 tok/s (1.68x, same tokens);
 * stories260K (64-wide; a GEMV is ~3 µs of work) forced to split: 3637 → 858 tok/s (0.24x). Single GEMVs:
 * 2048x2048 ~1.9x, 11008x4096 ~1.5x, 1024x1024 0.6x; with a piscina task per GEMV instead of the futex,
 * 4096x4096 was only ~1.4x and 2048x2048 0.8x. Hence a split only from 4M weights (MIN_SPLIT_WEIGHTS), and
 * `gemvHelper` declines models whose largest GEMV is smaller (no pool is started for them at all).
 */
import type { Wasm } from "../wasm/runtime.js";
import type { Model } from "../model/types.js";
import type { Executor } from "../exec/executor.js";
import { WorkerError } from "../errors.js";

/** Below this many weights a split GEMV costs more than it saves (measured, see the file comment). */
export const MIN_SPLIT_WEIGHTS = 4 << 20;

/** control block (Int32 slots) */
export const CTRL = { seq: 0, done: 1, stop: 2, w: 3, x: 4, y: 5, N: 6, K: 7, ints: 8 } as const;

export interface GemvHelper {
  /** y[N] = W[N,K]·x, split when N·K is large enough; always computes y */
  gemv(w: number, x: number, y: number, N: number, K: number): void;
  /** GEMVs split with the worker so far */
  readonly splits: number;
  /** stop the worker's loop and wait for its task to end */
  close(): Promise<void>;
}

/** The largest dense linear of `model` (rows × cols), the GEMV the split would have to pay for. */
export function largestLinear(model: Model): number {
  let best = 0;
  for (const lw of model.weights.layers) {
    for (const t of Object.values(lw)) {
      if (t && typeof t === "object" && "shape" in t && t.shape.length === 2 && !t.sparse) best = Math.max(best, t.shape[0] * t.shape[1]);
    }
  }
  return best;
}

/** The long task of the helper's worker: serve GEMV row blocks posted in the control block until told to stop. */
export interface GemvServeTask {
  op: "gemvServe";
  /** the control block (CTRL) */
  ctrl: number;
}

export const GEMV_HANDLERS = {
  gemvServe(wasm: Wasm, t: GemvServeTask): number {
    const c = new Int32Array(wasm.memory.buffer, t.ctrl, CTRL.ints);
    const gemv = wasm.exports.f32_gemv as (...a: number[]) => void;
    let seen = 0;
    for (;;) {
      Atomics.wait(c, CTRL.seq, seen);
      seen = Atomics.load(c, CTRL.seq);
      if (Atomics.load(c, CTRL.stop)) return 0;
      gemv(c[CTRL.w], c[CTRL.x], c[CTRL.y], c[CTRL.N], c[CTRL.K], 0);
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
  const gemv = wasm.exports.f32_gemv as (w: number, x: number, y: number, N: number, K: number, acc: number) => void;
  let seq = 0;
  let splits = 0;
  return {
    get splits() {
      return splits;
    },
    gemv(w, x, y, N, K) {
      if (failed || N * K < minWeights || N < 16) return gemv(w, x, y, N, K, 0);
      splits++;
      const split = Math.ceil(N / 2 / 8) * 8;
      ctrl[CTRL.w] = w + 4 * split * K;
      ctrl[CTRL.x] = x;
      ctrl[CTRL.y] = y + 4 * split;
      ctrl[CTRL.N] = N - split;
      ctrl[CTRL.K] = K;
      seq++;
      Atomics.store(ctrl, CTRL.seq, seq);
      Atomics.notify(ctrl, CTRL.seq);
      gemv(w, x, y, split, K, 0);
      for (;;) {
        const d = Atomics.load(ctrl, CTRL.done);
        if (d === seq) return;
        if (d === -1) throw failed instanceof Error ? failed : new WorkerError("generation GEMV helper: worker thread failed");
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
