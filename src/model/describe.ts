/**
 * @file Models and layers cross threads as *descriptions*: tensors without their `data` views (pointers and
 * shapes only, structured-clone friendly, no weight copies), revived on the receiving thread's memory.
 */
import type { Wasm } from "../wasm/runtime.js";
import type { Tensor } from "./types.js";

/** A structure of tensors with their data views removed. */
export type Described<T> = T extends Tensor ? Omit<Tensor, "data"> : T extends object ? { [K in keyof T]: Described<T[K]> } : T;

function isTensor(v: unknown): v is Tensor {
  return !!v && typeof v === "object" && "ptr" in v && "shape" in v && "data" in v;
}

/** Strip the `data` views of every tensor in `v` (arrays and plain objects are walked). */
export function describe<T>(v: T): Described<T> {
  if (isTensor(v)) {
    const { data: _data, ...rest } = v;
    return rest as Described<T>;
  }
  if (Array.isArray(v)) return v.map(describe) as Described<T>;
  if (v && typeof v === "object" && !ArrayBuffer.isView(v)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, describe(x)])) as Described<T>;
  }
  return v as Described<T>;
}

/** Give every described tensor in `v` its data view on `wasm`'s memory again. */
export function revive<T>(wasm: Wasm, v: Described<T>): T {
  const d = v as unknown;
  if (d && typeof d === "object" && "ptr" in d && "shape" in d && Array.isArray((d as Tensor).shape)) {
    const t = d as Omit<Tensor, "data">;
    return { ...t, data: wasm.arena.f32(t.ptr, t.shape.reduce((a, b) => a * b, 1)) } as T;
  }
  if (Array.isArray(d)) return d.map((x) => revive(wasm, x)) as T;
  if (d && typeof d === "object" && !ArrayBuffer.isView(d)) {
    return Object.fromEntries(Object.entries(d).map(([k, x]) => [k, revive(wasm, x as Described<unknown>)])) as T;
  }
  return d as T;
}
