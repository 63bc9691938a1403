/**
 * @file `wasprune bench kernels`: single-thread dense f32 GEMM (nt) GFLOP/s at 256/512/1024 and GEMV GB/s at
 * 4096x4096, WASM SIMD kernels next to the scalar TypeScript references (src/kernels/reference.ts).
 *
 * Honest units: GEMM counts 2·M·N·K flops and includes packing; GEMV counts the weight bytes read (N·K·4)
 * and rotates through enough copies of W that together they are > 4x the last-level cache, so every call
 * streams its weights from DRAM. Each measurement repeats until a time budget is spent and reports
 * work / elapsed over all repetitions after one warm-up call.
 */
import { readdirSync, readFileSync } from "node:fs";
import { cpus, freemem } from "node:os";
import { createWasm, type Wasm } from "../src/wasm/runtime.js";
import { kernels } from "../src/kernels/index.js";
import * as ref from "../src/kernels/reference.js";
import { mulberry32 } from "../src/util/rng.js";
import { benchSparse, writeSparseChart, type AnchorRow, type SparseRow } from "./sparse.js";
import { loadAnchors } from "./anchors.js";
import { rate } from "./timing.js";

export interface GemmRow {
  /** Square size: M = N = K = n. */
  n: number;
  wasmGflops: number;
  /** null when the scalar reference was skipped at this size (too slow; see notes). */
  scalarGflops: number | null;
  speedup: number | null;
}

export interface GemvRow {
  N: number;
  K: number;
  /** Distinct copies of W rotated through, and their total bytes. */
  copies: number;
  rotatedBytes: number;
  wasmGBps: number;
  scalarGBps: number;
  speedup: number;
}

export interface BenchKernelsResult {
  cpu: string;
  /** Largest cache reported by /sys (bytes), or null if it could not be read. */
  llcBytes: number | null;
  threads: 1;
  quick: boolean;
  gemm: GemmRow[];
  gemv: GemvRow;
  /** dense vs 2:4 vs unstructured (bench/sparse.ts) */
  sparse: SparseRow[];
  /** onnxruntime-web and tfjs-wasm dense matmul on the same shapes, same run (bench/anchors.ts) */
  anchors: AnchorRow[];
  /** anchors that could not run here, and why */
  anchorFailures: { name: string; reason: string }[];
  /** how each anchor was set up */
  anchorSetup: { name: string; version: string; setup: string }[];
  /** the SVG chart written, if asked for */
  chart: string | null;
  notes: string[];
}

const MiB = 1 << 20;
const GEMM_SIZES = [256, 512, 1024];
const GEMV_N = 4096;
const GEMV_K = 4096;
/** Do not rotate more than this much W (the wasm32 memory limit is 4 GiB and the host needs headroom). */
const MAX_ROTATED_BYTES = 2560 * MiB;

/** Size of the largest (last-level) cache from /sys, in bytes. */
export function lastLevelCacheBytes(): number | null {
  const dir = "/sys/devices/system/cpu/cpu0/cache";
  try {
    let best = 0;
    for (const entry of readdirSync(dir)) {
      if (!entry.startsWith("index")) continue;
      const text = readFileSync(`${dir}/${entry}/size`, "utf8").trim();
      const m = /^(\d+)([KMG]?)$/.exec(text);
      if (!m) continue;
      const bytes = Number(m[1]) * ({ "": 1, K: 1024, M: MiB, G: 1024 * MiB } as const)[m[2] as "" | "K" | "M" | "G"];
      best = Math.max(best, bytes);
    }
    return best > 0 ? best : null;
  } catch {
    return null;
  }
}

function fillRandom(a: Float32Array, seed: number): void {
  const r = mulberry32(seed);
  for (let i = 0; i < a.length; i++) a[i] = r() - 0.5;
}

