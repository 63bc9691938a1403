/** @file Seeded randomness for tests and benchmarks: mulberry32 (public domain, Tommy Ettinger). */

/** A generator of uniform floats in [0, 1) from a 32-bit seed (the engine's own, src/util/rng.ts). */
export { mulberry32 } from "../../src/util/rng.ts";

/** n uniform floats in [lo, hi) from `rand`. */
export function randomF32(rand: () => number, n: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rand();
  return out;
}
