/**
 * @file The worker thread of a pool executor (src/exec/pool.ts): the kernels (the main thread's build) instantiated
 * once on the main thread's shared memory (posted once, as piscina workerData), then every task run by its handler
 * (./handlers.ts). Typed-array results that own their buffer are transferred back (piscina `move`).
 */
import { Piscina } from "piscina";
import { attachWasm, type KernelBuild, type Wasm } from "../wasm/runtime.js";
import { WasmError } from "../errors.js";
import { runInline, type Task } from "../exec/executor.js";
import { HANDLERS } from "./handlers.js";

let wasm: Wasm | undefined;

/** This thread's instance on the shared memory (instantiated on first use). */
function threadWasm(): Wasm {
  if (!wasm) {
    const data = Piscina.workerData as { memory?: WebAssembly.Memory; build?: KernelBuild } | undefined;
    if (!(data?.memory instanceof WebAssembly.Memory) || !data.build) throw new WasmError("worker thread started without the shared WebAssembly.Memory and its kernel build");
    wasm = attachWasm(data.memory, data.build); // the main thread's build: every thread computes the same sums
  }
  return wasm;
}

export default async function run(task: Task): Promise<unknown> {
  // test hook: a worker given a task of op WASPRUNE_TEST_WORKER_EXIT exits on the spot, as a crashing worker would
  if (process.env.WASPRUNE_TEST_WORKER_EXIT === task.op) process.exit(70);
  const r = await runInline(threadWasm(), HANDLERS, task, task.op);
  return ArrayBuffer.isView(r) && !(r.buffer instanceof SharedArrayBuffer) ? Piscina.move(r as Float64Array) : r;
}