function benchGemm(wasm: Wasm, n: number, quick: boolean, notes: string[]): GemmRow {
  const k = kernels(wasm);
  const a = wasm.arena;
  return a.scoped(() => {
    const x = a.alloc(n * n), w = a.alloc(n * n), y = a.alloc(n * n);
    fillRandom(a.f32(x, n * n), 1);
    fillRandom(a.f32(w, n * n), 2);
    const pack = a.allocBytes(k.f32_gemm_nt_scratch(n, n, n));
    const flops = 2 * n * n * n;
    const wasmRate = rate(() => k.f32_gemm_nt(x, w, y, n, n, n, 0, pack), quick ? 150 : 600, 2);
    // The scalar reference runs ~1 GFLOP/s or less: at 1024 one call takes seconds, so it runs once there
    // (no warm-up beyond the 512 run) and is skipped entirely in quick mode.
    let scalarRate: number | null = null;
    if (n <= 512 || !quick) {
      const xs = a.f32(x, n * n), ws = a.f32(w, n * n), ys = new Float32Array(n * n);
      if (n >= 1024) {
        const t0 = performance.now();
        ref.gemmNT(xs, ws, ys, n, n, n, false);
        scalarRate = 1000 / (performance.now() - t0);
        notes.push(`scalar GEMM at ${n}: one call, no repetition`);
      } else {
        scalarRate = rate(() => ref.gemmNT(xs, ws, ys, n, n, n, false), quick ? 100 : 400);
      }
    } else {
      notes.push(`scalar GEMM at ${n}: skipped in --quick (one call takes seconds)`);
    }
    const wasmGflops = (flops * wasmRate) / 1e9;
    const scalarGflops = scalarRate === null ? null : (flops * scalarRate) / 1e9;
    return { n, wasmGflops, scalarGflops, speedup: scalarGflops ? wasmGflops / scalarGflops : null };
  });
}

function benchGemv(wasm: Wasm, llc: number | null, quick: boolean, notes: string[]): GemvRow {
  const k = kernels(wasm);
  const a = wasm.arena;
  const N = GEMV_N, K = GEMV_K;
  const bytes = N * K * 4;
  const wantBytes = 4 * (llc ?? 32 * MiB);
  const capBytes = Math.min(MAX_ROTATED_BYTES, Math.floor(freemem() * 0.6));
  let copies = Math.max(2, Math.ceil(wantBytes / bytes) + 1);
  if (copies * bytes > capBytes) {
    copies = Math.max(2, Math.floor(capBytes / bytes));
    notes.push(`GEMV: rotating ${((copies * bytes) / MiB).toFixed(0)} MiB of W, less than 4x LLC (${(wantBytes / MiB).toFixed(0)} MiB) because of memory limits`);
  }
  if (llc === null) notes.push("GEMV: last-level cache size unknown; assumed 32 MiB");
  return a.scoped(() => {
    const ws: number[] = [];
    for (let c = 0; c < copies; c++) {
      const p = a.alloc(N * K);
      if (c === 0) fillRandom(a.f32(p, N * K), 3);
      else a.f32(p, N * K).set(a.f32(ws[0], N * K)); // memcpy: identical values, distinct memory
      ws.push(p);
    }
    const x = a.alloc(K), y = a.alloc(N);
    fillRandom(a.f32(x, K), 4);
    const wasmRate = rate((rep) => k.f32_gemv(ws[rep % copies], x, y, N, K, 0), quick ? 300 : 1500, copies);
    const views = ws.map((p) => a.f32(p, N * K));
    const xs = a.f32(x, K), ys = new Float32Array(N);
    const scalarRate = rate((rep) => ref.gemv(views[rep % copies], xs, ys, N, K, false), quick ? 300 : 1500, quick ? 2 : copies);
    return {
      N, K, copies, rotatedBytes: copies * bytes,
      wasmGBps: (bytes * wasmRate) / 1e9,
      scalarGBps: (bytes * scalarRate) / 1e9,
      speedup: wasmRate / scalarRate,
    };
  });
}

