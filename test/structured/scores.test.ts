// The gradient-based structure scores (src/structured/gradients.ts, mini-llm.ts, taylor.ts): the exact gate
// gradients from the backward pass agree with finite differences of the loss on stories260K; the weight SPSA
// of the paper's form converges to the exact weight gradient and leaves the weights as they were; the paper's
// group score is the sum of its weights' scores over exactly the structure's weights.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { randomLlama } from "../../src/model/builtin.ts";
import { loadModel } from "../../src/model/load.ts";
import { paragraphSequences } from "../../src/eval/text.ts";
import type { LinearOp, ModelConfig } from "../../src/model/types.ts";
import { LINEAR_OPS } from "../../src/model/types.ts";
import { exactGradients, exactWeightGradients } from "../../src/structured/gradients.ts";
import { gateIndex } from "../../src/structured/loss.ts";
import { paperScores, weightGradientSpsa, withGateLoss, withWeightLoss } from "../../src/structured/mini-llm.ts";
import { DEFAULT_SPSA, outputStats } from "../../src/structured/scorer.ts";
import { correlation, finiteDifferenceGradient } from "../../src/structured/spsa.ts";
import { STORIES_HF, TINY_TRAIN } from "../helpers/shared.ts";
import { mulberry32 } from "../helpers/random.ts";
import { openExecutor } from "../../src/workers/index.ts";

const CFG: ModelConfig = {
  architecture: "llama", dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 4, vocabSize: 40,
  maxSeqLen: 32, normEps: 1e-5, ropeTheta: 10000, ropeLayout: "half", tiedEmbeddings: false, qkvBias: false, bosId: 1, eosId: 2,
};
const rand = mulberry32(3);
const SEQS = Array.from({ length: 6 }, () => [1, ...Array.from({ length: 9 }, () => 3 + Math.floor(rand() * 37))]);

test("exact ∂L/∂θ_s from the backward pass = central finite differences of the calibration loss (stories260K)", async () => {
  const model = await loadModel(STORIES_HF);
  const calib = paragraphSequences(model.tokenizer!, fs.readFileSync(TINY_TRAIN, "utf8"), 8, 512);
  const e = exactGradients(model, calib);
  // per layer the channel of largest |∂L/∂θ| (small ones drown in float32 rounding of the loss), and two groups
  const picks: [number, "channel" | "group", number][] = [];
  e.gate.channels.forEach((g, l) => picks.push([l, "channel", [...g.keys()].reduce((a, b) => (Math.abs(g[b]) > Math.abs(g[a]) ? b : a), 0)]));
  picks.push([1, "group", 2], [3, "group", 0]);
  withGateLoss(model, calib, 8, (loss, layout, batches) => {
    assert.ok(Math.abs(loss(new Float64Array(layout.size), 0) - e.loss) < 1e-5 * e.loss, "the training forward's loss is the scoring loss");
    const fd = finiteDifferenceGradient(loss, new Float64Array(layout.size), picks.map(([l, k, i]) => gateIndex(layout, l, k, i)), { eps: 1e-3, batches: batches.length });
    picks.forEach(([l, k, i], j) => {
      const got = k === "channel" ? e.gate.channels[l][i] : e.gate.groups[l][i];
      assert.ok(Math.abs(got - fd[j]) <= 0.02 * Math.abs(fd[j]) + 1e-4, `${k} ${i} of layer ${l}: backprop ${got}, finite differences ${fd[j]}`);
    });
  });
});

