/**
 * @file The integer kernels (assembly/qgemm.ts) on quantized weights placed as a loaded checkpoint places them
 * (placeQuantized: pack-quantized words, scales, zero-point terms), table-driven: int8 / int4, per channel and groups of
 * 32 / 64 / 128, symmetric and asymmetric, awkward N (row tails), K not a multiple of the block (channel),
 * T = 1..9; guard words around the outputs. Each case is checked twice: bit for bit against a scalar model of
 * the kernel's arithmetic (int16 activations, exact integer block sums, f32 sums in the stated order), and
 * against the float64 product with the dequantized weights within the activation rounding's bound
 * (|Δx| ≤ sx/2 per input: 2^-16 of its block's largest magnitude). The W4A8 / W8A8 kernels (qu4a8_gemm_nt,
 * qu8a8_gemm_nt: int8 activations) the same way, with their bound (2^-8).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { placeInt2of4Kept, placeQuantized, readInt, intScratchBytes } from "../../src/model/linear.js";
import { bitmaskError, encodeOperator24 } from "../../src/quant/compressed-tensors.js";
import { dequantize, randomQuantized, type QuantizedWeight } from "../../src/quant/codes.js";
import { gridOf, parseScheme } from "../../src/quant/scheme.js";
import { mulberry32, randomF32 } from "../helpers/random.js";
import { place, scoped } from "./util.js";
import { kernels } from "../../src/kernels/index.js";

const f = Math.fround;
const roundEven = (v: number): number => {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** The kernel's arithmetic, scalar: y [T,N] (sparse: qu4_gemm_2of4_nt's). */
function model(q: QuantizedWeight, x: Float32Array, T: number, B: number, sparse = false, xmax = 32767): Float32Array {
  // W8A8 sums the signed codes q·x (its offset terms s·z), the others the stored codes (q + offset)·x
  const signed = xmax === 127 && q.grid.bits === 8;
  const { N, K, grid } = q;
  const Kp = Math.ceil(K / B) * B;
  const nb = Kp / B;
  const bpg = grid.ng === 1 ? nb : 1;
  const off = 1 << (grid.bits - 1);
  const lanes = grid.bits === 8 ? (k: number) => (k % 16) >> 2 : (k: number) => (k % 32) >> 3;
  const y = new Float32Array(T * N);
  for (let t = 0; t < T; t++) {
    const xq = new Int32Array(Kp);
    const sx = new Float32Array(nb), sxS = new Float32Array(nb);
    for (let b = 0; b < nb; b++) {
      let m = 0;
      for (let k = b * B; k < Math.min(K, b * B + B); k++) m = Math.max(m, Math.abs(x[t * K + k]!));
      const inv = m > 0 ? f(xmax / m) : 0;
      let S = 0;
      for (let k = b * B; k < b * B + B; k++) {
        const v = k < K ? Math.min(xmax, Math.max(-xmax, roundEven(f(x[t * K + k]! * inv)))) : 0;
        xq[k] = v;
        S += v;
      }
      sx[b] = f(m / xmax);
      sxS[b] = f(sx[b]! * S);
    }
    for (let n = 0; n < N; n++) {
      if (sparse) {
        // the 2:4 kernel: one exact integer sum per block over the row's inputs, (q − z)·xq, f32 sums from 0
        let a = 0;
        for (let b = 0; b < nb; b++) {
          const g = Math.floor(b / bpg);
          const z = q.zero ? q.zero[n * grid.ng + g]! : 0;
          let d = 0;
          for (let k = b * B; k < Math.min(K, b * B + B); k++) d += (q.codes[n * K + k]! - z) * xq[k]!;
          a = f(a + f(f(d) * f(sx[b]! * q.scale[n * grid.ng + g]!)));
        }
        y[t * N + n] = a;
        continue;
      }
      const acc = [0, 0, 0, 0];
      let c = 0;
      for (let b = 0; b < nb; b++) {
        const g = Math.floor(b / bpg);
        const s = q.scale[n * grid.ng + g]!;
        const cg = f(s * (off + (q.zero ? q.zero[n * grid.ng + g]! : 0)));
        const d = [0, 0, 0, 0];
        for (let k = b * B; k < Math.min(K, b * B + B); k++) d[lanes(k - b * B)]! += (q.codes[n * K + k]! + (signed ? 0 : off)) * xq[k]!;
        const m = f(sx[b]! * s);
        for (let j = 0; j < 4; j++) acc[j] = f(acc[j]! + f(f(d[j]!) * m));
        if (!signed) c = f(c + f(cg * sxS[b]!));
        else if (q.zero) c = f(c + f(f(cg - f(128 * s)) * sxS[b]!));
      }
      y[t * N + n] = f(f(f(acc[0]! + acc[1]!) + f(acc[2]! + acc[3]!)) - c);
    }
  }
  return y;
}

