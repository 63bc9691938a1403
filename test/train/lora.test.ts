/**
 * @file LoRA recovery (src/train/student.ts, backprop.ts, trainer.ts method "lora") on tiny random LLaMAs: the
 * adapter gradients against finite differences of the whole distillation loss, with a student that is a
 * structurally pruned (non-uniform, smaller) copy and a teacher of the full shape; the base stays frozen; the
 * merged model computes the adapter model's logits; a short run lowers the loss and is deterministic.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomLlama, ByteTokenizer } from "../../src/model/builtin.js";
import { createRunState, forward } from "../../src/model/forward.js";
import { createWasm } from "../../src/wasm/runtime.js";
import type { Model } from "../../src/model/types.js";
import { Trainer, DEFAULTS, type TrainSettings } from "../../src/train/trainer.js";
import { TextSource } from "../../src/train/data.js";
import { kernels } from "../../src/kernels/index.js";
import { createTrainState, trainForward } from "../../src/train/backprop.js";
import { createStudent, mergeLora } from "../../src/train/student.js";
import { shrinkModel } from "../../src/structured/remove.js";
import { mulberry32 } from "../helpers/random.js";
import { openExecutor } from "../../src/workers/index.js";
import { RandomSource, TINY as TEACHER } from "../helpers/train.js";
import { checkSampledGradients } from "../helpers/gradcheck.js";



function settings(over: Partial<TrainSettings> = {}): TrainSettings {
  return { ...DEFAULTS, n: 0, m: 0, method: "lora", steps: 20, lr: 1e-2, warmup: 2, decay: 0, decayRamp: 1, batch: 2, seqlen: 8, accum: 1, slorbK: 0, loraRank: 3, loraAlpha: 6, ...over };
}

/** A smaller student: layer 0 keeps 17 channels and 1 of 2 k/v groups, layer 1 all groups and 20 channels. */
function prunedStudent(teacher: Model, seed: number): Model {
  const base = randomLlama(teacher.config, seed, teacher.wasm);
  return shrinkModel(base, {
    channels: [[...Array(17).keys()].map((i) => i + 7), [...Array(20).keys()]],
    groups: [[1], [0, 1]],
  });
}

/** Random non-zero B (A is already random): gradients of A and B are then both non-trivial. */
function randomizeB(tr: Trainer, seed: number): void {
  const rand = mulberry32(seed);
  for (const lp of tr.student.linears) {
    const b = lp.lora!.b.data;
    for (let i = 0; i < b.length; i++) b[i] = (rand() - 0.5) * 0.4;
  }
}

test("LoRA adapter gradients vs finite differences: a smaller non-uniform student distilled from a larger teacher", (t) => {
  const wasm = createWasm();
  const teacher = randomLlama(TEACHER, 12, wasm);
  const student = prunedStudent(teacher, 11);
  assert.ok(student.config.layerSizes, "the student has per-layer sizes");
  const s = settings({ seqlen: 6, batch: 1 });
  const tr = new Trainer(student, teacher, new RandomSource(TEACHER.vocabSize, s.seqlen, 3), s, openExecutor(wasm, 1));
  tr.init();
  // only the adapters are parameters: the base is frozen
  assert.ok(tr.student.params.every((p) => /lora_[AB]$/.test(p.name)), tr.student.params.map((p) => p.name).join(","));
  assert.equal(tr.student.params.length, 2 * 7 * 2);
  assert.ok(tr.student.linears.every((lp) => lp.gradOffset === -1) && tr.student.embedOffset === -1);
  randomizeB(tr, 5);
  const k = kernels(wasm);
  const a = wasm.arena;
  const g = a.f32(tr.gradPtr, tr.student.gradFloats);
  g.fill(0);
  tr.microBatch([0], tr.gradPtr);
  const grads = g.slice();
  const seq = tr.data.sample(0);
  const T = s.seqlen;
  const V = TEACHER.vocabSize;
  const tl = a.alloc(T * V);
  {
    const tst = createStudent(teacher, { sparse: false });
    const tts = createTrainState(tst, T);
    trainForward(tst, tts, seq.subarray(0, T));
    a.f32(tl, T * V).set(a.f32(tts.logits, T * V));
  }
  const loss = (): number => {
    trainForward(tr.student, tr.ts, seq.subarray(0, T));
    a.i32(tr.ts.targets, T).set(seq.subarray(1, T + 1));
    const ce = k.f32_cross_entropy_backward(tr.ts.logits, tr.ts.targets, tr.ts.dlogits, T, V, 1, 0);
    const kl = k.f32_kl_backward(tr.ts.logits, tl, tr.ts.dlogits, T, V, s.temperature, 1, 0);
    return s.alpha * ce + (1 - s.alpha) * kl;
  };
  const worst = checkSampledGradients(
    tr.student.params.map((p) => ({ name: p.name, data: p.t.data, grad: grads.subarray(p.offset, p.offset + p.t.data.length) })),
    { h: 1e-2, trials: 5, tol: 2e-2, rand: mulberry32(9), loss },
  );
  t.diagnostic(`worst adapter-gradient error vs finite differences over ${tr.student.params.length} tensors: ${worst.toExponential(2)}`);
});

