/**
 * @file `wasprune bench parallel`: the same work with 1 thread (no pool) and with N worker threads (default 2),
 * in one process and one run, each result checked bit-identical across the two:
 *  - a FISTA λ search (per-row bisection) on a 3072x768 operator (H from 2048 seeded tokens);
 *  - a whole-model prune (fista + error correction, reduced iterations) of a seeded 8-layer LLaMA with hidden
 *    512 and intermediate 1376, on seeded random calibration tokens;
 *  - perplexity of the real model (../shared/models/stories260K-hf) on tinystories-valid-head.
 * `quick`: a shorter search, fewer calibration tokens, fewer eval paragraphs.
 */
import { sharedDir } from "./shared.js";
import fs from "node:fs";
import path from "node:path";
import { createWasm, type Wasm } from "../src/wasm/runtime.js";
import { GramCollector } from "../src/prune/gram.js";
import { problemFromGram, syntheticOperator } from "../src/prune/problem.js";
import { FistaSolver } from "../src/prune/methods/fista.js";
import { keptPerRow, parsePattern } from "../src/prune/pattern.js";
import { randomLlama, BUILTIN_CONFIG } from "../src/model/builtin.js";
import { pruneModel } from "../src/prune/driver.js";
import type { CalibrationSet } from "../src/prune/calibration.js";
import { LINEAR_OPS } from "../src/model/types.js";
import { loadModel } from "../src/model/load.js";
import { paragraphSequences } from "../src/eval/text.js";
import { perplexity } from "../src/eval/perplexity.js";
import { openExecutor } from "../src/workers/index.js";
import type { Executor } from "../src/exec/executor.js";
import { mulberry32 } from "../src/util/rng.js";
import { denseLinear } from "../src/model/linear.js";
import { MemorySink } from "../src/prune/output.js";
import { residentStore } from "../src/model/residency.js";

export interface BenchParallelRow {
  case: string;
  seconds1: number;
  secondsN: number;
  threads: number;
  speedup: number;
  identical: boolean;
}

/** Pool start-up (threads, tsx, module loads, WASM instantiation), measured once and excluded from the cases. */
let startupSeconds = 0;

