// Structured removal (src/structured/remove.ts, structures.ts) on synthetic models: the smaller model's forward
// pass equals the original's with the removed structures' outputs zeroed; written models (HF layout, uniform
// and with per-layer sizes) load back with fewer parameters and the same logits; the refit solves its normal
// equations and never increases the reconstruction error; bad requests are clear UsageErrors.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomLlama } from "../../src/model/builtin.ts";
import { createRunState, forward } from "../../src/model/forward.ts";
import { loadModel } from "../../src/model/load.ts";
import { saveHF } from "../../src/model/save.ts";
import { parseHFConfig } from "../../src/model/config.ts";
import type { Model, ModelConfig } from "../../src/model/types.ts";
import { ConfigError, UsageError } from "../../src/errors.ts";
import { gateHook, gateIndex, gateLayout, hookedLoss, lossState } from "../../src/structured/loss.ts";
import { refitColumns, refitConsumers, shrinkModel } from "../../src/structured/remove.ts";
import { planNonuniform, planUniform, removalCounts, type KeepPlan } from "../../src/structured/structures.ts";
import { SCORERS, STRUCTURED_METHODS } from "../../src/structured/methods.ts";
import { modelSizes } from "../../src/structured/run.ts";
import { mulberry32 } from "../helpers/random.ts";
import { openExecutor } from "../../src/workers/index.ts";

const CFG: ModelConfig = {
  architecture: "llama", dim: 32, hiddenDim: 40, nLayers: 3, nHeads: 8, nKvHeads: 4, headDim: 8, vocabSize: 259,
  maxSeqLen: 64, normEps: 1e-5, ropeTheta: 10000, ropeLayout: "half", tiedEmbeddings: false, qkvBias: false, bosId: 1, eosId: 2,
};
const SEQS = [[1, 40, 77, 12, 99, 5, 250, 3, 18], [1, 200, 201, 202, 9, 9, 9], [1, 66, 130, 14]];

function logits(model: Model, seq: number[], hook?: Parameters<typeof hookedLoss>[3]): Float32Array {
  return model.wasm.arena.scoped(() => {
    if (!hook) return Float32Array.from(forward(model, createRunState(model, seq.length, seq.length), seq, 0, true));
    // the same forward pass with the gate hook, through hookedLoss's layer loop
    const st = lossState(model, [seq]);
    hookedLoss(model, st, [seq], hook);
    return Float32Array.from(model.wasm.arena.f32(st.logits, seq.length * model.config.vocabSize));
  });
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return m / s;
}

/** Removed structures of `plan` as gates θ = −1 (output × 0). */
function zeroedHook(model: Model, plan: KeepPlan) {
  const layout = gateLayout(model);
  const theta = new Float64Array(layout.size);
  for (let l = 0; l < model.config.nLayers; l++) {
    for (let j = 0; j < layout.channels[l]; j++) if (!plan.channels[l].includes(j)) theta[gateIndex(layout, l, "channel", j)] = -1;
    for (let g = 0; g < layout.groups[l]; g++) if (!plan.groups[l].includes(g)) theta[gateIndex(layout, l, "group", g)] = -1;
  }
  return gateHook(model, layout, theta);
}

function randomPlan(c: ModelConfig, seed: number, removeChannels: (l: number) => number, removeGroups: (l: number) => number): KeepPlan {
  const r = mulberry32(seed);
  const pick = (n: number, remove: number): number[] => {
    const idx = [...Array(n).keys()].sort(() => r() - 0.5);
    return idx.slice(remove).sort((a, b) => a - b);
  };
  return {
    channels: Array.from({ length: c.nLayers }, (_, l) => pick(c.hiddenDim, removeChannels(l))),
    groups: Array.from({ length: c.nLayers }, (_, l) => pick(c.nKvHeads, removeGroups(l))),
  };
}

test("removal equals zeroing the removed structures' outputs (uniform and per-layer plans, both RoPE layouts, biases)", () => {
  const cases: [string, ModelConfig, (l: number) => number, (l: number) => number][] = [
    ["uniform", CFG, () => 10, () => 1],
    ["per-layer", CFG, (l) => 5 * l + 1, (l) => l],
    ["interleaved", { ...CFG, ropeLayout: "interleaved" }, () => 7, (l) => (l === 1 ? 3 : 2)],
    ["qwen2 biases", { ...CFG, architecture: "qwen2", qkvBias: true }, () => 3, () => 2],
  ];
  for (const [name, cfg, rc, rg] of cases) {
    const model = randomLlama(cfg, 11);
    const plan = randomPlan(cfg, 5, rc, rg);
    const small = shrinkModel(model, plan);
    for (const seq of SEQS) {
      const want = logits(model, seq, zeroedHook(model, plan));
      const got = logits(small, seq);
      assert.ok(maxRelDiff(got, want) < 2e-5, `${name}: max rel diff ${maxRelDiff(got, want)}`);
      // and the zeroing is not a no-op
      assert.ok(maxRelDiff(logits(model, seq), want) > 1e-3, `${name}: removal changed nothing`);
    }
    for (let l = 0; l < cfg.nLayers; l++) {
      const lw = small.weights.layers[l];
      assert.deepEqual(lw.wGate.shape, [cfg.hiddenDim - rc(l), cfg.dim]);
      assert.deepEqual(lw.wDown.shape, [cfg.dim, cfg.hiddenDim - rc(l)]);
      assert.deepEqual(lw.wk.shape, [(cfg.nKvHeads - rg(l)) * cfg.headDim, cfg.dim]);
      assert.deepEqual(lw.wo.shape, [cfg.dim, (cfg.nKvHeads - rg(l)) * 2 * cfg.headDim]);
    }
    assert.equal(!!small.config.layerSizes, name === "per-layer" || name === "interleaved", name);
  }
});

