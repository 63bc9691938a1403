/**
 * @file The WebGPU thread of a page's engine (./gpu.ts): the adapter from navigator.gpu, every offered operator's
 * weight uploaded once, then each posted call run (src/gpu/linear-device.ts) while the engine blocks on the
 * futex. Calls come through a shared call block, not messages: a message posted by the engine right before it
 * blocks was not delivered here while it waited (Chromium), so this thread waits on the block (Atomics.waitAsync).
 * An error's text is written into a shared buffer first, since the blocked engine cannot read a message.
 */
/// <reference types="@webgpu/types" />
import { isSoftwareAdapter, openDevice, type GpuDevice } from "../gpu/gpu-device.js";
import { linearCalls, uploadOp, type OffloadCall, type OffloadReady, type Resident } from "../gpu/linear-device.js";

import { CALL, type GpuWorkerInit } from "./gpu.js";

const scope = self as unknown as { onmessage: ((e: MessageEvent<{ init: GpuWorkerInit }>) => void) | null; postMessage(m: OffloadReady): void; close(): void };
let gpu: GpuDevice | undefined;

function writeError(buf: SharedArrayBuffer, message: string): void {
  const bytes = new TextEncoder().encode(message).subarray(0, buf.byteLength - 4);
  new Uint8Array(buf, 4, bytes.length).set(bytes);
  new Int32Array(buf, 0, 1)[0] = bytes.length;
}

async function start(init: GpuWorkerInit): Promise<OffloadReady> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (!nav?.gpu) return { ok: false, reason: "navigator.gpu is not there (WebGPU is off in this browser)" };
  const adapter = await nav.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) return { ok: false, reason: "navigator.gpu gives no adapter" };
  if (isSoftwareAdapter(adapter) && !init.acceptSoftware) {
    const i = adapter.info;
    return { ok: false, reason: `the adapter (${[i.vendor, i.architecture, i.device].filter(Boolean).join(" ") || "unnamed"}) is a software one, slower than the WASM kernels (device=webgpu uses it)` };
  }
  gpu = await openDevice(adapter);
  const resident = new Map<number, Resident>(init.ops.map((op) => [op.id, uploadOp(gpu!, init.memory, op)]));
  await gpu.sync();
  const run = linearCalls(gpu, init.memory, resident, new Int32Array(init.ctl), (m) => writeError(init.error, m));
  void serve(new Int32Array(init.calls), run);
  return { ok: true, device: gpu.name, software: gpu.isSoftware, chosen: init.ops.map((o) => o.id), lines: [] };
}

/** Run each call the engine writes into the call block, until it sets `stop`. */
async function serve(call: Int32Array, run: (...c: OffloadCall) => Promise<void>): Promise<void> {
  let seen = 0;
  for (;;) {
    const w = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string } }).waitAsync(call, CALL.seq, seen);
    if (w.async) await w.value;
    const seq = Atomics.load(call, CALL.seq);
    if (Atomics.load(call, CALL.stop)) break;
    if (seq === seen) continue;
    seen = seq;
    await run(seq, call[CALL.id]!, call[CALL.x]!, call[CALL.y]!, call[CALL.T]!);
  }
  gpu?.destroy();
  scope.close();
}

scope.onmessage = (e) => {
  start(e.data.init).then(scope.postMessage.bind(scope), (err: unknown) => scope.postMessage({ ok: false, reason: err instanceof Error ? err.message : String(err) }));
};
