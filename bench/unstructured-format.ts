/**
 * @file The measurement behind the unstructured format (assembly/f32-spmm-csr.ts, top comment): panel CSR vs
 * panel bitmap (assembly/f32-spmm-bitmap.ts) at 50/70/90% on 4096x4096 (and 3072x768), GEMV and GEMM at batch
 * 8 and 64, single thread, same weights, one run. GEMV at 4096x4096 rotates ~1 GiB of copies (DRAM-streamed).
 * Each kernel's result is first checked against the dense GEMM. Run:
 *   node --import tsx bench/unstructured-format.ts [--json]
 */
import { createWasm } from "../src/wasm/runtime.js";
import { kernels } from "../src/kernels/index.js";
import { sparseKernels } from "../src/kernels/sparse-api.js";
import { packCsr } from "../src/sparse/bcsr.js";
import { placeCsr } from "../src/model/linear.js";
import { mulberry32 } from "../src/util/rng.js";
import { rate } from "./timing.js";

interface BitmapKernels {
  f32_spmv_bitmap(rowptr: number, mask: number, vals: number, x: number, y: number, N: number, K: number): void;
  f32_spmm_bitmap_nt(x: number, rowptr: number, mask: number, vals: number, y: number, M: number, N: number, K: number, scratch: number): void;
}

const wasm = createWasm(64 << 20);
const a = wasm.arena;
const k = kernels(wasm);
const sk = sparseKernels(wasm);
const bk = wasm.exports as unknown as BitmapKernels;
const json = process.argv.includes("--json");
const rows: { N: number; K: number; M: number; sparsity: number; csrGflops: number; bitmapGflops: number; bitmapOverCsr: number; csrBytes: number; bitmapBytes: number }[] = [];

function weights(N: number, K: number, s: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  const w = new Float32Array(N * K);
  for (let i = 0; i < w.length; i++) w[i] = next() < s ? 0 : next() - 0.5;
  return w;
}

for (const [N, K] of [[4096, 4096], [3072, 768]] as [number, number][]) {
  for (const s of [0.5, 0.7, 0.9]) {
    const w = weights(N, K, s, 5);
    const c = packCsr(w, N, K);
    const mask = new Uint8Array(N * (K / 8));
    for (let n = 0; n < N; n++) for (let kk = 0; kk < K; kk++) if (w[n * K + kk] !== 0) mask[n * (K / 8) + (kk >> 3)] |= 1 << (kk & 7);
    for (const M of [1, 8, 64]) {
      a.scoped(() => {
        const csrBytes = 4 * c.rowptr.length + 5 * c.vals.length;
        const bitmapBytes = 4 * c.rowptr.length + 4 * c.vals.length + mask.length;
        const stream = M === 1 && N * K >= 4096 * 4096;
        const copies = stream ? Math.ceil((1 << 30) / csrBytes) : 1;
        const csr = Array.from({ length: copies }, () => placeCsr(a, c));
        const bm = Array.from({ length: copies }, () => {
          const m = a.allocBytes(mask.length);
          a.u8(m, mask.length).set(mask);
          const v = a.alloc(c.vals.length + 4);
          a.f32(v, c.vals.length).set(c.vals);
          return { rowptr: csr[0]!.format === "csr" ? (csr[0] as { rowptr: number }).rowptr : 0, mask: m, vals: v };
        });
        const x = a.put(Float32Array.from({ length: M * K }, (_, i) => Math.sin(i)));
        const y1 = a.alloc(M * N), y2 = a.alloc(M * N), yd = a.alloc(M * N);
        const scratch = a.allocBytes(Math.max(sk.f32_spmm_nt_scratch(M, N, K), k.f32_gemm_nt_scratch(M, N, K)));
        const wd = a.put(w);
        const runCsr = (rep: number) => {
          const t = csr[rep % copies] as { rowptr: number; cols: number; vals: number };
          if (M === 1) sk.f32_spmv_bcsr(t.rowptr, t.cols, t.vals, x, y1, N, K);
          else sk.f32_spmm_bcsr_nt(x, t.rowptr, t.cols, t.vals, y1, M, N, K, scratch);
        };
        const runBm = (rep: number) => {
          const t = bm[rep % copies]!;
          if (M === 1) bk.f32_spmv_bitmap(t.rowptr, t.mask, t.vals, x, y2, N, K);
          else bk.f32_spmm_bitmap_nt(x, t.rowptr, t.mask, t.vals, y2, M, N, K, scratch);
        };
        runCsr(0);
        runBm(0);
        k.f32_gemm_nt(x, wd, yd, M, N, K, 0, scratch);
        const d = a.f32(yd, M * N), r1 = a.f32(y1, M * N), r2 = a.f32(y2, M * N);
        for (let i = 0; i < M * N; i++) {
          const tol = 1e-3 * (1 + Math.abs(d[i]!));
          if (!(Math.abs(r1[i]! - d[i]!) <= tol && Math.abs(r2[i]! - d[i]!) <= tol)) throw new Error(`mismatch at ${i}: dense ${d[i]} csr ${r1[i]} bitmap ${r2[i]} (N=${N} K=${K} M=${M} s=${s})`);
        }
        const budget = 400;
        const rc = rate(runCsr, budget, copies);
        const rb = rate(runBm, budget, copies);
        const flops = 2 * M * N * K;
        const row = { N, K, M, sparsity: s, csrGflops: (flops * rc) / 1e9, bitmapGflops: (flops * rb) / 1e9, bitmapOverCsr: rb / rc, csrBytes, bitmapBytes };
        rows.push(row);
        if (!json) {
          console.log(`${`${N}x${K}`.padEnd(10)} M=${String(M).padEnd(3)} ${(s * 100).toFixed(0)}%  csr ${row.csrGflops.toFixed(1).padStart(6)}  bitmap ${row.bitmapGflops.toFixed(1).padStart(6)} GF/s eff.  bitmap/csr ${row.bitmapOverCsr.toFixed(2)}x  bytes csr ${(csrBytes / 2 ** 20).toFixed(1)} MiB, bitmap ${(bitmapBytes / 2 ** 20).toFixed(1)} MiB${copies > 1 ? `  (${copies} copies)` : ""}`);
        }
      });
    }
  }
}
if (json) console.log(JSON.stringify(rows, null, 2));
