/**
 * @file `wasprune bench kernels`: the kernels at the machine's limit, measured side by side in one run.
 *  - GEMV at 4096x4096 at a model's footprint: each variant's copies (≥ 1 GiB, pages made distinct) rotated,
 *    interleaved with the dense p8 f32 GEMV over its own 1 GiB of copies and a plain WASM SIMD streaming read
 *    of those same bytes (f32_stream_sum: four f32x4 accumulators, nothing else) — the ceiling. Variants:
 *    row-major f32 (the pruning layout), the p8 panels inference runs in f32 / bf16 / f16, 2:4 with f32 / bf16 /
 *    f16 values, int8, int4 g128 (each also on int8 activations: W8A8, W4A8) and 2:4 int4 g128; GB/s of bytes actually read, the fraction of the read, and
 *    the speed (calls/s, i.e. tokens/s) over dense p8 f32. Then generation's two-thread GEMV
 *    (src/generate/gemv.ts) over the dense copies against a two-thread read of them.
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
import { INT_FORMATS, benchSparse, intActivationsOf, randomInt, writeSparseChart, type AnchorRow, type SparseRow } from "./sparse.js";
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
  /** bytes of one weight copy (read per call); `copies` of them rotated, ≥ 1 GiB in all */
  bytes: number;
  copies: number;
  /** bytes read per second (the weights of one call over its time) */
  GBps: number;
  /** GBps over the one-thread streaming read measured next to it (of the dense copies' bytes) */
  ofCeiling: number;
  /** calls/s (tokens/s of a layer) over dense p8 f32 measured next to it */
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
  /** the streaming-read ceiling over `bytes` (the dense GEMV's copies), one and two threads */
  ceiling: { bytes: number; oneThreadGBps: number; twoThreadGBps: number | null };
  gemv: GemvRow[];
  /** generation's two-thread GEMV (p8 f32 4096²) over the dense copies, against the two-thread read of them */
  gemv2: { GBps: number; ofCeiling: number } | null;
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
/**
 * Bytes each GEMV variant reads per rotation: a model's footprint. A rotation a few times the LLC was not enough
 * here: this VM reports no cache size, and a scratch probe read 512 MiB and more at DRAM speed but 256 MiB faster;
 * with 192 MiB of p8 copies the split GEMV ran 69.7 GB/s, at 1 GiB 49.6 (commit 8586f68).
 */
const FOOTPRINT_BYTES = 1024 * MiB;

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

const GEMV_NAMES = ["rows f32", "p8 f32", "p8 bf16", "p8 f16", "2:4 f32", "2:4 bf16", "2:4 f16", "int8", "int8 a8", "int4 g128", "int4 g128 a8", "2:4 int4 g128"] as const;
type GemvName = (typeof GEMV_NAMES)[number];

/** The GEMV weights on the host, made once per run and placed into every instance: dense f32 and its 2:4 pack. */
interface GemvHost {
  w: Float32Array;
  p24: ReturnType<typeof pack2of4>;
}

function gemvHost(): GemvHost {
  const w = randomWeights(GEMV_N * GEMV_K, 3);
  return { w, p24: pack2of4(prune2of4(w.slice(), 5), GEMV_N, GEMV_K) };
}

/** What every GEMV variant of one instance is made from: the host weights and the arena's x, y and scratch. */
interface GemvSource extends GemvHost {
  wasm: Wasm;
  x: number;
  y: number;
  scratch: number;
  scratchBytes: number;
}

function gemvSource(wasm: Wasm, host: GemvHost): GemvSource {
  const k = kernels(wasm);
  const a = wasm.arena;
  const x = a.alloc(GEMV_K), y = a.alloc(GEMV_N);
  a.f32(x, GEMV_K).set(randomWeights(GEMV_K, 4));
  const scratchBytes = intScratchBytes(k, 1, GEMV_K);
  const scratch = a.allocBytes(scratchBytes);
  return { ...host, wasm, x, y, scratch, scratchBytes };
}

