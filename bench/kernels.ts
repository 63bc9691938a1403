/**
 * @file `wasprune bench kernels`: the kernels at the machine's limit, measured side by side in one run.
 *  - The ceiling: a plain WASM SIMD streaming read (f32_stream_sum: four f32x4 accumulators, nothing else) of
 *    every weight copy of the GEMV section at once (far larger than the last-level cache), on one thread and on
 *    two (an executor block each).
 *  - GEMV at 4096x4096, weights streamed from DRAM (each variant rotates through copies > 4x the LLC): row-major
 *    f32 (the pruning layout), the p8 panels inference runs in f32 / bf16 / f16, and 2:4 with f32 / bf16 / f16
 *    values; GB/s of bytes actually read, and the speed (calls/s, i.e. tokens/s) over dense p8 f32. Then
 *    generation's two-thread GEMV (src/generate/gemv.ts) against the two-thread read.
 *  - Dense GEMM at 256/512/1024: the prepacked p8 GEMM inference runs (weights packed once, not per call), and
 *    f32_gemm_nt (the pruning GEMM, which packs W per call), next to the scalar TypeScript reference.
 *  - The compute ceiling: register multiply-adds (f32_compute_peak: multiply then add, and madd), one thread and two,
 *    next to f32_gemm_strided at 1024³ (the Gram's, the Cholesky's and the OBS sweep's GEMM), one thread and two:
 *    what a second thread of this machine adds to pure arithmetic, against what it adds to the pruning GEMM.
 *  - Where the runtime runs both builds: baseline vs relaxed SIMD on the same kernels, side by side.
 *  - bench/sparse.ts: dense vs 2:4 vs unstructured on real shapes, and the anchors (onnxruntime-web, tfjs-wasm).
 * Every measurement is interleaved with the others it is compared to, in rounds, best of each (a shared machine
 * slows whole stretches of time; the best round of each is the least disturbed one); targets (issue 13) are
 * reported with their values, met or missed, in `--json` too.
 */
import { readdirSync, readFileSync } from "node:fs";
import { cpus, freemem } from "node:os";
import { createWasm, relaxedSimdSupported, type KernelBuild, type Wasm } from "../src/wasm/runtime.js";
import { kernels } from "../src/kernels/index.js";
import { computePeak, gemmStrided, streamSum } from "../src/kernels/products.js";
import * as ref from "../src/kernels/reference.js";
import { mulberry32 } from "../src/util/rng.js";
import { openExecutor } from "../src/workers/index.js";
import type { Executor } from "../src/exec/executor.js";
import { gemvSplitter } from "../src/generate/gemv.js";
import { packP8 } from "../src/model/packed.js";
import { intScratchBytes, place2of4, placeP8, placeQuantized, runLinear, type KernelLinear } from "../src/model/linear.js";
import { pack2of4 } from "../src/sparse/nm.js";
import type { WeightDType } from "../src/model/types.js";
import { INT_FORMATS, benchSparse, randomInt, writeSparseChart, type AnchorRow, type SparseRow } from "./sparse.js";
import { loadAnchors } from "./anchors.js";
import { rate } from "./timing.js";
import { renderTarget, target, type Target } from "./targets.js";

export interface GemmRow {
  /** Square size: M = N = K = n. */
  n: number;
  /** the p8 GEMM on weights packed once (what inference runs) */
  p8Gflops: number;
  /** f32_gemm_nt, packing W per call (the pruning GEMM) */
  ntGflops: number;
  /** null when the scalar reference was skipped at this size (too slow) */
  scalarGflops: number | null;
}

export interface GemvRow {
  /** layout and value dtype: "rows f32", "p8 f32", "p8 bf16", "2:4 f32", … */
  name: string;
  N: number;
  K: number;
  /** bytes of one weight copy, copies rotated through */
  bytes: number;
  copies: number;
  /** bytes read per second (the weights of one call over its time) */
  GBps: number;
  /** GBps over the one-thread streaming-read ceiling */
  ofCeiling: number;
  /** calls/s (tokens/s of a layer) over dense p8 f32 */
  overDense: number;
}

export interface BuildRow {
  kernel: string;
  /** calls/s-based figure in each build (GB/s for GEMVs, GFLOP/s for GEMMs) */
  baseline: number;
  relaxed: number;
  unit: "GB/s" | "GFLOP/s";
  relaxedOverBaseline: number;
}

