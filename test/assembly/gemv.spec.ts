// f32_gemv (y = W·x, 8 rows at a time, 4-lane K loop, scalar K tail; rows past a multiple of 8 one at a
// time with 8 lanes) against a scalar reference. One shape table, one loop; outputs between guard words,
// accumulate 0 and 1, data aligned and 4 bytes off.
import { f32_gemv } from "../../assembly/gemv";
import { Block, Rng, expectClose, refNT } from "./harness";

// [N, K]: N around the 8-row step (1, 7, 8, 9, 15, 16, 17, primes), K around the 4- and 8-lane steps and past them.
const GEMV: i32[][] = [
  [1, 1], [1, 4], [1, 9], [7, 3], [8, 8], [9, 5], [15, 17], [16, 4], [17, 31], [23, 64], [8, 67], [31, 1],
  [64, 129], [3, 257], [0, 5], [5, 0],
];

describe("f32_gemv", () => {
  test("matches the scalar reference on the shape table", () => {
    const rng = new Rng(42);
    for (let c = 0; c < GEMV.length; c++) {
      const N = GEMV[c][0], K = GEMV[c][1];
      for (let acc = 0; acc < 2; acc++) {
        for (let skew = 0; skew < 2; skew++) {
          const label = `f32_gemv N=${N} K=${K} accumulate=${acc} skew=${skew}`;
          const w = new Block(N * K, skew).random(rng), x = new Block(K, skew).random(rng), y = new Block(N, skew).random(rng);
          const want = new StaticArray<f64>(N), sc = new StaticArray<f64>(N);
          refNT(x.copy(), w.copy(), acc ? y.copy() : null, 1, N, K, want, sc); // y = W·x is X·Wᵀ with X = xᵀ
          f32_gemv(w.ptr, x.ptr, y.ptr, N, K, acc);
          expectClose(label, y, want, sc);
          y.check(`${label} y`);
          w.free(); x.free(); y.free();
        }
      }
    }
  });
});
