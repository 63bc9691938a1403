/**
 * @file The executor in a browser (src/exec/executor.ts): Web Workers (./worker.ts, located beside this module)
 * on the shared WebAssembly.Memory of one instance, each with the kernels instantiated once on it. Only a
 * cross-origin isolated page may hand a shared memory to workers: elsewhere (and for one thread) the executor
 * is the local one, every task inline on this thread. Which one a caller got is `slots`.
 */
import { WorkerError } from "../errors.js";
import { checkThreads, localExecutor, poolExecutor, type Executor, type Handlers, type Task } from "../exec/executor.js";
import type { Wasm } from "../wasm/memory.js";
import type { FromWorker, ToWorker } from "./worker.js";

/** The worker script beside this module (the bundle's folder holds worker.js too). */
export const WORKER_URL = new URL("./worker.js", import.meta.url);

/** True when this page (or worker) may share memory with workers. */
export function isolated(): boolean {
  return (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
}

/** `threads` Web Workers on `wasm`'s memory when the page is cross-origin isolated and threads > 1, else inline. */
export async function webExecutor(wasm: Wasm, threads: number, handlers: Handlers, workerUrl: URL | string = WORKER_URL): Promise<Executor> {
  checkThreads(threads);
  if (threads === 1 || !isolated()) return localExecutor(wasm, handlers);
  if (!wasm.module) throw new WorkerError("this instance has no compiled module to give the workers");
  const workers: Worker[] = [];
  const idle: Worker[] = [];
  const queue: Array<() => void> = [];
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; what: string }>();
  let next = 0;
  const failAll = (msg: string) => {
    for (const [id, p] of pending) p.reject(new WorkerError(`${p.what}: worker failed: ${msg}`)), pending.delete(id);
  };
  try {
    await Promise.all(Array.from({ length: threads }, () => new Promise<void>((resolve, reject) => {
      const w = new Worker(workerUrl, { type: "module" });
      workers.push(w);
      w.onerror = (e) => {
        const msg = e.message || `could not start ${String(workerUrl)}`;
        reject(new WorkerError(`worker thread: ${msg}`));
        failAll(msg);
      };
      w.onmessage = (e: MessageEvent<FromWorker>) => {
        const m = e.data;
        if ("ready" in m) {
          idle.push(w);
          resolve();
          return;
        }
        const p = pending.get(m.id);
        pending.delete(m.id);
        idle.push(w);
        queue.shift()?.();
        if (!p) return;
        if ("error" in m) p.reject(new WorkerError(`${p.what}: worker thread failed: ${m.error}`));
        else p.resolve(m.result);
      };
      w.postMessage({ init: { module: wasm.module!, build: wasm.build, memory: wasm.memory } } satisfies ToWorker);
    })));
  } catch (e) {
    for (const w of workers) w.terminate();
    throw e;
  }
  const submit = <R>(task: Task, what: string): Promise<R> =>
    new Promise<R>((resolve, reject) => {
      const go = () => {
        const w = idle.pop()!;
        const id = next++;
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject, what });
        w.postMessage({ id, task } satisfies ToWorker);
      };
      if (idle.length) go();
      else queue.push(go);
    });
  return poolExecutor(wasm, threads, handlers, submit, async () => {
    failAll("the pool was closed");
    for (const w of workers) w.terminate();
  });
}
