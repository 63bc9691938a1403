/**
 * @file The sparse kernels (assembly/spmm-nm.ts, spmm-csr.ts) against the scalar dense reference on the
 * unpacked weights: random matrices, awkward shapes (tile, sub-tile and remainder sizes in N, K and M), all-zero
 * rows, fully dense groups / rows, batch 1..64; guard words around outputs; pack → unpack bit-exact.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as ref from "../../src/kernels/reference.js";
import { pack2of4, unpack2of4, is2of4, toFile2of4, fromFile2of4 } from "../../src/sparse/nm.js";
import { packCsr, unpackCsr, toFileBitmask, fromFileBitmask } from "../../src/sparse/bcsr.js";
import { canonicalZeros, countNonzeros } from "../../src/sparse/zero.js";
import { place2of4, placeCsr } from "../../src/model/linear.js";
import { mulberry32, randomF32 } from "../helpers/random.js";
import { place, scoped, assertClose, abs } from "./util.js";
import { kernels } from "../../src/kernels/index.js";

type Kind = "random" | "zero-rows" | "dense-groups" | "all-zero";

/** A 2:4 W [N,K]: random kept pairs; "zero-rows" zeroes every third row; "dense-groups" keeps both values everywhere. */
function make2of4(rand: () => number, N: number, K: number, kind: Kind): Float32Array {
  const w = randomF32(rand, N * K);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < K; g += 4) {
      const o = n * K + g;
      let keep = [0, 1, 2, 3].sort(() => rand() - 0.5).slice(0, 2);
      if (kind === "random" && rand() < 0.1) keep = keep.slice(0, 1); // groups with a single nonzero
      for (let j = 0; j < 4; j++) if (!keep.includes(j)) w[o + j] = 0;
      if ((kind === "zero-rows" && n % 3 === 1) || kind === "all-zero") for (let j = 0; j < 4; j++) w[o + j] = 0;
    }
  }
  return w;
}