/**
 * Every y[t,n] within the activation rounding of the float64 product with the dequantized weights wd: per input
 * |Δx| ≤ sx/2 (sx = its block's max|x| / qmax), plus f32 rounding of the sums.
 */
function withinRounding(label: string, got: Float32Array, wd: Float32Array, x: Float32Array, T: number, N: number, K: number, B: number, qmax: number): void {
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < N; n++) {
      let exact = 0, bound = 0;
      for (let b = 0; b * B < K; b++) {
        let m = 0;
        for (let kk = b * B; kk < Math.min(K, (b + 1) * B); kk++) m = Math.max(m, Math.abs(x[t * K + kk]!));
        for (let kk = b * B; kk < Math.min(K, (b + 1) * B); kk++) {
          const wv = wd[n * K + kk]!;
          exact += wv * x[t * K + kk]!;
          bound += Math.abs(wv) * (m / qmax / 2 + 4e-7 * Math.abs(x[t * K + kk]!));
        }
      }
      const e = Math.abs(got[t * N + n]! - exact);
      assert.ok(e <= bound * 1.01 + 1e-6, `${label}: y[${t},${n}] ${got[t * N + n]} vs f64 ${exact}: error ${e} > bound ${bound}`);
    }
  }
}

/** Each case's grid comes from its scheme as the quantizers' (gridOf): a group that does not divide K is per channel. */
interface Case {
  scheme: string;
  asym: boolean;
  N: number;
  K: number;
  /** int4 only: prune the codes to 2:4 first (placed in the 2:4 layout, run by qu4_gemm_2of4_nt) */
  sparse?: boolean;
}

const CASES: Case[] = [
  { scheme: "w8", asym: false, N: 13, K: 172 },
  { scheme: "w8", asym: true, N: 8, K: 64 },
  { scheme: "w8g32", asym: false, N: 5, K: 96 },
  { scheme: "w8g128", asym: true, N: 7, K: 256 },
  { scheme: "w4g128", asym: false, N: 3, K: 200 }, // int4 per channel
  { scheme: "w4g32", asym: false, N: 17, K: 64 },
  { scheme: "w4g64", asym: true, N: 4, K: 192 },
  { scheme: "w4g128", asym: false, N: 9, K: 384 },
  { scheme: "w4g32", asym: true, N: 1, K: 32 },
  { scheme: "w4g128", asym: false, N: 3, K: 200, sparse: true }, // per channel, K not a multiple of 16
  { scheme: "w4g32", asym: false, N: 17, K: 64, sparse: true },
  { scheme: "w4g64", asym: true, N: 6, K: 192, sparse: true },
  { scheme: "w4g128", asym: false, N: 9, K: 384, sparse: true },
  { scheme: "w4g32", asym: true, N: 1, K: 32, sparse: true },
];

/** `q` with two weights of every group of 4 inputs set to zero (code = zero point), at random places; some groups keep one or none. */
function prune2of4(rand: () => number, q: QuantizedWeight): QuantizedWeight {
  const codes = q.codes.slice();
  for (let n = 0; n < q.N; n++) {
    for (let j = 0; j < q.K; j += 4) {
      const drop = 2 + (rand() < 0.1 ? 1 : 0) + (rand() < 0.05 ? 1 : 0);
      const order = [0, 1, 2, 3].sort(() => rand() - 0.5);
      for (const i of order.slice(0, drop)) {
        const k = j + i;
        if (k < q.K) codes[n * q.K + k] = q.zero ? q.zero[n * q.grid.ng + Math.floor(k / q.grid.group)]! : 0;
      }
    }
  }
  return { ...q, codes };
}