test("weight SPSA (Gaussian directions over every linear weight) converges to the exact weight gradient; the weights come back bit for bit", () => {
  const model = randomLlama(CFG, 5);
  const before = model.weights.layers.map((lw) => LINEAR_OPS.map((op) => Float32Array.from((lw[op] as { data: Float32Array }).data)));
  const exact = exactWeightGradients(model, SEQS);
  const s = { ...DEFAULT_SPSA, batchSize: SEQS.length, directions: 2048 }; // one batch: the estimate's target is the exact gradient
  const r = weightGradientSpsa(model, SEQS, s, [64, 2048]);
  const want: number[] = [];
  for (let l = 0; l < CFG.nLayers; l++) for (const op of LINEAR_OPS) want.push(...exact.grad[l][op]);
  assert.equal(r.layout.size, want.length);
  const c64 = correlation(r.at.get(64)!, want);
  const c2048 = correlation(r.gradient, want);
  // the expected correlation is about sqrt(K / (K + d)) (d = 3,840): 0.13 at K = 64, 0.59 at K = 2048
  assert.ok(c2048 > 0.45 && c2048 > c64 + 0.25, `correlation with the exact gradient: K=64 ${c64.toFixed(3)}, K=2048 ${c2048.toFixed(3)}`);
  model.weights.layers.forEach((lw, l) => LINEAR_OPS.forEach((op, j) => assert.deepEqual((lw[op] as { data: Float32Array }).data, before[l][j], `${op} of layer ${l} restored`)));
  // a throw inside restores them too
  assert.throws(() => withWeightLoss(model, SEQS, 3, (loss, layout) => {
    loss(new Float64Array(layout.size).fill(0.5), 0);
    throw new Error("boom");
  }), /boom/);
  model.weights.layers.forEach((lw, l) => LINEAR_OPS.forEach((op, j) => assert.deepEqual((lw[op] as { data: Float32Array }).data, before[l][j])));
});

test("the paper's group score sums |w|·‖x_col‖·|g_w| over exactly the structure's weights", async () => {
  const model = randomLlama(CFG, 7);
  const exec = openExecutor(model.wasm, 1);
  const stats = await outputStats(model, SEQS, exec);
  const wg = exactWeightGradients(model, SEQS);
  const got = paperScores(model, stats, (l, op) => wg.grad[l][op]);
  // brute force: visit every weight once, find the structure it belongs to, add its score there
  const hd = CFG.headDim;
  const G = CFG.nHeads / CFG.nKvHeads;
  for (let l = 0; l < CFG.nLayers; l++) {
    const ch = new Float64Array(CFG.hiddenDim);
    const gr = new Float64Array(CFG.nKvHeads);
    const qDim = CFG.nHeads * hd;
    const att = Float64Array.from({ length: qDim }, (_, i) => stats.attGram[l][i * qDim + i]);
    const input: Record<LinearOp, Float64Array> = {
      wq: stats.qkvMeanSq[l], wk: stats.qkvMeanSq[l], wv: stats.qkvMeanSq[l], wo: att,
      wGate: stats.gateUpMeanSq[l], wUp: stats.gateUpMeanSq[l], wDown: stats.channelMeanSq[l],
    };
    for (const op of LINEAR_OPS) {
      const w = model.weights.layers[l][op] as { data: Float32Array; shape: number[] };
      const [N, K] = w.shape;
      for (let r = 0; r < N; r++) for (let c = 0; c < K; c++) {
        const v = Math.abs(w.data[r * K + c]) * Math.sqrt(input[op][c]) * Math.abs(wg.grad[l][op][r * K + c]);
        if (op === "wGate" || op === "wUp") ch[r] += v;
        else if (op === "wDown") ch[c] += v;
        else if (op === "wq") gr[Math.floor(r / (G * hd))] += v;
        else if (op === "wk" || op === "wv") gr[Math.floor(r / hd)] += v;
        else gr[Math.floor(c / (G * hd))] += v;
      }
    }
    ch.forEach((v, j) => assert.ok(Math.abs(got.channels[l][j] - v) <= 1e-9 * Math.abs(v) + 1e-15, `channel ${j} of layer ${l}`));
    gr.forEach((v, g) => assert.ok(Math.abs(got.groups[l][g] - v) <= 1e-9 * Math.abs(v) + 1e-15, `group ${g} of layer ${l}`));
  }
  await exec.close();
});