export interface BenchKernelsResult {
  cpu: string;
  /** Largest cache reported by /sys (bytes), or null if it could not be read. */
  llcBytes: number | null;
  /** the kernel build this process runs (baseline or relaxed SIMD, chosen by feature detection) */
  build: KernelBuild;
  quick: boolean;
  /** the compute ceiling (GFLOP/s of register multiply-adds) and the strided GEMM at 1024³, one and two threads */
  compute: ComputeCeiling;
  /** the streaming-read ceiling over `bytes` (all GEMV copies), one and two threads */
  ceiling: { bytes: number; oneThreadGBps: number; twoThreadGBps: number | null };
  gemv: GemvRow[];
  /**
   * generation's two-thread GEMV (p8 f32 4096²) against the two-thread read: over the one-thread rows' copies
   * (GBps, ofCeiling), and over copies as large as a model (`footprintBytes`, beyond any cache the host may
   * have: the target's measurement)
   */
  gemv2: { GBps: number; ofCeiling: number; footprintBytes: number; footprintReadGBps: number; footprintGBps: number; footprintOfCeiling: number } | null;
  gemm: GemmRow[];
  /** baseline vs relaxed SIMD side by side (null where the runtime lacks relaxed SIMD) */
  builds: BuildRow[] | null;
  /** dense vs 2:4 vs unstructured (bench/sparse.ts) */
  sparse: SparseRow[];
  /** onnxruntime-web and tfjs-wasm dense matmul on the same shapes, same run (bench/anchors.ts) */
  anchors: AnchorRow[];
  /** anchors that could not run here, and why */
  anchorFailures: { name: string; reason: string }[];
  /** how each anchor was set up */
  anchorSetup: { name: string; version: string; setup: string }[];
  /** the issue's targets, each with its measured value, met or missed */
  targets: Target[];
  /** the SVG chart written, if asked for */
  chart: string | null;
  notes: string[];
}

const MiB = 1 << 20;
const GEMM_SIZES = [256, 512, 1024];
const GEMV_N = 4096;
const GEMV_K = 4096;
/** The two-thread GEMV's weights at a model's footprint (a scratch probe read 512 MiB+ from DRAM, 256 MiB from cache). */
const FOOTPRINT_BYTES = 1024 * MiB;
/** Do not rotate more than this much weight per variant (the wasm32 memory is 4 GiB, and there are nine). */
const MAX_ROTATED_BYTES = 320 * MiB;

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

function randomWeights(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r() - 0.5;
  return a;
}

/** `fns` timed in `rounds` interleaved rounds of `budgetMs` each; the best calls/s of each. */
function interleaved(fns: Record<string, { call: (rep: number) => void; minReps: number }>, rounds: number, budgetMs: number): Record<string, number> {
  const best: Record<string, number> = {};
  for (let r = 0; r < rounds; r++) {
    for (const [name, f] of Object.entries(fns)) best[name] = Math.max(best[name] ?? 0, rate(f.call, budgetMs, f.minReps));
  }
  return best;
}

/** 2:4-prune w in place: keep a random pair of every group of 4 (as bench/sparse.ts). */
function prune2of4(w: Float32Array, seed: number): Float32Array {
  const r = mulberry32(seed);
  const pairs = [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]];
  for (let o = 0; o < w.length; o += 4) {
    const keep = pairs[Math.floor(r() * 6)]!;
    for (let j = 0; j < 4; j++) if (!keep.includes(j)) w[o + j] = 0;
  }
  return w;
}

