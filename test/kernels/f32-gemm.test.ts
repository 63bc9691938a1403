/** @file f32_gemm_nt against the scalar reference on edge shapes (tile, sub-tile, remainder; K blocks). */
import { test } from "node:test";
import * as ref from "../../src/kernels/reference.js";
import { kernels } from "../../src/kernels/index.js";
import { mulberry32, randomF32 } from "../helpers/random.js";
import { place, scoped, assertClose, abs } from "./util.js";

const SMALL = [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33];
const shapes: [number, number, number][] = [];
for (const M of [1, 3, 4, 5, 9]) for (const N of [1, 7, 8, 9, 17]) for (const K of [1, 3, 8, 17]) shapes.push([M, N, K]);
for (const s of SMALL) shapes.push([s, s, s], [1, s, 64], [s, 1, 64], [s, 33, 1]);
// Past the K block (256) and N block (1024): more than one pack, K remainders, N remainders.
shapes.push([64, 64, 64], [100, 100, 100], [13, 40, 300], [6, 1030, 257], [33, 17, 513], [2, 2050, 5], [0, 5, 5], [5, 0, 5], [5, 5, 0]);

test("f32_gemm_nt matches the reference on edge shapes, accumulate 0/1, aligned and 4-byte-skewed", () => {
  const rand = mulberry32(1234);
  for (const [M, N, K] of shapes) {
    for (const accumulate of [0, 1]) {
      for (const skew of [0, 1]) {
        scoped((w) => {
          const k = kernels(w);
          const label = `gemm_nt M=${M} N=${N} K=${K} accumulate=${accumulate} skew=${skew}`;
          const x = randomF32(rand, M * K), wt = randomF32(rand, N * K), y0 = randomF32(rand, M * N);
          const bx = place(w, x, skew), bw = place(w, wt, skew), by = place(w, y0, skew);
          const pack = w.arena.allocBytes(k.f32_gemm_nt_scratch(M, N, K));
          k.f32_gemm_nt(bx.ptr, bw.ptr, by.ptr, M, N, K, accumulate, pack);
          const want = y0.slice();
          ref.gemmNT(x, wt, want, M, N, K, accumulate === 1);
          const scale = accumulate ? abs(y0) : new Float32Array(M * N);
          ref.gemmNT(abs(x), abs(wt), scale, M, N, K, true);
          assertClose(label, by.read(), want, 1e-5, 1e-6, scale);
          bx.checkGuards(`${label} X`);
          bw.checkGuards(`${label} W`);
          by.checkGuards(`${label} Y`);
        });
      }
    }
  }
});

test("f32_gemm_nt is deterministic", () => {
  scoped((w) => {
    const k = kernels(w);
    const rand = mulberry32(7);
    const [M, N, K] = [37, 45, 300];
    const bx = place(w, randomF32(rand, M * K)), bw = place(w, randomF32(rand, N * K)), by = place(w, new Float32Array(M * N));
    const pack = w.arena.allocBytes(k.f32_gemm_nt_scratch(M, N, K));
    k.f32_gemm_nt(bx.ptr, bw.ptr, by.ptr, M, N, K, 0, pack);
    const first = by.read();
    k.f32_gemm_nt(bx.ptr, bw.ptr, by.ptr, M, N, K, 0, pack);
    assertClose("gemm_nt rerun", by.read(), first, 0, 0);
  });
});