/** A GEMV variant's weights in the arena: `copies` of `bytes` each (read per call), and a call on copy rep % copies. */
interface GemvVariant {
  bytes: number;
  copies: number;
  /** the copies' address range, for the streaming read of the same bytes */
  region: { p: number; bytes: number };
  weights: KernelLinear[];
  call: (rep: number) => void;
}

/** The pointer fields of the placed layouts (rebased in each copy). */
const POINTER_FIELDS = ["ptr", "vals", "idx", "codes", "scales", "zeroTerms", "zeroPoints"] as const;

/**
 * Variant `name` placed once and copied (a block copy of its arena bytes, pointers moved) until the copies
 * read `footprint` bytes a rotation. Every 4 KiB page of copy c differs from the other copies' in its first and
 * ninth byte (the low byte of a value, XORed with 1..127: mantissa bits only, or a code or position), so a host
 * that merges identical pages cannot fold the copies into one.
 */
function placeVariant(src: GemvSource, name: GemvName, footprint: number): GemvVariant {
  const { wasm, w, p24, x, y, scratch, scratchBytes } = src;
  const k = kernels(wasm);
  const a = wasm.arena;
  const N = GEMV_N, K = GEMV_K;
  const [layout, d] = name.split(" ") as ["rows" | "p8" | "2:4" | "int8" | "int4", WeightDType];
  const p0 = Math.ceil(a.mark() / 64) * 64; // where the first allocation lands (64-byte aligned)
  let first: KernelLinear | { ptr: number; bytes: number };
  if (layout === "rows") first = { ptr: a.put(w), bytes: N * K * 4 };
  else if (name in INT_FORMATS) first = placeQuantized(wasm, randomInt(N, K, name as keyof typeof INT_FORMATS, 6), intActivationsOf(name));
  else first = layout === "p8" ? placeP8(a, packP8(w, N, K, d), N, K, d) : place2of4(a, p24, d);
  const span = a.mark() - p0;
  const copies = Math.max(2, Math.ceil(footprint / first.bytes));
  const all = [first];
  for (let c = 1; c < copies; c++) {
    const dst = a.allocBytes(span);
    const heap = new Uint8Array(wasm.memory.buffer);
    heap.copyWithin(dst, p0, p0 + span);
    for (let off = 0; off + 8 < span; off += 4096) {
      heap[dst + off] = heap[dst + off]! ^ (1 + (c % 127));
      heap[dst + off + 8] = heap[dst + off + 8]! ^ (1 + (Math.floor(c / 127) % 127));
    }
    const moved: Record<string, unknown> = { ...first };
    for (const f of POINTER_FIELDS) if (typeof moved[f] === "number" && moved[f] !== 0) moved[f] = (moved[f] as number) + (dst - p0);
    all.push(moved as typeof first);
  }
  const region = { p: p0, bytes: Math.floor((a.mark() - p0) / 64) * 64 };
  const call = layout === "rows"
    ? (rep: number) => k.f32_gemv((all[rep % copies] as { ptr: number }).ptr, x, y, N, K, 0)
    : (rep: number) => runLinear(k, all[rep % copies] as KernelLinear, x, y, 1, scratch, scratchBytes);
  return { bytes: first.bytes, copies, region, weights: layout === "rows" ? [] : (all as KernelLinear[]), call };
}

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
  if (freemem() < 3 * 1024 * MiB) notes.push(`free memory ${(freemem() / 1024 / MiB).toFixed(1)} GiB: the GEMV section needs ~2.2 GiB`);

  // ---- GEMV, one thread: every variant at a model's footprint, against p8 f32 and a read of the same size ----
  const k = kernels(wasm);
  const a = wasm.arena;
  const host = gemvHost();
  const src = gemvSource(wasm, host);
  // the dense reference, kept for the whole GEMV section (the two-thread split runs on it too)
  const dense = placeVariant(src, "p8 f32", FOOTPRINT_BYTES);
  const region = dense.region;
  const read = { call: () => k.f32_stream_sum(region.p, region.bytes), minReps: 2 };
  const pairs = new Map<GemvName, { variant: GemvVariant; best: Record<string, number> }>();
  for (const name of GEMV_NAMES) {
    if (name === "p8 f32") continue;
    const m = a.mark();
    const variant = placeVariant(src, name, FOOTPRINT_BYTES);
    const best = interleaved({ read, dense: { call: dense.call, minReps: dense.copies }, [name]: { call: variant.call, minReps: variant.copies } }, rounds, budget);
    pairs.set(name, { variant, best });
    a.release(m);
  }
  const bestOf = (key: string) => Math.max(...[...pairs.values()].map((p) => p.best[key]!));
  const readGBps = (region.bytes * bestOf("read")) / 1e9;
  const gemv: GemvRow[] = GEMV_NAMES.map((name) => {
    const pair = pairs.get(name);
    const row = { name, N: GEMV_N, K: GEMV_K };
    if (!pair) {
      const GBps = (dense.bytes * bestOf("dense")) / 1e9;
      return { ...row, bytes: dense.bytes, copies: dense.copies, GBps, ofCeiling: GBps / readGBps, overDense: 1 };
    }
    const { variant: v, best } = pair;
    const GBps = (v.bytes * best[name]!) / 1e9;
    return { ...row, bytes: v.bytes, copies: v.copies, GBps, ofCeiling: GBps / ((region.bytes * best.read!) / 1e9), overDense: best[name]! / best.dense! };
  });

  // ---- two threads: the read and generation's split GEMV, over the same dense copies ----
  let twoRead: number | null = null;
  let gemv2: BenchKernelsResult["gemv2"] = null;
  const exec = openExecutor(wasm, 2);
  try {
    if (exec.slots >= 2) {
      // the helper holds a worker for as long as it is open, so the reads run with it closed (a read with the
      // helper open ran on one worker: the two-thread read of earlier runs was a one-thread read)
      const splitRate = async (ws: KernelLinear[], warm: boolean): Promise<number> => {
        const split = gemvSplitter(exec, 0);
        try {
          // the worker's kernel to V8's top tier (its instance lives on, so once)
          if (warm) for (let i = 0; i < 32; i++) split.gemv(ws[i % ws.length]!, src.x, src.y, 0, 0);
          return rate((rep) => {
            split.gemv(ws[rep % ws.length]!, src.x, src.y, 0, 0);
          }, budget, ws.length);
        } finally {
          await split.close();
        }
      };
      await warmWorkers(exec, region.p);
      const best2 = { read: 0, gemv: 0 };
      for (let r = 0; r < rounds; r++) {
        best2.read = Math.max(best2.read, await rateAsyncSimple(() => streamSum(exec, region.p, region.bytes), budget, 2));
        best2.gemv = Math.max(best2.gemv, await splitRate(dense.weights, r === 0));
      }
      twoRead = (region.bytes * best2.read) / 1e9;
      const GBps = (dense.bytes * best2.gemv) / 1e9;
      gemv2 = { GBps, ofCeiling: GBps / twoRead };
    } else {
      notes.push("two-thread read and GEMV: not measured (one core available)");
    }
  } finally {
    await exec.close();
  }
  a.release(region.p);
  log("");
  log(`streaming read (f32_stream_sum over ${(region.bytes / MiB).toFixed(0)} MiB): ${readGBps.toFixed(1)} GB/s one thread${twoRead === null ? "" : `, ${twoRead.toFixed(1)} GB/s two threads`}`);
  log(`GEMV ${GEMV_N}x${GEMV_K}, each variant ≥ ${(FOOTPRINT_BYTES / MiB).toFixed(0)} MiB of copies, next to p8 f32 and the read    GB/s   of read   speed over p8 f32`);
  for (const r of gemv) {
    log(`  ${r.name.padEnd(14)} (${(r.bytes / MiB).toFixed(1).padStart(5)} MiB x ${String(r.copies).padStart(3)})   ${r.GBps.toFixed(1).padStart(6)}   ${(r.ofCeiling * 100).toFixed(0).padStart(5)}%   ${r.overDense.toFixed(2).padStart(6)}x`);
  }
  if (gemv2) log(`  two threads, p8 f32 (generation's split GEMV): ${gemv2.GBps.toFixed(1)} GB/s, ${(gemv2.ofCeiling * 100).toFixed(0)}% of the two-thread read`);
  const row = (n: string) => gemv.find((r) => r.name === n)!;
  targets.push(target("f32 GEMV (p8) of the one-thread streaming read", 100 * row("p8 f32").ofCeiling, 88, "%"));
  if (gemv2) targets.push(target("two-thread generation GEMV (p8 f32) of the two-thread read", 100 * gemv2.ofCeiling, 80, "%"));
  targets.push(target("bf16 dense GEMV over f32 dense GEMV (tokens/s)", row("p8 bf16").overDense, 1.8, "x"));
  targets.push(target("2:4 bf16 GEMV over f32 dense GEMV (tokens/s)", row("2:4 bf16").overDense, 3.2, "x"));
  targets.push(target("int8 GEMV over f32 dense GEMV (tokens/s; issue 14)", row("int8").overDense, 3, "x"));
  targets.push(target("int8 GEMV on int8 activations (W8A8) over f32 dense GEMV (tokens/s; issue 14)", row("int8 a8").overDense, 3, "x"));
  targets.push(target("int4 g128 GEMV over f32 dense GEMV (tokens/s; issue 14)", row("int4 g128").overDense, 5, "x"));
  targets.push(target("int4 g128 GEMV on int8 activations (W4A8) over f32 dense GEMV (tokens/s; issue 14)", row("int4 g128 a8").overDense, 5, "x"));
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
    builds = benchBuilds(host, quick, rounds, budget);
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
    for (const f of ["int8", "int8 a8", "int4 g128", "int4 g128 a8", "2:4 int4 g128"] as const) {
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

/**
 * The same inference kernels in the baseline and the relaxed build, each on its own instance, interleaved: the
 * GEMVs pair by pair at the footprint (one variant's copies in each instance at a time), then the p8 GEMM at 512.
 */
function benchBuilds(host: GemvHost, quick: boolean, rounds: number, budget: number): BuildRow[] {
  const names = ["p8 f32", "p8 bf16", "2:4 f32", "2:4 bf16"] as const;
  const sides = (["baseline", "relaxed"] as const).map((b) => ({ b, src: gemvSource(createWasm(64 * MiB, b), host) }));
  const n = quick ? 1 : rounds;
  const out: BuildRow[] = [];
  const row = (kernel: string, unit: BuildRow["unit"], baseline: number, relaxed: number) => out.push({ kernel, baseline, relaxed, unit, relaxedOverBaseline: relaxed / baseline });
  for (const name of names) {
    const placed = sides.map((s) => {
      const m = s.src.wasm.arena.mark();
      return { ...s, m, v: placeVariant(s.src, name, FOOTPRINT_BYTES) };
    });
    const best = interleaved(Object.fromEntries(placed.map((p) => [p.b, { call: p.v.call, minReps: p.v.copies }])), n, budget);
    const [bl, rl] = placed.map((p) => (p.v.bytes * best[p.b]!) / 1e9) as [number, number];
    row(`GEMV 4096² ${name}`, "GB/s", bl, rl);
    for (const p of placed) p.src.wasm.arena.release(p.m);
  }
  const gemms = sides.map(({ b, src: { wasm: w } }) => {
    const N = 512;
    const x = w.arena.put(randomWeights(N * N, 1));
    const lw = placeP8(w.arena, packP8(randomWeights(N * N, 2), N, N, "f32"), N, N, "f32");
    const y = w.arena.alloc(N * N);
    const pack = w.arena.allocBytes(kernels(w).gemm_p8_nt_scratch(N, N));
    return [b, { call: () => kernels(w).f32_gemm_p8_nt(x, lw.ptr, y, N, N, N, pack), minReps: 2 }] as const;
  });
  const g = interleaved(Object.fromEntries(gemms), n, budget);
  row("GEMM p8 f32 512", "GFLOP/s", (2 * 512 ** 3 * g.baseline!) / 1e9, (2 * 512 ** 3 * g.relaxed!) / 1e9);
  return out;
}