/** The GEMV variants of one instance: weights placed (copies for DRAM streaming), a call per variant. */
function gemvVariants(wasm: Wasm, llc: number | null, names: readonly string[], notes?: string[]) {
  const k = kernels(wasm);
  const a = wasm.arena;
  const N = GEMV_N, K = GEMV_K;
  const w = randomWeights(N * K, 3);
  const w24 = prune2of4(w.slice(), 5);
  const p24 = pack2of4(w24, N, K);
  const wantBytes = 4 * (llc ?? 32 * MiB);
  const x = a.alloc(K), y = a.alloc(N);
  a.f32(x, K).set(randomWeights(K, 4));
  const scratchBytes = intScratchBytes(k, 1, K);
  const scratch = a.allocBytes(scratchBytes);
  const start = a.mark();
  const out: Record<string, { call: (rep: number) => void; minReps: number; bytes: number; copies: number }> = {};
  for (const name of names) {
    const [layout, d] = name.split(" ") as ["rows" | "p8" | "2:4" | "int8" | "int4", WeightDType];
    const q = name in INT_FORMATS ? randomInt(N, K, name as keyof typeof INT_FORMATS, 6) : undefined;
    const place = (): { ptr: number; lw?: KernelLinear; bytes: number } => {
      if (layout === "rows") return { ptr: a.put(w), bytes: N * K * 4 };
      if (q) {
        const lw = placeQuantized(wasm, q);
        return { ptr: 0, lw, bytes: lw.bytes };
      }
      const lw = layout === "p8" ? placeP8(a, packP8(w, N, K, d), N, K, d) : place2of4(a, p24, d);
      return { ptr: 0, lw, bytes: lw.bytes };
    };
    const first = place();
    let copies = Math.max(2, Math.ceil(wantBytes / first.bytes) + 1);
    if (copies * first.bytes > MAX_ROTATED_BYTES) copies = Math.max(2, Math.floor(MAX_ROTATED_BYTES / first.bytes));
    const all = [first];
    for (let c = 1; c < copies; c++) all.push(place());
    const call = layout === "rows"
      ? (rep: number) => k.f32_gemv(all[rep % copies]!.ptr, x, y, N, K, 0)
      : (rep: number) => runLinear(k, all[rep % copies]!.lw!, x, y, 1, scratch, scratchBytes);
    out[name] = { call, minReps: copies, bytes: first.bytes, copies };
  }
  if (llc === null) notes?.push("GEMV: last-level cache size unknown; assumed 32 MiB");
  return { variants: out, region: { p: start, bytes: Math.floor((a.mark() - start) / 64) * 64 }, x, y, N, K, all: out };
}

const GEMV_NAMES = ["rows f32", "p8 f32", "p8 bf16", "p8 f16", "2:4 f32", "2:4 bf16", "2:4 f16", "int8", "int4 g128", "2:4 int4 g128"] as const;

