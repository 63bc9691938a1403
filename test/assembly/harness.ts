// Shared plumbing of the as-pect kernel specs: a seeded generator, blocks of memory between guard words,
// and checks that fail with the case's label and the index of the first mismatch.
//
// The kernels take raw pointers, so every operand is a Block: GUARD words of a NaN pattern no kernel computes,
// `skew` more of them (a skew of 1 puts the data 4 bytes past a 64-byte boundary, as rows of odd width start),
// the data, then GUARD words again. `check` fails if any guard word changed.

// @ts-ignore: decorator
@inline export const GUARD: i32 = 8;
// @ts-ignore: decorator
@inline export const GUARD_BITS: u32 = 0x7fc0dead;

/** mulberry32 (the generator of src/model/builtin.ts and test/helpers/random.ts). */
export class Rng {
  constructor(private s: u32) {}
  nextU32(): u32 {
    this.s += 0x6d2b79f5;
    let t = this.s;
    t = (t ^ (t >>> 15)) * (t | 1);
    t ^= t + (t ^ (t >>> 7)) * (t | 61);
    return t ^ (t >>> 14);
  }
  /** uniform in [-1, 1) */
  f32(): f32 {
    return <f32>(<f64>this.nextU32() / 4294967296.0 * 2.0 - 1.0);
  }
  /** uniform integer in [0, n) */
  int(n: i32): i32 {
    return <i32>(<u64>this.nextU32() * <u64>n >>> 32);
  }
}

export class Block {
  readonly raw: usize;
  /** first data word (4 bytes each: f32, u32 or i32) */
  readonly ptr: usize;
  private readonly lead: i32;

  constructor(readonly n: i32, readonly skew: i32 = 0) {
    this.lead = GUARD + skew;
    const words = this.lead + n + GUARD;
    this.raw = heap.alloc(<usize>words * 4 + 64);
    const base = (this.raw + 63) & ~<usize>63;
    this.ptr = base + (<usize>this.lead << 2);
    for (let i = 0; i < words; i++) store<u32>(base + (<usize>i << 2), GUARD_BITS);
  }

  get(i: i32): f32 {
    return load<f32>(this.ptr + (<usize>i << 2));
  }
  set(i: i32, v: f32): void {
    store<f32>(this.ptr + (<usize>i << 2), v);
  }
  bits(i: i32): u32 {
    return load<u32>(this.ptr + (<usize>i << 2));
  }

  /** Uniform values in [-1, 1). */
  random(rng: Rng): Block {
    for (let i = 0; i < this.n; i++) this.set(i, rng.f32());
    return this;
  }
  fill(v: f32): Block {
    for (let i = 0; i < this.n; i++) this.set(i, v);
    return this;
  }
  /** A copy of the data as an array (to keep inputs for the reference, or compare later). */
  copy(): StaticArray<f32> {
    const out = new StaticArray<f32>(this.n);
    for (let i = 0; i < this.n; i++) out[i] = this.get(i);
    return out;
  }

  /** Fails if a guard word before or after the data was written. */
  check(label: string): void {
    const base = this.ptr - (<usize>this.lead << 2);
    for (let i = 0; i < this.lead; i++) {
      if (load<u32>(base + (<usize>i << 2)) != GUARD_BITS) fail(`${label}: guard word ${i - this.lead} before the block overwritten`);
    }
    for (let i = 0; i < GUARD; i++) {
      if (load<u32>(this.ptr + (<usize>(this.n + i) << 2)) != GUARD_BITS) fail(`${label}: guard word ${i} past the end (n=${this.n}) overwritten`);
    }
  }

  free(): void {
    heap.free(this.raw);
  }
}

/** Fails the current test with `message` (as-pect stops the test at the first failed expectation). */
export function fail(message: string): void {
  expect<bool>(false).toBe(true, message);
}

/**
 * |got[i] − want[i]| ≤ rtol·scale[i] + atol for every i, where scale holds Σ|terms| of each output (so a sum
 * that cancels is not held to an impossibly tight bound). The reference is computed in f64.
 */
export function expectClose(label: string, got: Block, want: StaticArray<f64>, scale: StaticArray<f64>, rtol: f64 = 1e-5, atol: f64 = 1e-6): void {
  if (got.n != want.length) fail(`${label}: ${got.n} outputs, expected ${want.length}`);
  for (let i = 0; i < got.n; i++) {
    const g = <f64>got.get(i);
    const err = abs(g - want[i]);
    if (!(err <= rtol * scale[i] + atol)) fail(`${label}: index ${i}: got ${g}, expected ${want[i]} (|err| ${err} > ${rtol * scale[i] + atol})`);
  }
}

