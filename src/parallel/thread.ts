/**
 * @file The state of one worker thread: the kernels instantiated once on the main thread's shared memory
 * (posted once, as piscina workerData), kept for the life of the thread and shared by every worker file.
 */
import { Piscina } from "piscina";
import { attachWasm, type Wasm } from "../wasm/runtime.js";
import { WasmError } from "../errors.js";

let wasm: Wasm | undefined;

/** This thread's instance on the shared memory (instantiated on first use). */
export function threadWasm(): Wasm {
  if (!wasm) {
    const memory = (Piscina.workerData as { memory?: WebAssembly.Memory } | undefined)?.memory;
    if (!(memory instanceof WebAssembly.Memory)) throw new WasmError("worker thread started without the shared WebAssembly.Memory");
    wasm = attachWasm(memory);
  }
  return wasm;
}

/**
 * Test hook: a worker thread given a task of op `WASPRUNE_TEST_WORKER_EXIT` (e.g. "obs", "layer", "nll")
 * exits on the spot (process.exit(70) ends the thread), as a crashing worker would.
 */
export function crashHook(op: string): void {
  if (process.env.WASPRUNE_TEST_WORKER_EXIT === op) process.exit(70);
}