/** Run the kernel benchmark; prints a table unless `json` (the CLI prints the returned object then). */
export async function benchKernels(opts: { json: boolean; quick?: boolean; svg?: string; sparse?: boolean; anchors?: boolean }): Promise<BenchKernelsResult> {
  const quick = !!opts.quick;
  const log = (s: string) => {
    if (!opts.json) console.log(s);
  };
  const notes: string[] = [];
  const llc = lastLevelCacheBytes();
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  log(`kernels, single thread, ${cpu}, LLC ${llc === null ? "unknown" : `${(llc / MiB).toFixed(0)} MiB`}${quick ? " (quick)" : ""}`);
  const wasm = createWasm(64 * MiB);

  const gemm: GemmRow[] = [];
  log("");
  log("GEMM nt, Y = X·Wᵀ, square      WASM SIMD    scalar TS    speedup");
  for (const n of GEMM_SIZES) {
    const row = benchGemm(wasm, n, quick, notes);
    gemm.push(row);
    log(
      `  ${String(n).padStart(4)}x${String(n).padEnd(4)}                 ${row.wasmGflops.toFixed(1).padStart(6)} GF/s` +
        `  ${row.scalarGflops === null ? "     n/a   " : `${row.scalarGflops.toFixed(2).padStart(6)} GF/s`}` +
        `  ${row.speedup === null ? "   n/a" : `${row.speedup.toFixed(0).padStart(5)}x`}`,
    );
  }

  const gemv = benchGemv(wasm, llc, quick, notes);
  log("");
  log(`GEMV y = W·x, W rotated over ${gemv.copies} copies (${(gemv.rotatedBytes / MiB).toFixed(0)} MiB)`);
  log(
    `  ${gemv.N}x${gemv.K}                   ${gemv.wasmGBps.toFixed(1).padStart(6)} GB/s  ${gemv.scalarGBps.toFixed(2).padStart(6)} GB/s` +
      `  ${gemv.speedup.toFixed(0).padStart(5)}x`,
  );
  const { anchors: loaded, failures: anchorFailures } = opts.anchors === false ? { anchors: [], failures: [] } : await loadAnchors();
  for (const f of anchorFailures) notes.push(`anchor ${f.name} did not run: ${f.reason}`);
  const anchorSetup = loaded.map((a) => ({ name: a.name, version: a.version, setup: a.setup }));
  for (const a of anchorSetup) notes.push(`anchor ${a.name} ${a.version}: ${a.setup}`);
  const { rows: sparse, anchors } = opts.sparse === false ? { rows: [], anchors: [] } : await benchSparse(wasm, llc, quick, notes, log, loaded);
  if (anchors.length) {
    log("");
    log("our dense GEMM/GEMV over the faster anchor (target ≥ 1.7x at batch > 1):");
    for (const r of sparse.filter((r) => r.format === "dense")) {
      const best = anchors.filter((x) => x.N === r.N && x.K === r.K && x.M === r.M).sort((x, y) => y.gflops - x.gflops)[0];
      if (best) log(`  ${`${r.N}x${r.K}`.padEnd(10)} ${String(r.M).padStart(3)}  ours ${r.effGflops.toFixed(1).padStart(6)} GF/s, ${best.name} ${best.gflops.toFixed(1).padStart(6)} GF/s: ${best.oursOver.toFixed(2)}x`);
    }
  }
  if (opts.svg && sparse.length) {
    writeSparseChart(opts.svg, sparse, cpu);
    log(`chart: ${opts.svg}`);
  }
  if (notes.length > 0) {
    log("");
    for (const n of notes) log(`note: ${n}`);
  }
  return { cpu, llcBytes: llc, threads: 1, quick, gemm, gemv, sparse, anchors, anchorFailures, anchorSetup, chart: opts.svg ?? null, notes };
}
