/**
 * @file The engine's one source of seeded randomness: mulberry32 (Tommy Ettinger, public domain), two
 * Box–Muller normal samplers, and seed derivation. Deterministic across platforms (32-bit integer arithmetic
 * only, then one division), so every seeded result (built-in model, synthetic operators, FISTA's power
 * iteration, training data order, test inputs) is reproducible bit for bit.
 *
 * The two Box–Muller samplers are kept as they were written before this module existed, so that no seeded
 * result changed when they moved here:
 *  - `gaussian(rand)`: one sample from two uniforms, u ∈ (0,1] as 1 − rand(), the cosine branch only
 *    (the built-in model's and `randomLlama`'s weights);
 *  - `gaussianPairs(seed)`: both Box–Muller outputs of each pair of uniforms, the uniforms on the midpoints of
 *    the 2⁻³² grid so they lie in (0,1) (synthetic pruning operators, src/prune/problem.ts).
 * Bulk generation (`fillFromTable` with `normalTable`, for generated models of billions of weights) samples by
 * inverse transform from a 16-bit table instead: one table load per value, no log/cos.
 */

/** mulberry32's state increment (its Weyl sequence step). */
const STEP = 0x6d2b79f5;

/** mulberry32's output for state `a` (the state already advanced by STEP). */
function mulberry32Out(a: number): number {
  let t = a;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 0;
}

/** The raw 32-bit outputs of mulberry32 seeded with `seed` (taken as a uint32). */
export function mulberry32Bits(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + STEP) >>> 0;
    return mulberry32Out(a);
  };
}

/**
 * Bulk samples from a 65536-entry `table`: out[start + 2k] = table[w_k & 0xffff], out[start + 2k + 1] =
 * table[w_k >>> 16] (the last pair cut at `end`), where w_k = (k-th output of mulberry32(s1)) XOR (k-th output of
 * mulberry32(s2)). Two streams give 64 bits of state per (s1, s2), so the many streams of a large generated model
 * do not run into each other as streams of one 32-bit mulberry32 would (its whole cycle is 2³² outputs).
 */
export function fillFromTable(
  out: Float32Array | Float64Array | Uint16Array, start: number, end: number, s1: number, s2: number, table: Float32Array | Float64Array | Uint16Array,
): void {
  if (table.length !== 65536) throw new RangeError(`fillFromTable: the table has ${table.length} entries, not 65536`);
  let a = s1 | 0;
  let b = s2 | 0;
  let i = start;
  for (; i + 1 < end; i += 2) {
    a = (a + STEP) | 0;
    b = (b + STEP) | 0;
    const w = mulberry32Out(a) ^ mulberry32Out(b);
    out[i] = table[w & 0xffff]!;
    out[i + 1] = table[w >>> 16]!;
  }
  if (i < end) out[i] = table[(mulberry32Out((a + STEP) | 0) ^ mulberry32Out((b + STEP) | 0)) & 0xffff]!;
}

let normalTableCache: Float64Array | undefined;
/**
 * 65536 standard normal quantiles Φ⁻¹((k + ½) / 65536), k = 0..65535 (±4.33 at the ends, none zero, exactly
 * antisymmetric), scaled by the one factor that makes their variance exactly 1: indexing it with 16 uniform
 * bits samples N(0,1) by inverse transform on a 2⁻¹⁶ grid, at the cost of one table load.
 */
export function normalTable(): Float64Array {
  if (!normalTableCache) {
    const t = new Float64Array(65536);
    let ss = 0;
    for (let k = 0; k < 65536; k++) {
      t[k] = normalQuantile((k + 0.5) / 65536);
      ss += t[k]! * t[k]!;
    }
    const scale = 1 / Math.sqrt(ss / 65536);
    for (let k = 0; k < 65536; k++) t[k]! *= scale;
    normalTableCache = t;
  }
  return normalTableCache;
}

/**
 * Φ⁻¹(p) by Wichura's AS 241 (PPND16, ~1e-16 relative), for 1e-10 < p < 1 − 1e-10 (its central and
 * intermediate regions; the far tails, p < e⁻²⁵, are not needed here and are refused).
 */
export function normalQuantile(p: number): number {
  const q = p - 0.5;
  if (Math.abs(q) <= 0.425) {
    const r = 0.180625 - q * q;
    return (q * (((((((2509.0809287301226727 * r + 33430.575583588128105) * r + 67265.770927008700853) * r +
      45921.953931549871457) * r + 13731.693765509461125) * r + 1971.5909503065514427) * r + 133.14166789178437745) * r +
      3.387132872796366608)) /
      (((((((5226.495278852854561 * r + 28729.085735721942674) * r + 39307.89580009271061) * r +
        21213.794301586595867) * r + 5394.1960214247511077) * r + 687.1870074920579083) * r + 42.313330701600911252) * r + 1);
  }
  let r = Math.sqrt(-Math.log(q < 0 ? p : 1 - p));
  if (!(r <= 5)) throw new RangeError(`normalQuantile: p = ${p} is outside (1e-10, 1 - 1e-10)`);
  r -= 1.6;
  const v = (((((((7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r + 0.24178072517745061177) * r +
    1.27045825245236838258) * r + 3.64784832476320460504) * r + 5.7694972214606914055) * r + 4.6303378461565452959) * r +
    1.42343711074968357734) /
    (((((((1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r + 0.0151986665636164571966) * r +
      0.14810397642748007459) * r + 0.68976733498510000455) * r + 1.6763848301838038494) * r + 2.05319162663775882187) * r + 1);
  return q < 0 ? -v : v;
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