test("qu8/qu4_gemm_nt: bit-exact to the scalar model, within the activation rounding of the f64 product", () => {
  const rand = mulberry32(7);
  for (const c of CASES) {
    const grid = gridOf(parseScheme(c.scheme, c.asym), c.K);
    const q0 = randomQuantized(rand, c.N, c.K, grid);
    const q = c.sparse ? prune2of4(rand, q0) : q0;
    const wd = dequantize(q);
    for (const T of [1, 2, 9]) {
      const label = `int${grid.bits}${c.sparse ? " 2:4" : ""} ${grid.strategy === "channel" ? "channel" : `g${grid.group}`} ${grid.symmetric ? "sym" : "asym"} N=${c.N} K=${c.K} T=${T}`;
      scoped((w) => {
        const k = kernels(w);
        const lw = placeQuantized(w, q);
        assert.equal(lw.pattern, c.sparse ? "2:4" : "dense", `${label}: layout`);
        assert.deepEqual(readInt(w, lw), q, `${label}: placed weight reads back exactly`);
        const x = randomF32(rand, T * c.K);
        if (T > 1) x[3] = 40; // one outlier input: its block's scale is coarse, the others are not
        const bx = place(w, x);
        const by = place(w, new Float32Array(T * c.N).fill(NaN));
        const scratch = w.arena.allocBytes(intScratchBytes(k, T, c.K));
        const Kp = Math.ceil(c.K / lw.block) * lw.block;
        const xs = scratch + T * Kp * 2;
        if (lw.pattern === "2:4") {
          k.i16_quantize_blocks(bx.ptr, T, c.K, lw.block, 2, scratch, xs);
          k.qu4_gemm_2of4_nt(scratch, xs, lw.codes, lw.idx, lw.scales, lw.zeroPoints, by.ptr, T, c.N, c.K, lw.ng, lw.block);
        } else {
          k.i16_quantize_blocks(bx.ptr, T, c.K, lw.block, grid.bits === 4 ? 1 : 0, scratch, xs);
          (grid.bits === 8 ? k.qu8_gemm_nt : k.qu4_gemm_nt)(scratch, xs, lw.codes, lw.scales, lw.zeroTerms, by.ptr, T, c.N, c.K, lw.ng, lw.block);
        }
        by.checkGuards(label);
        const got = by.read();
        const want = model(q, x, T, lw.block, lw.pattern === "2:4");
        for (let i = 0; i < got.length; i++) assert.equal(got[i], want[i], `${label}: y[${i}] ${got[i]} vs the scalar model's ${want[i]}`);
        withinRounding(label, got, wd, x, T, c.N, c.K, lw.block, 32767);
      });
    }
  }
});

test("qu4a8/qu8a8_gemm_nt (W4A8, W8A8): bit-exact to the scalar model with int8 activations, within their rounding of the f64 product; not the int16 result", () => {
  const rand = mulberry32(17);
  for (const c of CASES.filter((c) => !c.sparse)) {
    const grid = gridOf(parseScheme(c.scheme, c.asym), c.K);
    const q = randomQuantized(rand, c.N, c.K, grid);
    const wd = dequantize(q);
    for (const T of [1, 2, 9]) {
      const label = `W${grid.bits}A8 ${grid.strategy === "channel" ? "channel" : `g${grid.group}`} ${grid.symmetric ? "sym" : "asym"} N=${c.N} K=${c.K} T=${T}`;
      scoped((w) => {
        const k = kernels(w);
        const lw = placeQuantized(w, q, 8);
        if (lw.pattern !== "dense" || lw.activationBits !== 8) throw new Error(`${label}: not placed for int8 activations`);
        const x = randomF32(rand, T * c.K);
        if (T > 1) x[3] = 40;
        const bx = place(w, x);
        const by = place(w, new Float32Array(T * c.N).fill(NaN));
        const Kp = Math.ceil(c.K / lw.block) * lw.block;
        const scratch = w.arena.allocBytes(intScratchBytes(k, T, c.K));
        const xs = scratch + T * Kp * 2;
        k.i8_quantize_blocks(bx.ptr, T, c.K, lw.block, grid.bits, scratch, xs);
        (grid.bits === 8 ? k.qu8a8_gemm_nt : k.qu4a8_gemm_nt)(scratch, xs, lw.codes, lw.scales, lw.zeroTerms, by.ptr, T, c.N, c.K, lw.ng, lw.block);
        by.checkGuards(label);
        const got = by.read();
        const want = model(q, x, T, lw.block, false, 127);
        for (let i = 0; i < got.length; i++) assert.equal(got[i], want[i], `${label}: y[${i}] ${got[i]} vs the scalar model's ${want[i]}`);
        const a16 = model(q, x, T, lw.block);
        assert.ok(got.some((v, i) => v !== a16[i]), `${label}: the int8 rounding changes some output (else the int16 kernel ran)`);
        withinRounding(label, got, wd, x, T, c.N, c.K, lw.block, 127);
      });
    }
  }
});

