/**
 * @file The linear operators of a model on a WebGPU device while the forward pass runs on WASM, on any platform
 * (Node: src/gpu/offload.ts + linear.worker.ts; a browser: src/web/gpu.ts + gpu-worker.ts). The forward pass is
 * synchronous and a read-back is not, so the device lives in a thread of its own: the forward pass's `linear()`
 * posts a call and blocks on a futex in a shared control block (Atomics.wait) while the device thread's event
 * loop runs the dispatch and the read-back and writes Y into the WASM memory.
 *
 * Here: the operators a model offers (`deviceOps`; panel-CSR ones stay on WASM), the device thread's side
 * (`uploadOp`: a weight uploaded once, resident; `linearCalls`: one call = copy X in, one dispatch of GEMM_NT or
 * SPMM_24, read Y back), and the forward pass's side (`futexBackend`: the LinearBackend that posts and waits).
 */
/// <reference types="@webgpu/types" />
import type { LinearWeight, Model } from "../model/types.js";
import { CALL_TIMEOUT_MS, CTL, type GpuLinears, type OffloadCall, type OffloadOp, type OffloadReady } from "./linear-types.js";
import { LINEAR_OPS } from "../model/types.js";
import { linearLayout } from "../model/linear.js";
import { GpuError, type GpuDevice } from "./gpu-device.js";
import { GEMM_NT, SPMM_24 } from "./kernels.js";

export { CALL_TIMEOUT_MS, CTL, type GpuLinears, type OffloadCall, type OffloadOp, type OffloadReady } from "./linear-types.js";

/**
 * The linear operators of `model` with the kernel each would run on the device, and the layouts of those it has
 * no kernel for (panel-CSR, p8 panels, half-precision 2:4, int8 / int4), counted: they stay on WASM.
 */
export function deviceOps(model: Model): { ops: OffloadOp[]; tensors: LinearWeight[]; onWasm: Record<string, number> } {
  const ops: OffloadOp[] = [];
  const tensors: LinearWeight[] = [];
  const onWasm: Record<string, number> = {};
  const add = (name: string, t: LinearWeight) => {
    const [N, K] = t.shape as [number, number];
    if (t.format === "csr" || t.format === "p8" || t.format === "int" || (t.format === "2:4" && (K % 4 !== 0 || t.dtype !== "f32"))) {
      const l = linearLayout(t);
      onWasm[l] = (onWasm[l] ?? 0) + 1;
      return;
    }
    const id = ops.length;
    ops.push(t.format === "2:4" ? { id, name, N, K, format: "2:4", vals: t.vals, idx: t.idx } : { id, name, N, K, format: "dense", ptr: t.ptr });
    tensors.push(t);
  };
  model.weights.layers.forEach((lw, l) => LINEAR_OPS.forEach((op) => add(`layers.${l}.${op}`, lw[op])));
  add("lmHead", model.weights.lmHead);
  return { ops, tensors, onWasm };
}

export interface Resident {
  op: OffloadOp;
  code: string;
  uniform: GPUBuffer;
  /** [weight] dense, [vals, idx] 2:4 */
  weights: GPUBuffer[];
  bind?: GPUBindGroup;
  /** the x/y generation `bind` was made for */
  gen: number;
}