async function loadAndCompare(out: string, small: Model, model: Model): Promise<void> {
  const back = await loadModel(out, { requireTokenizer: false });
  assert.deepEqual(back.config.layerSizes, small.config.layerSizes);
  assert.ok(modelSizes(back).params < modelSizes(model).params);
  assert.equal(modelSizes(back).params, modelSizes(small).params);
  for (const seq of SEQS) assert.ok(maxRelDiff(logits(back, seq), logits(small, seq)) < 1e-5);
}

test("the written smaller model loads (HF layout) with fewer parameters and the same logits; per-layer sizes via wasprune_layer_sizes", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-structured-"));
  try {
    const model = randomLlama({ ...CFG, ropeLayout: "interleaved" }, 3);
    for (const [name, rc, rg] of [["uniform", () => 10, () => 1], ["nonuniform", (l: number) => 4 * l, (l: number) => (l + 1) % 3]] as const) {
      const small = shrinkModel(model, randomPlan(CFG, 9, rc, rg));
      const out = path.join(dir, name);
      saveHF(small, out);
      const cfg = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
      if (name === "uniform") {
        assert.deepEqual([cfg.intermediate_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.wasprune_layer_sizes], [30, 6, 3, undefined]);
        assert.equal(cfg.head_dim, 8, "head_dim is written once it no longer follows from hidden_size / heads");
      } else {
        assert.deepEqual(cfg.wasprune_layer_sizes, [
          { intermediate_size: 40, num_attention_heads: 6, num_key_value_heads: 3 },
          { intermediate_size: 36, num_attention_heads: 4, num_key_value_heads: 2 },
          { intermediate_size: 32, num_attention_heads: 8, num_key_value_heads: 4 },
        ]);
        assert.deepEqual([cfg.intermediate_size, cfg.num_attention_heads, cfg.num_key_value_heads], [40, 8, 4]);
      }
      await loadAndCompare(out, small, model);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("refit: normal equations hold, the error never grows, and a model refit on its own data keeps its outputs closer", async () => {
  const r = mulberry32(4);
  const rows = 5;
  const cols = 9;
  const n = 40;
  const X = Float64Array.from({ length: n * cols }, (_, k) => r() - 0.5 + 0.8 * Math.sin(k % cols) * (r() - 0.5));
  const H = new Float32Array(cols * cols);
  for (let t = 0; t < n; t++) for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) H[i * cols + j] += (X[t * cols + i] * X[t * cols + j]) / n;
  const W0 = Float32Array.from({ length: rows * cols }, () => r() - 0.5);
  const keep = [0, 2, 3, 5, 8];
  const { W, damp } = refitColumns(W0, rows, cols, H, keep, 0.01);
  for (let rr = 0; rr < rows; rr++) {
    for (const a of [1, 4, 6, 7]) assert.equal(W[rr * cols + a], 0);
    for (const b of keep) {
      // Σ_{a∈K} W[a](H[a,b] + δ[a=b]) = Σ_j W0[j] H[j,b] + δ W0[b]
      let lhs = 0;
      for (const a of keep) lhs += W[rr * cols + a] * (H[a * cols + b] + (a === b ? damp : 0));
      let rhs = damp * W0[rr * cols + b];
      for (let j = 0; j < cols; j++) rhs += W0[rr * cols + j] * H[j * cols + b];
      assert.ok(Math.abs(lhs - rhs) < 1e-5, `row ${rr} col ${b}: ${lhs} vs ${rhs}`);
    }
  }
  const model = randomLlama(CFG, 21);
  const plan = randomPlan(CFG, 2, () => 12, () => 1);
  const fit = await refitConsumers(model, plan, SEQS, openExecutor(model.wasm, 1));
  assert.equal(fit.reports.length, 2 * CFG.nLayers);
  for (const rep of fit.reports) assert.ok(rep.relErrRefit <= rep.relErrDropped + 1e-6, `${rep.name}: ${rep.relErrRefit} > ${rep.relErrDropped}`);
  const dense = hookedLossOf(model);
  assert.ok(Math.abs(hookedLossOf(shrinkModel(model, plan, fit)) - dense) < Math.abs(hookedLossOf(shrinkModel(model, plan)) - dense));
});

function hookedLossOf(m: Model): number {
  return m.wasm.arena.scoped(() => hookedLoss(m, lossState(m, SEQS), SEQS));
}

test("scores: every method gives one finite score per structure; plans remove the lowest", async () => {
  const model = randomLlama(CFG, 8);
  const exec = openExecutor(model.wasm, 1);
  for (const name of STRUCTURED_METHODS) {
    const { scores } = await SCORERS[name].score({ model, exec, calib: SEQS, spsa: { directions: 4, seed: 1, batchSize: 2 } });
    assert.equal(scores.channels.length, CFG.nLayers);
    for (const s of [...scores.channels, ...scores.groups]) assert.ok(s.every((v) => Number.isFinite(v) && v >= 0), name);
    assert.ok(scores.channels.some((s) => s.some((v) => v > 0)), `${name}: some score is positive`);
    const counts = removalCounts(CFG, { channelsRatio: 0.25, headsRatio: 0.5 });
    const plan = planUniform(scores, counts);
    for (let l = 0; l < CFG.nLayers; l++) {
      assert.equal(plan.channels[l].length, 30);
      assert.equal(plan.groups[l].length, 2);
      const keptMin = Math.min(...plan.channels[l].map((j) => scores.channels[l][j]));
      for (let j = 0; j < CFG.hiddenDim; j++) if (!plan.channels[l].includes(j)) assert.ok(scores.channels[l][j] <= keptMin);
    }
    const nu = planNonuniform(scores, counts);
    assert.equal(nu.channels.flat().length, 90);
    assert.equal(nu.groups.flat().length, 6);
    assert.ok(nu.groups.every((g) => g.length >= 1));
  }
});

test("bad input: ratios outside [0,1), groups not divisible, removing every head, bad wasprune_layer_sizes", () => {
  const usage = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: unknown) => e instanceof UsageError && re.test((e as Error).message), String(re));
  usage(() => removalCounts(CFG, { channelsRatio: 1, headsRatio: 0 }), /--channels-ratio 1: expected a fraction in \[0, 1\)/);
  usage(() => removalCounts(CFG, { channelsRatio: -0.1, headsRatio: 0 }), /--channels-ratio -0.1/);
  usage(() => removalCounts(CFG, { channelsRatio: 0, headsRatio: 1.5 }), /--heads-ratio 1.5: expected a fraction/);
  usage(() => removalCounts(CFG, { channelsRatio: 0, headsRatio: NaN }), /--heads-ratio NaN/);
  usage(() => removalCounts(CFG, { channelsRatio: 0, headsRatio: 0.3 }), /layer 0 has 4 k\/v groups .*multiple of 1\/4 \(0.3 x 4 = 1.2 groups\)/);
  usage(() => removalCounts({ ...CFG, hiddenDim: 2 }, { channelsRatio: 0.9, headsRatio: 0 }), /removes all 2 MLP channels of layer 0/);
  const model = randomLlama(CFG, 1);
  const plan = randomPlan(CFG, 1, () => 1, () => 0);
  plan.groups[2] = [];
  usage(() => shrinkModel(model, plan), /layer 2: removing all k\/v groups \(every attention head\)/);
  const raw = { model_type: "llama", hidden_size: 32, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 259, head_dim: 8 };
  const sizes = (a: unknown) => parseHFConfig({ ...raw, wasprune_layer_sizes: a });
  const cfgErr = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: unknown) => e instanceof ConfigError && re.test((e as Error).message), String(re));
  cfgErr(() => sizes([{ intermediate_size: 40, num_attention_heads: 8, num_key_value_heads: 4 }]), /must be a list of 2 per-layer entries/);
  cfgErr(() => sizes([{ intermediate_size: 40, num_attention_heads: 8, num_key_value_heads: 4 }, { intermediate_size: 0, num_attention_heads: 8, num_key_value_heads: 4 }]), /wasprune_layer_sizes\[1\]\.intermediate_size" is 0/);
  cfgErr(() => sizes([{ intermediate_size: 40, num_attention_heads: 8, num_key_value_heads: 4 }, { intermediate_size: 30, num_attention_heads: 6, num_key_value_heads: 2 }]), /3 query heads per k\/v head, the model 2/);
  cfgErr(() => sizes([{ intermediate_size: 30, num_attention_heads: 8, num_key_value_heads: 4 }, { intermediate_size: 30, num_attention_heads: 6, num_key_value_heads: 3 }]), /"intermediate_size" is 40, expected the largest wasprune_layer_sizes value 30/);
  const ok = sizes([{ intermediate_size: 40, num_attention_heads: 8, num_key_value_heads: 4 }, { intermediate_size: 30, num_attention_heads: 6, num_key_value_heads: 3 }]);
  assert.deepEqual(ok.layerSizes, [{ hiddenDim: 40, nHeads: 8, nKvHeads: 4 }, { hiddenDim: 30, nHeads: 6, nKvHeads: 3 }]);
});