test("merging the adapters: the merged model's inference logits equal the adapter model's (float32 rounding)", () => {
  const wasm = createWasm();
  const teacher = randomLlama({ ...TEACHER, maxSeqLen: 64 }, 21, wasm);
  const student = prunedStudent(teacher, 22);
  const tr = new Trainer(student, teacher, new RandomSource(TEACHER.vocabSize, 20, 1), settings({ seqlen: 20 }), openExecutor(wasm, 1));
  tr.init();
  randomizeB(tr, 7);
  const seq = Array.from(tr.data.sample(0).subarray(0, 20));
  const V = TEACHER.vocabSize;
  const run = (): Float32Array => {
    trainForward(tr.student, tr.ts, seq);
    return wasm.arena.f32(tr.ts.logits, seq.length * V).slice();
  };
  const adapted = run();
  const w0 = tr.student.linears.map((lp) => lp.w.data.slice());
  // the adapters change the output
  const bare = shrinkModel(randomLlama({ ...TEACHER, maxSeqLen: 64 }, 22, wasm), { channels: [[...Array(17).keys()].map((i) => i + 7), [...Array(20).keys()]], groups: [[1], [0, 1]] });
  const bareLogits = forward(bare, createRunState(bare, 20, 20), seq, 0, true).slice();
  let moved = 0;
  for (let i = 0; i < adapted.length; i++) moved = Math.max(moved, Math.abs(adapted[i] - bareLogits[i]));
  assert.ok(moved > 1e-2, `adapters change the logits by ${moved}`);
  mergeLora(tr.student);
  assert.ok(tr.student.linears.some((lp, j) => lp.w.data.some((v, i) => v !== w0[j][i])), "merge writes the weights");
  assert.ok(tr.student.linears.every((lp) => lp.lora!.b.data.every((v) => v === 0)), "B is zero after the merge");
  const merged = forward(student, createRunState(student, 20, 20), seq, 0, true);
  let worst = 0;
  for (let i = 0; i < adapted.length; i++) {
    const e = Math.abs(merged[i] - adapted[i]) / (1 + Math.abs(adapted[i]));
    worst = Math.max(worst, e);
  }
  assert.ok(worst < 2e-5, `merged vs adapter logits: worst relative difference ${worst}`);
  const after = run();
  for (let i = 0; i < after.length; i++) assert.ok(Math.abs(after[i] - adapted[i]) <= 2e-5 * (1 + Math.abs(adapted[i])), `training forward after merge, logit ${i}`);
});

async function loraRun(steps: number) {
  const wasm = createWasm();
  const cfg = { ...TEACHER, vocabSize: 259, dim: 32, hiddenDim: 64, maxSeqLen: 64 };
  const teacher = randomLlama(cfg, 31, wasm);
  const student = shrinkModel(randomLlama(cfg, 31, wasm), { channels: [[...Array(40).keys()], [...Array(48).keys()].map((i) => i + 16)], groups: [[0], [0, 1]] });
  const text = Array.from({ length: 40 }, (_, i) => `the cat ${i % 7} sat on the mat ${i % 3}. a dog ran.`).join("\n\n");
  const s = settings({ steps, seqlen: 24, batch: 2, lr: 2e-2, warmup: 3, loraRank: 4, loraAlpha: 8 });
  const tr = new Trainer(student, teacher, new TextSource(new ByteTokenizer(), text, "toy", s.seqlen, 7), s, openExecutor(wasm, 1));
  tr.init();
  const frozen = tr.student.linears.map((lp) => lp.w.data.slice());
  const results = [];
  for (let i = 0; i < steps; i++) results.push(await tr.trainStep());
  return { tr, results, frozen };
}

test("a short LoRA run lowers the distillation loss, leaves the base weights untouched, and repeats bit for bit", async () => {
  const a = await loraRun(15);
  const b = await loraRun(15);
  const first = a.results[0].loss;
  const last = a.results.at(-1)!.loss;
  assert.ok(last < 0.8 * first, `loss ${first.toFixed(4)} → ${last.toFixed(4)}`);
  a.tr.student.linears.forEach((lp, j) => assert.deepEqual(lp.w.data, a.frozen[j], `${lp.op} of layer ${lp.layer} moved`));
  assert.deepEqual(a.results.map((r) => r.loss), b.results.map((r) => r.loss));
  a.tr.student.params.forEach((p, i) => assert.deepEqual(p.t.data, b.tr.student.params[i].t.data));
});
