/**
 * @file `--device` for eval and generate: the model's linear operators on the WebGPU device.
 *
 * `attachGpuLinears` starts src/gpu/linear.worker.ts (the device lives in that thread: the forward pass is
 * synchronous and a read-back is not, so `linear()` posts a call in a shared control block and blocks on a
 * futex while the worker's event loop dispatches and reads back; see the worker's header). Every operator the
 * kernels support gets its weight uploaded once and kept on the device: dense weights run the WGSL GEMM
 * Y = X·Wᵀ, 2:4 compressed ones the 2:4 SpMM on the kernel layout as it is in the arena; panel-CSR ones
 * stay on WASM. Which operators go to the device is decided once, at attach:
 *  - `webgpu`: every supported operator (the user asked for the device);
 *  - `auto`: only dense operators whose shape the one-time measurement `measureLinear` (GEMM at the command's
 *    batch, read-back included, against the WASM kernel) says is faster on WebGPU; 2:4 operators are not
 *    measured and stay on WASM. One line says what was decided.
 * The result is installed as `model.backend` (RunState.backend, read by `linear()`); `close()` stops the
 * worker, which destroys the device, so the process exits. Without a backend the WASM path is untouched.
 */
/// <reference types="@webgpu/types" />
import { MessageChannel, Worker, receiveMessageOnPort } from "node:worker_threads";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { createWasm } from "../wasm/runtime.js";
import { gemmNT } from "../kernels/index.js";
import type { Model } from "../model/types.js";
import { LINEAR_OPS } from "../model/types.js";
import { GpuError, exposeLavapipe, type DeviceKind, type GpuDevice } from "./device.js";
import { GEMM_NT } from "./kernels.js";
import { CTL, deviceOps, futexBackend, type GpuLinears, type OffloadReady } from "./linear-device.js";

export { CTL, type GpuLinears, type OffloadCall, type OffloadOp, type OffloadReady } from "./linear-device.js";
import { workerScript } from "../exec/worker-script.js";

/** ms per linear call of shape M×N×K: WASM GEMM, and WebGPU GEMM with the read-back the forward pass needs. */
export async function measureLinear(gpu: GpuDevice, M: number, N: number, K: number, reps = 20): Promise<{ wasmMs: number; webgpuMs: number }> {
  const wasm = createWasm();
  const a = wasm.arena;
  const x = a.alloc(M * K), w = a.alloc(N * K), y = a.alloc(M * N);
  gemmNT(wasm, x, w, y, M, N, K);
  let t0 = performance.now();
  for (let i = 0; i < reps; i++) gemmNT(wasm, x, w, y, M, N, K);
  const wasmMs = (performance.now() - t0) / reps;
  const bx = gpu.buffer(M * K * 4), bw = gpu.buffer(N * K * 4), by = gpu.buffer(M * N * 4);
  const bind = gpu.bind(GEMM_NT, [gpu.uniforms([M, N, K, 0, 1], new Set([4])), bx, bw, by]);
  const once = async () => {
    const enc = gpu.device.createCommandEncoder();
    gpu.pass(enc, GEMM_NT, bind, [Math.ceil(N / 64), Math.ceil(M / 64)]);
    gpu.device.queue.submit([enc.finish()]);
    await gpu.read(by, M * N * 4);
  };
  await once();
  t0 = performance.now();
  for (let i = 0; i < reps; i++) await once();
  const webgpuMs = (performance.now() - t0) / reps;
  for (const b of [bx, bw, by]) b.destroy();
  return { wasmMs, webgpuMs };
}

/**
 * Put `model`'s linear operators on the WebGPU device for `kind` (see the file header) and install the backend
 * as `model.backend`. Undefined for `wasm`, for `auto` without an adapter (one line on `log`) or when `auto`
 * offloads nothing; a GpuError for `webgpu` without an adapter. `batch`: positions per call the command runs
 * (eval: up to --ctx; generate: 1), the shape `auto` measures.
 */
export async function attachGpuLinears(kind: DeviceKind, model: Model, batch: number, log: (line: string) => void = (l) => console.error(l)): Promise<GpuLinears | undefined> {
  if (kind === "wasm") return undefined;
  const { ops, tensors, onWasm } = deviceOps(model);
  if (process.platform === "linux") exposeLavapipe();
  const ctlSab = new SharedArrayBuffer(CTL.ints * 4);
  const ctl = new Int32Array(ctlSab);
  const { port1: errors, port2 } = new MessageChannel();
  const { port1: calls, port2: callsW } = new MessageChannel();
  // the worker follows this module (src/exec/worker-script.ts). From the sources: in a worker thread tsx
  // (--import) transpiles require() of .ts, not a .ts entry point nor import(), so ts-worker.cjs requires
  // `entry`; compiled, linear.worker.js is the entry itself.
  const script = workerScript(import.meta.url, "./linear.worker");
  const entry = script.filename;
  const worker = new Worker(script.typescript ? fileURLToPath(new URL("./ts-worker.cjs", import.meta.url)) : entry, {
    workerData: { entry, memory: model.wasm.memory, ctl: ctlSab, ops, mode: kind, batch, errors: port2, calls: callsW },
    transferList: [port2, callsW],
    execArgv: script.execArgv,
  });
  const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  const stop = async () => {
    calls.postMessage("stop");
    await exited;
    calls.close();
    errors.close();
  };
  const [ready] = (await Promise.race([once(worker, "message"), once(worker, "error").then(([e]) => { throw e; })])) as [OffloadReady];
  if (!ready.ok) {
    await stop();
    if (kind === "webgpu") throw new GpuError(`--device webgpu: ${ready.reason}`);
    log(`device: ${ready.reason}; using WASM`);
    return undefined;
  }
  const kept = Object.entries(onWasm).map(([l, n]) => `${n} ${l}`).join(", ");
  const summary = (ready.lines.length ? ` (${ready.lines.join("; ")})` : "") + (kept ? `; no device kernel, on WASM: ${kept}` : "");
  if (ready.chosen.length === 0) {
    await stop();
    log(`device: ${ready.device}: WebGPU does not pay for this model's linear layers${summary}; they stay on WASM`);
    return undefined;
  }
  const all = model.weights.layers.length * LINEAR_OPS.length + 1;
  const rest = ready.chosen.length < all ? ", the rest on WASM" : "";
  log(`device: ${ready.device}: ${ready.chosen.length} of ${all} linear layers on WebGPU${rest}${summary}`);
  return futexBackend(model, ready, ops, tensors, ctl, (c) => calls.postMessage(c), () => receiveMessageOnPort(errors)?.message as string | undefined, stop);
}
