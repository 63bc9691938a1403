/**
 * @file `wasprune bench kernels --device webgpu`: the tables of `bench kernels` for the WGSL kernels
 * (src/gpu/kernels.ts) next to the WASM ones, measured in the same run: dense GEMM GFLOP/s at 256/512/1024,
 * GEMV GB/s at 4096x4096, and dense vs 2:4 at the sparse shapes (768x768, 3072x768, 4096x4096 as N x K,
 * batch 1, 8, 64), plus the FISTA iteration (W·H and the step) on 768x768 and 3072x768.
 *
 * Units as bench/kernels.ts: GEMM 2·M·N·K flops, GEMV the weight bytes, 2:4 dense-equivalent GFLOP/s.
 * GPU timings are from submit to the completion of a batch of `reps` dispatches in one command buffer
 * (so launch latency is amortised, but included); inputs stay on the device, nothing is read back.
 * On a software adapter (lavapipe) these numbers measure the CPU through Vulkan, not a GPU.
 */
import { createWasm } from "../src/wasm/runtime.js";
import { gemmNT, gemv } from "../src/kernels/index.js";
import { pack2of4 } from "../src/sparse/nm.js";
import { mulberry32 } from "../src/util/rng.js";
import type { GpuDevice } from "../src/gpu/device.js";
import * as K from "../src/gpu/kernels.js";
import { table } from "../src/cli/format.js";
import { rate } from "./timing.js";
import { kernels } from "../src/kernels/index.js";

export interface GpuBenchRow {
  kernel: string;
  shape: string;
  unit: "GFLOP/s" | "GB/s" | "it/s";
  wasm: number;
  webgpu: number;
}

export interface GpuBenchResult {
  adapter: string;
  software: boolean;
  quick: boolean;
  rows: GpuBenchRow[];
  notes: string[];
}

function rnd(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  const r = mulberry32(seed);
  for (let i = 0; i < n; i++) a[i] = r() - 0.5;
  return a;
}

/** Dispatches per second: `encode` into one command buffer `reps` times, submit, wait; grown until ≥ budget. */
async function gpuRate(g: GpuDevice, encode: (enc: GPUCommandEncoder) => void, budgetMs: number): Promise<number> {
  const run = async (reps: number) => {
    const enc = g.device.createCommandEncoder();
    for (let i = 0; i < reps; i++) encode(enc);
    const t0 = performance.now();
    g.device.queue.submit([enc.finish()]);
    await g.sync();
    return performance.now() - t0;
  };
  await run(1); // warm-up: pipeline compile, first-touch
  let reps = 1;
  for (;;) {
    const ms = await run(reps);
    if (ms >= budgetMs || reps >= 1024) return (reps * 1000) / ms;
    reps = Math.min(1024, Math.max(reps * 2, Math.ceil((reps * budgetMs) / Math.max(ms, 0.01))));
  }
}