/** Run the kernel benchmark; prints a table unless `json` (the CLI prints the returned object then). */
export async function benchKernels(opts: { json: boolean; quick?: boolean; svg?: string; sparse?: boolean; anchors?: boolean }): Promise<BenchKernelsResult> {
  const quick = !!opts.quick;
  const log = (s: string) => {
    if (!opts.json) console.log(s);
  };
  const notes: string[] = [];
  const targets: Target[] = [];
  const llc = lastLevelCacheBytes();
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const rounds = quick ? 2 : 4;
  const budget = quick ? 60 : 200;
  const wasm = createWasm(64 * MiB);
  log(`kernels, ${cpu}, LLC ${llc === null ? "unknown" : `${(llc / MiB).toFixed(0)} MiB`}, ${wasm.build} build${quick ? " (quick)" : ""}; best of ${rounds} interleaved rounds`);
  if (freemem() < 3 * 1024 * MiB) notes.push(`free memory ${(freemem() / 1024 / MiB).toFixed(1)} GiB: the GEMV section needs ~2.4 GiB`);

  // ---- the ceiling and the GEMVs (one thread), interleaved ----
  const gv = gemvVariants(wasm, llc, GEMV_NAMES, notes);
  const k = kernels(wasm);
  const region = gv.region;
  const best = interleaved({
    read: { call: () => k.f32_stream_sum(region.p, region.bytes), minReps: 2 },
    ...Object.fromEntries(Object.entries(gv.variants).map(([n, v]) => [n, { call: v.call, minReps: v.minReps }])),
  }, rounds, budget);
  const readGBps = (region.bytes * best.read!) / 1e9;
  const denseRate = best["p8 f32"]!;
  const gemv: GemvRow[] = GEMV_NAMES.map((name) => {
    const v = gv.variants[name]!;
    const GBps = (v.bytes * best[name]!) / 1e9;
    return { name, N: gv.N, K: gv.K, bytes: v.bytes, copies: v.copies, GBps, ofCeiling: GBps / readGBps, overDense: best[name]! / denseRate };
  });

  // ---- two threads: the read and generation's split GEMV ----
  let twoRead: number | null = null;
  let gemv2: BenchKernelsResult["gemv2"] = null;
  const exec = openExecutor(wasm, 2);
  try {
    if (exec.slots >= 2) {
      const p8 = gv.variants["p8 f32"]!;
      // the split GEMV's weights: the same p8 copies, through the helper (rows split at a multiple of 8), and
      // copies as large as a model: the rotation above fits in a large host cache (this VM's reports no size)
      const p8w = p8Copies(wasm, gv.N, gv.K, p8.copies);
      const m = wasm.arena.mark();
      const big = p8Copies(wasm, gv.N, gv.K, Math.ceil(FOOTPRINT_BYTES / p8.bytes));
      const bigRegion = { p: m, bytes: Math.floor((wasm.arena.mark() - m) / 64) * 64 };
      // the helper holds a worker for as long as it is open, so the reads run with it closed (a read with the
      // helper open ran on one worker: the two-thread read of earlier runs was a one-thread read)
      const splitRate = async (ws: KernelLinear[]): Promise<number> => {
        const split = gemvSplitter(exec, 0);
        try {
          for (let i = 0; i < 32; i++) split.gemv(ws[i % ws.length]!, gv.x, gv.y, 0, 0); // the worker's kernel to V8's top tier
          return rate((rep) => {
            split.gemv(ws[rep % ws.length]!, gv.x, gv.y, 0, 0);
          }, budget, ws.length);
        } finally {
          await split.close();
        }
      };
      await warmWorkers(exec, region.p);
      const best2: Record<string, number> = {};
      for (let r = 0; r < rounds; r++) {
        best2.read = Math.max(best2.read ?? 0, await rateAsyncSimple(() => streamSum(exec, region.p, region.bytes), budget, 2));
        best2.bigRead = Math.max(best2.bigRead ?? 0, await rateAsyncSimple(() => streamSum(exec, bigRegion.p, bigRegion.bytes), budget, 2));
        best2.gemv = Math.max(best2.gemv ?? 0, await splitRate(p8w));
        best2.bigGemv = Math.max(best2.bigGemv ?? 0, await splitRate(big));
      }
      wasm.arena.release(m);
      twoRead = (region.bytes * best2.read!) / 1e9;
      const GBps = (p8.bytes * best2.gemv!) / 1e9;
      const footprintReadGBps = (bigRegion.bytes * best2.bigRead!) / 1e9;
      const footprintGBps = (p8.bytes * best2.bigGemv!) / 1e9;
      gemv2 = { GBps, ofCeiling: GBps / twoRead, footprintBytes: bigRegion.bytes, footprintReadGBps, footprintGBps, footprintOfCeiling: footprintGBps / footprintReadGBps };
    } else {
      notes.push("two-thread read and GEMV: not measured (one core available)");
    }
  } finally {
    await exec.close();
  }
  log("");
  log(`streaming read (f32_stream_sum over ${(region.bytes / MiB).toFixed(0)} MiB): ${readGBps.toFixed(1)} GB/s one thread${twoRead === null ? "" : `, ${twoRead.toFixed(1)} GB/s two threads`}`);
  log(`GEMV ${gv.N}x${gv.K}, weights streamed from DRAM     GB/s   of read   speed over p8 f32`);
  for (const r of gemv) {
    log(`  ${r.name.padEnd(10)} (${(r.bytes / MiB).toFixed(0).padStart(3)} MiB x ${r.copies})     ${r.GBps.toFixed(1).padStart(6)}   ${(r.ofCeiling * 100).toFixed(0).padStart(5)}%   ${r.overDense.toFixed(2).padStart(6)}x`);
  }
  if (gemv2) {
    log(`  two threads, p8 f32 (generation's split GEMV): ${gemv2.GBps.toFixed(1)} GB/s, ${(gemv2.ofCeiling * 100).toFixed(0)}% of the two-thread read`);
    log(`  two threads over ${(gemv2.footprintBytes / MiB).toFixed(0)} MiB (a model's footprint): read ${gemv2.footprintReadGBps.toFixed(1)} GB/s, split GEMV ${gemv2.footprintGBps.toFixed(1)} GB/s (${(gemv2.footprintOfCeiling * 100).toFixed(0)}%)`);
  }
  const row = (n: string) => gemv.find((r) => r.name === n)!;
  targets.push(target("f32 GEMV (p8) of the one-thread streaming read", 100 * row("p8 f32").ofCeiling, 88, "%"));
  if (gemv2) targets.push(target("two-thread generation GEMV (p8 f32) of the two-thread read, at a model's footprint", 100 * gemv2.footprintOfCeiling, 80, "%"));
  targets.push(target("bf16 dense GEMV over f32 dense GEMV (tokens/s)", row("p8 bf16").overDense, 1.8, "x"));
  targets.push(target("2:4 bf16 GEMV over f32 dense GEMV (tokens/s)", row("2:4 bf16").overDense, 3.2, "x"));
  targets.push(target("int8 GEMV over f32 dense GEMV (tokens/s; issue 14)", row("int8").overDense, 3, "x"));
  targets.push(target("int4 g128 GEMV over f32 dense GEMV (tokens/s; issue 14)", row("int4 g128").overDense, 5, "x"));
  targets.push(target("2:4 int4 g128 GEMV over f32 dense GEMV (tokens/s; issue 14)", row("2:4 int4 g128").overDense, 6, "x"));

  // ---- GEMM ----
  const gemm: GemmRow[] = [];
  log("");
  log("GEMM Y = X·Wᵀ, square       p8 (packed once)   f32_gemm_nt (packs W per call)   scalar TS");
  for (const n of GEMM_SIZES) {
    const r = benchGemm(wasm, n, quick, rounds, budget, notes);
    gemm.push(r);
    log(`  ${String(n).padStart(4)}x${String(n).padEnd(4)}            ${r.p8Gflops.toFixed(1).padStart(6)} GF/s        ${r.ntGflops.toFixed(1).padStart(6)} GF/s                ${r.scalarGflops === null ? "  n/a" : `${r.scalarGflops.toFixed(2)} GF/s`}`);
  }
  for (const r of gemm.filter((g) => g.n >= 512)) targets.push(target(`dense GEMM (p8) at ${r.n}`, r.p8Gflops, 48, "GFLOP/s"));

  // ---- the compute ceiling, and the strided GEMM of the Gram and the solve, one and two threads ----
  const compute = await benchCompute(wasm, rounds, budget, notes);
  const p8At1024 = gemm.find((g) => g.n === 1024)?.p8Gflops ?? gemm[gemm.length - 1]!.p8Gflops;
  log("");
  log(`compute ceiling (register multiply-adds, 10 chains)   one thread   two threads`);
  log(`  mul then add (the strided GEMM's, f32_gemm_nt's)    ${compute.mulAdd.one.toFixed(1).padStart(6)} GF/s  ${compute.mulAdd.two === null ? "   n/a" : `${compute.mulAdd.two.toFixed(1).padStart(6)} GF/s`}`);
  log(`  madd (the p8 GEMM's; fused in the relaxed build)    ${compute.madd.one.toFixed(1).padStart(6)} GF/s  ${compute.madd.two === null ? "   n/a" : `${compute.madd.two.toFixed(1).padStart(6)} GF/s`}`);
  log(`  f32_gemm_strided 1024³ (Gram, Cholesky, OBS)       ${compute.strided.one.toFixed(1).padStart(6)} GF/s  ${compute.strided.two === null ? "   n/a" : `${compute.strided.two.toFixed(1).padStart(6)} GF/s`}`);
  if (compute.strided.one > compute.mulAdd.one) {
    notes.push(`the register loop (${compute.mulAdd.one.toFixed(1)} GFLOP/s) ran slower than the strided GEMM (${compute.strided.one.toFixed(1)}): this engine compiles it worse than the GEMMs, so here it is no ceiling; its two-thread ratio still is the machine's`);
  }
  const scaling = (r: OneTwo) => (r.two === null ? "" : `  (${(r.two / r.one).toFixed(2)}x)`);
  log(`two threads over one: compute ${scaling(compute.mulAdd).trim()} mul+add, ${scaling(compute.madd).trim()} madd; strided GEMM ${scaling(compute.strided).trim()}; p8 GEMM at 1024 is ${((100 * p8At1024) / compute.madd.one).toFixed(0)}% of the one-thread madd ceiling`);

  // ---- the two builds side by side ----
  let builds: BuildRow[] | null = null;
  if (relaxedSimdSupported()) {
    builds = benchBuilds(llc, quick, rounds, budget);
    log("");
    log("baseline vs relaxed SIMD build (FMA, bare swizzles), same kernels, interleaved:");
    for (const b of builds) log(`  ${b.kernel.padEnd(28)} ${b.baseline.toFixed(1).padStart(7)} → ${b.relaxed.toFixed(1).padStart(7)} ${b.unit}  (${b.relaxedOverBaseline.toFixed(2)}x)`);
  } else {
    notes.push("relaxed SIMD: this runtime does not support it (Node 20); the baseline build runs. Node ≥ 22 measures both side by side");
  }

  // ---- sparse and the anchors ----
  const { anchors: loaded, failures: anchorFailures } = opts.anchors === false ? { anchors: [], failures: [] } : await loadAnchors();
  for (const f of anchorFailures) notes.push(`anchor ${f.name} did not run: ${f.reason}`);
  const anchorSetup = loaded.map((a) => ({ name: a.name, version: a.version, setup: a.setup }));
  for (const a of anchorSetup) notes.push(`anchor ${a.name} ${a.version}: ${a.setup}`);
  const { rows: sparse, anchors } = opts.sparse === false ? { rows: [], anchors: [] } : await benchSparse(wasm, llc, quick, notes, log, loaded);
  if (anchors.length) {
    log("");
    log("our dense GEMM/GEMV (p8, packed once) over the faster anchor:");
    for (const r of sparse.filter((r) => r.format === "dense")) {
      const fastest = anchors.filter((x) => x.N === r.N && x.K === r.K && x.M === r.M).sort((x, y) => y.gflops - x.gflops)[0];
      if (!fastest) continue;
      log(`  ${`${r.N}x${r.K}`.padEnd(10)} ${String(r.M).padStart(3)}  ours ${r.effGflops.toFixed(1).padStart(6)} GF/s, ${fastest.name} ${fastest.gflops.toFixed(1).padStart(6)} GF/s: ${fastest.oursOver.toFixed(2)}x`);
      targets.push(target(`dense ${r.N}x${r.K} batch ${r.M} over the faster anchor (${fastest.name})`, fastest.oursOver, r.M === 1 ? 1.0 : 1.3, "x"));
    }
  }
  for (const M of [1, 8, 64]) {
    const s = sparse.find((r) => r.N === 4096 && r.K === 4096 && r.M === M && r.format === "2:4");
    if (s) targets.push(target(`2:4 over dense at 4096x4096 batch ${M}`, s.speedup, M === 1 ? 1.8 : 1.6, "x"));
  }
  for (const M of [8, 64]) {
    for (const f of ["int8", "int4 g128", "2:4 int4 g128"] as const) {
      const s = sparse.find((r) => r.N === 4096 && r.K === 4096 && r.M === M && r.format === f);
      if (s) targets.push(target(`${f} over dense f32 at 4096x4096 batch ${M} (issue 14: no slower)`, s.speedup, 1.0, "x"));
    }
  }
  if (opts.svg && sparse.length) {
    writeSparseChart(opts.svg, sparse, cpu);
    log(`chart: ${opts.svg}`);
  }
  log("");
  log("targets (issue 13; preliminary on a shared machine):");
  for (const t of targets) log(`  ${renderTarget(t)}`);
  if (notes.length > 0) {
    log("");
    for (const n of notes) log(`note: ${n}`);
  }
  return {
    cpu, llcBytes: llc, build: wasm.build, quick,
    ceiling: { bytes: region.bytes, oneThreadGBps: readGBps, twoThreadGBps: twoRead },
    compute, gemv, gemv2, gemm, builds, sparse, anchors, anchorFailures, anchorSetup, targets, chart: opts.svg ?? null, notes,
  };
}

