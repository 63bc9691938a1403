/**
 * @file `wasprune bench model MODEL`: tokens/s of generation (decode: one position per forward, GEMV) and of
 * evaluation (prefill: whole sequences per forward, GEMM) for a dense model and its compressed form, single
 * thread, measured side by side in one run, both as the inference commands hold them (dense: p8 panels; compressed:
 * 2:4 / CSR; linear weights in --weights-dtype, f32 by default), on two models:
 *  - MODEL, a pruned checkpoint, compressed into a temporary directory by `compressModel` and loaded back
 *    through `loadModel` (so the bench runs exactly what `wasprune compress` + `eval`/`generate` run);
 *  - a synthetic 4096-wide LLaMA (`randomLlama`, 11008 MLP, 32 heads, vocab 32000, `--layers` layers),
 *    pruned 2:4 by magnitude in-process, compressed and loaded the same way. Its dense weights are ~0.8 GB
 *    per layer plus 0.5 GB of embeddings, so the dense and compressed models together stay under ~4 GB at 2 layers.
 * Generation is greedy argmax over `forward` (what `generate --temperature 0` does, minus tokenization), from
 * a fixed prompt of token ids; both models must produce the same tokens (checked and reported). Evaluation
 * runs `perplexity` over fixed pseudo-random token sequences (throughput does not depend on the text).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createWasm } from "../src/wasm/runtime.js";
import { loadModel } from "../src/model/load.js";
import { randomLlama } from "../src/model/builtin.js";
import { mulberry32 } from "../src/util/rng.js";
import { createRunState, forward } from "../src/model/forward.js";
import { perplexity } from "../src/eval/perplexity.js";
import { openExecutor } from "../src/workers/index.js";
import { LINEAR_OPS, type LinearWeight, type Model, type ModelConfig } from "../src/model/types.js";
import { compressModel, type CompressReport } from "../src/model/compressed.js";
import { humanBytes, table } from "../src/cli/format.js";
import { dense, type WeightDType } from "../src/model/types.js";
import { denseLinear, denseWeight, packedCopy, placeQuantized } from "../src/model/linear.js";
import { quantBuffers, quantizedWeight, rtnQuantize } from "../src/prune/quantize.js";
import { gridOf, parseScheme } from "../src/quant/scheme.js";
import { renderTarget, target, type Target } from "./targets.js";

export interface ModelBenchSide {
  /** tokens/s of greedy decode (one position per forward) */
  generateTps: number;
  /** tokens/s of perplexity evaluation (whole sequences per forward) */
  evalTps: number;
  /** bytes of the model's weights as held in memory (every tensor in its layout; a tied head once) */
  weightBytes: number;
}

export interface ModelBenchRow {
  name: string;
  /** dim x hidden, layers */
  shape: string;
  /** operators per storage format of the compressed model */
  formats: Record<string, number>;
  dense: ModelBenchSide;
  compressed: ModelBenchSide;
  generateSpeedup: number;
  evalSpeedup: number;
  /** greedy tokens of the compressed model equal the dense model's */
  sameTokens: boolean;
  decodeSteps: number;
  evalTokens: number;
}

export interface ModelBenchResult {
  cpu: string;
  threads: 1;
  /** kernel build (baseline / relaxed SIMD) and the dtype of the linear weights in memory */
  build: string;
  weightsDtype: WeightDType;
  rows: ModelBenchRow[];
  /** the targets with their measured values */
  targets: Target[];
  /** peak resident set size of the bench process, bytes */
  peakRssBytes: number;
  notes: string[];
}

export const SYNTHETIC_CONFIG: Readonly<ModelConfig> = Object.freeze({
  architecture: "llama",
  dim: 4096,
  hiddenDim: 11008,
  nLayers: 2,
  nHeads: 32,
  nKvHeads: 32,
  headDim: 128,
  vocabSize: 32000,
  maxSeqLen: 256,
  normEps: 1e-5,
  ropeTheta: 10000,
  ropeLayout: "half",
  tiedEmbeddings: true,
  qkvBias: false,
  bosId: 1,
  eosId: 2,
});

/** Zero the 2 smallest |w| of every 4 consecutive weights of every row (magnitude 2:4). */
export function magnitude2of4(w: Float32Array): void {
  for (let o = 0; o < w.length; o += 4) {
    let a = 0, b = 1; // indices of the two smallest
    if (Math.abs(w[o + b]!) < Math.abs(w[o + a]!)) [a, b] = [b, a];
    for (let j = 2; j < 4; j++) {
      const v = Math.abs(w[o + j]!);
      if (v < Math.abs(w[o + a]!)) [a, b] = [j, a];
      else if (v < Math.abs(w[o + b]!)) b = j;
    }
    w[o + a] = 0;
    w[o + b] = 0;
  }
}