export async function benchGpuKernels(g: GpuDevice, opts: { quick?: boolean; json?: boolean }): Promise<GpuBenchResult> {
  const quick = !!opts.quick;
  const budget = quick ? 150 : 600;
  const wasm = createWasm();
  const a = wasm.arena;
  const rows: GpuBenchRow[] = [];
  const log = (r: GpuBenchRow) => {
    rows.push(r);
    if (!opts.json) process.stderr.write(`  ${r.kernel} ${r.shape}: wasm ${r.wasm.toFixed(2)} ${r.unit}, webgpu ${r.webgpu.toFixed(2)} ${r.unit}\n`);
  };
  const gemm = async (M: number, N: number, Kd: number, kernel: string, unit: "GFLOP/s" | "GB/s") => {
    const work = unit === "GB/s" ? N * Kd * 4 : 2 * M * N * Kd;
    const wasmRate = a.scoped(() => {
      const x = a.put(rnd(M * Kd, 1)), w = a.put(rnd(N * Kd, 2)), y = a.alloc(M * N);
      return rate(() => (M === 1 ? gemv(wasm, w, x, y, N, Kd) : gemmNT(wasm, x, w, y, M, N, Kd)), budget);
    });
    const bx = g.upload(rnd(M * Kd, 1)), bw = g.upload(rnd(N * Kd, 2)), by = g.buffer(M * N * 4);
    const bind = g.bind(K.GEMM_NT, [g.uniforms([M, N, Kd, 0, 1], new Set([4])), bx, bw, by]);
    const gpuRate_ = await gpuRate(g, (enc) => g.pass(enc, K.GEMM_NT, bind, [Math.ceil(N / 64), Math.ceil(M / 64)]), budget);
    for (const b of [bx, bw, by]) b.destroy();
    log({ kernel, shape: `${M}x${N}x${Kd}`, unit, wasm: (wasmRate * work) / 1e9, webgpu: (gpuRate_ * work) / 1e9 });
  };
  for (const n of quick ? [256, 512] : [256, 512, 1024]) await gemm(n, n, n, "GEMM", "GFLOP/s");
  await gemm(1, 4096, 4096, "GEMV (one copy of W, cache/VRAM-resident)", "GB/s");

  const sk = kernels(wasm);
  for (const [N, Kd] of [[768, 768], [3072, 768], [4096, 4096]] as const) {
    const w = rnd(N * Kd, 3);
    for (let i = 0; i < w.length; i += 4) { w[i + 1] = 0; w[i + 3] = 0; }
    const p = pack2of4(w, N, Kd);
    const bv = g.upload(p.vals), bi = g.upload(p.idx);
    for (const M of quick ? [1, 64] : [1, 8, 64]) {
      const work = 2 * M * N * Kd;
      const wasmRate = a.scoped(() => {
        const pv = a.put(p.vals);
        const pi = a.allocBytes(p.idx.length);
        a.u8(pi, p.idx.length).set(p.idx);
        const x = a.put(rnd(M * Kd, 4)), y = a.alloc(M * N);
        const scratch = a.allocBytes(sk.f32_spmm_nt_scratch(M, N, Kd));
        return rate(() => (M === 1 ? sk.f32_spmv_2of4_4x(pv, pi, x, y, N, Kd) : sk.f32_spmm_2of4_4x_nt(x, pv, pi, y, M, N, Kd, scratch)), budget);
      });
      const bx = g.upload(rnd(M * Kd, 4)), by = g.buffer(M * N * 4);
      const bind = g.bind(K.SPMM_24, [g.uniforms([M, N, Kd]), bx, bv, bi, by]);
      const r = await gpuRate(g, (enc) => g.pass(enc, K.SPMM_24, bind, [Math.ceil(N / 64), M]), budget);
      bx.destroy();
      by.destroy();
      log({ kernel: "2:4 SpMM (dense-equivalent)", shape: `${M}x${N}x${Kd}`, unit: "GFLOP/s", wasm: (wasmRate * work) / 1e9, webgpu: (r * work) / 1e9 });
    }
    bv.destroy();
    bi.destroy();
  }

  // one FISTA iteration: G = W·H (GEMM) + the fused step, iterations/s
  const pk = kernels(wasm);
  for (const [rows_, cols] of quick ? [[768, 768]] : [[768, 768], [3072, 768]]) {
    const n = rows_ * cols;
    const wasmRate = a.scoped(() => {
      const H = a.put(rnd(cols * cols, 5)), B = a.put(rnd(n, 6)), Y = a.put(rnd(n, 7)), G = a.alloc(n);
      const W1 = a.put(rnd(n, 8)), W2 = a.alloc(n), lam = a.put(new Float32Array(rows_).fill(0.01)), T = a.put(new Float32Array(rows_).fill(1));
      return rate(() => {
        gemmNT(wasm, Y, H, G, rows_, cols, cols);
        pk.f32_fista_step(Y, G, B, W1, W2, lam, T, 0, rows_, cols, 1e-3);
      }, budget);
    });
    const bufs = [rnd(n, 7), rnd(cols * cols, 5), new Float32Array(n), rnd(n, 6), rnd(n, 8), new Float32Array(n), new Float32Array(rows_).fill(0.01), new Float32Array(rows_).fill(1), new Float32Array(n)].map((d) => g.upload(d));
    const [Y, H, G, B, W1, W2, lam, T, mask] = bufs;
    const gb = g.bind(K.GEMM_NT, [g.uniforms([rows_, cols, cols, 0, 1], new Set([4])), Y, H, G]);
    const sb = g.bind(K.FISTA_STEP, [g.uniforms([rows_, cols, 0, 1, 1e-3], new Set([4])), Y, G, B, W1, W2, lam, T, mask]);
    const r = await gpuRate(g, (enc) => {
      g.pass(enc, K.GEMM_NT, gb, [Math.ceil(cols / 64), Math.ceil(rows_ / 64)]);
      g.pass(enc, K.FISTA_STEP, sb, K.grid1(rows_));
    }, budget);
    for (const b of bufs) b.destroy();
    log({ kernel: "FISTA iteration (W·H + step)", shape: `${rows_}x${cols}`, unit: "it/s", wasm: wasmRate, webgpu: r });
  }
  const notes = [
    `adapter: ${g.name}${g.isSoftware ? " — a software (CPU) adapter: these numbers say nothing about GPUs" : ""}`,
    "WASM: one thread; WebGPU: dispatches batched in one command buffer, inputs resident on the device, no read-back",
  ];
  return { adapter: g.name, software: g.isSoftware, quick, rows, notes };
}

export function renderGpuBench(r: GpuBenchResult): string {
  const body = r.rows.map((x) => [x.kernel, x.shape, x.unit, x.wasm.toFixed(2), x.webgpu.toFixed(2), (x.webgpu / x.wasm).toFixed(2)]);
  return [table(["kernel", "shape (M x N x K)", "unit", "WASM", "WebGPU", "WebGPU/WASM"], body, { align: ["l", "l", "l", "r", "r", "r"] }), "", ...r.notes].join("\n");
}
