/**
 * @file `wasprune bench train`: tokens/s of a whole training step (student forward keeping activations,
 * teacher forward, α·CE + (1−α)·KL, backward, AdamW with AST's decay, mask refresh) on a real model and on a
 * synthetic 8-layer 512-wide LLaMA, 1 thread (the data-parallel pool is not wired into training yet).
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadModel } from "../src/model/load.js";
import { randomLlama } from "../src/model/builtin.js";
import { createWasm } from "../src/wasm/runtime.js";
import type { Model, ModelConfig } from "../src/model/types.js";
import { Trainer, DEFAULTS, type TrainSettings } from "../src/train/trainer.js";
import type { DataSource } from "../src/train/data.js";
import { mulberry32 } from "../src/model/builtin.js";

export const SYNTH_8x512: ModelConfig = {
  architecture: "llama", dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKvHeads: 4, headDim: 64, vocabSize: 4096,
  maxSeqLen: 512, normEps: 1e-5, ropeTheta: 10000, ropeLayout: "half", tiedEmbeddings: true, qkvBias: false, bosId: 1, eosId: 2,
};

class RandomTokens implements DataSource {
  constructor(readonly V: number, readonly L: number) {}
  describe() { return { kind: "random" }; }
  sample(i: number): Int32Array {
    const r = mulberry32(1000 + i);
    return Int32Array.from({ length: this.L + 1 }, () => Math.floor(r() * this.V));
  }
}

export interface TrainBenchRow {
  model: string;
  params: number;
  seqlen: number;
  batch: number;
  slorb: boolean;
  threads: number;
  stepSeconds: number;
  tokensPerSecond: number;
}

function measure(name: string, make: () => { student: Model; teacher: Model }, over: Partial<TrainSettings>, steps: number): TrainBenchRow {
  const { student, teacher } = make();
  const s: TrainSettings = { ...DEFAULTS, n: 2, m: 4, steps: 1000, lr: 1e-4, warmup: 10, decay: 0.01, decayRamp: 1000, slorbK: 0, ...over };
  const tr = new Trainer(student, teacher, new RandomTokens(student.config.vocabSize, s.seqlen), s);
  tr.init();
  tr.trainStep(); // warm-up (JIT, first-touch)
  const t0 = performance.now();
  let tokens = 0;
  for (let i = 0; i < steps; i++) tokens += tr.trainStep().tokens;
  const sec = (performance.now() - t0) / 1000;
  const params = tr.student.params.reduce((a, p) => a + p.t.data.length, 0);
  return { model: name, params, seqlen: s.seqlen, batch: s.batch, slorb: s.slorbK > 0, threads: 1, stepSeconds: sec / steps, tokensPerSecond: tokens / sec };
}

export async function benchTrain(o: { model?: string; json?: boolean; quick?: boolean }): Promise<TrainBenchRow[]> {
  const root = fileURLToPath(new URL("../", import.meta.url));
  const model = o.model ?? path.resolve(root, "..", "shared/models/stories260K-hf");
  const rows: TrainBenchRow[] = [];
  const log = (r: TrainBenchRow) => {
    rows.push(r);
    if (!o.json) {
      console.log(
        `${r.model.padEnd(28)} ${String(r.params).padStart(10)} params  seqlen ${r.seqlen} x batch ${r.batch}${r.slorb ? " +SLoRB" : ""}  ` +
          `${r.threads} thread: ${r.stepSeconds.toFixed(3)} s/step, ${Math.round(r.tokensPerSecond)} tokens/s`,
      );
    }
  };
  if (fs.existsSync(model)) {
    const load = async () => {
      const wasm = createWasm();
      return { student: await loadModel(model, { wasm }), teacher: await loadModel(model, { wasm }) };
    };
    const pair = await load();
    log(measure(path.basename(model), () => pair, { batch: 8, seqlen: 256 }, o.quick ? 2 : 5));
    const pair2 = await load();
    log(measure(path.basename(model), () => pair2, { batch: 8, seqlen: 256, slorbK: 16 }, o.quick ? 2 : 5));
  }
  log(measure("synthetic 8x512 LLaMA", () => {
    const wasm = createWasm();
    return { student: randomLlama(SYNTH_8x512, 1, wasm), teacher: randomLlama(SYNTH_8x512, 1, wasm) };
  }, { batch: 1, seqlen: 256 }, o.quick ? 1 : 2));
  return rows;
}
