// The quantization kernels (assembly/f32-quant.ts) against the plain definition of compressed-tensors' grid:
// lo = min(min w, 0), hi = max(max w, 0); symmetric s = max(|lo|, hi)/((qmax − qmin)/2), z = 0; asymmetric
// s = (hi − lo)/(qmax − qmin), z = round(clamp(qmin − lo/s)); s ≥ eps; a weight goes to the grid point
// (q − z)·s of the integer q in [qmin, qmax] nearest to w/s + z (ties to the even q), found here by trying
// every q. Then the OBS sweep's quantizer (assembly/f32-obs.ts f32_obs_block with qs ≠ 0): with Hinv = I no
// error is fed forward, so it must give exactly the round-to-nearest result, its pruned (mask 0) weights +0.0.
// Outputs between guard words; values compared bit for bit.
import { f32_quant_params, f32_quant_rows } from "../../assembly/f32-quant";
import { f32_obs_block } from "../../assembly/f32-obs";
import { Block, Rng, expectBits, fail } from "./harness";

// [rows, cols, group]: a group dividing cols, not dividing it (a short last group), per channel (group = cols)
const SHAPES: i32[][] = [[1, 1, 1], [1, 8, 8], [2, 8, 4], [3, 16, 8], [2, 12, 8], [4, 64, 32], [3, 17, 17], [1, 128, 128], [5, 20, 7], [0, 8, 4]];
// [qmin, qmax]: int4, int8, int2
const RANGES: i32[][] = [[-8, 7], [-128, 127], [-2, 1]];

const EPS: f32 = 1.1920928955078125e-7;

function refParams(w: StaticArray<f32>, o: i32, n: i32, qmin: i32, qmax: i32, asym: bool, out: StaticArray<f32>): void {
  let lo: f32 = 0, hi: f32 = 0;
  for (let i = 0; i < n; i++) {
    if (w[o + i] < lo) lo = w[o + i];
    if (w[o + i] > hi) hi = w[o + i];
  }
  const range = <f32>(qmax - qmin);
  if (!asym) {
    const a = -lo > hi ? -lo : hi;
    let s = a / (range / 2);
    out[0] = s < EPS ? EPS : s;
    out[1] = 0;
    return;
  }
  let s = (hi - lo) / range;
  if (s < EPS) s = EPS;
  let z = <f32>qmin - lo / s;
  if (z < <f32>qmin) z = <f32>qmin;
  if (z > <f32>qmax) z = <f32>qmax;
  out[0] = s;
  out[1] = nearest(z);
}

/** the grid point nearest to w (searching every integer; ties to the even q) */
function refRound(w: f32, s: f32, z: f32, qmin: i32, qmax: i32): f32 {
  const x = w / s + z;
  let best = qmin;
  let bestD: f32 = Infinity;
  for (let q = qmin; q <= qmax; q++) {
    const d = abs(x - <f32>q);
    if (d < bestD || (d == bestD && (q & 1) == 0)) {
      best = q;
      bestD = d;
    }
  }
  return (<f32>best - z) * s;
}

/** Weights with exact zeros, a constant group and a wide spread, so every branch of the grid is taken. */
function weights(rng: Rng, n: i32): Block {
  const b = new Block(n, 1);
  for (let i = 0; i < n; i++) {
    const k = rng.int(6);
    b.set(i, k == 0 ? 0 : k == 1 ? <f32>0.5 : k == 2 ? -rng.f32() * 4 : rng.f32());
  }
  return b;
}

