/**
 * @file `--device` for eval and generate: whether the dense GEMM of the model's linear layers pays on the
 * WebGPU device, decided by measuring it against the WASM kernel at the model's largest linear shape and the
 * command's batch (eval: a paragraph, up to --ctx tokens at once; generate: one token). A GPU dispatch costs
 * a submit and, for the forward pass, a read-back of its output before the next (non-linear) step runs on the
 * host, so small layers stay on WASM.
 *
 * Status: the measurement and the decision are here; the forward pass (src/model/forward.ts) has no hook to
 * run a linear layer on the device yet, so linear layers run on WASM whatever the decision (said in the line).
 */
import { createWasm } from "../wasm/runtime.js";
import { gemmNT } from "../kernels/index.js";
import type { Model } from "../model/types.js";
import { LINEAR_OPS } from "../model/types.js";
import { selectDevice, type DeviceKind } from "./device.js";
import { GEMM_NT } from "./kernels.js";

export interface OffloadDecision {
  device: string;
  shape: { M: number; N: number; K: number };
  /** ms per linear call, output read back included for WebGPU */
  wasmMs: number;
  webgpuMs: number;
  pays: boolean;
}

/** Select the device for `kind`; with one, measure and print one line on stderr. Destroys the device. */
export async function linearOffload(kind: DeviceKind, model: Model, batch: number): Promise<OffloadDecision | undefined> {
  const gpu = await selectDevice(kind);
  if (!gpu) return undefined;
  try {
    let N = 0, K = 0;
    for (const op of LINEAR_OPS) {
      const [n, k] = model.weights.layers[0][op].shape;
      if (n * k > N * K) [N, K] = [n, k];
    }
    const M = Math.max(1, batch);
    const wasm = createWasm();
    const a = wasm.arena;
    const x = a.alloc(M * K), w = a.alloc(N * K), y = a.alloc(M * N);
    gemmNT(wasm, x, w, y, M, N, K);
    const reps = 20;
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
    const d: OffloadDecision = { device: gpu.name, shape: { M, N, K }, wasmMs, webgpuMs, pays: webgpuMs < wasmMs };
    console.error(
      `device: ${gpu.name}: linear ${M}x${N}x${K} takes ${webgpuMs.toFixed(3)} ms on WebGPU (with read-back) vs ` +
        `${wasmMs.toFixed(3)} ms on WASM — ${d.pays ? "WebGPU would pay, but the forward pass has no device hook yet" : "it does not pay"}; linear layers run on WASM`,
    );
    return d;
  } finally {
    gpu.destroy();
  }
}
