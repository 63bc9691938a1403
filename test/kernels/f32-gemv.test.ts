/** @file f32_gemv against the scalar reference on edge shapes. */
import { test } from "node:test";
import * as ref from "../../src/kernels/reference.js";
import { kernels } from "../../src/kernels/index.js";
import { mulberry32, randomF32 } from "../helpers/random.js";
import { place, scoped, assertClose, abs } from "./util.js";

const SIZES = [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 64, 100];

test("f32_gemv matches the reference on edge shapes, accumulate 0/1, aligned and 4-byte-skewed", () => {
  const rand = mulberry32(99);
  const shapes: [number, number][] = [];
  for (const N of SIZES) for (const K of SIZES) shapes.push([N, K]);
  shapes.push([1, 4096], [4096, 1], [37, 1000]);
  for (const [N, K] of shapes) {
    for (const accumulate of [0, 1]) {
      for (const skew of [0, 1]) {
        scoped((w) => {
          const label = `gemv N=${N} K=${K} accumulate=${accumulate} skew=${skew}`;
          const wt = randomF32(rand, N * K), x = randomF32(rand, K), y0 = randomF32(rand, N);
          const bw = place(w, wt, skew), bx = place(w, x, skew), by = place(w, y0, skew);
          kernels(w).f32_gemv(bw.ptr, bx.ptr, by.ptr, N, K, accumulate);
          const want = y0.slice();
          ref.gemv(wt, x, want, N, K, accumulate === 1);
          const scale = accumulate ? abs(y0) : new Float32Array(N);
          ref.gemv(abs(wt), abs(x), scale, N, K, true);
          assertClose(label, by.read(), want, 1e-5, 1e-6, scale);
          bw.checkGuards(`${label} W`);
          bx.checkGuards(`${label} x`);
          by.checkGuards(`${label} y`);
        });
      }
    }
  }
});