/** Upload `op`'s weight (from the WASM memory) to the device, once: it stays resident. */
export function uploadOp(gpu: GpuDevice, memory: WebAssembly.Memory, op: OffloadOp): Resident {
  const mem = memory.buffer;
  const uniform = gpu.buffer(32, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  if (op.format === "dense") {
    return { op, code: GEMM_NT, uniform, weights: [gpu.upload(new Float32Array(mem, op.ptr, op.N * op.K))], gen: -1 };
  }
  const NB = Math.ceil(op.N / 4), G = op.K / 4;
  const vals = gpu.upload(new Float32Array(mem, op.vals, NB * G * 8));
  const idx = gpu.upload(new Uint8Array(mem, op.idx, NB * G * 2));
  return { op, code: SPMM_24, uniform, weights: [vals, idx], gen: -1 };
}

/**
 * The device thread's call handler: `run(seq, id, x, y, T)` computes Y for operator `id`, then stores `seq` (or −1
 * after `onError(message)`) in the control block and wakes the forward pass. One call at a time (the caller blocks).
 */
export function linearCalls(gpu: GpuDevice, memory: WebAssembly.Memory, resident: Map<number, Resident>, ctl: Int32Array, onError: (message: string) => void) {
  let bx: GPUBuffer | undefined, by: GPUBuffer | undefined;
  let xCap = 0, yCap = 0, gen = 0;
  const words = new ArrayBuffer(32);
  const u32 = new Uint32Array(words), f32 = new Float32Array(words);
  const run = async (seq: number, id: number, x: number, y: number, T: number) => {
    try {
      const r = resident.get(id);
      if (!r) throw new Error(`operator ${id} is not on the device`);
      const { N, K } = r.op;
      if (T * K > xCap || T * N > yCap) {
        xCap = Math.max(xCap, T * K);
        yCap = Math.max(yCap, T * N);
        bx?.destroy();
        by?.destroy();
        bx = gpu.buffer(xCap * 4);
        by = gpu.buffer(yCap * 4);
        gen++;
      }
      if (r.gen !== gen) {
        r.bind = gpu.bind(r.code, [r.uniform, bx!, ...r.weights, by!]);
        r.gen = gen;
      }
      gpu.write(bx!, new Float32Array(memory.buffer, x, T * K));
      u32.set([T, N, K, 0]);
      f32[4] = 1; // GEMM_NT: alpha (SPMM_24 reads M, N, K only)
      gpu.device.queue.writeBuffer(r.uniform, 0, words);
      const enc = gpu.device.createCommandEncoder();
      gpu.pass(enc, r.code, r.bind!, r.code === GEMM_NT ? [Math.ceil(N / 64), Math.ceil(T / 64)] : [Math.ceil(N / 64), T]);
      gpu.device.queue.submit([enc.finish()]);
      const out = await gpu.read(by!, T * N * 4);
      new Float32Array(memory.buffer, y, T * N).set(new Float32Array(out));
      Atomics.store(ctl, CTL.done, seq);
    } catch (e) {
      onError(e instanceof Error ? e.message : String(e));
      Atomics.store(ctl, CTL.done, -1);
    }
    Atomics.notify(ctl, CTL.done);
  };
  return run;
}

/**
 * The forward pass's side: a LinearBackend for the operators the device thread took (`chosen` ids of `ops`, for
 * `tensors`), installed as `model.backend`. `post` sends a call to the device thread, `readError` gets its last
 * error message synchronously (the forward pass cannot wait for a message), `stop` ends the thread.
 */
export function futexBackend(
  model: Model,
  ready: Extract<OffloadReady, { ok: true }>,
  ops: OffloadOp[],
  tensors: LinearWeight[],
  ctl: Int32Array,
  post: (call: OffloadCall) => void,
  readError: () => string | undefined,
  stop: () => Promise<void>,
): GpuLinears {
  let seq = 0;
  let closed = false;
  const idOf = new Map(ready.chosen.map((i) => [tensors[i]!, i]));
  const backend: GpuLinears = {
    device: ready.device,
    offloaded: ready.chosen.map((i) => ops[i]!.name),
    supportsOp: (w) => idOf.has(w),
    linear(w, x, y, T) {
      if (closed) throw new GpuError("WebGPU linear layers used after close()");
      post([++seq, idOf.get(w)!, x, y, T]);
      const t0 = performance.now();
      for (;;) {
        const d = Atomics.load(ctl, CTL.done);
        if (d === seq) return;
        if (d === -1) throw new GpuError(`WebGPU linear layer: ${readError() ?? "the device thread failed"}`);
        if (performance.now() - t0 > CALL_TIMEOUT_MS) throw new GpuError(`WebGPU linear layer ${ops[idOf.get(w)!]!.name}: no answer from the device thread in ${CALL_TIMEOUT_MS / 1000} s (call ${seq}, last answered ${d})`);
        Atomics.wait(ctl, CTL.done, d, 1000);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      if (model.backend === backend) model.backend = undefined;
      await stop();
    },
  };
  model.backend = backend;
  return backend;
}