/**
 * Bring the workers' kernels to V8's optimizing tier before anything is timed on them. A WebAssembly function
 * starts in the baseline tier and is replaced only between calls (V8 has no on-stack replacement for wasm), so a
 * worker that runs a 1 GiB read a handful of times spends most of them in baseline code: measured, one such read
 * on two threads at 1.1 GB/s and then 41–51 GB/s. Many short calls, then a pause for the background compile.
 */
async function warmWorkers(exec: Executor, p: number): Promise<void> {
  for (let i = 0; i < 32; i++) await streamSum(exec, p, 4 * MiB);
  await new Promise((resolve) => setTimeout(resolve, 200));
}

/** `copies` p8 f32 copies of the 4096² weights (for the split GEMV). */
function p8Copies(wasm: Wasm, N: number, K: number, copies: number): KernelLinear[] {
  const p = packP8(randomWeights(N * K, 3), N, K, "f32");
  return Array.from({ length: copies }, () => placeP8(wasm.arena, p, N, K, "f32"));
}

/** GFLOP/s, one thread and two (null with one core). */
interface OneTwo {
  one: number;
  two: number | null;
}

export interface ComputeCeiling {
  /** register multiply-adds, multiply then add (the instructions of f32_gemm_strided and f32_gemm_nt) */
  mulAdd: OneTwo;
  /** register `madd`s (the p8 GEMM's: fused in the relaxed build, multiply then add in the baseline) */
  madd: OneTwo;
  /** f32_gemm_strided C = A·B at 1024³, packed (two threads: gemmStrided's row split, as the solve runs it) */
  strided: OneTwo;
}

