/**
 * @file The shapes shared by the forward pass and the WebGPU device thread (./linear-device.ts): the control
 * block, a call, an operator as the device thread sees it, its answer, the backend. No WebGPU types, so the
 * library's declarations that name them need no WebGPU typings.
 */
import type { LinearBackend } from "../model/types.js";

/** A linear call the device thread has not answered in this long is an error rather than a hang. */
export const CALL_TIMEOUT_MS = 60_000;

/** control block (Int32 slots of a SharedArrayBuffer): `done` = the seq of the last finished call, −1 failed */
export const CTL = { done: 0, ints: 4 } as const;
/** one call: [seq, operator id, x, y, T] (x, y byte offsets in the WASM memory) */
export type OffloadCall = [number, number, number, number, number];

/** An operator as the worker sees it (byte offsets into the WASM memory). */
export type OffloadOp = { id: number; name: string; N: number; K: number } & (
  | { format: "dense"; ptr: number }
  | { format: "2:4"; vals: number; idx: number }
);

/** The worker's answer once the weights are on the device (or why there is no device). */
export type OffloadReady =
  | { ok: true; device: string; software: boolean; chosen: number[]; lines: string[] }
  | { ok: false; reason: string };

export interface GpuLinears extends LinearBackend {
  device: string;
  /** names of the operators on the device, e.g. "layers.0.wq", "lmHead" */
  offloaded: string[];
  /** stop the worker and destroy the device (idempotent); removes `model.backend` */
  close(): Promise<void>;
}

