/**
 * @file The worker pool (piscina) of one WASM instance: every worker thread instantiates the kernels ONCE on
 * the same shared WebAssembly.Memory (posted once, in workerData) and keeps the instance, so a task carries
 * only pointers and sizes — no weights, Grams or activations are copied.
 *
 * Allocation stays in the main thread: the pool owns `threads` task *slots*, each with its scratch taken from
 * the arena when the pool is created (the f32_gemm_nt packing block); a batch of tasks uses at most one task per
 * slot, so two running tasks never share scratch. Workers never allocate from the arena.
 *
 * Determinism: work is split into contiguous row blocks whose results do not depend on the split (every
 * kernel used computes a row, or an element, with the same summation order wherever it falls in a tile —
 * see assembly/f32-gemm.ts, f32-gram.ts), and results are combined in a fixed order, so every output is
 * bit-identical for any thread count. `--threads 1` makes no pool at all (`wasm.parallel` stays undefined).
 *
 * Workers are TypeScript. The CLI registers tsx in the main thread only (bin/wasprune.js), which worker
 * threads do not inherit, so the pool starts them with `--import <tsx loader>` (an absolute file URL, so it
 * resolves from any working directory).
 */
import os from "node:os";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Piscina } from "piscina";
import type { Wasm } from "../wasm/runtime.js";
import { UsageError, WaspruneError } from "../errors.js";

/** The worker files of src/parallel, by task. */
export const WORKERS = Object.freeze({
  rows: fileURLToPath(new URL("./rows.worker.ts", import.meta.url)),
  forward: fileURLToPath(new URL("./forward.worker.ts", import.meta.url)),
  layer: fileURLToPath(new URL("./layer.worker.ts", import.meta.url)),
  train: fileURLToPath(new URL("../train/train.worker.ts", import.meta.url)),
});
export type WorkerName = keyof typeof WORKERS;

/** A worker threw or died: names what it was doing (layer/operator) and the cause. */
export class WorkerError extends WaspruneError {}

/** The default of `--threads`: the cores this process may use. */
export function defaultThreads(): number {
  return typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
}

/** Validate a `--threads` value. */
export function checkThreads(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new UsageError(`--threads ${n}: expected an integer in [1, 256]`);
  return n;
}

function tsxLoader(): string {
  const require = createRequire(import.meta.url);
  return pathToFileURL(require.resolve("tsx")).href;
}

/** Bytes of f32_gemm_nt packing scratch for any shape (the kernel blocks N by 1024 and K by 256). */
function maxPackBytes(wasm: Wasm): number {
  const f = wasm.exports.f32_gemm_nt_scratch as ((M: number, N: number, K: number) => number) | undefined;
  return f ? f(4, 1 << 20, 1 << 20) : 16;
}

export class Parallel {
  readonly threads: number;
  /** per task slot: f32_gemm_nt pack scratch (arena bytes, taken at creation) */
  readonly packs: readonly number[];
  private readonly pool: Piscina;
  private destroyed = false;

  private constructor(wasm: Wasm, threads: number) {
    this.threads = threads;
    const bytes = maxPackBytes(wasm);
    this.packs = Array.from({ length: threads }, () => wasm.arena.allocBytes(bytes));
    this.pool = new Piscina({
      filename: WORKERS.rows,
      minThreads: threads,
      maxThreads: threads,
      concurrentTasksPerWorker: 1,
      execArgv: ["--import", tsxLoader()],
      workerData: { memory: wasm.memory },
    });
  }

  /**
   * A pool of `threads` workers on `wasm`'s memory, attached as `wasm.parallel`; undefined (and nothing
   * attached) for threads = 1. Call this while the arena has no scoped blocks open (the slots' scratch is
   * long-lived), e.g. right after loading the model.
   */
  static attach(wasm: Wasm, threads: number): Parallel | undefined {
    checkThreads(threads);
    if (wasm.parallel) throw new UsageError("a worker pool is already attached to this model");
    if (threads === 1) return undefined;
    const p = new Parallel(wasm, threads);
    wasm.parallel = p;
    return p;
  }

  /**
   * Run one task on worker `worker`; a throw or a dead worker (exit, crash) becomes a WorkerError naming
   * `what`. piscina replaces a dead thread (it instantiates the module again on the same memory), so the
   * pool stays usable; the command fails anyway, since the task's outputs are incomplete.
   */
  async run<R>(worker: WorkerName, task: object, what: string): Promise<R> {
    if (this.destroyed) throw new WorkerError(`${what}: the worker pool is already closed`);
    try {
      return (await this.pool.run(task, { filename: WORKERS[worker] })) as R;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      // piscina: "worker exited with code: N" when the thread died (process.exit, a fatal error)
      const exited = /worker exited with code:?\s*(-?\d+)/i.exec(msg);
      if (exited) throw new WorkerError(`${what}: worker thread exited (code ${exited[1]}) before finishing its task`);
      throw new WorkerError(`${what}: worker thread failed: ${msg}`);
    }
  }

  /** Run one task per slot (`make(slot)` returns the task or undefined for none) and wait for all. */
  async all<R>(worker: WorkerName, make: (slot: number) => object | undefined, what: string): Promise<R[]> {
    const jobs: Promise<R>[] = [];
    for (let s = 0; s < this.threads; s++) {
      const t = make(s);
      if (t) jobs.push(this.run<R>(worker, t, what));
    }
    const settled = await Promise.allSettled(jobs);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) throw failed.reason;
    return settled.map((r) => (r as PromiseFulfilledResult<R>).value);
  }

  /** Stop the workers (idempotent); the process can then exit. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.pool.destroy();
  }
}

/** Detach and stop `wasm`'s pool, if any. */
export async function closeParallel(wasm: Wasm): Promise<void> {
  const p = wasm.parallel;
  wasm.parallel = undefined;
  await p?.destroy();
}

/**
 * Split [0, n) into at most `parts` contiguous blocks with split points at multiples of `align` (the kernels'
 * tile height, for speed; results do not depend on the split). `weight(i)` (default 1) balances the work,
 * e.g. the rows of a triangle.
 */
export function shards(n: number, parts: number, align = 4, weight?: (i: number) => number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  if (n <= 0) return out;
  parts = Math.max(1, Math.min(parts, Math.ceil(n / align)));
  if (!weight) {
    const per = Math.ceil(n / parts / align) * align;
    for (let r0 = 0; r0 < n; r0 += per) out.push([r0, Math.min(n, r0 + per)]);
    return out;
  }
  let total = 0;
  for (let i = 0; i < n; i++) total += weight(i);
  let r0 = 0;
  let acc = 0;
  for (let i = 0; i < n && out.length < parts - 1; i++) {
    acc += weight(i);
    if (acc >= (total * (out.length + 1)) / parts) {
      const r1 = Math.min(n, Math.ceil((i + 1) / align) * align);
      if (r1 > r0) out.push([r0, r1]);
      r0 = r1;
    }
  }
  if (r0 < n) out.push([r0, n]);
  return out;
}