function makeUnstructured(rand: () => number, N: number, K: number, sparsity: number, kind: Kind): Float32Array {
  const w = randomF32(rand, N * K);
  for (let i = 0; i < w.length; i++) {
    const n = Math.floor(i / K);
    if (kind === "all-zero" || (kind === "zero-rows" && n % 3 === 1)) w[i] = 0;
    else if (kind === "dense-groups" && n % 2 === 0) continue; // fully dense rows
    else if (rand() < sparsity) w[i] = 0;
  }
  return w;
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

function checkKernels(label: string, wt: Float32Array, N: number, K: number, fmt: "2:4" | "bcsr", Ms: number[], rand: () => number): void {
  scoped((w) => {
    const k = kernels(w);
    const sw = fmt === "2:4" ? place2of4(w.arena, pack2of4(wt, N, K)) : placeCsr(w.arena, packCsr(wt, N, K));
    for (const M of Ms) {
      const l = `${label} ${fmt} N=${N} K=${K} M=${M}`;
      const x = randomF32(rand, M * K);
      const bx = place(w, x, 1);
      const by = place(w, new Float32Array(M * N).fill(NaN), 1);
      if (M === 1) {
        if (sw.format === "2:4") k.f32_spmv_2of4_4x(sw.vals, sw.idx, bx.ptr, by.ptr, N, K);
        else k.f32_spmv_bcsr(sw.rowptr, sw.cols, sw.vals, bx.ptr, by.ptr, N, K);
      } else {
        const scratch = w.arena.allocBytes(k.f32_spmm_nt_scratch(M, N, K));
        if (sw.format === "2:4") k.f32_spmm_2of4_4x_nt(bx.ptr, sw.vals, sw.idx, by.ptr, M, N, K, scratch);
        else k.f32_spmm_bcsr_nt(bx.ptr, sw.rowptr, sw.cols, sw.vals, by.ptr, M, N, K, scratch);
      }
      const want = new Float32Array(M * N);
      ref.gemmNT(x, wt, want, M, N, K, false);
      const scale = new Float32Array(M * N);
      ref.gemmNT(abs(x), abs(wt), scale, M, N, K, false);
      assertClose(l, by.read(), want, 1e-5, 1e-6, scale);
      by.checkGuards(`${l} y`);
      bx.checkGuards(`${l} x`);
    }
  });
}

const SHAPES: [number, number][] = [
  [1, 4], [3, 8], [4, 4], [5, 12], [7, 20], [8, 16], [9, 36], [13, 256], [16, 260], [33, 516], [64, 64], [130, 1024],
];
const BATCHES = [1, 2, 3, 4, 5, 8, 12, 16, 17, 20, 24, 33, 64];

test("2:4 pack → unpack and file layout round trips are bit-exact (±0.0 zeros stored +0.0, NaN payloads, all-zero groups)", () => {
  const rand = mulberry32(5);
  for (const [N, K] of [...SHAPES, [0, 8] as [number, number]]) {
    const w = make2of4(rand, N, K, "random");
    if (N > 0) {
      bits(w)[K > 4 ? 5 : 1] = 0x7fc01234; // NaN payload survives (group 1 or group 0, replacing one slot)
      // a −0.0 is a zero (src/sparse/zero.ts): a group of two values and a −0.0 is still 2:4
      for (let j = 0; j < 4; j++) if (w[j] === 0) w[j] = -0;
    }
    if (!is2of4(w, N, K)) continue;
    const p = pack2of4(w, N, K);
    const canon = Float32Array.from(w);
    canonicalZeros(canon);
    assert.deepEqual(bits(unpack2of4(p)), bits(canon), `unpack(pack) N=${N} K=${K}: zeros come back as +0.0`);
    const f = toFile2of4(p);
    const q = fromFile2of4(f, N, K, "t.safetensors", "w");
    assert.deepEqual(bits(q.vals), bits(p.vals), `file round trip vals N=${N} K=${K}`);
    assert.deepEqual(q.idx, p.idx, `file round trip idx N=${N} K=${K}`);
  }
});

test("unstructured pack → unpack and file layout round trips are bit-exact", () => {
  const rand = mulberry32(6);
  for (const [N, K] of [...SHAPES, [5, 7], [2, 513], [0, 3]] as [number, number][]) {
    for (const sp of [0, 0.5, 0.9, 1]) {
      const w = makeUnstructured(rand, N, K, sp, "random");
      if (w.length > 2) w[1] = -0; // a zero: not stored, restored as +0.0
      const canon = Float32Array.from(w);
      canonicalZeros(canon);
      const c = packCsr(w, N, K);
      assert.equal(c.vals.length, countNonzeros(w), `nnz N=${N} K=${K} s=${sp}`);
      assert.deepEqual(bits(unpackCsr(c)), bits(canon), `unpack(pack) N=${N} K=${K} s=${sp}`);
      const f = toFileBitmask(c);
      const back = unpackCsr(fromFileBitmask(f, N, K, "t.safetensors", "w"));
      assert.deepEqual(bits(back), bits(canon), `file round trip N=${N} K=${K} s=${sp}`);
    }
  }
});

test("f32_spmv/spmm_2of4_4x match dense GEMM on awkward shapes, zero rows, dense groups, batch 1..64", () => {
  const rand = mulberry32(7);
  for (const [N, K] of SHAPES) {
    for (const kind of ["random", "zero-rows", "dense-groups", "all-zero"] as Kind[]) {
      checkKernels(kind, make2of4(rand, N, K, kind), N, K, "2:4", kind === "random" ? BATCHES : [1, 5, 16], rand);
    }
  }
});

test("f32_spmv/spmm_bcsr match dense GEMM at 0-100% sparsity on awkward shapes, batch 1..64", () => {
  const rand = mulberry32(8);
  for (const [N, K] of [...SHAPES, [5, 7], [17, 300], [3, 1], [40, 777]] as [number, number][]) {
    for (const sp of [0, 0.5, 0.9, 1]) {
      for (const kind of ["random", "zero-rows", "dense-groups"] as Kind[]) {
        checkKernels(`${kind} s=${sp}`, makeUnstructured(rand, N, K, sp, kind), N, K, "bcsr", kind === "random" && sp === 0.5 ? BATCHES : [1, 3, 16], rand);
      }
    }
  }
});

test("sparse kernels reject K not a multiple of 4 for 2:4 and misaligned values", () => {
  scoped((w) => {
    const k = kernels(w);
    const p = w.arena.alloc(64);
    assert.throws(() => k.f32_spmv_2of4_4x(p, p, p, p, 4, 6), /kernel assertion failed/);
    assert.throws(() => k.f32_spmv_2of4_4x(p + 4, p, p, p, 4, 8), /kernel assertion failed/);
  });
});
