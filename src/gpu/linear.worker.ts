/**
 * @file The WebGPU side of the forward pass's linear operators (src/gpu/offload.ts), in a worker thread of
 * its own. The forward pass is synchronous and a WebGPU read-back is not (mapAsync resolves on an event loop),
 * so the device lives here: the main thread posts a call and blocks on a futex in a shared control block
 * (Atomics.wait) while this thread's event loop runs the dispatch and the read-back.
 *
 * Start-up: open the device (the same probe as everywhere, lavapipe preload included), upload the weight of
 * every operator the kernels support — once; they stay resident —, and for `auto` time each distinct shape
 * once with the measurement of offload.ts; answer "ready" with the operators chosen. Per call: copy X (T×K)
 * from the WASM memory into a device buffer, one dispatch (GEMM_NT, or SPMM_24 for a 2:4 operator), read Y
 * back into the WASM memory at `y`. On stop: destroy the device (Dawn keeps a thread alive otherwise).
 */
/// <reference types="@webgpu/types" />
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import { probeGpu, type GpuDevice } from "./device.js";
import { measureLinear } from "./offload.js";
import { CTL, linearCalls, uploadOp, type OffloadCall, type OffloadOp, type OffloadReady, type Resident } from "./linear-device.js";

const { memory, ctl: ctlSab, ops, mode, batch, errors, calls } = workerData as {
  memory: WebAssembly.Memory; ctl: SharedArrayBuffer; ops: OffloadOp[]; mode: "webgpu" | "auto"; batch: number;
  /** error messages to the main thread (read there synchronously) */ errors: MessagePort;
  /** the calls (src/gpu/offload.ts) */ calls: MessagePort;
};
const ctl = new Int32Array(ctlSab);

async function main(): Promise<void> {
  const p = await probeGpu();
  if (!p.ok) {
    parentPort!.postMessage({ ok: false, reason: p.reason } satisfies OffloadReady);
    return;
  }
  const gpu = p.gpu;
  try {
    const resident = new Map<number, Resident>();
    const lines: string[] = [];
    const timed = new Map<string, { wasmMs: number; webgpuMs: number }>();
    for (const op of ops) {
      if (op.format === "2:4" && mode === "auto") continue; // not measured (see offload.ts); stays on WASM
      if (mode === "auto") {
        const key = `${op.N}x${op.K}`;
        let m = timed.get(key);
        if (!m) timed.set(key, (m = await measureLinear(gpu, Math.max(1, batch), op.N, op.K)));
        if (!(m.webgpuMs < m.wasmMs)) continue;
      }
      resident.set(op.id, uploadOp(gpu, memory, op));
    }
    for (const [key, m] of timed) {
      lines.push(`linear ${Math.max(1, batch)}x${key}: ${m.webgpuMs.toFixed(3)} ms on WebGPU (with read-back) vs ${m.wasmMs.toFixed(3)} ms on WASM`);
    }
    await gpu.sync();
    parentPort!.postMessage({ ok: true, device: gpu.name, software: gpu.isSoftware, chosen: [...resident.keys()], lines } satisfies OffloadReady);
    await serve(gpu, resident);
  } finally {
    gpu.destroy();
  }
}

/**
 * Run each call posted on `calls` (main blocks on the futex meanwhile, so one at a time); "stop" ends. Calls
 * are posted messages, not Atomics.waitAsync on the control block: a waitAsync of an idle worker was seen to
 * miss its notify now and then (a hang), a message always wakes the thread's loop.
 */
function serve(gpu: GpuDevice, resident: Map<number, Resident>): Promise<void> {
  const run = linearCalls(gpu, memory, resident, ctl, (m) => errors.postMessage(m));
  return new Promise((resolve) => {
    calls.on("message", (m: OffloadCall | "stop") => {
      if (m === "stop") {
        calls.close();
        resolve();
      } else void run(...m);
    });
  });
}

main().catch((e: unknown) => {
  // before "ready": the main thread awaits this message; after: a call may be blocked on the futex
  const reason = e instanceof Error ? e.message : String(e);
  parentPort!.postMessage({ ok: false, reason } satisfies OffloadReady);
  errors.postMessage(reason);
  Atomics.store(ctl, CTL.done, -1);
  Atomics.notify(ctl, CTL.done);
});
