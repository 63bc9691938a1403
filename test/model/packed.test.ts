/**
 * @file Weights packed for inference (src/model/packed.ts, loaded by readLinear with `weights`): p8 panels of
 * f32 / bf16 / f16 and half-precision 2:4 / CSR values. Layout round trips are exact (bits for f32, the widened
 * value for a half dtype); runLinear on every layout and dtype equals the dense product of the weights it holds;
 * for f32 panels the GEMM is the row-major f32_gemm_nt bit for bit in the baseline build; a real model
 * (stories260K) loads packed, runs close to f32 in bf16, and a half-precision checkpoint runs the same values
 * whether it is held in its own dtype or widened.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createWasm, type Wasm } from "../../src/wasm/runtime.js";
import { kernels } from "../../src/kernels/index.js";
import * as ref from "../../src/kernels/reference.js";
import { packP8, unpackP8, p8Bytes, halfVals2of4, f32Vals2of4 } from "../../src/model/packed.js";
import { packLinear, placeP8, place2of4, placeCsr, runLinear, linearScratchBytes, denseLinear, denseWeight, packModel } from "../../src/model/linear.js";
import { pack2of4 } from "../../src/sparse/nm.js";
import { packCsr } from "../../src/sparse/bcsr.js";
import { dense, LINEAR_OPS, WEIGHT_DTYPES, type LinearWeight, type WeightDType } from "../../src/model/types.js";
import { f32ToBf16Bits, f32ToF16Bits, bf16BitsToF32, f16BitsToF32 } from "../../src/io/dtype.js";
import { loadModel } from "../../src/model/load.js";
import { saveHF } from "../../src/model/save.js";
import { createRunState, forward } from "../../src/model/forward.js";
import { mulberry32, randomF32 } from "../helpers/random.js";
import { STORIES_HF } from "../helpers/shared.js";

const bitsOf = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
const rounded = (v: Float32Array, d: WeightDType): Float32Array =>
  d === "f32" ? v.slice() : v.map((x) => (d === "bf16" ? bf16BitsToF32(f32ToBf16Bits(x)) : f16BitsToF32(f32ToF16Bits(x))));

test("p8 pack → unpack: f32 bit-exact (−0.0, NaN payloads, padding rows), half dtypes round to nearest even once, f16 refuses NaN", () => {
  const rand = mulberry32(1);
  for (const [N, K] of [[1, 1], [7, 3], [8, 8], [9, 5], [17, 31], [0, 4], [4, 0]] as [number, number][]) {
    const w = randomF32(rand, N * K);
    if (w.length > 3) {
      w[1] = -0;
      new Uint32Array(w.buffer)[2] = 0x7fa00001; // a signalling-NaN payload
    }
    for (const d of WEIGHT_DTYPES) {
      if (d === "f16" && w.length > 3) w[2] = 0.5; // f16 weights must be finite (the next test)
      const p = packP8(w, N, K, d);
      assert.equal(p.length, p8Bytes(N, K, d), `bytes ${d} N=${N} K=${K}`);
      const back = unpackP8(p, N, K, d);
      if (d === "f32") assert.deepEqual(bitsOf(back), bitsOf(w), `f32 N=${N} K=${K}`);
      else {
        const want = rounded(w, d);
        for (let i = 0; i < w.length; i++) if (!Number.isNaN(want[i])) assert.equal(Object.is(back[i], want[i]), true, `${d} N=${N} K=${K} [${i}]: ${back[i]} vs ${want[i]}`);
        // a value that came from the dtype is kept exactly
        assert.deepEqual(bitsOf(unpackP8(packP8(back, N, K, d), N, K, d)), bitsOf(back), `${d} idempotent`);
      }
    }
  }
  assert.throws(() => packP8(Float32Array.of(1, NaN), 1, 2, "f16"), /NaN is not a finite f16 value/);
  const v = randomF32(rand, 64);
  for (const d of ["bf16", "f16"] as const) assert.deepEqual(bitsOf(f32Vals2of4(halfVals2of4(rounded(v, d), d), d)), bitsOf(rounded(v, d)), `2:4 values ${d}`);
});

function denseProduct(w: Float32Array, x: Float32Array, N: number, K: number, T: number): Float32Array {
  const y = new Float32Array(T * N);
  ref.gemmNT(x, w, y, T, N, K, false);
  return y;
}

function assertNear(got: Float32Array, want: Float32Array, scale: Float32Array, label: string, rtol = 2e-5): void {
  for (let i = 0; i < want.length; i++) {
    const tol = rtol * scale[i]! + 1e-6;
    assert.ok(Math.abs(got[i]! - want[i]!) <= tol, `${label}: [${i}] ${got[i]} vs ${want[i]} (tol ${tol})`);
  }
}

/** y = x·Wᵀ through runLinear for T positions, into a fresh block. */
function run(wasm: Wasm, w: LinearWeight, x: Float32Array, T: number): Float32Array {
  return wasm.arena.scoped(() => {
    const [N] = w.shape as [number, number];
    const k = kernels(wasm);
    const bytes = Math.max(16, linearScratchBytes(k, w as never, T));
    const scratch = wasm.arena.allocBytes(bytes);
    const xp = wasm.arena.put(x), yp = wasm.arena.alloc(T * N);
    runLinear(k, w as never, xp, yp, T, scratch, bytes);
    return wasm.arena.f32(yp, T * N).slice();
  });
}

