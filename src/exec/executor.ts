/**
 * @file The executor: where the compute tasks of one WASM instance run. Every parallel piece of work in wasprune
 * is a *task* (a plain object with an `op`, carrying pointers and sizes into the shared memory — never weights,
 * Grams or activations) run by a *handler* `(wasm, task) => result`. An executor is passed explicitly to the
 * code that has work to split (no ambient pool):
 *  - `local` (threads = 1): one slot; tasks run inline on this thread, through the same handlers;
 *  - `pool` (threads ≥ 2): piscina workers, each with the kernels instantiated once on the same shared memory
 *    (src/workers/worker.ts runs the same handler table there), one task per slot at a time.
 * So the single-thread path and the pool path are the same code: a caller splits its rows with `split` (one block
 * when the work is too small to pay for a task, or there is one slot) and runs one task per block with `each`; a
 * single block runs inline on this thread, more go to the workers.
 *
 * Allocation stays on the main thread: each slot's scratch (the f32_gemm_nt packing block, `packs`) is taken from
 * the arena when the executor is made, and a batch uses at most one task per slot, so running tasks never share
 * scratch. Workers never allocate from the arena.
 *
 * Determinism: work is split into contiguous row blocks whose results do not depend on the split (every kernel
 * computes a row, or an element, with the same summation order wherever it falls in a tile — see
 * assembly/gemm.ts, f32-gram.ts), and results are combined in a fixed order: every output is bit-identical
 * for any thread count.
 */
import { UsageError, WorkerError } from "../errors.js";
import type { Wasm } from "../wasm/runtime.js";

/** A unit of work: plain data (structured-clone friendly), dispatched on `op`. */
export interface Task {
  op: string;
}

/**
 * Runs one task on the instance of the thread it is on; `handlers` is the table it was dispatched from (a task
 * that runs sub-tasks of its own, e.g. a whole-layer pruning job, makes a local executor with it).
 */
export type Handler = (wasm: Wasm, task: never, handlers: Handlers) => unknown;
/** Every task op and its handler (src/workers/handlers.ts assembles the table the workers and `local` use). */
export type Handlers = Readonly<Record<string, Handler>>;

/** Below this many multiply-adds a task costs more than it saves (~50 µs of messaging against ~2 GFLOP/s). */
export const MIN_TASK_WORK = 1 << 18;

export interface Executor {
  /** the main thread's instance (its arena owns every allocation) */
  readonly wasm: Wasm;
  /** task slots: 1 for `local`, the worker count for a pool */
  readonly slots: number;
  /** per slot: f32_gemm_nt packing scratch (arena bytes, taken at creation, enough for any shape) */
  readonly packs: readonly number[];
  /**
   * Row blocks of [0, n) for work of `work` multiply-adds: one block when there is one slot or the work is too
   * small to pay for tasks, else up to `slots` blocks with split points at multiples of `align` (see `shards`).
   */
  split(n: number, work: number, align?: number, weight?: (i: number) => number): Array<[number, number]>;
  /** Run one task on slot `slot` (a single task of a batch; inline on this thread when there are no workers). */
  run<R>(task: Task, what: string, slot?: number): Promise<R>;
  /**
   * One task per block (`make(block, slot)`), block i on slot i; a single block runs inline on this thread.
   * Resolves with the results in block order; the first failure rejects after every task has settled.
   */
  each<R>(blocks: ReadonlyArray<[number, number]>, make: (block: [number, number], slot: number) => Task, what: string): Promise<R[]>;
  /** Stop the workers (idempotent). */
  close(): Promise<void>;
}

/** Validate a `--threads` value. */
export function checkThreads(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new UsageError(`--threads ${n}: expected an integer in [1, 256]`);
  return n;
}

/** Bytes of f32_gemm_nt packing scratch for any shape (the kernel blocks N by 1024 and K by 256). */
export function maxPackBytes(wasm: Wasm): number {
  return Math.max(wasm.exports.f32_gemm_nt_scratch(4, 1 << 20, 1 << 20), wasm.exports.f32_gemm_strided_scratch());
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

/** Run `task` with its handler on this thread; a throw becomes a WorkerError naming `what`. */
export async function runInline<R>(wasm: Wasm, handlers: Handlers, task: Task, what: string): Promise<R> {
  const h = handlers[task.op];
  if (!h) throw new WorkerError(`${what}: no handler for task "${task.op}"`);
  return (await (h as (w: Wasm, t: Task, hs: Handlers) => unknown)(wasm, task, handlers)) as R;
}

/** Settle every job; throw the first failure (so no task still writes into buffers the caller frees). */
export async function allSettled<R>(jobs: Promise<R>[]): Promise<R[]> {
  const settled = await Promise.allSettled(jobs);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<R>).value);
}

/** The one-slot executor: every task runs inline on this thread, through the same handlers the workers run. */
export function localExecutor(wasm: Wasm, handlers: Handlers): Executor {
  const packs = [wasm.arena.allocBytes(maxPackBytes(wasm))];
  return {
    wasm,
    slots: 1,
    packs,
    split: (n) => (n > 0 ? [[0, n]] : []),
    run: (task, what) => runInline(wasm, handlers, task, what),
    async each<R>(blocks: ReadonlyArray<[number, number]>, make: (b: [number, number], slot: number) => Task, what: string) {
      const out: R[] = [];
      // one slot: blocks run one after another (callers of a local executor get one block from `split`)
      for (const b of blocks) out.push(await runInline<R>(wasm, handlers, make(b, 0), what));
      return out;
    },
    async close() {},
  };
}

/**
 * The executor of a pool of `threads` worker threads (Node: piscina, ./pool.ts; a browser: Web Workers,
 * src/web/pool.ts): `submit` runs one task on a free worker of the pool (its errors already name `what`),
 * `destroy` stops the workers. Each slot's packing scratch is taken from the arena now.
 */
export function poolExecutor(
  wasm: Wasm,
  threads: number,
  handlers: Handlers,
  submit: <R>(task: Task, what: string) => Promise<R>,
  destroy: () => Promise<void>,
): Executor {
  const bytes = maxPackBytes(wasm);
  const packs = Array.from({ length: threads }, () => wasm.arena.allocBytes(bytes));
  let closed = false;
  const onWorker = async <R>(task: Task, what: string): Promise<R> => {
    if (closed) throw new WorkerError(`${what}: the worker pool is already closed`);
    return submit<R>(task, what);
  };
  return {
    wasm,
    slots: threads,
    packs,
    split: (n, work, align = 4, weight) => (work < MIN_TASK_WORK ? (n > 0 ? [[0, n]] : []) : shards(n, threads, align, weight)),
    run: (task, what) => onWorker(task, what),
    each<R>(blocks: ReadonlyArray<[number, number]>, make: (b: [number, number], slot: number) => Task, what: string) {
      if (blocks.length > threads) throw new WorkerError(`${what}: ${blocks.length} blocks for ${threads} slots`);
      if (blocks.length === 1) return runInline<R>(wasm, handlers, make(blocks[0]!, 0), what).then((r) => [r]);
      return allSettled(blocks.map((b, s) => onWorker<R>(make(b, s), what)));
    },
    async close() {
      if (closed) return;
      closed = true;
      await destroy();
    },
  };
}
