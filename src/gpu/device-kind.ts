/** @file `--device auto|wasm|webgpu` (what ./device.ts opens): the kinds, without WebGPU's types. */
import { GpuError } from "../errors.js";

export const DEVICE_KINDS = Object.freeze(["auto", "wasm", "webgpu"] as const);
export type DeviceKind = (typeof DEVICE_KINDS)[number];

/** Parse `--device`. */
export function parseDeviceKind(v: string): DeviceKind {
  if ((DEVICE_KINDS as readonly string[]).includes(v)) return v as DeviceKind;
  throw new GpuError(`--device must be one of ${DEVICE_KINDS.join(", ")}, got "${v}"`);
}