test("qu8/qu4_gemm_nt: zero activations give +0.0 - 0 terms; NaN activations give NaN, not a finite guess", () => {
  scoped((w) => {
    const k = kernels(w);
    const grid = gridOf(parseScheme("w4g32"), 64);
    const q = randomQuantized(mulberry32(3), 4, 64, grid);
    const lw = placeQuantized(w, q);
    if (lw.pattern !== "dense") throw new Error("random codes placed as 2:4");
    const x = new Float32Array(64);
    const bx = place(w, x);
    const by = place(w, new Float32Array(4).fill(7));
    const scratch = w.arena.allocBytes(intScratchBytes(k, 1, 64));
    const run = () => {
      k.i16_quantize_blocks(bx.ptr, 1, 64, 32, 1, scratch, scratch + 128);
      k.qu4_gemm_nt(scratch, scratch + 128, lw.codes, lw.scales, lw.zeroTerms, by.ptr, 1, 4, 64, 2, 32);
      return by.read();
    };
    assert.deepEqual([...run()], [0, 0, 0, 0]);
    w.arena.f32(bx.ptr, 64)[5] = NaN;
    assert.ok(run().every((v) => Number.isNaN(v)), "NaN in → NaN out");
  });
});

test("qu4_place_2of4_kept: the compact 2:4 file layout places the bytes the pack-quantized words place; a bad mask names its group", () => {
  const rand = mulberry32(11);
  for (const c of [...CASES.filter((c) => c.sparse && c.K % 4 === 0), { scheme: "w4g128", asym: true, N: 5, K: 68, sparse: true }]) {
    const grid = gridOf(parseScheme(c.scheme), c.K);
    const q0 = randomQuantized(rand, c.N, c.K, c.asym ? grid : { ...grid, symmetric: true });
    const q = prune2of4(rand, q0);
    const tensors = encodeOperator24("op", q);
    const kept = new Int32Array(tensors.find((t) => t.name === "op.weight_packed")!.data.slice().buffer);
    const mask = tensors.find((t) => t.name === "op.bitmask")!.data;
    scoped((w) => {
      const a = placeQuantized(w, q);
      const b = placeInt2of4Kept(w, q.N, q.K, q.grid, kept, mask, q.scale, q.zero);
      if (a.pattern !== "2:4" || "badGroup" in b) throw new Error(`${c.scheme} ${c.N}x${c.K}: not placed as 2:4`);
      const bytes = (p: number, n: number) => [...w.arena.u8(p, n)];
      const NB = Math.ceil(q.N / 4), Kp = Math.ceil(q.K / a.block) * a.block;
      assert.deepEqual(bytes(b.codes, NB * Kp), bytes(a.codes, NB * Kp), `${c.scheme} ${c.N}x${c.K}: codes`);
      assert.deepEqual(bytes(b.idx, NB * Kp / 2), bytes(a.idx, NB * Kp / 2), `${c.scheme} ${c.N}x${c.K}: positions`);
      assert.deepEqual(bytes(b.scales, NB * a.ng * 16), bytes(a.scales, NB * a.ng * 16));
      if (q.zero) assert.deepEqual(bytes(b.zeroPoints, NB * a.ng * 16), bytes(a.zeroPoints, NB * a.ng * 16));
      assert.deepEqual(readInt(w, b), readInt(w, a));
      // a group keeping 3, one keeping 1 (row 0, inputs 4..7 / row N−1, inputs 0..3), a bit past K
      const mb = Math.ceil(q.K / 8);
      const bad = (edit: (m: Uint8Array) => void) => {
        const m = mask.slice();
        edit(m);
        const mark = w.arena.mark();
        const r = placeInt2of4Kept(w, q.N, q.K, q.grid, kept, m, q.scale, q.zero);
        assert.equal(w.arena.mark(), mark, "the arena as it was");
        if (!("badGroup" in r)) throw new Error("a bad mask placed");
        return bitmaskError("f", "op", m, q.N, q.K, r.Kp, r.badGroup).message;
      };
      assert.match(bad((m) => { m[0] = m[0]! | 0xf0; }), /"op\.bitmask" row 0 keeps 4 of inputs 4\.\.7, expected exactly 2/);
      assert.match(bad((m) => { const i = (q.N - 1) * mb; m[i] = (m[i]! & 0xf0) | 0x1; }), new RegExp(`row ${q.N - 1} keeps 1 of inputs 0\\.\\.3`));
      if (q.K % 8 === 4) assert.match(bad((m) => { m[2 * mb - 1] = m[2 * mb - 1]! | 0x80; }), /"op\.bitmask" row 1 has a bit set past its 68 inputs/);
    });
  }
});