test("runLinear: p8 (f32/bf16/f16), 2:4 and CSR with half values equal the dense product of the weights they hold", () => {
  const wasm = createWasm(64 << 20);
  const rand = mulberry32(2);
  for (const [N, K] of [[5, 8], [16, 12], [23, 260], [40, 36]] as [number, number][]) {
    const w = randomF32(rand, N * K);
    for (let o = 0; o < w.length; o += 4) { w[o + (o % 3)] = 0; w[o + 3] = 0; } // 2:4 in every group (and sparse for CSR)
    for (const d of WEIGHT_DTYPES) {
      const wd = rounded(w, d);
      for (const base of ["dense", "2:4", "csr"] as const) {
        const src = wasm.arena.put(w);
        // a dense weight packs to p8 panels; 2:4 / CSR are placed from the dense values by their own packers
        const lw = base === "dense" ? packLinear(wasm, dense({ ptr: src, shape: [N, K], data: wasm.arena.f32(src, N * K) }), d) : placeCompressed(wasm, w, N, K, base, d);
        assert.equal(lw.format, base === "dense" ? "p8" : base);
        assert.deepEqual(bitsOf(denseWeight(wasm, lw)), bitsOf(wd), `${base} ${d}: dense values`);
        for (const T of [1, 3, 9]) {
          const x = randomF32(rand, T * K);
          const want = denseProduct(wd, x, N, K, T);
          const scale = denseProduct(wd.map(Math.abs), x.map(Math.abs), N, K, T);
          assertNear(run(wasm, lw, x, T), want, scale, `${base} ${d} N=${N} K=${K} T=${T}`);
        }
      }
    }
  }
});

function placeCompressed(wasm: Wasm, w: Float32Array, N: number, K: number, f: "2:4" | "csr", d: WeightDType): LinearWeight {
  return f === "2:4" ? place2of4(wasm.arena, pack2of4(w, N, K), d) : placeCsr(wasm.arena, packCsr(w, N, K), d);
}

test("f32 p8 GEMM is f32_gemm_nt bit for bit in the baseline build (the same sums, no per-call packing of W)", () => {
  const wasm = createWasm(64 << 20, "baseline");
  const k = kernels(wasm);
  const rand = mulberry32(3);
  for (const [M, N, K] of [[2, 9, 5], [17, 40, 300], [64, 24, 513], [300, 16, 20]] as [number, number, number][]) {
    wasm.arena.scoped(() => {
      const w = randomF32(rand, N * K), x = randomF32(rand, M * K);
      const lw = placeP8(wasm.arena, packP8(w, N, K, "f32"), N, K, "f32");
      const xp = wasm.arena.put(x), wp = wasm.arena.put(w), y = wasm.arena.alloc(M * N);
      const pack = wasm.arena.allocBytes(k.f32_gemm_nt_scratch(M, N, K));
      k.f32_gemm_nt(xp, wp, y, M, N, K, 0, pack);
      assert.deepEqual(bitsOf(run(wasm, lw, x, M)), bitsOf(wasm.arena.f32(y, M * N)), `M=${M} N=${N} K=${K}`);
    });
  }
});

