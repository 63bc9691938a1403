/**
 * @file The pool executor (see ./executor.ts): piscina workers on the shared WebAssembly.Memory of one instance.
 * Every worker thread instantiates the kernels ONCE on that memory (posted once, in workerData) and runs the
 * handler table of src/workers/handlers.ts on its tasks, so a task carries only pointers and sizes.
 *
 * The worker file follows this module (./worker-script.ts): src/workers/worker.ts through tsx when running from
 * the sources, the compiled worker.js beside the compiled pool in the package.
 */
import { Piscina } from "piscina";
import type { Wasm } from "../wasm/runtime.js";
import { WorkerError } from "../errors.js";
import { checkThreads, localExecutor, poolExecutor, type Executor, type Handlers, type Task } from "./executor.js";
import { workerScript } from "./worker-script.js";

/** The worker entry point (thin: it runs the handler table on the thread's instance). */
const WORKER = workerScript(import.meta.url, "../workers/worker");

/**
 * The executor of `threads` slots on `wasm`: inline for 1, a piscina pool of `threads` workers otherwise.
 * Call this while the arena has no scoped blocks open (the slots' scratch is long-lived), e.g. right after
 * loading the model; `close()` stops the workers.
 */
export function createExecutor(wasm: Wasm, threads: number, handlers: Handlers): Executor {
  checkThreads(threads);
  if (threads === 1) return localExecutor(wasm, handlers);
  const pool = new Piscina({
    filename: WORKER.filename,
    minThreads: threads,
    maxThreads: threads,
    concurrentTasksPerWorker: 1,
    execArgv: WORKER.execArgv,
    workerData: { memory: wasm.memory, build: wasm.build },
  });
  /**
   * A throw or a dead worker (exit, crash) becomes a WorkerError naming `what`. piscina replaces a dead thread
   * (it instantiates the module again on the same memory), so the pool stays usable; the command fails anyway,
   * since the task's outputs are incomplete.
   */
  const submit = async <R>(task: Task, what: string): Promise<R> => {
    try {
      return (await pool.run(task)) as R;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      // piscina: "worker exited with code: N" when the thread died (process.exit, a fatal error)
      const exited = /worker exited with code:?\s*(-?\d+)/i.exec(msg);
      if (exited) throw new WorkerError(`${what}: worker thread exited (code ${exited[1]}) before finishing its task`);
      throw new WorkerError(`${what}: worker thread failed: ${msg}`);
    }
  };
  return poolExecutor(wasm, threads, handlers, submit, () => pool.destroy());
}
