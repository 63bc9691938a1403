/**
 * @file `wasprune bench scale`: pruning and evaluation at real scale, on generated models of real shapes
 * (`wasprune synth`: random weights from a seed, bf16 — their perplexity means nothing; time and memory only).
 *
 * Every prune and eval runs as its own `wasprune` process (the one running this benchmark, so sources or the
 * compiled package alike), as a user types it, with `--residency streamed --json`: the process's peak RSS is its
 * own, and the seconds per layer by phase come from its pruning.json report. Measured:
 *  - TinyLlama-1.1B shape (2048 / 5632, 32 heads / 4 kv, vocab 32000, untied): wanda and sparsegpt at 0.5 and
 *    2:4 with 32 × 512 calibration tokens; FISTA (its default budget, error correction on as in FISTAPruner) next
 *    to sparsegpt on the same model, the ratio of their per-layer times;
 *  - Llama-2-7B shape (4096 / 11008, 32 heads, vocab 32000): wanda and sparsegpt at 0.5 with 16 × 256 tokens,
 *    peak RSS; sparsegpt at two token counts, so the token-linear phases (calibration forward, statistics,
 *    advance) can be fitted and the papers' 128 × 2048 calibration costed per layer (stated as extrapolated; the
 *    smaller run has 1 layer, which never advances the stream: the advance is scaled from the larger run);
 *  - layer-major evaluation of the streamed TinyLlama shape (tokens/s);
 *  - a 70B shape on paper: each method's memory floor (src/prune/memory-floor.ts) against the 4 GiB wasm32 limit.
 * By default each shape is generated with 2 decoder layers and whole-model times are extrapolated from the
 * per-layer time (every layer has the same shapes and work), stated as such in the report; `--full` generates the
 * whole depth (22 and 32 layers: 2.2 GB and 13.5 GB of bf16 on disk, hours on 2 cores) and measures it.
 * `--quick`: fewer calibration tokens (a smoke run of the same code).
 */
import { sharedDir } from "./shared.js";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { UsageError } from "../src/errors.js";
import { SYNTHETIC_SHAPES, synthConfig, synthesize } from "../src/model/synthetic.js";
import { layerSpecsOf } from "../src/model/specs.js";
import { memoryFloor, WASM32_BYTES } from "../src/prune/memory-floor.js";
import { METHODS } from "../src/prune/methods/index.js";
import type { LayerPhases } from "../src/prune/driver.js";
import { target, type Target } from "./targets.js";

export interface ScaleOptions {
  json: boolean;
  quick?: boolean;
  /** whole-depth models instead of 2 layers and an extrapolation */
  full?: boolean;
  /** where the generated models and outputs go (default: a folder in the OS temp dir, removed at the end) */
  dir?: string;
  threads?: number;
  /** calibration and evaluation text (default ../shared/data/tinystories-train-head) */
  calib?: string;
  /** the models' tokenizer (default ../shared/models/llama2-tokenizer/tokenizer.model) */
  tokenizer?: string;
}

type Phase = "read" | "forward" | "statistics" | "solve" | "write" | "advance";
const PHASES: Phase[] = ["read", "forward", "statistics", "solve", "write", "advance"];

/**
 * Seconds per decoder layer by phase. advance is the mean over the layers that ran it (every one but the model's
 * last: the stream never passes the last layer), null where none did (a 1-layer run); total is a layer's that
 * advances (without the advance where it is null).
 */
export type PerLayer = Record<Exclude<Phase, "advance">, number> & { advance: number | null; total: number };

export interface ScalePrune {
  shape: string;
  layers: number;
  method: string;
  pattern: string;
  errorCorrection: boolean;
  nsamples: number;
  seqlen: number;
  /** seconds of the process (synthesis excluded: the model exists before it starts) */
  seconds: number;
  /** seconds per decoder layer by phase, the mean over the layers (the advance over those that ran it) */
  perLayer: PerLayer;
  /**
   * the whole model at its real depth: measured (`--full`) or extrapolated, layers × the per-layer time (one
   * advance fewer) + the rest of the process; without the advance where the run had none
   */
  whole: { layers: number; seconds: number; extrapolated: boolean };
  peakRssBytes: number;
  arenaPeakBytes: number;
  memoryFloor: { bytes: number; operator: string };
}

