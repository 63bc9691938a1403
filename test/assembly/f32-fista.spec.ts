// f32_fista_step (the soft threshold, the optional mask, the gradient restart test and the momentum step of
// one FISTA iteration, assembly/f32-fista.ts) against a scalar reference that follows the kernel's documented
// order of operations (restart dot product in 4 lanes, (l0 + l1) + (l2 + l3), then the tail), so every output
// (W⁺, the next Y, t) must match bit for bit; f32_row_dot (the same lane order) likewise. One shape table,
// one loop; outputs between guard words.
import { f32_fista_step, f32_row_dot } from "../../assembly/f32-fista";
import { Block, Rng, expectBits, fail } from "./harness";

// [rows, cols]: cols around the 4-lane step (1, 3, 4, 5, 7, 8, 9, 16, 17, primes); no rows.
const FISTA: i32[][] = [[1, 1], [1, 3], [2, 4], [3, 5], [2, 7], [1, 8], [4, 9], [3, 16], [2, 17], [5, 33], [3, 64], [0, 4]];

let restarts = 0;
let steps = 0;

/** Σ_j a[o + j]·b[o + j] in the kernels' order: 4 lanes over j ≡ lane (mod 4), (l0 + l1) + (l2 + l3), then the tail. */
function laneDot(a: StaticArray<f32>, b: StaticArray<f32>, o: i32, cols: i32): f32 {
  const lane = new StaticArray<f32>(4);
  const c4 = cols & ~3;
  for (let j = 0; j < c4; j++) lane[j & 3] += a[o + j] * b[o + j];
  let s: f32 = (lane[0] + lane[1]) + (lane[2] + lane[3]);
  for (let j = c4; j < cols; j++) s += a[o + j] * b[o + j];
  return s;
}

/** The step of one row r, scalar: writes wNew, y and t of row r (arrays hold all rows). */
function refRow(
  y: StaticArray<f32>, g: StaticArray<f32>, b: StaticArray<f32>, wOld: StaticArray<f32>, wNew: StaticArray<f32>,
  lam: StaticArray<f32>, t: StaticArray<f32>, mask: StaticArray<f32> | null, r: i32, cols: i32, eta: f32,
): void {
  const o = r * cols;
  const theta: f32 = eta * lam[r];
  const twoEta: f32 = 2 * eta;
  const du = new StaticArray<f32>(cols), dv = new StaticArray<f32>(cols);
  for (let j = 0; j < cols; j++) {
    const yv = y[o + j];
    const z: f32 = yv - twoEta * (g[o + j] - b[o + j]);
    let w: f32 = z - min(max(z, -theta), theta);
    if (mask && mask[o + j] == 0) w = 0; // +0.0 off the support, as the kernel (a select, not a product)
    wNew[o + j] = w;
    du[j] = yv - w;
    dv[j] = w - wOld[o + j];
  }
  const dot = laneDot(du, dv, 0, cols);
  let beta: f32 = 0;
  if (dot > 0) {
    t[r] = 1;
    restarts++;
  } else {
    const tk = t[r];
    const tn: f32 = (1 + sqrt<f32>(1 + 4 * tk * tk)) / 2;
    beta = (tk - 1) / tn;
    t[r] = tn;
    steps++;
  }
  for (let j = 0; j < cols; j++) y[o + j] = wNew[o + j] + beta * (wNew[o + j] - wOld[o + j]);
}

describe("f32_fista_step", () => {
  test("matches the scalar reference bit for bit on the shape table, with and without a mask", () => {
    const rng = new Rng(31);
    for (let c = 0; c < FISTA.length; c++) {
      const rows = FISTA[c][0], cols = FISTA[c][1];
      for (let masked = 0; masked < 2; masked++) {
        for (let skew = 0; skew < 2; skew++) {
          const n = rows * cols;
          const eta: f32 = 0.05 + 0.4 * abs(rng.f32());
          const label = `f32_fista_step rows=${rows} cols=${cols} mask=${masked} skew=${skew} eta=${eta}`;
          const y = new Block(n, skew).random(rng), g = new Block(n, skew).random(rng), b = new Block(n, skew).random(rng);
          const wOld = new Block(n, skew).random(rng), wNew = new Block(n, skew).fill(0);
          const lam = new Block(rows), t = new Block(rows), mask = new Block(n, skew);
          for (let r = 0; r < rows; r++) {
            lam.set(r, rng.int(4) == 0 ? 0 : abs(rng.f32()));
            t.set(r, rng.int(3) == 0 ? 1 : 1 + 2 * abs(rng.f32()));
          }
          for (let i = 0; i < n; i++) mask.set(i, <f32>rng.int(2));
          const ry = y.copy(), rt = t.copy(), rw = new StaticArray<f32>(n);
          const gv = g.copy(), bv = b.copy(), wv = wOld.copy();
          for (let r = 0; r < rows; r++) refRow(ry, gv, bv, wv, rw, lam.copy(), rt, masked ? mask.copy() : null, r, cols, eta);
          f32_fista_step(y.ptr, g.ptr, b.ptr, wOld.ptr, wNew.ptr, lam.ptr, t.ptr, masked ? mask.ptr : 0, rows, cols, eta);
          expectBits(`${label} W⁺`, wNew, rw);
          expectBits(`${label} Y`, y, ry);
          expectBits(`${label} t`, t, rt);
          expectBits(`${label} G (input) unchanged`, g, gv);
          expectBits(`${label} B (input) unchanged`, b, bv);
          expectBits(`${label} W (input) unchanged`, wOld, wv);
          wNew.check(`${label} W⁺`);
          y.check(`${label} Y`);
          t.check(`${label} t`);
          y.free(); g.free(); b.free(); wOld.free(); wNew.free(); lam.free(); t.free(); mask.free();
        }
      }
    }
    // the table must reach both branches of the restart test, or half of the kernel went untested
    if (restarts == 0 || steps == 0) fail(`f32_fista_step: ${restarts} restarts and ${steps} momentum steps over the table; both must occur`);
  });
});

describe("f32_row_dot", () => {
  test("matches the lane-ordered scalar dot product bit for bit on the shape table", () => {
    const rng = new Rng(32);
    for (let c = 0; c < FISTA.length; c++) {
      const rows = FISTA[c][0], cols = FISTA[c][1];
      const label = `f32_row_dot rows=${rows} cols=${cols}`;
      const a = new Block(rows * cols, 1).random(rng), b = new Block(rows * cols).random(rng), out = new Block(rows).fill(0);
      const av = a.copy(), bv = b.copy(), want = new StaticArray<f32>(rows);
      for (let r = 0; r < rows; r++) want[r] = laneDot(av, bv, r * cols, cols);
      f32_row_dot(a.ptr, b.ptr, out.ptr, rows, cols);
      expectBits(label, out, want);
      out.check(`${label} out`);
      a.free(); b.free(); out.free();
    }
  });
});