/** Steps of one f32_compute_peak call: 80 flops each, ~4 ms at 40 GFLOP/s. */
const PEAK_STEPS = 2_000_000;

/**
 * The compute ceiling next to the strided GEMM, interleaved (best of `rounds`): one thread inline, two threads as
 * one task per slot at once — what two threads of this machine can multiply-add at all, the bound every GEMM
 * of a prune's phases is measured against.
 */
async function benchCompute(wasm: Wasm, rounds: number, budget: number, notes: string[]): Promise<ComputeCeiling> {
  const k = kernels(wasm);
  const a = wasm.arena;
  const n = 1024;
  const m = a.mark();
  const exec = openExecutor(wasm, 2);
  try {
    const A = a.put(randomWeights(n * n, 5)), B = a.put(randomWeights(n * n, 6)), C = a.alloc(n * n);
    const pack = a.allocBytes(k.f32_gemm_strided_scratch());
    const peakFlops = 80 * PEAK_STEPS;
    const best = { mulAdd1: 0, madd1: 0, strided1: 0, mulAdd2: 0, madd2: 0, strided2: 0 };
    const two = exec.slots >= 2;
    for (let r = 0; r < rounds; r++) {
      best.mulAdd1 = Math.max(best.mulAdd1, rate(() => k.f32_compute_peak(PEAK_STEPS, 1e-3, 0), budget / 2, 2) * peakFlops);
      best.madd1 = Math.max(best.madd1, rate(() => k.f32_compute_peak(PEAK_STEPS, 1e-3, 1), budget / 2, 2) * peakFlops);
      best.strided1 = Math.max(best.strided1, rate(() => k.f32_gemm_strided(A, n, 1, B, n, C, n, n, n, n, 1, 0, 0, pack), budget, 2) * 2 * n ** 3);
      if (!two) continue;
      best.mulAdd2 = Math.max(best.mulAdd2, (await rateAsyncSimple(() => computePeak(exec, PEAK_STEPS, false), budget / 2, 2)) * peakFlops * exec.slots);
      best.madd2 = Math.max(best.madd2, (await rateAsyncSimple(() => computePeak(exec, PEAK_STEPS, true), budget / 2, 2)) * peakFlops * exec.slots);
      best.strided2 = Math.max(best.strided2, (await rateAsyncSimple(() => gemmStrided(exec, A, n, B, n, C, n, n, n, n, 1, 0, "strided GEMM"), budget, 2)) * 2 * n ** 3);
    }
    if (!two) notes.push("two-thread compute ceiling and strided GEMM: not measured (one core available)");
    const g = (v: number) => v / 1e9;
    return {
      mulAdd: { one: g(best.mulAdd1), two: two ? g(best.mulAdd2) : null },
      madd: { one: g(best.madd1), two: two ? g(best.madd2) : null },
      strided: { one: g(best.strided1), two: two ? g(best.strided2) : null },
    };
  } finally {
    await exec.close();
    a.release(m);
  }
}

