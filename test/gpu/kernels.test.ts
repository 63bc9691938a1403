/**
 * @file Every WGSL kernel (src/gpu/kernels.ts) against the WASM kernel it mirrors, on seeded random inputs and
 * awkward shapes (tile, sub-tile and remainder sizes): float results within 1e-4 relative error (max |Δ| over
 * max |reference|), masks and counts exactly equal (they compare bit patterns, in the same rule).
 * Without an adapter each test says so and skips (and fails where scripts/install-lavapipe.sh ran).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createWasm } from "../../src/wasm/runtime.js";
import { gemmNT } from "../../src/kernels/index.js";
import { pack2of4 } from "../../src/sparse/nm.js";
import { probeGpu } from "../../src/gpu/device.js";
import * as K from "../../src/gpu/kernels.js";
import { mulberry32, randomF32 } from "../helpers/random.js";
import { gpuOrSkip, relErr } from "./helpers.js";
import { kernels } from "../../src/kernels/index.js";

const wasm = createWasm();
const a = wasm.arena;
const pk = kernels(wasm);
const TOL = 1e-4;
const report: Record<string, number> = {};

after(async () => {
  console.log(`# max relative error per WGSL kernel vs WASM: ${JSON.stringify(report)}`);
  const p = await probeGpu();
  if (p.ok) p.gpu.destroy();
});

function note(name: string, e: number, label: string): void {
  report[name] = Math.max(report[name] ?? 0, e);
  assert.ok(e <= TOL, `${label}: relative error ${e.toExponential(2)} > ${TOL}`);
}

function wasmRun<T>(fn: () => T): T {
  return a.scoped(fn);
}

test("GEMM_NT matches f32_gemm_nt (Y = X·Wᵀ, accumulate)", async (t) => {
  const g = await gpuOrSkip(t);
  if (!g) return;
  const rand = mulberry32(1);
  for (const [M, N, Kd] of [[1, 768, 768], [7, 13, 5], [70, 130, 50], [64, 64, 64], [128, 192, 256], [33, 300, 17]]) {
    const x = randomF32(rand, M * Kd);
    const w = randomF32(rand, N * Kd);
    const y0 = randomF32(rand, M * N);
    for (const acc of [false, true]) {
      const ref = wasmRun(() => {
        const px = a.put(x), pw = a.put(w), py = a.put(y0);
        gemmNT(wasm, px, pw, py, M, N, Kd, acc);
        return Float32Array.from(a.f32(py, M * N));
      });
      const by = g.upload(y0);
      K.gemmNt(g, g.upload(x), g.upload(w), by, M, N, Kd, acc);
      note("gemm_nt", relErr(await g.readF32(by, M * N), ref), `M=${M} N=${N} K=${Kd} acc=${acc}`);
    }
  }
});

test("GEMM_TN matches the Gram kernels (H += XᵀX, C += AᵀB)", async (t) => {
  const g = await gpuOrSkip(t);
  if (!g) return;
  const rand = mulberry32(2);
  for (const [T, cols] of [[37, 100], [1, 64], [130, 65], [256, 288]]) {
    const x = randomF32(rand, T * cols);
    const x2 = randomF32(rand, T * cols);
    const h0 = randomF32(rand, cols * cols);
    for (let i = 0; i < cols; i++) for (let j = 0; j < i; j++) h0[i * cols + j] = h0[j * cols + i]; // symmetric start
    const [refH, refC] = wasmRun(() => {
      const px = a.put(x), px2 = a.put(x2), ph = a.put(h0), pc = a.put(h0);
      pk.f32_gram_upper(px, ph, T, cols);
      pk.f32_sym_mirror(ph, cols);
      pk.f32_gram_cross(px, px2, pc, T, cols);
      return [Float32Array.from(a.f32(ph, cols * cols)), Float32Array.from(a.f32(pc, cols * cols))];
    });
    const bx = g.upload(x), bx2 = g.upload(x2), bh = g.upload(h0), bc = g.upload(h0);
    K.gemmTn(g, bx, bx, bh, cols, cols, T);
    K.gemmTn(g, bx, bx2, bc, cols, cols, T);
    note("gram", relErr(await g.readF32(bh, cols * cols), refH), `gram T=${T} cols=${cols}`);
    note("gram_cross", relErr(await g.readF32(bc, cols * cols), refC), `cross T=${T} cols=${cols}`);
  }
});

test("FISTA_STEP matches f32_fista_step (prox, restart, momentum; with and without mask)", async (t) => {
  const g = await gpuOrSkip(t);
  if (!g) return;
  const rand = mulberry32(3);
  for (const [rows, cols] of [[13, 300], [1, 7], [40, 768], [300, 64]]) {
    const n = rows * cols;
    const y = randomF32(rand, n), gg = randomF32(rand, n), b = randomF32(rand, n), wOld = randomF32(rand, n);
    const lam = randomF32(rand, rows, 0, 2);
    const t0 = randomF32(rand, rows, 1, 3);
    const mask = Float32Array.from({ length: n }, () => (rand() < 0.5 ? 1 : 0));
    const eta = 0.37;
    for (const useMask of [false, true]) {
      const ref = wasmRun(() => {
        const py = a.put(y), pw = a.alloc(n), pt = a.put(t0);
        pk.f32_fista_step(py, a.put(gg), a.put(b), a.put(wOld), pw, a.put(lam), pt, useMask ? a.put(mask) : 0, rows, cols, eta);
        return [Float32Array.from(a.f32(py, n)), Float32Array.from(a.f32(pw, n)), Float32Array.from(a.f32(pt, rows))];
      });
      const by = g.upload(y), bw = g.buffer(n * 4), bt = g.upload(t0);
      const u = g.uniforms([rows, cols, useMask ? 1 : 0, 1, eta], new Set([4]));
      g.dispatch(K.FISTA_STEP, [u, by, g.upload(gg), g.upload(b), g.upload(wOld), bw, g.upload(lam), bt, g.upload(mask)], K.grid1(rows));
      const label = `rows=${rows} cols=${cols} mask=${useMask}`;
      note("fista_step", relErr(await g.readF32(bw, n), ref[1]), `W⁺ ${label}`);
      note("fista_step", relErr(await g.readF32(by, n), ref[0]), `Y ${label}`);
      note("fista_step", relErr(await g.readF32(bt, rows), ref[2]), `t ${label}`);
    }
  }
});

test("ROW_NNZ, TOPK_MASK, NM_MASK, MASK_MUL equal the WASM kernels exactly (ties included)", async (t) => {
  const g = await gpuOrSkip(t);
  if (!g) return;
  const rand = mulberry32(4);
  for (const [rows, cols] of [[5, 8], [17, 300], [64, 768], [3, 1024]]) {
    const n = rows * cols;
    // quantized scores: many ties; some exact zeros and negative zeros
    const s = Float32Array.from({ length: n }, () => Math.round((rand() - 0.5) * 12) / 4);
    for (let i = 0; i < n; i += 7) s[i] = -0;
    const bs = g.upload(s);
    const bm = g.buffer(n * 4);
    const bnz = g.buffer(rows * 4);
    K.rowNnz(g, bs, bnz, rows, cols);
    const nnzRef = wasmRun(() => {
      const o = a.alloc(rows);
      pk.f32_row_nnz(a.put(s), o, rows, cols);
      return Int32Array.from(a.i32(o, rows));
    });
    assert.deepEqual(Array.from(new Uint32Array(await g.read(bnz, rows * 4))), Array.from(nnzRef), `row_nnz rows=${rows} cols=${cols}`);
    for (const k of [0, 1, Math.floor(cols / 2), cols - 1, cols]) {
      K.topkMask(g, bs, bm, rows, cols, k);
      const ref = wasmRun(() => {
        const o = a.alloc(n);
        pk.f32_topk_mask(a.put(s), o, rows, cols, k);
        return Array.from(a.f32(o, n));
      });
      assert.deepEqual(Array.from(await g.readF32(bm, n)), ref, `topk rows=${rows} cols=${cols} k=${k}`);
    }
    for (const [nn, m] of [[2, 4], [4, 8], [1, 4]]) {
      if (cols % m !== 0) continue;
      K.nmMask(g, bs, bm, rows, cols, nn, m);
      const ref = wasmRun(() => {
        const o = a.alloc(n);
        pk.f32_nm_mask(a.put(s), o, rows, cols, nn, m);
        return Array.from(a.f32(o, n));
      });
      assert.deepEqual(Array.from(await g.readF32(bm, n)), ref, `nm ${nn}:${m} rows=${rows} cols=${cols}`);
    }
    const w = randomF32(rand, n);
    const bo = g.buffer(n * 4), bo2 = g.buffer(n * 4);
    K.maskMul(g, g.upload(w), bm, bo, bo2, n);
    const mk = await g.readF32(bm, n);
    const ref = wasmRun(() => {
      const o = a.alloc(n);
      pk.f32_mask_mul(a.put(w), a.put(mk), o, n);
      return Array.from(a.f32(o, n));
    });
    assert.deepEqual(Array.from(await g.readF32(bo, n)), ref, `mask_mul n=${n}`);
    assert.deepEqual(Array.from(await g.readF32(bo2, n)), ref, `mask_mul second output n=${n}`);
  }
});

test("SPMM_24 matches f32_spmm_2of4_4x_nt and f32_spmv_2of4_4x", async (t) => {
  const g = await gpuOrSkip(t);
  if (!g) return;
  const rand = mulberry32(5);
  const sk = kernels(wasm);
  for (const [N, Kd] of [[70, 64], [768, 768], [5, 2056], [64, 4]]) {
    const w = randomF32(rand, N * Kd);
    for (let i = 0; i < w.length; i += 4) {
      const drop = [0, 1, 2, 3].sort(() => rand() - 0.5).slice(0, 2);
      for (const j of drop) w[i + j] = 0;
    }
    const p = pack2of4(w, N, Kd);
    const bv = g.upload(p.vals), bi = g.upload(p.idx);
    for (const M of [1, 8, 13]) {
      const x = randomF32(rand, M * Kd);
      const ref = wasmRun(() => {
        const pv = a.put(p.vals);
        const pi = a.allocBytes(p.idx.length);
        a.u8(pi, p.idx.length).set(p.idx);
        const px = a.put(x), py = a.alloc(M * N);
        if (M === 1) sk.f32_spmv_2of4_4x(pv, pi, px, py, N, Kd);
        else sk.f32_spmm_2of4_4x_nt(px, pv, pi, py, M, N, Kd, a.allocBytes(sk.f32_spmm_nt_scratch(M, N, Kd)));
        return Float32Array.from(a.f32(py, M * N));
      });
      const by = g.buffer(M * N * 4);
      K.spmm24(g, g.upload(x), bv, bi, by, M, N, Kd);
      note(M === 1 ? "spmv_2of4" : "spmm_2of4", relErr(await g.readF32(by, M * N), ref), `N=${N} K=${Kd} M=${M}`);
    }
  }
});
