/** @file The element-wise kernels against the scalar reference, on lengths around the vector width. */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as ref from "../../src/kernels/reference.js";
import { kernels } from "../../src/kernels/index.js";
import { mulberry32, randomF32 } from "../helpers/random.js";
import { place, scoped, assertClose } from "./util.js";

const SIZES = [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 64, 100, 1000];
const rand = mulberry32(2024);

test("f32_rmsnorm matches llama2.c's formula exactly (rows 1..3, out = x and out ≠ x)", () => {
  for (const n of SIZES) for (const rows of [1, 2, 3]) for (const skew of [0, 1]) for (const inPlace of [false, true]) {
    scoped((w) => {
      const label = `rmsnorm rows=${rows} n=${n} skew=${skew} inPlace=${inPlace}`;
      const x = randomF32(rand, rows * n, -3, 3), g = randomF32(rand, n, 0.5, 1.5);
      const bx = place(w, x, skew), bg = place(w, g, skew);
      const bo = inPlace ? bx : place(w, new Float32Array(rows * n), skew);
      kernels(w).f32_rmsnorm(bx.ptr, bg.ptr, bo.ptr, rows, n, 1e-5);
      const want = new Float32Array(rows * n);
      ref.rmsnorm(x, g, want, rows, n, 1e-5);
      assertClose(label, bo.read(), want, 0, 0); // same operations in the same order: bit-exact
      bx.checkGuards(`${label} x`);
      bo.checkGuards(`${label} out`);
    });
  }
});

test("f32_softmax matches the reference and sums to 1", () => {
  for (const n of SIZES) for (const skew of [0, 1]) {
    scoped((w) => {
      const label = `softmax n=${n} skew=${skew}`;
      const x = randomF32(rand, n, -20, 20);
      const bx = place(w, x, skew);
      kernels(w).f32_softmax(bx.ptr, n);
      const want = x.slice();
      ref.softmax(want, n);
      const got = bx.read();
      assertClose(label, got, want, 1e-6, 1e-7);
      if (n > 0) assert.ok(Math.abs(got.reduce((a, b) => a + b, 0) - 1) < 1e-4, `${label}: sum ≠ 1`);
      bx.checkGuards(label);
    });
  }
});

test("f32_silu_mul, f32_add, f32_scale match the reference (with aliasing)", () => {
  for (const n of SIZES) for (const skew of [0, 1]) {
    scoped((w) => {
      const k = kernels(w);
      const a = randomF32(rand, n, -8, 8), b = randomF32(rand, n, -8, 8);
      let ba = place(w, a, skew), bb = place(w, b, skew), bo = place(w, new Float32Array(n), skew);
      const want = new Float32Array(n);

      k.f32_silu_mul(ba.ptr, bb.ptr, bo.ptr, n);
      ref.siluMul(a, b, want, n);
      assertClose(`silu_mul n=${n} skew=${skew}`, bo.read(), want, 1e-6, 1e-7);
      bo.checkGuards(`silu_mul n=${n} out`);
      k.f32_silu_mul(ba.ptr, bb.ptr, ba.ptr, n); // out aliases gate
      assertClose(`silu_mul n=${n} out=gate`, ba.read(), want, 1e-6, 1e-7);

      ba = place(w, a, skew);
      k.f32_add(ba.ptr, bb.ptr, bo.ptr, n);
      ref.add(a, b, want, n);
      assertClose(`add n=${n} skew=${skew}`, bo.read(), want, 0, 0);
      bo.checkGuards(`add n=${n} out`);
      k.f32_add(ba.ptr, bb.ptr, bb.ptr, n); // out aliases b
      assertClose(`add n=${n} out=b`, bb.read(), want, 0, 0);
      bb.checkGuards(`add n=${n} b`);

      const s = a.slice();
      k.f32_scale(ba.ptr, 0.37, n);
      ref.scale(s, 0.37, n);
      assertClose(`scale n=${n} skew=${skew}`, ba.read(), s, 0, 0);
      ba.checkGuards(`scale n=${n}`);
    });
  }
});

test("f32_add_bias_rows matches the reference", () => {
  for (const n of SIZES) for (const rows of [0, 1, 3, 5]) for (const skew of [0, 1]) {
    scoped((w) => {
      const label = `add_bias_rows rows=${rows} n=${n} skew=${skew}`;
      const y = randomF32(rand, rows * n), b = randomF32(rand, n);
      const by = place(w, y, skew), bb = place(w, b, skew);
      kernels(w).f32_add_bias_rows(by.ptr, bb.ptr, rows, n);
      ref.addBiasRows(y, b, rows, n);
      assertClose(label, by.read(), y, 0, 0);
      by.checkGuards(label);
    });
  }
});

test("f32_rope_interleaved and f32_rope_half match the reference", () => {
  for (const headDim of [2, 4, 6, 8, 10, 16, 18, 34, 64, 128]) for (const nHeads of [1, 2, 3, 5]) for (const skew of [0, 1]) {
    scoped((w) => {
      const k = kernels(w);
      const x = randomF32(rand, nHeads * headDim, -4, 4);
      const theta = randomF32(rand, headDim / 2, 0, 100);
      const cos = theta.map(Math.cos), sin = theta.map(Math.sin);
      const bc = place(w, cos, skew), bs = place(w, sin, skew);
      for (const [name, kernel, reference] of [
        ["rope_interleaved", k.f32_rope_interleaved, ref.ropeInterleaved],
        ["rope_half", k.f32_rope_half, ref.ropeHalf],
      ] as const) {
        const label = `${name} nHeads=${nHeads} headDim=${headDim} skew=${skew}`;
        const bx = place(w, x, skew);
        kernel(bx.ptr, bc.ptr, bs.ptr, nHeads, headDim);
        const want = x.slice();
        reference(want, cos, sin, nHeads, headDim);
        assertClose(label, bx.read(), want, 0, 0);
        bx.checkGuards(label);
      }
    });
  }
});

test("kernels reject negative sizes with an assertion", () => {
  scoped((w) => {
    assert.throws(() => kernels(w).f32_gemv(0, 0, 0, -1, 4, 0), /kernel assertion failed/);
    assert.throws(() => kernels(w).f32_rope_half(0, 0, 0, 1, 3), /kernel assertion failed/);
  });
});

test("f32_compute_peak (bench kernels' compute ceiling) does its steps: 10 chains v ← v·0.999 + x, summed", () => {
  scoped((w) => {
    const f = Math.fround;
    for (const steps of [0, 1, 7, 300]) {
      const chains = Array.from({ length: 10 }, (_, i) => f(i));
      for (let s = 0; s < steps; s++) for (let i = 0; i < 10; i++) chains[i] = f(f(chains[i]! * f(0.999)) + f(1e-3));
      // the kernel's lane sums: 4 equal lanes of (((v0+v1)+(v2+v3))+((v4+v5)+(v6+v7))) + (v8+v9)
      const c = chains;
      const t = f(f(f(f(c[0]! + c[1]!) + f(c[2]! + c[3]!)) + f(f(c[4]! + c[5]!) + f(c[6]! + c[7]!))) + f(c[8]! + c[9]!));
      const want = f(f(t + t) + f(t + t));
      assert.equal(kernels(w).f32_compute_peak(steps, 1e-3, 0), want, `mul then add, ${steps} steps`);
      const fused = kernels(w).f32_compute_peak(steps, 1e-3, 1);
      assert.ok(Math.abs(fused - want) <= 1e-5 * Math.abs(want) + 1e-6, `madd, ${steps} steps: ${fused} vs ${want}`);
    }
  });
});