async function rateAsyncSimple(fn: () => Promise<unknown>, budgetMs: number, minReps: number): Promise<number> {
  await fn();
  let reps = 0;
  const t0 = performance.now();
  while (reps < minReps || performance.now() - t0 < budgetMs) {
    await fn();
    reps++;
  }
  return (reps * 1000) / (performance.now() - t0);
}

function benchGemm(wasm: Wasm, n: number, quick: boolean, rounds: number, budget: number, notes: string[]): GemmRow {
  const k = kernels(wasm);
  const a = wasm.arena;
  return a.scoped(() => {
    const wv = randomWeights(n * n, 2);
    const x = a.put(randomWeights(n * n, 1)), w = a.put(wv), y = a.alloc(n * n);
    const lw = placeP8(a, packP8(wv, n, n, "f32"), n, n, "f32");
    const pack = a.allocBytes(Math.max(k.f32_gemm_nt_scratch(n, n, n), k.gemm_p8_nt_scratch(n, n)));
    const flops = 2 * n * n * n;
    const best = interleaved({
      p8: { call: () => k.f32_gemm_p8_nt(x, lw.ptr, y, n, n, n, pack), minReps: 2 },
      nt: { call: () => k.f32_gemm_nt(x, w, y, n, n, n, 0, pack), minReps: 2 },
    }, rounds, budget);
    // the scalar reference runs ~1 GFLOP/s or less: only up to 512, once per size
    let scalarGflops: number | null = null;
    if (n <= 512 && !quick) {
      const xs = a.f32(x, n * n), ws = a.f32(w, n * n), ys = new Float32Array(n * n);
      const t0 = performance.now();
      ref.gemmNT(xs, ws, ys, n, n, n, false);
      scalarGflops = flops / ((performance.now() - t0) / 1000) / 1e9;
    } else if (n > 512) {
      notes.push(`scalar GEMM at ${n}: skipped (one call takes seconds)`);
    }
    return { n, p8Gflops: (flops * best.p8!) / 1e9, ntGflops: (flops * best.nt!) / 1e9, scalarGflops };
  });
}

