// The dense GEMMs against scalar references: f32_gemm_nt (Y = X·Wᵀ, 4x8 tiles, K blocks of 256, N blocks
// of 1024) and the strided/Gram GEMM f32_gemm_strided (C = α·op(A)·B, 4x8 tiles, K blocks of 256, N blocks
// of 64) with f32_gram_upper + f32_sym_mirror. One shape table per kernel, one loop; every output between
// guard words, accumulate 0 and 1, data aligned and 4 bytes off.
import { f32_gemm_nt, f32_gemm_nt_scratch } from "../../assembly/gemm";
import { f32_gemm_strided, f32_gemm_strided_scratch } from "../../assembly/gemm";
import { f32_gram_upper, f32_sym_mirror } from "../../assembly/f32-gram";
import { Block, Rng, expectClose, expectBits, fail, refNT, scratch } from "./harness";

// [M, N, K]: whole tiles (4, 8), sub-tiles, remainders, 1, primes; past one K block (257, 513) and one
// N block (1030, 2053); empty sizes.
const GEMM_NT: i32[][] = [
  [1, 1, 1], [1, 8, 1], [4, 8, 4], [3, 7, 5], [5, 9, 17], [4, 16, 256], [7, 13, 257], [8, 31, 3],
  [9, 17, 513], [13, 1030, 11], [2, 2053, 5], [17, 1, 64], [1, 33, 300], [0, 5, 5], [5, 0, 5], [5, 5, 0],
];

// [M, N, K, transposed A (1: A stored [K, lda], the Gram layout), upper, row padding of A, B, C]: 4x8
// tiles, edges, K past 256, N past the 64-column block; upper (M ≤ N) on and off the tile grid.
const STRIDED: i32[][] = [
  [1, 1, 1, 0, 0, 0], [4, 8, 1, 1, 0, 0], [3, 7, 2, 0, 0, 3], [5, 9, 3, 1, 0, 1], [4, 64, 5, 0, 0, 0],
  [8, 72, 7, 1, 0, 2], [13, 67, 257, 0, 0, 1], [17, 130, 11, 1, 0, 0], [9, 9, 300, 1, 0, 3], [8, 8, 5, 1, 1, 0],
  [13, 13, 9, 1, 1, 1], [16, 20, 3, 0, 1, 0], [33, 33, 17, 1, 1, 2], [5, 70, 6, 1, 1, 0], [3, 5, 0, 0, 0, 0],
  [3, 5, 0, 1, 1, 1], [24, 140, 300, 0, 0, 1], [40, 150, 260, 1, 1, 0], [12, 200, 33, 1, 0, 2],
];

// [T, cols] of the Gram update H += XᵀX (X [T, cols]).
const GRAM: i32[][] = [[1, 1], [3, 5], [17, 8], [300, 13], [5, 33], [257, 9], [2, 71]];

describe("f32_gemm_nt", () => {
  test("matches the scalar reference on the shape table", () => {
    const rng = new Rng(1234);
    for (let c = 0; c < GEMM_NT.length; c++) {
      const M = GEMM_NT[c][0], N = GEMM_NT[c][1], K = GEMM_NT[c][2];
      for (let acc = 0; acc < 2; acc++) {
        for (let skew = 0; skew < 2; skew++) {
          const label = `f32_gemm_nt M=${M} N=${N} K=${K} accumulate=${acc} skew=${skew}`;
          const x = new Block(M * K, skew).random(rng), w = new Block(N * K, skew).random(rng), y = new Block(M * N, skew).random(rng);
          const pack = scratch(f32_gemm_nt_scratch(M, N, K));
          const want = new StaticArray<f64>(M * N), sc = new StaticArray<f64>(M * N);
          refNT(x.copy(), w.copy(), acc ? y.copy() : null, M, N, K, want, sc);
          f32_gemm_nt(x.ptr, w.ptr, y.ptr, M, N, K, acc, pack.ptr);
          expectClose(label, y, want, sc);
          y.check(`${label} Y`);
          pack.check(`${label} pack (f32_gemm_nt_scratch bytes)`);
          x.free(); w.free(); y.free(); pack.free();
        }
      }
    }
  });
});

