/**
 * @file WebGPU for a model in a browser: its linear layers on the adapter navigator.gpu gives, in a worker of
 * their own (./gpu-worker.ts), while the forward pass runs on WASM and blocks on a futex for each of them
 * (src/gpu/linear-device.ts, as `--device webgpu` in Node). Needs a cross-origin isolated page and a thread that
 * may block (the page's engine worker); the reason is returned when there is no WebGPU, and the model stays on WASM.
 */
import { deviceOps, futexBackend } from "../gpu/linear-device.js";
import { CTL, type GpuLinears, type OffloadCall, type OffloadOp, type OffloadReady } from "../gpu/linear-types.js";
import type { Model } from "../model/types.js";
import { isolated } from "./pool.js";

/** What the engine gives its WebGPU thread (./gpu-worker.ts). */
export interface GpuWorkerInit {
  memory: WebAssembly.Memory;
  /** the control block (CTL) */
  ctl: SharedArrayBuffer;
  /** [int32 byte length, UTF-8 bytes…] of the last error */
  error: SharedArrayBuffer;
  /** the call block (CALL): seq, then the call's operator id, x, y, T; stop */
  calls: SharedArrayBuffer;
  ops: OffloadOp[];
  /** use a software adapter (SwiftShader) too; else it is declined, by name */
  acceptSoftware: boolean;
}

/** Int32 slots of the call block. */
export const CALL = { seq: 0, id: 1, x: 2, y: 3, T: 4, stop: 5, seen: 6, ints: 8 } as const;

export const GPU_WORKER_URL = new URL("./gpu-worker.js", import.meta.url);

export type WebGpuChoice = { ok: true; linears: GpuLinears; software: boolean } | { ok: false; reason: string };

/**
 * Put `model`'s linear layers on WebGPU (installs `model.backend`), or say why not. A software adapter (a CPU
 * implementation, e.g. SwiftShader: slower than the WASM kernels) is declined unless `acceptSoftware`.
 */
export async function attachWebGpu(model: Model, opts: { acceptSoftware?: boolean; workerUrl?: URL | string } = {}): Promise<WebGpuChoice> {
  const workerUrl = opts.workerUrl ?? GPU_WORKER_URL;
  if (!isolated()) return { ok: false, reason: "the page is not cross-origin isolated (the device thread needs the shared memory)" };
  if (typeof document !== "undefined") return { ok: false, reason: "WebGPU linear layers need a worker (the forward pass blocks on each)" };
  const nav = (globalThis as { navigator?: { gpu?: unknown } }).navigator;
  if (!nav?.gpu) return { ok: false, reason: "navigator.gpu is not there (WebGPU is off in this browser)" };
  const { ops, tensors } = deviceOps(model);
  const ctlSab = new SharedArrayBuffer(CTL.ints * 4);
  const errSab = new SharedArrayBuffer(4096);
  const call = new Int32Array(new SharedArrayBuffer(CALL.ints * 4));
  const worker = new Worker(workerUrl, { type: "module" });
  const ready = await new Promise<OffloadReady>((resolve) => {
    worker.onmessage = (e: MessageEvent<OffloadReady>) => resolve(e.data);
    worker.onerror = (e) => resolve({ ok: false, reason: `the WebGPU worker failed${e.message ? `: ${e.message}` : ""}` });
    worker.postMessage({ init: { memory: model.wasm.memory, ctl: ctlSab, error: errSab, calls: call.buffer as SharedArrayBuffer, ops, acceptSoftware: opts.acceptSoftware ?? false } satisfies GpuWorkerInit });
  });
  if (!ready.ok) {
    worker.terminate();
    return ready;
  }
  const readError = (): string | undefined => {
    const n = new Int32Array(errSab, 0, 1)[0]!;
    return n > 0 ? new TextDecoder().decode(new Uint8Array(errSab, 4, n).slice()) : undefined;
  };
  const stop = async () => {
    Atomics.store(call, CALL.stop, 1);
    Atomics.add(call, CALL.seq, 1);
    Atomics.notify(call, CALL.seq);
  };
  const post = ([seq, id, x, y, T]: OffloadCall) => {
    call[CALL.id] = id;
    call[CALL.x] = x;
    call[CALL.y] = y;
    call[CALL.T] = T;
    Atomics.store(call, CALL.seq, seq);
    Atomics.notify(call, CALL.seq);
  };
  const linears = futexBackend(model, ready, ops, tensors, new Int32Array(ctlSab), post, readError, stop);
  return { ok: true, linears, software: ready.software };
}
