// The 2:4 sparse kernels in the "4x" layout (assembly/spmm-nm.ts), f32 and half-precision values, against the dense product of the same
// weights: f32_spmv_2of4_4x (decode) and f32_spmm_2of4_4x_nt (prefill: 16/8/4-lane M tiles, K panels of 256,
// N chunks of 128 blocks). The test writes the packed layout itself from a random choice of the 2 kept columns
// of every group, so the reference is the dense matrix that layout means. One shape table per kernel, one loop.
import {
  f32_spmv_2of4_4x, bf16_spmv_2of4_4x, f16_spmv_2of4_4x, f32_spmm_2of4_4x_nt, bf16_spmm_2of4_4x_nt, f16_spmm_2of4_4x_nt, f32_spmm_nt_scratch,
} from "../../assembly/spmm-nm";
import { Block, Rng, HalfRng, DT_F32, DT_BF16, DT_NAMES, storeWeight, expectClose, refNT, scratch } from "./harness";

// [N, K]: N around the 4-row block and the 2-block step (padding rows), K a multiple of 4 (0 included).
const SPMV: i32[][] = [
  [1, 4], [2, 8], [3, 12], [4, 4], [5, 20], [7, 64], [8, 8], [9, 260], [12, 36], [13, 4], [17, 28], [33, 100], [5, 0], [0, 8],
];

// [M, N, K]: M giving every mix of 16/8/4-lane tiles (Mp = 4, 8, 12, 16, 20, 24, 28, 36), N with padding rows
// and past one 512-row chunk, K past one 256-column panel; empty sizes.
const SPMM: i32[][] = [
  [1, 1, 4], [3, 2, 8], [4, 4, 4], [5, 5, 20], [8, 3, 12], [12, 9, 16], [16, 7, 256], [17, 13, 260], [21, 4, 36],
  [27, 17, 8], [33, 6, 516], [2, 515, 8], [9, 3, 0], [0, 4, 4], [4, 0, 4],
];

/** The two kept columns of a group: the 6 pairs c0 < c1. */
const PAIRS: i32[] = [0, 1, 0, 2, 0, 3, 1, 2, 1, 3, 2, 3];

/**
 * A random 2:4 W [N, K] in the kernel layout (vals 64-aligned, idx bytes) with values of dtype `dt` (f32:
 * [NB][G][2][4]; half: [NB][G][4][2]), and as the dense matrix it means.
 */
class Sparse24 {
  vals: Block;
  idx: Block;
  dense: StaticArray<f32>;

  constructor(rng: Rng, readonly N: i32, readonly K: i32, readonly dt: i32 = DT_F32) {
    const G = K >> 2, NB = (N + 3) >> 2;
    const h = new HalfRng(rng);
    this.vals = new Block(dt == DT_F32 ? NB * G * 8 : NB * G * 4).fill(0);
    this.idx = new Block((NB * G * 2 + 3) >> 2).fill(0);
    this.dense = new StaticArray<f32>(N * K);
    for (let n = 0; n < NB * 4; n++) {
      const b = n >> 2, r = n & 3;
      for (let g = 0; g < G; g++) {
        // real rows: a random pair, and now and then a kept value that is zero; padding rows (n ≥ N): zeros
        // at columns 0 and 1, as src/sparse/nm.ts writes them
        const p = n < N ? rng.int(6) : 0;
        for (let s = 0; s < 2; s++) {
          const col = PAIRS[2 * p + s];
          const keep = n < N && rng.int(8) != 0;
          const v: f32 = keep ? h.next(dt) : 0;
          const o = b * G + g;
          storeWeight(this.vals.ptr, dt == DT_F32 ? o * 8 + s * 4 + r : o * 8 + r * 2 + s, dt, keep ? h.bits : 0);
          const ib = this.idx.ptr + <usize>(o * 2 + s);
          store<u8>(ib, load<u8>(ib) | <u8>(col << (2 * r)));
          if (n < N) this.dense[n * K + 4 * g + col] = v;
        }
      }
    }
  }

  free(): void {
    this.vals.free();
    this.idx.free();
  }
}

function spmv(dt: i32, vals: usize, idx: usize, x: usize, y: usize, N: i32, K: i32): void {
  if (dt == DT_F32) f32_spmv_2of4_4x(vals, idx, x, y, N, K);
  else if (dt == DT_BF16) bf16_spmv_2of4_4x(vals, idx, x, y, N, K);
  else f16_spmv_2of4_4x(vals, idx, x, y, N, K);
}

function spmm(dt: i32, x: usize, vals: usize, idx: usize, y: usize, M: i32, N: i32, K: i32, work: usize): void {
  if (dt == DT_F32) f32_spmm_2of4_4x_nt(x, vals, idx, y, M, N, K, work);
  else if (dt == DT_BF16) bf16_spmm_2of4_4x_nt(x, vals, idx, y, M, N, K, work);
  else f16_spmm_2of4_4x_nt(x, vals, idx, y, M, N, K, work);
}

describe("*_spmv_2of4_4x", () => {
  test("equals the dense W·x on the shape table, f32 / bf16 / f16 values", () => {
    const rng = new Rng(24);
    for (let c = 0; c < SPMV.length; c++) {
      const N = SPMV[c][0], K = SPMV[c][1];
      for (let v = 0; v < 6; v++) {
        const skew = v & 1, dt = v >> 1;
        const label = `${DT_NAMES[dt]}_spmv_2of4_4x N=${N} K=${K} skew=${skew}`;
        const w = new Sparse24(rng, N, K, dt);
        const x = new Block(K, skew).random(rng), y = new Block(N, skew).random(rng);
        const want = new StaticArray<f64>(N), sc = new StaticArray<f64>(N);
        refNT(x.copy(), w.dense, null, 1, N, K, want, sc);
        spmv(dt, w.vals.ptr, w.idx.ptr, x.ptr, y.ptr, N, K);
        expectClose(label, y, want, sc);
        y.check(`${label} y`);
        w.free(); x.free(); y.free();
      }
    }
  });
});

describe("*_spmm_2of4_4x_nt", () => {
  test("equals the dense X·Wᵀ on the shape table, f32 / bf16 / f16 values, within its scratch", () => {
    const rng = new Rng(2424);
    for (let c = 0; c < SPMM.length; c++) {
      const M = SPMM[c][0], N = SPMM[c][1], K = SPMM[c][2];
      for (let v = 0; v < 6; v++) {
        const skew = v & 1, dt = v >> 1;
        const label = `${DT_NAMES[dt]}_spmm_2of4_4x_nt M=${M} N=${N} K=${K} skew=${skew}`;
        const w = new Sparse24(rng, N, K, dt);
        const x = new Block(M * K, skew).random(rng), y = new Block(M * N, skew).random(rng);
        const work = scratch(f32_spmm_nt_scratch(M, N, K));
        const want = new StaticArray<f64>(M * N), sc = new StaticArray<f64>(M * N);
        refNT(x.copy(), w.dense, null, M, N, K, want, sc);
        spmm(dt, x.ptr, w.vals.ptr, w.idx.ptr, y.ptr, M, N, K, work.ptr);
        expectClose(label, y, want, sc);
        y.check(`${label} Y`);
        work.check(`${label} scratch (f32_spmm_nt_scratch bytes)`);
        w.free(); x.free(); y.free(); work.free();
      }
    }
  });
});