describe("f32_quant_params / f32_quant_rows", () => {
  test("round-to-nearest equals the nearest grid point of every group, symmetric and asymmetric", () => {
    const rng = new Rng(11);
    for (let c = 0; c < SHAPES.length; c++) {
      const rows = SHAPES[c][0], cols = SHAPES[c][1], group = SHAPES[c][2];
      const ng = (cols + group - 1) / group;
      for (let q = 0; q < RANGES.length; q++) {
        for (let a = 0; a < 2; a++) {
          const asym = a == 1;
          const qmin = RANGES[q][0], qmax = RANGES[q][1];
          const label = `${rows}x${cols} g${group} [${qmin}, ${qmax}] ${asym ? "asym" : "sym"}`;
          const w = weights(rng, rows * cols);
          const w0 = w.copy();
          const qs = new Block(rows * ng).fill(0);
          const qz = new Block(rows * ng).fill(0);
          for (let g = 0; g < ng; g++) f32_quant_params(w.ptr, cols, rows, g * group, min(group, cols - g * group), qs.ptr, asym ? qz.ptr : 0, ng, g, qmin, qmax);
          const wantS = new StaticArray<f32>(rows * ng), wantZ = new StaticArray<f32>(rows * ng), wantW = new StaticArray<f32>(rows * cols);
          const p = new StaticArray<f32>(2);
          for (let r = 0; r < rows; r++) {
            for (let g = 0; g < ng; g++) {
              refParams(w0, r * cols + g * group, min(group, cols - g * group), qmin, qmax, asym, p);
              wantS[r * ng + g] = p[0];
              wantZ[r * ng + g] = p[1];
            }
            for (let j = 0; j < cols; j++) wantW[r * cols + j] = refRound(w0[r * cols + j], wantS[r * ng + j / group], wantZ[r * ng + j / group], qmin, qmax);
          }
          expectBits(`${label} scales`, qs, wantS);
          if (asym) expectBits(`${label} zero points`, qz, wantZ);
          if (rows > 0 && cols > 0) f32_quant_rows(w.ptr, cols, rows, qs.ptr, asym ? qz.ptr : 0, ng, group, qmin, qmax);
          expectBits(`${label} weights`, w, wantW);
          for (let i = 0; i < rows * cols; i++) if (w0[i] == 0 && w.bits(i) != 0) fail(`${label}: zero weight ${i} became bits ${w.bits(i)}`);
          w.check(label);
          qs.check(label);
          qz.check(label);
        }
      }
    }
  });
});

describe("f32_obs_block quantizing", () => {
  test("with Hinv = I it is round-to-nearest of the kept weights on dynamic groups, pruned weights +0.0", () => {
    const rng = new Rng(23);
    const CASES: i32[][] = [[2, 8, 4], [3, 16, 8], [1, 32, 32], [4, 24, 8]];
    for (let c = 0; c < CASES.length; c++) {
      const rows = CASES[c][0], cols = CASES[c][1], group = CASES[c][2];
      const ng = cols / group;
      for (let a = 0; a < 2; a++) {
        const asym = a == 1;
        const label = `${rows}x${cols} g${group} ${asym ? "asym" : "sym"}`;
        const w = weights(rng, rows * cols);
        const mask = new Block(rows * cols);
        for (let i = 0; i < rows * cols; i++) mask.set(i, rng.int(4) == 0 ? 0 : 1);
        const w0 = w.copy();
        // the reference: zero the pruned weights, then round-to-nearest per group (the sweep fits each group on
        // its kept weights when it reaches it, and with Hinv = I nothing has changed the row by then)
        const ref = new Block(rows * cols);
        for (let i = 0; i < rows * cols; i++) ref.set(i, mask.get(i) == 0 ? 0 : w0[i]);
        const qsR = new Block(rows * ng).fill(0), qzR = new Block(rows * ng).fill(0);
        for (let g = 0; g < ng; g++) f32_quant_params(ref.ptr, cols, rows, g * group, group, qsR.ptr, asym ? qzR.ptr : 0, ng, g, -8, 7);
        f32_quant_rows(ref.ptr, cols, rows, qsR.ptr, asym ? qzR.ptr : 0, ng, group, -8, 7);
        for (let i = 0; i < rows * cols; i++) if (mask.get(i) == 0) ref.set(i, 0);
        const hinv = new Block(cols * cols).fill(0);
        for (let j = 0; j < cols; j++) hinv.set(j * cols + j, 1);
        const err = new Block(rows * cols).fill(0), s = new Block(rows * cols).fill(0);
        const qs = new Block(rows * ng).fill(0), qz = new Block(rows * ng).fill(0);
        const gidx = new Block(cols).fill(0);
        f32_obs_block(w.ptr, hinv.ptr, cols, err.ptr, s.ptr, mask.ptr, cols, 0, rows, 0, cols, 0, 0, qs.ptr, asym ? qz.ptr : 0, gidx.ptr, ng, group, -8, 7);
        expectBits(`${label} weights`, w, ref.copy());
        expectBits(`${label} scales`, qs, qsR.copy());
        const blocks: Block[] = [w, err, s, qs, qz, gidx, mask];
        for (let i = 0; i < blocks.length; i++) blocks[i].check(label);
      }
    }
  });
});
