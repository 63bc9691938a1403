// The mask kernels of pruning (assembly/f32-nm.ts) against the plain definition: keep an entry iff fewer
// than k (or n) entries beat it, where a beats b when |a| > |b|, or |a| = |b| and a comes first. Scores are
// full of ties (a few magnitudes, both signs, ±0) on every other row, so the tie rule is exercised; masks,
// products and counts are compared exactly. One table per kernel, one loop; outputs between guard words.
import { f32_topk_mask, f32_nm_mask, f32_mask_mul, f32_row_nnz } from "../../assembly/f32-nm";
import { Block, Rng, expectBits, expectI32 } from "./harness";

// [rows, cols] of f32_topk_mask; every shape runs k = −1, 0, 1, cols/2, cols − 1, cols, cols + 1.
const TOPK: i32[][] = [[1, 1], [1, 2], [2, 3], [1, 4], [3, 5], [2, 7], [1, 8], [2, 9], [3, 16], [1, 17], [2, 31], [2, 64], [1, 129]];

// [rows, groups, n, m] of f32_nm_mask: m a multiple of 4 (the SIMD rank count) and not (the scalar one).
const NM: i32[][] = [
  [1, 1, 2, 4], [3, 5, 2, 4], [2, 2, 1, 4], [2, 3, 0, 4], [2, 3, 4, 4], [1, 2, 2, 8], [3, 2, 4, 8], [2, 1, 3, 8],
  [1, 2, 5, 16], [2, 4, 1, 2], [2, 3, 2, 3], [1, 3, 1, 1], [3, 2, 3, 5], [0, 2, 2, 4],
];

// n of f32_mask_mul and [rows, cols] of f32_row_nnz: around the 4-lane step.
const MUL: i32[] = [0, 1, 3, 4, 5, 8, 17, 33];
const NNZ: i32[][] = [[1, 1], [2, 3], [1, 4], [3, 5], [2, 8], [3, 9], [1, 33], [0, 4], [2, 0]];

/** A score row: even rows from {0, ±0.25, ±0.5, ±0.75, ±1} with ±0 (ties everywhere), odd rows uniform. */
function scores(rng: Rng, rows: i32, cols: i32): Block {
  const s = new Block(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      let v: f32 = r & 1 ? rng.f32() : <f32>rng.int(5) * 0.25;
      if (rng.int(2)) v = -v;
      s.set(r * cols + j, v);
    }
  }
  return s;
}

/** 1 where fewer than `keep` of s[o .. o + len) beat s[o + j] (|·| by bit pattern, ties to the lower index). */
function keepMask(s: Block, o: i32, len: i32, keep: i32, want: StaticArray<f32>): void {
  for (let j = 0; j < len; j++) {
    const aj = s.bits(o + j) & 0x7fffffff;
    let rank = 0;
    for (let i = 0; i < len; i++) {
      const ai = s.bits(o + i) & 0x7fffffff;
      if (ai > aj || (ai == aj && i < j)) rank++;
    }
    want[o + j] = rank < keep ? 1 : 0;
  }
}

describe("f32_topk_mask", () => {
  test("keeps the k largest |score| of every row, ties to the lower index", () => {
    const rng = new Rng(5);
    for (let c = 0; c < TOPK.length; c++) {
      const rows = TOPK[c][0], cols = TOPK[c][1];
      const ks: i32[] = [-1, 0, 1, cols / 2, cols - 1, cols, cols + 1];
      for (let q = 0; q < ks.length; q++) {
        const k = ks[q];
        const label = `f32_topk_mask rows=${rows} cols=${cols} k=${k}`;
        const s = scores(rng, rows, cols), mask = new Block(rows * cols).fill(-1);
        const want = new StaticArray<f32>(rows * cols);
        for (let r = 0; r < rows; r++) keepMask(s, r * cols, cols, k, want);
        f32_topk_mask(s.ptr, mask.ptr, rows, cols, k);
        expectBits(label, mask, want);
        mask.check(`${label} mask`);
        s.free(); mask.free();
      }
    }
  });
});

describe("f32_nm_mask", () => {
  test("keeps the n largest |score| of every m consecutive entries, ties to the lower index", () => {
    const rng = new Rng(6);
    for (let c = 0; c < NM.length; c++) {
      const rows = NM[c][0], groups = NM[c][1], n = NM[c][2], m = NM[c][3];
      const cols = groups * m;
      const label = `f32_nm_mask rows=${rows} cols=${cols} ${n}:${m}`;
      const s = scores(rng, rows, cols), mask = new Block(rows * cols).fill(-1);
      const want = new StaticArray<f32>(rows * cols);
      for (let g = 0; g < rows * groups; g++) keepMask(s, g * m, m, n, want);
      f32_nm_mask(s.ptr, mask.ptr, rows, cols, n, m);
      expectBits(label, mask, want);
      mask.check(`${label} mask`);
      s.free(); mask.free();
    }
  });
});

describe("f32_mask_mul", () => {
  test("out = w where mask ≠ 0, else +0.0, into a new block and in place", () => {
    const rng = new Rng(8);
    for (let c = 0; c < MUL.length; c++) {
      const n = MUL[c];
      for (let inPlace = 0; inPlace < 2; inPlace++) {
        const label = `f32_mask_mul n=${n} inPlace=${inPlace}`;
        const w = new Block(n).random(rng), mask = scores(rng, 1, n);
        const want = new StaticArray<f32>(n);
        for (let i = 0; i < n; i++) want[i] = mask.get(i) != 0 ? w.get(i) : 0; // a select: +0.0 off the mask (src/sparse/zero.ts)
        const out = inPlace ? w : new Block(n).fill(0);
        f32_mask_mul(w.ptr, mask.ptr, out.ptr, n);
        expectBits(label, out, want);
        out.check(`${label} out`);
        if (!inPlace) out.free();
        w.free(); mask.free();
      }
    }
  });
});

describe("f32_row_nnz", () => {
  test("counts the nonzeros of every row (−0 is zero)", () => {
    const rng = new Rng(9);
    for (let c = 0; c < NNZ.length; c++) {
      const rows = NNZ[c][0], cols = NNZ[c][1];
      const label = `f32_row_nnz rows=${rows} cols=${cols}`;
      const w = scores(rng, rows, cols), out = new Block(rows).fill(-1);
      const want = new StaticArray<i32>(rows);
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < cols; j++) if ((w.bits(r * cols + j) & 0x7fffffff) != 0) want[r]++;
      }
      f32_row_nnz(w.ptr, out.ptr, rows, cols);
      expectI32(label, out, want);
      out.check(`${label} out`);
      w.free(); out.free();
    }
  });
});