export interface ScaleReport {
  machine: { cpus: number; cpu: string; totalMemory: number; node: string; threads: number };
  prunes: ScalePrune[];
  /** sparsegpt per layer on the 7B shape at the papers' 128 × 2048, from the two measured token counts */
  papersCalibration: { tokens: number; perLayer: PerLayer; fromTokens: [number, number]; note: string } | null;
  layerMajorEval: {
    shape: string; layers: number; tokens: number; seconds: number; tokensPerSecond: number;
    whole: { layers: number; tokensPerSecond: number; extrapolated: boolean };
  } | null;
  floor70b: Array<{ method: string; errorCorrection: boolean; bytes: number; operator: string; fits: boolean; largest: [string, number] }>;
  targets: Target[];
}

const SHARED = sharedDir();
const GiB = (b: number) => `${(b / 1024 ** 3).toFixed(2)} GiB`;

/** `wasprune ARGS` in a child process (this same entry point), its JSON output parsed. */
function wasprune(args: string[]): { json: any; seconds: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, ...args], { encoding: "utf8", maxBuffer: 256 << 20 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new UsageError(`bench scale: wasprune ${args.join(" ")} failed (exit ${r.status}):\n${r.stderr.trim()}`);
  return { json: JSON.parse(r.stdout), seconds };
}

const sumOf = (layers: LayerPhases[], k: Phase): number => layers.reduce((s, p) => s + p[k], 0);
const totalOf = (p: Omit<PerLayer, "total">): number => PHASES.reduce((s, k) => s + (p[k] ?? 0), 0);

/** The per-layer means of a prune report's layers (those pruned in the run, not resumed from checkpoints). */
export function meanPhases(layers: LayerPhases[]): PerLayer {
  const last = Math.max(...layers.map((p) => p.layer));
  const done = layers.filter((p) => !p.resumed);
  const advanced = done.filter((p) => p.layer < last);
  const out = Object.fromEntries(PHASES.map((k) => [k, sumOf(done, k) / Math.max(1, done.length)])) as Omit<PerLayer, "total">;
  out.advance = advanced.length ? sumOf(advanced, "advance") / advanced.length : null;
  return { ...out, total: totalOf(out) };
}

/**
 * Per-layer phases at `tokens` calibration tokens from two runs at t1 < t2: forward, statistics and advance grow
 * linearly with the tokens (fitted through both), read, solve and write do not (the t2 run's). A phase only the
 * t2 run has (the advance, when the t1 run is 1 layer) is scaled in proportion to the tokens.
 */
export function fitTokens(a: PerLayer, b: PerLayer, t1: number, t2: number, tokens: number): { perLayer: PerLayer; proportional: Phase[] } {
  const linear = new Set<Phase>(["forward", "statistics", "advance"]);
  const proportional: Phase[] = [];
  const per = Object.fromEntries(PHASES.map((k) => {
    const x = a[k], y = b[k];
    if (!linear.has(k) || y === null) return [k, y];
    if (x === null) {
      proportional.push(k);
      return [k, y * tokens / t2];
    }
    return [k, Math.max(0, y + (y - x) / (t2 - t1) * (tokens - t2))];
  })) as Omit<PerLayer, "total">;
  return { perLayer: { ...per, total: totalOf(per) }, proportional };
}

const phaseList = (p: PerLayer, f: (v: number) => string): string =>
  PHASES.map((k) => `${k} ${p[k] === null ? "n/a (no layer advanced: the last never does)" : f(p[k]!)}`).join(", ");