/** Bit-for-bit equality of every element (for kernels whose order of operations is part of the contract). */
export function expectBits(label: string, got: Block, want: StaticArray<f32>): void {
  if (got.n != want.length) fail(`${label}: ${got.n} outputs, expected ${want.length}`);
  for (let i = 0; i < got.n; i++) {
    if (got.bits(i) != reinterpret<u32>(want[i])) fail(`${label}: index ${i}: got ${got.get(i)}, expected ${want[i]}`);
  }
}

/** An exact i32 block comparison (counts, masks read as integers). */
export function expectI32(label: string, got: Block, want: StaticArray<i32>): void {
  for (let i = 0; i < got.n; i++) {
    const g = load<i32>(got.ptr + (<usize>i << 2));
    if (g != want[i]) fail(`${label}: index ${i}: got ${g}, expected ${want[i]}`);
  }
}

/**
 * The scalar reference of every "nt" product: want[m·N + n] = Σ_k X[m, k]·W[n, k] (+ Y₀[m·N + n] when y0 is
 * given), in f64, and scale = the sum of |terms| (|Y₀| included) for {@link expectClose}.
 */
export function refNT(
  x: StaticArray<f32>, w: StaticArray<f32>, y0: StaticArray<f32> | null, M: i32, N: i32, K: i32,
  want: StaticArray<f64>, scale: StaticArray<f64>,
): void {
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s: f64 = y0 ? <f64>y0[m * N + n] : 0;
      let a: f64 = abs(s);
      for (let k = 0; k < K; k++) {
        const p = <f64>x[m * K + k] * <f64>w[n * K + k];
        s += p;
        a += abs(p);
      }
      want[m * N + n] = s;
      scale[m * N + n] = a;
    }
  }
}

/** A scratch block of `bytes` bytes (rounded up to words), guarded like the others. */
export function scratch(bytes: i32): Block {
  return new Block((bytes + 3) >> 2);
}

// ---- half-precision weights (the inference kernels' bf16 / f16 storage) -----------------------------------

/** Storage dtypes of the inference kernels' weights: DT_F32, DT_BF16, DT_F16. */
// @ts-ignore: decorator
@inline export const DT_F32: i32 = 0;
// @ts-ignore: decorator
@inline export const DT_BF16: i32 = 1;
// @ts-ignore: decorator
@inline export const DT_F16: i32 = 2;
export const DT_NAMES: string[] = ["f32", "bf16", "f16"];

/** A random weight of dtype `dt`: its stored bits (low 16 for a half dtype) in `bits`, its exact f32 value returned. */
export class HalfRng {
  bits: u32 = 0;
  constructor(private rng: Rng) {}
  next(dt: i32): f32 {
    if (dt == DT_F32) {
      const v = this.rng.f32();
      this.bits = reinterpret<u32>(v);
      return v;
    }
    if (dt == DT_BF16) {
      this.bits = reinterpret<u32>(this.rng.f32()) >> 16;
      return reinterpret<f32>(this.bits << 16);
    }
    // f16 from its fields, the value by the definition (f64): exponents 0 (subnormals) .. 16, either sign
    const e = this.rng.int(17), m = this.rng.int(1024), s = this.rng.int(2);
    this.bits = (<u32>s << 15) | (<u32>e << 10) | <u32>m;
    const mag: f64 = e == 0 ? <f64>m * Math.pow(2, -24) : (1 + <f64>m / 1024) * Math.pow(2, <f64>(e - 15));
    return <f32>(s ? -mag : mag);
  }
}

/** Store one weight of dtype `dt` (bits from HalfRng) as element `i` of the array at p. */
export function storeWeight(p: usize, i: i32, dt: i32, bits: u32): void {
  if (dt == DT_F32) store<u32>(p + (<usize>i << 2), bits);
  else store<u16>(p + (<usize>i << 1), <u16>bits);
}

/** Slot of row r (0..7) in a half-precision p8 k slice: rows 0..3 on the even slots, 4..7 on the odd ones. */
export function halfSlot(r: i32): i32 {
  return r < 4 ? 2 * r : 2 * (r - 4) + 1;
}

/** A random [N, K] weight of dtype `dt` in p8 panels (assembly/gemv.ts), and the dense f32 matrix it means. */
export class PackedP8 {
  panels: Block;
  dense: StaticArray<f32>;
  constructor(rng: Rng, readonly N: i32, readonly K: i32, readonly dt: i32) {
    const NP = (N + 7) >> 3;
    const elems = NP * K * 8;
    this.panels = new Block(dt == DT_F32 ? elems : (elems + 1) >> 1).fill(0);
    this.dense = new StaticArray<f32>(N * K);
    const h = new HalfRng(rng);
    for (let n = 0; n < N; n++) {
      const p = n >> 3, r = n & 7;
      const slot = dt == DT_F32 ? r : halfSlot(r);
      for (let k = 0; k < K; k++) {
        this.dense[n * K + k] = h.next(dt);
        storeWeight(this.panels.ptr, (p * K + k) * 8 + slot, dt, h.bits);
      }
    }
  }
  free(): void {
    this.panels.free();
  }
}