/** Bytes of every weight of `model` as held (row-major f32, p8 panels, or a compressed layout); a tied LM head once. */
function heldBytes(model: Model): number {
  const w = model.weights;
  const of = (t: LinearWeight | { data: Float32Array } | undefined): number => (!t ? 0 : "format" in t && t.format !== "dense" ? t.bytes : 4 * t.data.length);
  let n = of(w.embed) + of(w.norm);
  for (const lw of w.layers) for (const t of Object.values(lw)) n += of(t as LinearWeight);
  const tied = w.lmHead.format === "dense" && w.lmHead.ptr === w.embed.ptr;
  return tied ? n : n + of(w.lmHead);
}

/** Greedy decode: prefill `prompt`, then `steps` single-position forwards; tokens/s over the decode steps. */
function greedy(model: Model, prompt: number[], steps: number): { tokens: number[]; tps: number } {
  return model.wasm.arena.scoped(() => {
    const st = createRunState(model, prompt.length, prompt.length + steps + 1);
    let logits = forward(model, st, prompt, 0);
    const tokens: number[] = [];
    const argmax = (l: Float32Array): number => {
      let best = 0;
      for (let i = 1; i < l.length; i++) if (l[i]! > l[best]!) best = i;
      return best;
    };
    let next = argmax(logits);
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) {
      tokens.push(next);
      logits = forward(model, st, [next], prompt.length + s);
      next = argmax(logits);
    }
    return { tokens, tps: steps / ((performance.now() - t0) / 1000) };
  });
}

function randomSequences(vocab: number, n: number, len: number, seed: number): number[][] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => Array.from({ length: len }, () => 3 + Math.floor(r() * (vocab - 3))));
}

async function measure(model: Model, prompt: number[], steps: number, seqs: number[][]): Promise<ModelBenchSide & { tokens: number[] }> {
  const weightBytes = heldBytes(model);
  const g = greedy(model, prompt, steps);
  const e = await perplexity(model, seqs, openExecutor(model.wasm, 1)); // one thread, as the generate side
  return { generateTps: g.tps, evalTps: e.tokensPerSecond, weightBytes, tokens: g.tokens };
}

/**
 * Dense `model` vs its compressed form, both as inference runs them: the dense model packed into p8 panels of
 * `dtype` (a copy on its own instance), the compressed one written to a temp dir by `compressModel` and loaded
 * back with its values in `dtype`. `headInt8`: the (2:4-pruned, untied) LM head is compressed in memory too,
 * round-to-nearest int8 per output channel on the int8 panels with int16 activations (W8A16; compress leaves
 * lm_head dense on disk). The dense model is measured first.
 */