/** A generated model of `shape` with `layers` layers in `dir` (kept between runs of the same settings). */
function model(dir: string, shape: string, layers: number, tokenizer: string): string {
  const out = path.join(dir, `${shape}-${layers}l`);
  if (fs.existsSync(path.join(out, "config.json"))) return out;
  const t0 = performance.now();
  const rep = synthesize(out, { shape, layers, tokenizer });
  console.error(`bench scale: generated ${shape} × ${layers} layers (${GiB(rep.bytes)} bf16) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return out;
}

export async function benchScale(opts: ScaleOptions): Promise<ScaleReport> {
  const threads = opts.threads ?? Math.min(2, os.availableParallelism());
  const calib = opts.calib ?? path.join(SHARED, "data/tinystories-train-head/tinystories_train_head.txt");
  const tokenizer = opts.tokenizer ?? path.join(SHARED, "models/llama2-tokenizer/tokenizer.model");
  for (const [f, what] of [[calib, "--calib"], [tokenizer, "--tokenizer"]] as const) {
    if (!fs.existsSync(f)) throw new UsageError(`bench scale: ${what} ${f} does not exist (the default is under ../shared)`);
  }
  const own = !opts.dir;
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-bench-scale-"));
  fs.mkdirSync(dir, { recursive: true });
  // with --json the rows go to stderr as they finish (stdout carries the report)
  const log = (s: string) => (opts.json ? console.error(s) : console.log(s));
  const depth = (shape: string) => synthConfig(SYNTHETIC_SHAPES[shape]!.config as Record<string, unknown>).config.nLayers;
  const tl = opts.quick ? { n: 8, len: 128 } : { n: 32, len: 512 };
  const l7 = opts.quick ? { n: 4, len: 128 } : { n: 16, len: 256 };
  const l7small = { n: Math.max(1, l7.n / 4), len: l7.len };
  const report: ScaleReport = {
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? "", totalMemory: os.totalmem(), node: process.version, threads },
    prunes: [], papersCalibration: null, layerMajorEval: null, floor70b: [], targets: [],
  };
  try {
    const prune = (shape: string, layers: number, method: string, pattern: string, cal: { n: number; len: number }, extra: string[] = []): ScalePrune => {
      // `layers` 1: a run for a per-layer figure only (the token fit below), at any depth setting
      const m = model(dir, shape, layers === 1 || !opts.full ? layers : depth(shape), tokenizer);
      const out = path.join(dir, `out-${shape}-${method}-${pattern.replace(":", "_")}-${cal.n}x${cal.len}`);
      fs.rmSync(out, { recursive: true, force: true });
      const args = ["prune", m, "--method", method, "--sparsity", pattern, "--calib", calib, "--calib-protocol", "windows",
        "--nsamples", String(cal.n), "--seqlen", String(cal.len), "--residency", "streamed", "--threads", String(threads),
        "--out", out, "--json", ...extra];
      const { json: s, seconds } = wasprune(args);
      fs.rmSync(out, { recursive: true, force: true });
      const nLayers = s.layers.length as number;
      const perLayer = meanPhases(s.layers);
      const rest = Math.max(0, seconds - PHASES.reduce((t, k) => t + sumOf(s.layers, k), 0));
      const real = depth(shape);
      const layersTime = (n: number) => n * (perLayer.total - (perLayer.advance ?? 0)) + (n - 1) * (perLayer.advance ?? 0);
      const row: ScalePrune = {
        shape, layers: nLayers, method, pattern, errorCorrection: s.errorCorrection, nsamples: cal.n, seqlen: cal.len, seconds, perLayer,
        whole: { layers: real, seconds: nLayers === real ? seconds : rest + layersTime(real), extrapolated: nLayers !== real },
        peakRssBytes: s.resources.peakRss, arenaPeakBytes: s.resources.arenaPeak, memoryFloor: s.resources.memoryFloor,
      };
      report.prunes.push(row);
      log(`${shape} × ${nLayers} ${method} ${pattern}${row.errorCorrection ? " (EC)" : ""}, ${cal.n} × ${cal.len} tokens: ${seconds.toFixed(1)} s; ` +
        `per layer ${perLayer.total.toFixed(1)} s (${phaseList(perLayer, (v) => v.toFixed(1))}); ` +
        `whole ${real} layers ${(row.whole.seconds / 60).toFixed(1)} min${row.whole.extrapolated ? ` (extrapolated${perLayer.advance === null ? ", without the advance" : ""})` : ""}; peak RSS ${GiB(row.peakRssBytes)}, arena ${GiB(row.arenaPeakBytes)}`);
      return row;
    };

    // a 70B shape on paper
    const c70 = synthConfig(SYNTHETIC_SHAPES["llama-2-70b"]!.config as Record<string, unknown>, 1).config;
    const slot = layerSpecsOf(c70, 0).reduce((n, s) => n + 4 * s.shape.reduce((a, b) => a * b, 1), 0);
    for (const method of ["magnitude", "wanda", "sparsegpt", "fista"] as const) {
      const ec = method === "fista";
      const f = memoryFloor(c70, method, METHODS[method].stats(ec), ec, slot, ec);
      report.floor70b.push({ method, errorCorrection: ec, bytes: f.bytes, operator: f.operator, fits: f.bytes <= WASM32_BYTES, largest: f.parts[0]! });
      log(`llama-2-70b ${method}${ec ? " (EC)" : ""}: needs ≥ ${GiB(f.bytes)} at ${f.operator} — ${f.bytes <= WASM32_BYTES ? "fits" : "refused up front"}; largest part: ${f.parts[0]![0]} ${GiB(f.parts[0]![1])}`);
    }

    // layer-major evaluation of the streamed TinyLlama shape
    {
      const m = model(dir, "tinyllama-1.1b", opts.full ? depth("tinyllama-1.1b") : 2, tokenizer);
      const windows = opts.quick ? 4 : 16;
      const { json: e } = wasprune(["eval", m, "--text", calib, "--protocol", "windows", "--ctx", String(tl.len), "--max-windows", String(windows),
        "--residency", "streamed", "--threads", String(threads), "--json"]);
      const layers = opts.full ? depth("tinyllama-1.1b") : 2;
      const real = depth("tinyllama-1.1b");
      // the whole depth's tok/s, scaled by the linear FLOPs per token (decoder layers and the LM head), said so
      const c = synthConfig(SYNTHETIC_SHAPES["tinyllama-1.1b"]!.config as Record<string, unknown>).config;
      const layerW = layerSpecsOf(c, 0).filter((s) => s.op).reduce((n, s) => n + s.shape[0]! * s.shape[1]!, 0);
      const headW = c.vocabSize * c.dim;
      const wholeTps = e.tokensPerSecond * (layers * layerW + headW) / (real * layerW + headW);
      report.layerMajorEval = {
        shape: "tinyllama-1.1b", layers, tokens: e.tokens, seconds: e.seconds, tokensPerSecond: e.tokensPerSecond,
        whole: { layers: real, tokensPerSecond: layers === real ? e.tokensPerSecond : wholeTps, extrapolated: layers !== real },
      };
      log(`tinyllama-1.1b × ${layers} layer-major eval: ${e.tokens} tokens in ${e.seconds.toFixed(1)} s, ${e.tokensPerSecond.toFixed(1)} tok/s` +
        (layers === real ? "" : ` (${real} layers: ≈ ${wholeTps.toFixed(1)} tok/s, extrapolated by the linear FLOPs per token)`));
    }

    // TinyLlama-1.1B shape
    for (const method of ["wanda", "sparsegpt"]) for (const pattern of ["0.5", "2:4"]) prune("tinyllama-1.1b", 2, method, pattern, tl);
    // what wanda saves by collecting column norms only: the same prune with every operator's Gram collected
    const wandaGram = prune("tinyllama-1.1b", 2, "wanda", "0.5", tl, ["--measure-error"]);
    wandaGram.method = "wanda --measure-error";
    const fista = prune("tinyllama-1.1b", 2, "fista", "0.5", tl);
    const sgptTl = report.prunes.find((p) => p.shape === "tinyllama-1.1b" && p.method === "sparsegpt" && p.pattern === "0.5")!;
    // Llama-2-7B shape
    const wanda7 = prune("llama-2-7b", 2, "wanda", "0.5", l7);
    const sgpt7 = prune("llama-2-7b", 2, "sparsegpt", "0.5", l7);
    const sgpt7small = prune("llama-2-7b", 1, "sparsegpt", "0.5", l7small);

    // the papers' 128 × 2048, from the two measured token counts
    const t1 = l7small.n * l7small.len, t2 = l7.n * l7.len, tp = 128 * 2048;
    const fit = fitTokens(sgpt7small.perLayer, sgpt7.perLayer, t1, t2, tp);
    report.papersCalibration = {
      tokens: tp, perLayer: fit.perLayer, fromTokens: [t1, t2],
      note: "extrapolated: forward/statistics/advance fitted linearly in tokens through two measured runs at seqlen " +
        `${l7.len}${fit.proportional.length ? ` (${fit.proportional.join(", ")}: measured in the ${t2}-token run only, the ${t1}-token run has 1 layer, which never advances; scaled in proportion to the tokens)` : ""}; ` +
        "attention's cost per token grows with the window (≈ +8 % of the forward at 2048), not in the fit",
    };
    log(`llama-2-7b sparsegpt per layer at 128 × 2048 tokens (extrapolated from ${t1} and ${t2}${fit.proportional.length ? `; ${fit.proportional.join(", ")} in proportion from ${t2}` : ""}): ` +
      `${(fit.perLayer.total / 60).toFixed(1)} min (${phaseList(fit.perLayer, (v) => `${v.toFixed(0)} s`)})`);

    const atMost = (name: string, value: number, limit: number, unit: Target["unit"]) => target(name, value, limit, unit, "≤");
    report.targets.push(
      atMost("llama-2-7b wanda 0.5 peak RSS (GiB)", wanda7.peakRssBytes / 1024 ** 3, 5, "GiB"),
      atMost("llama-2-7b sparsegpt 0.5 peak RSS (GiB)", sgpt7.peakRssBytes / 1024 ** 3, 5, "GiB"),
      atMost(`llama-2-7b sparsegpt 0.5 whole prune (min${sgpt7.whole.extrapolated ? ", extrapolated from " + sgpt7.layers + " layers" : ""})`, sgpt7.whole.seconds / 60, 45, "min"),
      atMost("tinyllama-1.1b fista / sparsegpt per-layer time", fista.perLayer.total / sgptTl.perLayer.total, 10, "x"),
    );
    return report;
  } finally {
    if (own) fs.rmSync(dir, { recursive: true, force: true });
  }
}
