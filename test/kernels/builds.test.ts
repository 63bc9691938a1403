/**
 * @file The two builds of the kernels (src/wasm/runtime.ts): baseline WASM SIMD and relaxed SIMD (FMA in the
 * inference kernels, bare swizzles). On the same inputs every inference kernel of the relaxed build gives the
 * baseline's results within |Δ| ≤ 1e-6·Σ|terms| + 1e-7 (a fused multiply-add rounds once instead of twice; no
 * other difference), and the pruning kernels (f32_gemm_nt, the Gram) and the W4A8 kernel are bit-identical. Runs where the runtime
 * has relaxed SIMD; under Node 20 it runs itself under the project's Node 24 (.cache/node24) when installed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createWasm, relaxedSimdSupported, type Wasm } from "../../src/wasm/runtime.js";
import { kernels } from "../../src/kernels/index.js";
import { packP8 } from "../../src/model/packed.js";
import { placeP8, place2of4, placeCsr, placeQuantized, runLinear, linearScratchBytes, type KernelLinear } from "../../src/model/linear.js";
import { randomQuantized } from "../../src/quant/codes.js";
import { gridOf, parseScheme } from "../../src/quant/scheme.js";
import { pack2of4 } from "../../src/sparse/nm.js";
import { packCsr } from "../../src/sparse/bcsr.js";
import { WEIGHT_DTYPES } from "../../src/model/types.js";
import { mulberry32, randomF32 } from "../helpers/random.js";
import { REPO } from "../helpers/shared.js";

const STAMP = path.join(REPO, ".cache/node24/node-path");
const NODE24 = fs.existsSync(STAMP) ? path.join(REPO, ".cache/node24", fs.readFileSync(STAMP, "utf8").trim()) : undefined;
const here = fileURLToPath(import.meta.url);

type Layout = "p8" | "2:4" | "csr";
function place(w: Wasm, v: Float32Array, N: number, K: number, layout: Layout, d: (typeof WEIGHT_DTYPES)[number]): KernelLinear {
  if (layout === "p8") return placeP8(w.arena, packP8(v, N, K, d), N, K, d);
  return layout === "2:4" ? place2of4(w.arena, pack2of4(v, N, K), d) : placeCsr(w.arena, packCsr(v, N, K), d);
}

function product(w: Wasm, lw: KernelLinear, x: Float32Array, T: number): Float32Array {
  return w.arena.scoped(() => {
    const k = kernels(w);
    const bytes = Math.max(16, linearScratchBytes(k, lw, T));
    const s = w.arena.allocBytes(bytes), xp = w.arena.put(x), yp = w.arena.alloc(T * lw.shape[0]!);
    runLinear(k, lw, xp, yp, T, s, bytes);
    return w.arena.f32(yp, T * lw.shape[0]!).slice();
  });
}

test("relaxed-SIMD build = baseline build within 1e-6·Σ|terms| on every inference kernel; pruning GEMM bit-identical", { skip: !relaxedSimdSupported() && !NODE24 ? "no runtime with relaxed SIMD here (Node 20 and no .cache/node24)" : false }, () => {
  if (!relaxedSimdSupported()) {
    const { NODE_TEST_CONTEXT: _, ...env } = process.env; // a child of a test run would report to this one instead of stdout
    const r = spawnSync(NODE24!, ["--import", "tsx", "--test", "--test-reporter=tap", here], { encoding: "utf8", cwd: REPO, timeout: 300_000, env });
    assert.equal(r.status, 0, `under Node 24:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /# pass 1/);
    return;
  }
  const base = createWasm(32 << 20, "baseline"), relaxed = createWasm(32 << 20, "relaxed");
  const rand = mulberry32(13);
  let worst = 0;
  for (const [N, K] of [[9, 20], [40, 260], [64, 516]] as [number, number][]) {
    const v = randomF32(rand, N * K);
    for (let o = 0; o < v.length; o += 4) { v[o + 1] = 0; v[o + 2] = 0; }
    for (const layout of ["p8", "2:4", "csr"] as const) {
      for (const d of WEIGHT_DTYPES) {
        const lb = place(base, v, N, K, layout, d), lr = place(relaxed, v, N, K, layout, d);
        for (const T of [1, 7, 33]) {
          const x = randomF32(rand, T * K);
          const yb = product(base, lb, x, T), yr = product(relaxed, lr, x, T);
          const scale = product(base, place(base, v.map(Math.abs), N, K, layout, "f32"), x.map(Math.abs), T);
          for (let i = 0; i < yb.length; i++) {
            const tol = 1e-6 * scale[i]! + 1e-7;
            assert.ok(Math.abs(yb[i]! - yr[i]!) <= tol, `${layout} ${d} N=${N} K=${K} T=${T} [${i}]: ${yb[i]} vs ${yr[i]}`);
            worst = Math.max(worst, Math.abs(yb[i]! - yr[i]!) / (scale[i]! || 1));
          }
        }
      }
    }
  }
  assert.ok(worst > 0, "the relaxed build fuses (its results are not all identical)");
  // the pruning GEMM: no fused ops in either build
  for (const [M, N, K] of [[5, 9, 300], [64, 40, 64]] as [number, number, number][]) {
    const x = randomF32(rand, M * K), w = randomF32(rand, N * K);
    const out = [base, relaxed].map((h) => h.arena.scoped(() => {
      const k = kernels(h);
      const xp = h.arena.put(x), wp = h.arena.put(w), y = h.arena.alloc(M * N), pk = h.arena.allocBytes(k.f32_gemm_nt_scratch(M, N, K));
      k.f32_gemm_nt(xp, wp, y, M, N, K, 0, pk);
      return Array.from(new Uint32Array(h.memory.buffer, y, M * N));
    }));
    assert.deepEqual(out[1], out[0], `f32_gemm_nt M=${M} N=${N} K=${K}`);
  }
  // W4A8, W8A8: the relaxed i8 dots and the baseline's int16 path give the same integers, so the same bytes
  for (const [N, K, scheme] of [[9, 256, "w4g128"], [40, 96, "w4g32"], [13, 172, "w8"], [7, 256, "w8g128"]] as [number, number, string][]) {
    const q = randomQuantized(rand, N, K, gridOf(parseScheme(scheme, true), K));
    for (const T of [1, 7]) {
      const x = randomF32(rand, T * K);
      const [yb, yr] = [base, relaxed].map((h) => h.arena.scoped(() => new Uint32Array(product(h, placeQuantized(h, q, 8), x, T).buffer)));
      assert.deepEqual(yr, yb, `W4A8/W8A8 ${scheme} N=${N} K=${K} T=${T}`);
    }
  }
});
