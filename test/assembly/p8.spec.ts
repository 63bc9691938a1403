// The p8 inference kernels (assembly/gemv.ts *_gemv_p8, assembly/gemm.ts *_gemm_p8_nt: weights in 8-row
// K-major panels, f32 / bf16 / f16) against the dense product of the weights the panels mean (half values
// generated exactly, widened by their definition). One shape table per kernel, every dtype, outputs between
// guard words, x/y aligned and 4 bytes off (panels are 16-aligned by contract); the GEMM's pack scratch guarded.
import { f32_gemv_p8, bf16_gemv_p8, f16_gemv_p8 } from "../../assembly/gemv";
import { f32_gemm_p8_nt, bf16_gemm_p8_nt, f16_gemm_p8_nt, gemm_p8_nt_scratch } from "../../assembly/gemm";
import { Block, Rng, PackedP8, DT_F32, DT_BF16, DT_NAMES, expectClose, refNT, scratch } from "./harness";

// [N, K]: N around a panel (8) and a panel pair (16) with padding rows, K odd / even / 1 / 0.
const GEMV: i32[][] = [
  [1, 1], [1, 4], [7, 3], [8, 8], [9, 5], [15, 17], [16, 4], [17, 31], [23, 64], [24, 67], [31, 1], [40, 129], [5, 0], [0, 5],
];

// [M, N, K]: M around the 4-row strip and past MC = 256 strips (260), N with padding rows, K past KC = 256.
const GEMM: i32[][] = [
  [1, 1, 1], [2, 8, 3], [4, 8, 4], [5, 9, 17], [8, 16, 256], [7, 13, 257], [3, 31, 3], [260, 9, 20], [13, 17, 513],
  [64, 24, 40], [1, 33, 300], [0, 5, 5], [5, 0, 5], [5, 5, 0],
];

function gemv(dt: i32, w: usize, x: usize, y: usize, N: i32, K: i32): void {
  if (dt == DT_F32) f32_gemv_p8(w, x, y, N, K);
  else if (dt == DT_BF16) bf16_gemv_p8(w, x, y, N, K);
  else f16_gemv_p8(w, x, y, N, K);
}

function gemm(dt: i32, x: usize, w: usize, y: usize, M: i32, N: i32, K: i32, pack: usize): void {
  if (dt == DT_F32) f32_gemm_p8_nt(x, w, y, M, N, K, pack);
  else if (dt == DT_BF16) bf16_gemm_p8_nt(x, w, y, M, N, K, pack);
  else f16_gemm_p8_nt(x, w, y, M, N, K, pack);
}

describe("*_gemv_p8", () => {
  test("equals the dense W·x on the shape table, every dtype", () => {
    const rng = new Rng(88);
    for (let c = 0; c < GEMV.length; c++) {
      const N = GEMV[c][0], K = GEMV[c][1];
      for (let dt = 0; dt < 3; dt++) {
        for (let skew = 0; skew < 2; skew++) {
          const label = `${DT_NAMES[dt]}_gemv_p8 N=${N} K=${K} skew=${skew}`;
          const w = new PackedP8(rng, N, K, dt);
          const x = new Block(K, skew).random(rng), y = new Block(N, skew).random(rng);
          const want = new StaticArray<f64>(N), sc = new StaticArray<f64>(N);
          refNT(x.copy(), w.dense, null, 1, N, K, want, sc);
          gemv(dt, w.panels.ptr, x.ptr, y.ptr, N, K);
          expectClose(label, y, want, sc);
          y.check(`${label} y`);
          w.panels.check(`${label} panels`);
          w.free(); x.free(); y.free();
        }
      }
    }
  });
});

describe("*_gemm_p8_nt", () => {
  test("equals the dense X·Wᵀ on the shape table, every dtype, within its pack scratch", () => {
    const rng = new Rng(8888);
    for (let c = 0; c < GEMM.length; c++) {
      const M = GEMM[c][0], N = GEMM[c][1], K = GEMM[c][2];
      for (let dt = 0; dt < 3; dt++) {
        for (let skew = 0; skew < 2; skew++) {
          const label = `${DT_NAMES[dt]}_gemm_p8_nt M=${M} N=${N} K=${K} skew=${skew}`;
          const w = new PackedP8(rng, N, K, dt);
          const x = new Block(M * K, skew).random(rng), y = new Block(M * N, skew).random(rng);
          const pack = scratch(gemm_p8_nt_scratch(M, K));
          const want = new StaticArray<f64>(M * N), sc = new StaticArray<f64>(M * N);
          refNT(x.copy(), w.dense, null, M, N, K, want, sc);
          gemm(dt, x.ptr, w.panels.ptr, y.ptr, M, N, K, pack.ptr);
          expectClose(label, y, want, sc);
          y.check(`${label} Y`);
          pack.check(`${label} pack (gemm_p8_nt_scratch bytes)`);
          w.free(); x.free(); y.free(); pack.free();
        }
      }
    }
  });

  test("a row's bits do not depend on the batch it came in (panel-major and block-major orders alike)", () => {
    // [M, N, K]: M > 256 rows and 64 x 3000 are block-major, their 5-row slices panel-major (gemmP8)
    const CASES: i32[][] = [[260, 9, 300], [64, 17, 3000], [13, 16, 513]];
    const rng = new Rng(4242);
    for (let c = 0; c < CASES.length; c++) {
      const M = CASES[c][0], N = CASES[c][1], K = CASES[c][2];
      for (let dt = 0; dt < 3; dt++) {
        const label = `${DT_NAMES[dt]}_gemm_p8_nt M=${M} N=${N} K=${K}`;
        const w = new PackedP8(rng, N, K, dt);
        const x = new Block(M * K).random(rng), y = new Block(M * N), ys = new Block(5 * N);
        const pack = scratch(max(gemm_p8_nt_scratch(M, K), gemm_p8_nt_scratch(5, K)));
        gemm(dt, x.ptr, w.panels.ptr, y.ptr, M, N, K, pack.ptr);
        for (let m0 = 0; m0 < M; m0 += 5) {
          const m = min(5, M - m0);
          gemm(dt, x.ptr + (<usize>(m0 * K) << 2), w.panels.ptr, ys.ptr, m, N, K, pack.ptr);
          for (let i = 0; i < m * N; i++) {
            if (ys.bits(i) != y.bits(m0 * N + i)) throw new Error(`${label}: row ${m0 + i / N} col ${i % N} differs alone (5-row batch) and in the batch of ${M}`);
          }
        }
        w.free(); x.free(); y.free(); ys.free(); pack.free();
      }
    }
  });
});