async function withThreads<T>(wasm: Wasm, threads: number, fn: (exec: Executor) => Promise<T>): Promise<{ value: T; seconds: number }> {
  const exec = openExecutor(wasm, threads);
  try {
    if (threads > 1) {
      const t = performance.now();
      const noop = { op: "gemms", calls: [], pack: 0 };
      await Promise.all(Array.from({ length: 4 * threads }, () => exec.run(noop, "warm-up")));
      startupSeconds = Math.max(startupSeconds, (performance.now() - t) / 1000);
    }
    const t0 = performance.now();
    const value = await fn(exec);
    return { value, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await exec.close();
  }
}

const same = (a: Float32Array, b: Float32Array) => a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

export async function benchParallel(opts: { json: boolean; quick?: boolean; threads?: number }): Promise<BenchParallelRow[]> {
  const N = Math.max(2, opts.threads ?? 2);
  const rows: BenchParallelRow[] = [];
  const say = (r: BenchParallelRow) => {
    rows.push(r);
    if (!opts.json) {
      console.log(`${r.case.padEnd(58)} 1 thread ${r.seconds1.toFixed(2).padStart(7)} s   ${N} threads ${r.secondsN.toFixed(2).padStart(7)} s   speed-up ${r.speedup.toFixed(2)}x   ${r.identical ? "bit-identical" : "DIFFERENT"}`);
    }
  };

  // ---- FISTA λ search on 3072x768 --------------------------------------------------------------------
  {
    const [R, C] = [3072, 768];
    const [steps, perStep, final] = opts.quick ? [4, 15, 30] : [8, 30, 60];
    const wasm = createWasm(512 << 20);
    const a = wasm.arena;
    const { W0, X } = syntheticOperator(wasm, { rows: R, cols: C, tokens: 2048, seed: 42 });
    const setup = openExecutor(wasm, 1);
    const g = new GramCollector(setup, C);
    await g.addBatches([{ xp: X, xd: X, T: 2048 }]);
    const problem = await problemFromGram(setup, W0, R, g.finish());
    const keep = keptPerRow(parsePattern("0.5"), C);
    const run = async (exec: Executor) => {
      const m = a.mark();
      const solver = new FistaSolver(exec, problem);
      solver.setStep(30, 1234);
      const W = a.alloc(R * C);
      a.f32(W, R * C).set(a.f32(W0, R * C));
      await solver.bisect(W, a.alloc(R), keep, steps, perStep, final);
      const out = a.f32(W, R * C).slice();
      a.release(m);
      return out;
    };
    const one = await withThreads(wasm, 1, run);
    const many = await withThreads(wasm, N, run);
    say({
      case: `FISTA λ search 3072x768 (${steps}x${perStep}+${final} iterations)`,
      seconds1: one.seconds, secondsN: many.seconds, threads: N, speedup: one.seconds / many.seconds, identical: same(one.value, many.value),
    });
  }

  // ---- whole-model prune of a synthetic 8-layer LLaMA --------------------------------------------------
  {
    const config = { ...BUILTIN_CONFIG, dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKvHeads: 8, headDim: 64, vocabSize: 512, maxSeqLen: 256 };
    const [nsamples, seqlen] = opts.quick ? [4, 64] : [8, 128];
    const rnd = mulberry32(7);
    const samples = Array.from({ length: nsamples }, () => Array.from({ length: seqlen }, () => 3 + Math.floor(rnd() * (config.vocabSize - 3))));
    const calib: CalibrationSet = {
      samples, offsets: samples.map((_, i) => i * seqlen), totalTokens: nsamples * seqlen,
      source: { file: "(random tokens)", sha256: "", nsamples, seqlen, paragraphsUsed: nsamples, protocol: "paragraphs" },
    };
    const fistaOpts = opts.quick ? { refitIters: 20, ihtIters: 10, powerIters: 20 } : { refitIters: 40, ihtIters: 20, powerIters: 30 };
    const run = async () => {
      const model = randomLlama(config, 11, createWasm(256 << 20));
      const t = await withThreads(model.wasm, runThreads, (exec) =>
        pruneModel(residentStore(model), calib, { method: "fista", pattern: parsePattern("0.5"), schedule: "sequential", errorCorrection: true, methodOptions: { fista: fistaOpts } }, exec, new MemorySink(model)));
      const w = Float32Array.from(model.weights.layers.flatMap((lw) => LINEAR_OPS.flatMap((op) => Array.from(denseLinear(lw[op], op).data))));
      return { seconds: t.seconds, w };
    };
    let runThreads = 1;
    const one = await run();
    runThreads = N;
    const many = await run();
    say({
      case: `whole-model prune, 8-layer LLaMA 512/1376 (fista+corr, ${nsamples}x${seqlen} tokens)`,
      seconds1: one.seconds, secondsN: many.seconds, threads: N, speedup: one.seconds / many.seconds, identical: same(one.w, many.w),
    });
  }

  // ---- eval of the real model -------------------------------------------------------------------------
  {
    const shared = sharedDir();
    const modelDir = path.join(shared, "models/stories260K-hf");
    const text = path.join(shared, "data/tinystories-valid-head/tinystories_valid_head.txt");
    if (!fs.existsSync(modelDir) || !fs.existsSync(text)) {
      if (!opts.json) console.log(`eval: skipped (${modelDir} or ${text} not found)`);
    } else {
      const model = await loadModel(modelDir);
      const paragraphs = 300;
      const seqs = paragraphSequences(model.tokenizer!, fs.readFileSync(text, "utf8"), paragraphs, 512);
      const one = await withThreads(model.wasm, 1, (exec) => perplexity(model, seqs, exec));
      const many = await withThreads(model.wasm, N, (exec) => perplexity(model, seqs, exec));
      say({
        case: `eval stories260K, ${paragraphs} paragraphs (ppl ${one.value.perplexity.toFixed(4)})`,
        seconds1: one.seconds, secondsN: many.seconds, threads: N, speedup: one.seconds / many.seconds,
        identical: one.value.meanNll === many.value.meanNll,
      });
    }
  }
  if (!opts.json) console.log(`(pool start-up, not included above: ${startupSeconds.toFixed(2)} s)`);
  return rows;
}