/** The same inference kernels in the baseline and the relaxed build, each on its own instance, interleaved. */
function benchBuilds(llc: number | null, quick: boolean, rounds: number, budget: number): BuildRow[] {
  const names = ["p8 f32", "p8 bf16", "2:4 f32", "2:4 bf16"] as const;
  const sides = (["baseline", "relaxed"] as const).map((b) => {
    const w = createWasm(64 * MiB, b);
    const gv = gemvVariants(w, llc, names);
    const n = 512;
    const x = w.arena.put(randomWeights(n * n, 1));
    const lw = placeP8(w.arena, packP8(randomWeights(n * n, 2), n, n, "f32"), n, n, "f32");
    const y = w.arena.alloc(n * n);
    const pack = w.arena.allocBytes(kernels(w).gemm_p8_nt_scratch(n, n));
    return { b, gv, gemm: () => kernels(w).f32_gemm_p8_nt(x, lw.ptr, y, n, n, n, pack) };
  });
  const fns: Record<string, { call: (rep: number) => void; minReps: number }> = {};
  for (const s of sides) {
    for (const name of names) fns[`${s.b}|GEMV 4096² ${name}`] = { call: s.gv.variants[name]!.call, minReps: s.gv.variants[name]!.minReps };
    fns[`${s.b}|GEMM p8 f32 512`] = { call: s.gemm, minReps: 2 };
  }
  const best = interleaved(fns, quick ? 1 : rounds, budget);
  const out: BuildRow[] = [];
  for (const kernel of [...names.map((n) => `GEMV 4096² ${n}`), "GEMM p8 f32 512"]) {
    const isGemv = kernel.startsWith("GEMV");
    const unitOf = (b: "baseline" | "relaxed") => {
      const r = best[`${b}|${kernel}`]!;
      if (!isGemv) return (2 * 512 ** 3 * r) / 1e9;
      const v = sides.find((s) => s.b === b)!.gv.variants[kernel.replace("GEMV 4096² ", "")]!;
      return (v.bytes * r) / 1e9;
    };
    const baseline = unitOf("baseline"), relaxed = unitOf("relaxed");
    out.push({ kernel, baseline, relaxed, unit: isGemv ? "GB/s" : "GFLOP/s", relaxedOverBaseline: relaxed / baseline });
  }
  return out;
}
