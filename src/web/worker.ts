/**
 * @file A Web Worker of the browser pool (./pool.ts): the kernels instantiated once on the page's shared memory
 * (module and memory posted once, at start), then every task run by its handler (./handlers.ts), answered by id.
 */
import { attachWasmTo, type KernelBuild, type Wasm } from "../wasm/memory.js";
import { runInline, type Task } from "../exec/executor.js";
import { WEB_HANDLERS } from "./handlers.js";

/** What the pool posts: the start (module + memory), then tasks. */
export type ToWorker = { init: { module: WebAssembly.Module; build: KernelBuild; memory: WebAssembly.Memory } } | { id: number; task: Task };
/** What a worker answers: ready, then per task its result or error. */
export type FromWorker = { ready: true } | { id: number; result: unknown } | { id: number; error: string };

const scope = self as unknown as { onmessage: ((e: MessageEvent<ToWorker>) => void) | null; postMessage(m: FromWorker): void };
let wasm: Wasm | undefined;

scope.onmessage = async (e) => {
  const m = e.data;
  if ("init" in m) {
    wasm = attachWasmTo(m.init.module, m.init.memory, m.init.build);
    scope.postMessage({ ready: true });
    return;
  }
  try {
    if (!wasm) throw new Error("worker started without the kernels");
    scope.postMessage({ id: m.id, result: await runInline(wasm, WEB_HANDLERS, m.task, m.task.op) });
  } catch (err) {
    scope.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) });
  }
};
