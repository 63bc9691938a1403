/** @file f32_attention against the scalar reference: MHA and GQA, odd head sizes, T = 0, 1, …, padded kv rows. */
import { test } from "node:test";
import * as ref from "../../src/kernels/reference.js";
import { kernels } from "../../src/kernels/index.js";
import { mulberry32, randomF32 } from "../helpers/random.js";
import { place, scoped, assertClose } from "./util.js";

test("f32_attention matches the reference (MHA, GQA, odd headDim, padded kvStride)", () => {
  const rand = mulberry32(4242);
  const cases: [number, number, number, number, number][] = []; // nHeads, nKvHeads, headDim, T, extra stride
  for (const [nh, nkv] of [[1, 1], [4, 4], [4, 2], [6, 2], [8, 1]]) {
    for (const hd of [1, 2, 3, 4, 5, 8, 9, 16, 17, 64]) {
      for (const T of [1, 2, 7, 33]) cases.push([nh, nkv, hd, T, hd % 3]);
    }
  }
  cases.push([4, 2, 64, 300, 0], [2, 1, 8, 0, 0]);
  for (const [nHeads, nKvHeads, headDim, T, extra] of cases) {
    for (const skew of [0, 1]) {
      scoped((w) => {
        const label = `attention nHeads=${nHeads} nKvHeads=${nKvHeads} headDim=${headDim} T=${T} kvStride+${extra} skew=${skew}`;
        const kvStride = nKvHeads * headDim + extra;
        const q = randomF32(rand, nHeads * headDim, -2, 2);
        const kc = randomF32(rand, T * kvStride, -2, 2), vc = randomF32(rand, T * kvStride);
        const bq = place(w, q, skew), bk = place(w, kc, skew), bv = place(w, vc, skew);
        const bo = place(w, new Float32Array(nHeads * headDim), skew), bs = place(w, new Float32Array(T), skew);
        kernels(w).f32_attention(bq.ptr, bk.ptr, bv.ptr, bo.ptr, bs.ptr, nHeads, nKvHeads, headDim, T, kvStride);
        const want = new Float32Array(nHeads * headDim);
        ref.attention(q, kc, vc, want, nHeads, nKvHeads, headDim, T, kvStride);
        assertClose(label, bo.read(), want, 1e-5, 1e-5);
        for (const [name, b] of [["q", bq], ["k", bk], ["v", bv], ["out", bo], ["scores", bs]] as const) b.checkGuards(`${label} ${name}`);
        assertClose(`${label} q untouched`, bq.read(), q, 0, 0);
      });
    }
  }
});