async function compare(
  name: string, model: Model, opts: { steps: number; seqs: number; len: number; dtype: WeightDType; headInt8?: boolean }, log: (s: string) => void,
): Promise<ModelBenchRow> {
  const c = model.config;
  const prompt = randomSequences(c.vocabSize, 1, 8, 7)[0]!;
  const seqs = randomSequences(c.vocabSize, opts.seqs, Math.min(opts.len, c.maxSeqLen), 11);
  log(`  ${name}: dense (p8 ${opts.dtype}) ...`);
  const d = await measure(packedCopy(model, createWasm(), opts.dtype), prompt, opts.steps, seqs);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-bench-model-"));
  try {
    log(`  ${name}: compress ...`);
    const report: CompressReport = compressModel(model, path.join(dir, "c"));
    const formats: Record<string, number> = {};
    for (const o of report.operators) formats[o.format] = (formats[o.format] ?? 0) + 1;
    const cm = await loadModel(path.join(dir, "c"), { requireTokenizer: false, wasm: createWasm(), weights: opts.dtype });
    if (opts.headInt8) {
      const a = cm.wasm.arena;
      const grid = gridOf(parseScheme("w8"), c.dim);
      const q = a.scoped(() => {
        const W = a.put(denseWeight(cm.wasm, cm.weights.lmHead));
        const qb = quantBuffers(cm.wasm, c.vocabSize, c.dim, grid);
        rtnQuantize(cm.wasm, W, c.vocabSize, c.dim, qb);
        return quantizedWeight(cm.wasm, W, c.vocabSize, c.dim, grid, qb, "lm_head");
      });
      cm.weights.lmHead = placeQuantized(cm.wasm, q, 16);
      formats["int8 per channel (lm_head, in memory)"] = 1;
    }
    log(`  ${name}: compressed ...`);
    const s = await measure(cm, prompt, opts.steps, seqs);
    return {
      name,
      shape: `${c.dim}x${c.hiddenDim}, ${c.nLayers} layers, vocab ${c.vocabSize}`,
      formats,
      dense: { generateTps: d.generateTps, evalTps: d.evalTps, weightBytes: d.weightBytes },
      compressed: { generateTps: s.generateTps, evalTps: s.evalTps, weightBytes: s.weightBytes },
      generateSpeedup: s.generateTps / d.generateTps,
      evalSpeedup: s.evalTps / d.evalTps,
      sameTokens: s.tokens.every((t, i) => t === d.tokens[i]),
      decodeSteps: opts.steps,
      evalTokens: seqs.reduce((a, q) => a + q.length, 0),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchModel(
  modelPath: string | undefined,
  opts: { json?: boolean; quick?: boolean; layers?: number; synthetic?: boolean; weightsDtype?: WeightDType },
): Promise<ModelBenchResult> {
  const log = (s: string) => {
    if (!opts.json) console.log(s);
  };
  const quick = !!opts.quick;
  const rows: ModelBenchRow[] = [];
  const notes: string[] = [];
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  const dtype = opts.weightsDtype ?? "f32";
  const build = createWasm(1 << 22).build;
  log(`model throughput, dense vs compressed, single thread, ${cpu}, ${build} kernels, ${dtype} weights${quick ? " (quick)" : ""}`);
  if (modelPath) {
    const model = await loadModel(modelPath, { requireTokenizer: false });
    rows.push(await compare(modelPath, model, { steps: quick ? 64 : 200, seqs: quick ? 8 : 32, len: 256, dtype }, log));
  }
  if (opts.synthetic !== false) {
    const layers = opts.layers ?? SYNTHETIC_CONFIG.nLayers;
    log(`  synthetic: building a 4096-wide ${layers}-layer LLaMA, magnitude 2:4 ...`);
    const model = randomLlama({ ...SYNTHETIC_CONFIG, nLayers: layers }, 4096, createWasm());
    for (const lw of model.weights.layers) for (const op of LINEAR_OPS) magnitude2of4(denseLinear(lw[op], op).data);
    // the LM head untied (a copy of the embedding) and pruned 2:4 by magnitude as well: at 32000x4096 it is a
    // quarter of the dense bytes per token, so a dense head would cap the speed-up near 1.5x
    const head = model.wasm.arena.put(model.weights.embed.data);
    model.weights.lmHead = dense({ ptr: head, shape: [SYNTHETIC_CONFIG.vocabSize, SYNTHETIC_CONFIG.dim], data: model.wasm.arena.f32(head, model.weights.embed.data.length) });
    magnitude2of4(model.weights.lmHead.data);
    model.config = { ...model.config, tiedEmbeddings: false };
    model.source = { ...model.source, path: "synthetic-4096" };
    rows.push(await compare("synthetic 4096 (2:4 magnitude, lm_head too)", model, { steps: quick ? 8 : 24, seqs: 1, len: quick ? 32 : 64, dtype, headInt8: true }, log));
    notes.push("synthetic: lm_head untied (a copy of the embedding) and pruned 2:4 by magnitude like the layers; the dense model runs it dense, the compressed one int8 per channel (round-to-nearest of the pruned head, int16 activations) in memory (compress writes lm_head dense)");
  }
  const targets: Target[] = [];
  const syn = rows.find((r) => r.name.startsWith("synthetic"));
  if (syn) targets.push(target("bench model: synthetic 4096 generate tok/s, compressed 2:4 over dense", syn.generateSpeedup, 1.6, "x"));
  const peakRssBytes = process.resourceUsage().maxRSS * 1024;
  log("");
  log(renderRows(rows));
  log("");
  log(`peak RSS ${(peakRssBytes / 2 ** 30).toFixed(2)} GiB`);
  for (const t of targets) log(renderTarget(t));
  for (const n of notes) log(`note: ${n}`);
  return { cpu, threads: 1, build, weightsDtype: dtype, rows, targets, peakRssBytes, notes };
}

function renderRows(rows: ModelBenchRow[]): string {
  const tps = (x: number) => x.toFixed(x < 100 ? 2 : 0);
  return table(
    ["model", "shape", "weights dense → compressed", "generate tok/s dense → compr.", "speed-up", "eval tok/s dense → compr.", "speed-up", "same tokens"],
    rows.map((r) => [
      r.name,
      r.shape,
      `${humanBytes(r.dense.weightBytes)} → ${humanBytes(r.compressed.weightBytes)}`,
      `${tps(r.dense.generateTps)} → ${tps(r.compressed.generateTps)}`,
      `${r.generateSpeedup.toFixed(2)}x`,
      `${tps(r.dense.evalTps)} → ${tps(r.compressed.evalTps)}`,
      `${r.evalSpeedup.toFixed(2)}x`,
      r.sameTokens ? "yes" : "NO",
    ]),
    { align: ["l", "l", "r", "r", "r", "r", "r", "l"] },
  );
}
