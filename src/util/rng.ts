/**
 * @file The engine's one source of seeded randomness: mulberry32 (Tommy Ettinger, public domain), two
 * Box–Muller normal samplers, and seed derivation. Deterministic across platforms (32-bit integer arithmetic
 * only, then one division), so every seeded result (built-in model, synthetic operators, FISTA's power
 * iteration, training data order, test inputs) is reproducible bit for bit.
 *
 * The two normal samplers are kept as they were written before this module existed, so that no seeded
 * result changed when they moved here:
 *  - `gaussian(rand)`: one sample from two uniforms, u ∈ (0,1] as 1 − rand(), the cosine branch only
 *    (the built-in model's and `randomLlama`'s weights);
 *  - `gaussianPairs(seed)`: both Box–Muller outputs of each pair of uniforms, the uniforms on the midpoints of
 *    the 2⁻³² grid so they lie in (0,1) (synthetic pruning operators, src/prune/problem.ts).
 */

/** The raw 32-bit outputs of mulberry32 seeded with `seed` (taken as a uint32). */
export function mulberry32Bits(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Uniform floats in [0, 1) from mulberry32 (k / 2³² for the 32-bit output k). */
export function mulberry32(seed: number): () => number {
  const bits = mulberry32Bits(seed);
  return () => bits() / 4294967296;
}

/** Standard normal samples from a uniform generator: sqrt(−2 ln(1 − u₁))·cos(2π u₂), two uniforms per sample. */
export function gaussian(rand: () => number): () => number {
  return () => {
    const u = 1 - rand();
    const v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

/**
 * Standard normal samples seeded by `seed`: uniforms u = (k + ½) / 2³² from mulberry32, and both outputs
 * r·cos θ, r·sin θ (r = sqrt(−2 ln u₁), θ = 2π u₂) of each pair, cosine first.
 */
export function gaussianPairs(seed: number): () => number {
  const bits = mulberry32Bits(seed);
  const u = (): number => (bits() + 0.5) / 4294967296;
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const v = spare;
      spare = undefined;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(u()));
    const th = 2 * Math.PI * u();
    spare = r * Math.sin(th);
    return r * Math.cos(th);
  };
}

/** A 32-bit mix of two integers (per-index seeds: `mulberry32(mix(seed, i))`). */
export function mix(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return h >>> 0;
}

/**
 * A 32-bit seed derived from `seed` and any number of parts (strings are hashed by their UTF-16 code units
 * with FNV-1a, numbers taken as uint32), each folded in with `mix`; e.g. `seedFrom(seed, tensorName, block)`.
 * Different parts or a different order give unrelated seeds.
 */
export function seedFrom(seed: number, ...parts: (string | number)[]): number {
  let h = seed >>> 0;
  for (const p of parts) {
    let v: number;
    if (typeof p === "number") v = p >>> 0;
    else {
      v = 0x811c9dc5;
      for (let i = 0; i < p.length; i++) v = Math.imul(v ^ p.charCodeAt(i), 0x01000193);
      v = Math.imul(v ^ p.length, 0x01000193) >>> 0;
    }
    h = mix(h, v);
  }
  return h;
}