test("stories260K loads packed (--weights-dtype): bf16 halves the linear weights' bytes and stays close to f32; a BF16 checkpoint runs the same values held as bf16 or widened", async () => {
  const f32 = await loadModel(STORIES_HF, { weights: "f32" });
  const bf16 = await loadModel(STORIES_HF, { weights: "bf16" });
  const rows = await loadModel(STORIES_HF);
  for (const lw of bf16.weights.layers) for (const op of LINEAR_OPS) assert.equal(`${lw[op].format}/${(lw[op] as { dtype?: string }).dtype}`, "p8/bf16", op);
  assert.equal(bf16.weights.lmHead.format, "dense", "a tied LM head stays the row-major embedding");
  assert.ok(bf16.wasm.arena.used < f32.wasm.arena.used, "bf16 panels take fewer arena bytes than f32");
  assert.throws(() => denseLinear(bf16.weights.layers[0]!.wq, "model.layers.0.self_attn.q_proj.weight"), /loaded packed for inference \(p8 panels, bf16\).*without --weights-dtype/);
  const logits = (m: typeof f32) => m.wasm.arena.scoped(() => {
    const st = createRunState(m, 8, 16);
    const out = forward(m, st, [1, 403, 407, 261, 378, 288, 45, 259], 0);
    const one = forward(m, st, [270], 8);
    return [Float32Array.from(out), Float32Array.from(one)];
  });
  const [a, a1] = logits(rows), [b, b1] = logits(f32), [c] = logits(bf16);
  const maxDiff = (p: Float32Array, q: Float32Array) => p.reduce((m, v, i) => Math.max(m, Math.abs(v - q[i]!)), 0);
  assert.ok(maxDiff(a, b) < 1e-4 && maxDiff(a1!, b1!) < 1e-4, `f32 panels vs rows: ${maxDiff(a, b)}`);
  const spread = Math.max(...a) - Math.min(...a);
  assert.ok(maxDiff(a, c) < 0.05 * spread && maxDiff(a, c) > 0, `bf16 vs f32 logits differ a little: ${maxDiff(a, c)} of ${spread}`);
  // a BF16 checkpoint: "stored" holds it as bf16; held as f32 panels it is the same values, the same sums
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-packed-"));
  try {
    saveHF(rows, path.join(dir, "m"), { dtype: "BF16" });
    const stored = await loadModel(path.join(dir, "m"), { weights: "stored" });
    const widened = await loadModel(path.join(dir, "m"), { weights: "f32" });
    assert.equal((stored.weights.layers[0]!.wq as { dtype?: string }).dtype, "bf16");
    const [s, s1] = logits(stored), [w, w1] = logits(widened);
    assert.deepEqual(bitsOf(s), bitsOf(w), "prefill logits bit for bit");
    assert.deepEqual(bitsOf(s1!), bitsOf(w1!), "decode logits bit for bit");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("packModel packs a model built in memory; generation through it matches the loader's packing", async () => {
  const m = await loadModel(STORIES_HF);
  packModel(m, "f16");
  const p = await loadModel(STORIES_HF, { weights: "f16" });
  for (let l = 0; l < m.config.nLayers; l++) {
    for (const op of LINEAR_OPS) assert.deepEqual(bitsOf(denseWeight(m.wasm, m.weights.layers[l]![op])), bitsOf(denseWeight(p.wasm, p.weights.layers[l]![op])), `${l}.${op}`);
  }
});

test("f16 refuses weights it cannot hold (|w| > 65504), naming the tensor; bf16 takes them", async () => {
  const m = await loadModel(STORIES_HF);
  const wq = denseLinear(m.weights.layers[1]!.wq, "wq");
  wq.data[5] = 1e5;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-f16-"));
  try {
    saveHF(m, path.join(dir, "m"), { dtype: "F32" });
    await assert.rejects(loadModel(path.join(dir, "m"), { weights: "f16" }), /model\.layers\.1\.self_attn\.q_proj\.weight: a weight 100000 is not a finite f16 value.*--weights-dtype bf16 or f32/);
    assert.equal((await loadModel(path.join(dir, "m"), { weights: "bf16" })).weights.layers[1]!.wq.format, "p8");
    assert.throws(() => packModel(m, "f16"), /model\.layers\.1\.self_attn\.q_proj\.weight: a weight 100000 is not a finite f16 value/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