describe("f32_gemm_strided", () => {
  test("C (+)= alpha·op(A)·B matches the scalar reference on the shape table, upper computes j ≥ i", () => {
    const rng = new Rng(99);
    for (let c = 0; c < STRIDED.length; c++) {
      const M = STRIDED[c][0], N = STRIDED[c][1], K = STRIDED[c][2], tA = STRIDED[c][3], upper = STRIDED[c][4], pad = STRIDED[c][5];
      for (let acc = 0; acc < 2; acc++) {
        const alpha: f32 = acc ? -0.75 : 1.5;
        const lda = (tA ? M : K) + pad, ldb = N + pad, ldc = N + 2 * pad;
        const sai = tA ? 1 : lda, sak = tA ? lda : 1;
        const label = `f32_gemm_strided M=${M} N=${N} K=${K} transposedA=${tA} upper=${upper} pad=${pad} accumulate=${acc}`;
        const a = new Block((tA ? K : M) * lda).random(rng), b = new Block(K * ldb).random(rng), cm = new Block(M * ldc, pad & 1).random(rng);
        const av = a.copy(), bv = b.copy(), c0 = cm.copy();
        // want: the product for every j < N; padding columns must stay as they were (checked bit for bit).
        const want = new StaticArray<f64>(M * ldc), sc = new StaticArray<f64>(M * ldc);
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < ldc; j++) {
            const o = i * ldc + j;
            want[o] = <f64>c0[o];
            if (j >= N) continue;
            let s: f64 = 0, m: f64 = 0;
            for (let k = 0; k < K; k++) {
              const p = <f64>alpha * <f64>av[i * sai + k * sak] * <f64>bv[k * ldb + j];
              s += p;
              m += abs(p);
            }
            want[o] = acc ? <f64>c0[o] + s : s;
            sc[o] = m + (acc ? abs(<f64>c0[o]) : 0);
          }
        }
        // with B packed into panels (pack scratch) the same bits as straight from B
        const cp = new Block(M * ldc, pad & 1);
        for (let o = 0; o < M * ldc; o++) cp.set(o, c0[o]);
        const pk = new Block(f32_gemm_strided_scratch() / 4);
        f32_gemm_strided(a.ptr, sai, sak, b.ptr, ldb, cm.ptr, ldc, M, N, K, alpha, acc, upper, 0);
        f32_gemm_strided(a.ptr, sai, sak, b.ptr, ldb, cp.ptr, ldc, M, N, K, alpha, acc, upper, pk.ptr);
        expectBits(`${label} packed`, cp, cm.copy());
        cp.free(); pk.free();
        // upper = 1: j ≥ i is the product; j < i is either untouched or (inside a tile on the diagonal) the product too.
        for (let i = 0; i < M; i++) {
          for (let j = 0; j < ldc; j++) {
            const o = i * ldc + j;
            const got = <f64>cm.get(o);
            const same = cm.bits(o) == reinterpret<u32>(c0[o]);
            const close = abs(got - want[o]) <= 1e-5 * sc[o] + 1e-6;
            if (j >= N) {
              if (!same) fail(`${label}: C[${i}, ${j}] (row padding) written`);
            } else if (!(close || (upper && j < i && same))) {
              fail(`${label}: C[${i}, ${j}] (index ${o}): got ${got}, expected ${want[o]}${upper && j < i ? ` or the old ${c0[o]}` : ""}`);
            }
          }
        }
        cm.check(`${label} C`);
        a.free(); b.free(); cm.free();
      }
    }
  });

  test("f32_gram_upper + f32_sym_mirror equal the full product bit for bit, and XᵀX", () => {
    const rng = new Rng(7);
    for (let c = 0; c < GRAM.length; c++) {
      const T = GRAM[c][0], n = GRAM[c][1];
      const label = `f32_gram_upper T=${T} cols=${n}`;
      const x = new Block(T * n).random(rng);
      const h = new Block(n * n).fill(0), full = new Block(n * n).fill(0);
      f32_gram_upper(x.ptr, h.ptr, T, n);
      f32_sym_mirror(h.ptr, n);
      f32_gemm_strided(x.ptr, 1, n, x.ptr, n, full.ptr, n, n, n, T, 1, 1, 0, 0);
      expectBits(`${label} vs f32_gemm_strided upper=0`, h, full.copy());
      const xt = new StaticArray<f32>(n * T); // XᵀX = Xᵀ·(Xᵀ)ᵀ, an "nt" product of Xᵀ [cols, T] with itself
      for (let t = 0; t < T; t++) for (let i = 0; i < n; i++) xt[i * T + t] = x.get(t * n + i);
      const want = new StaticArray<f64>(n * n), sc = new StaticArray<f64>(n * n);
      refNT(xt, xt, null, n, n, T, want, sc);
      expectClose(label, h, want, sc);
      h.check(`${label} H`);
      full.check(`${label} full`);
      x.free(); h.free(); full.free();
    }
  });
});
