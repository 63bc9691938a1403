/**
 * @file Weight quantization schemes (`--quantize`, `quantize --scheme`) and the grid each operator gets.
 *  - `w8`: int8, one scale per output channel (compressed-tensors' W8A16 preset: strategy "channel");
 *  - `w4g128`, `w4g64`, `w4g32` (any `w4gN`, `w8gN` with N dividing 128): int4 / int8 in groups of N consecutive
 *    inputs of a row (strategy "group", W4A16's group_size 128 by default).
 * Symmetric by default (signed integers, no zero point, as W4A16 / W8A16); `asymmetric` adds an integer zero
 * point per group (W4A16_ASYM). compressed-tensors refuses a group size that does not divide the input width
 * (lifecycle/forward.py), so such an operator (stories260K's down_proj, 172 inputs) is quantized per channel
 * instead: its own config group, reported.
 */
import { UsageError } from "../errors.js";

export const QUANT_SCHEMES = Object.freeze(["w8", "w4g128", "w4g64", "w4g32"] as const);
export const QUANT_METHODS = Object.freeze(["rtn", "gptq"] as const);
export type QuantMethod = (typeof QUANT_METHODS)[number];

export interface QuantScheme {
  /** the name as given (w8, w4g128, …) */
  name: string;
  bits: 4 | 8;
  /** inputs per group; null: one group per output channel */
  groupSize: number | null;
  symmetric: boolean;
}

/** The integer range of `bits` (signed, as compressed-tensors stores it). */
export function qrange(bits: number): [number, number] {
  return [-(1 << (bits - 1)), (1 << (bits - 1)) - 1];
}

/** Parse a scheme name; `--asym` sets asymmetric. */
export function parseScheme(name: string, asymmetric = false): QuantScheme {
  const m = /^w(4|8)(?:g(\d+))?$/.exec(name);
  if (!m) throw new UsageError(`unknown quantization scheme "${name}": expected ${QUANT_SCHEMES.join(", ")} (or w4gN / w8gN, N dividing 128)`);
  const bits = Number(m[1]) as 4 | 8;
  const groupSize = m[2] === undefined ? null : Number(m[2]);
  if (groupSize === null && bits === 4) throw new UsageError(`quantization scheme "${name}": int4 needs groups (w4g128, w4g64, w4g32)`);
  if (groupSize !== null && (groupSize < 8 || 128 % groupSize !== 0)) throw new UsageError(`quantization scheme "${name}": the group size must divide 128 and be at least 8 (32, 64, 128)`);
  return { name, bits, groupSize, symmetric: !asymmetric };
}

export function parseQuantMethod(name: string): QuantMethod {
  if (!(QUANT_METHODS as readonly string[]).includes(name)) throw new UsageError(`--quantize-method ${name}: expected ${QUANT_METHODS.join(" or ")}`);
  return name as QuantMethod;
}

/** The grid of one operator with K inputs: groups of `group` columns (`group` = K: per channel), ng per row. */
export interface Grid {
  strategy: "group" | "channel";
  group: number;
  ng: number;
  bits: 4 | 8;
  symmetric: boolean;
}

export function gridOf(s: QuantScheme, K: number): Grid {
  const grouped = s.groupSize !== null && K % s.groupSize === 0;
  return grouped
    ? { strategy: "group", group: s.groupSize!, ng: K / s.groupSize!, bits: s.bits, symmetric: s.symmetric }
    : { strategy: "channel", group: Math.max(K, 1), ng: 1, bits: s.bits, symmetric: s.symmetric };
}
