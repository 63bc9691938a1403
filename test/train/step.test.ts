/**
 * @file The training step end to end on tiny random LLaMAs: the whole backward pass (every operator, both RoPE
 * layouts, GQA, SLoRB, tied and untied classifier, distillation loss) against finite differences of the
 * forward; a short run lowers the loss; masks stay exact N:M; runs are deterministic; fixed masks do not move.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomLlama, ByteTokenizer } from "../../src/model/builtin.js";
import { createWasm } from "../../src/wasm/runtime.js";
import { Trainer, DEFAULTS, type TrainSettings } from "../../src/train/trainer.js";
import { TextSource, TeacherSource } from "../../src/train/data.js";
import { trainForward } from "../../src/train/backprop.js";
import { mulberry32 } from "../helpers/random.js";
import { openExecutor } from "../../src/workers/index.js";
import { kernels } from "../../src/kernels/index.js";
import { RandomSource, TINY } from "../helpers/train.js";
import { checkSampledGradients } from "../helpers/gradcheck.js";



function settings(over: Partial<TrainSettings> = {}): TrainSettings {
  return {
    ...DEFAULTS, n: 2, m: 4, steps: 20, lr: 3e-3, warmup: 2, decay: 0.01, decayRamp: 20, batch: 2, seqlen: 8, accum: 1, ...over,
  };
}

for (const variant of [
  { name: "half RoPE, tied, SLoRB", cfg: { ropeLayout: "half" as const }, slorbK: 8 },
  { name: "interleaved RoPE, untied, no SLoRB", cfg: { ropeLayout: "interleaved" as const, tiedEmbeddings: false }, slorbK: 0 },
]) {
  test(`whole-model gradients vs finite differences (${variant.name})`, (t) => {
    const wasm = createWasm();
    const cfg = { ...TINY, ...variant.cfg };
    const student = randomLlama(cfg, 11, wasm);
    const teacher = randomLlama(cfg, 12, wasm);
    const s = settings({ seqlen: 6, batch: 1, slorbK: variant.slorbK });
    const tr = new Trainer(student, teacher, new RandomSource(cfg.vocabSize, s.seqlen, 3), s, openExecutor(wasm, 1));
    tr.init();
    // SLoRB and masked copies: perturb non-trivial values
    const rand = mulberry32(5);
    for (const lp of tr.student.linears) if (lp.slorb) for (let i = 0; i < lp.slorb.s.data.length; i++) lp.slorb.s.data[i] = (rand() - 0.5) * 0.2;
    const k = kernels(wasm);
    const a = wasm.arena;
    const g = a.f32(tr.gradPtr, tr.student.gradFloats);
    g.fill(0);
    tr.microBatch([0], tr.gradPtr);
    const grads = g.slice();
    const seq = tr.data.sample(0);
    const T = s.seqlen;
    const teacherLogits = (() => {
      const st2 = new Trainer(teacher, undefined, tr.data, { ...s, alpha: 1, slorbK: 0 }, openExecutor(wasm, 1));
      // the teacher runs dense: all-ones masks
      trainForward(st2.student, st2.ts, seq.subarray(0, T));
      return a.f32(st2.ts.logits, T * cfg.vocabSize).slice();
    })();
    const tl = a.alloc(T * cfg.vocabSize);
    a.f32(tl, T * cfg.vocabSize).set(teacherLogits);
    const loss = (): number => {
      trainForward(tr.student, tr.ts, seq.subarray(0, T));
      a.i32(tr.ts.targets, T).set(seq.subarray(1, T + 1));
      const ce = k.f32_cross_entropy_backward(tr.ts.logits, tr.ts.targets, tr.ts.dlogits, T, cfg.vocabSize, 1, 0);
      const kl = k.f32_kl_backward(tr.ts.logits, tl, tr.ts.dlogits, T, cfg.vocabSize, s.temperature, 1, 0);
      return s.alpha * ce + (1 - s.alpha) * kl;
    };
    const worst = checkSampledGradients(
      tr.student.params.map((p) => {
        // a linear weight's forward reads W⊙M: perturb the masked copy (its gradient is the one STE gives W)
        const data = p.linear ? p.linear.wm.data : p.t.data;
        return { name: p.name, data, grad: grads.subarray(p.offset, p.offset + data.length) };
      }),
      { h: 1e-2, trials: 6, tol: 2e-2, rand, loss },
    );
    t.diagnostic(`worst error vs finite differences over ${tr.student.params.length} tensors: ${worst.toExponential(2)} (relative to max |grad| of the tensor)`);
  });
}

test("the training forward gives the inference forward's logits (dense masks)", async () => {
  const { createRunState, forward } = await import("../../src/model/forward.js");
  const wasm = createWasm();
  const m = randomLlama({ ...TINY, maxSeqLen: 64 }, 21, wasm);
  const tr = new Trainer(m, undefined, new RandomSource(TINY.vocabSize, 20, 1), settings({ alpha: 1, seqlen: 20, slorbK: 0 }), openExecutor(wasm, 1));
  const seq = Array.from(tr.data.sample(0).subarray(0, 20));
  trainForward(tr.student, tr.ts, seq);
  const got = wasm.arena.f32(tr.ts.logits, 20 * TINY.vocabSize).slice();
  const st = createRunState(m, 20, 20);
  const want = forward(m, st, seq, 0, true);
  for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * (1 + Math.abs(want[i])), `logit ${i}: ${got[i]} vs ${want[i]}`);
});

async function run(method: "ast" | "fixed", steps: number, over: Partial<TrainSettings> = {}) {
  const wasm = createWasm();
  const cfg = { ...TINY, vocabSize: 259, dim: 32, hiddenDim: 64, maxSeqLen: 64 };
  const teacher = randomLlama(cfg, 31, wasm);
  const student = randomLlama(cfg, 31, wasm);
  const text = Array.from({ length: 40 }, (_, i) => `the cat ${i % 7} sat on the mat ${i % 3}. a dog ran.`).join("\n\n");
  const s = settings({ method, steps, seqlen: 24, batch: 2, lr: 1e-2, warmup: 3, decayRamp: steps, slorbK: 8, ...over });
  const tr = new Trainer(student, teacher, new TextSource(new ByteTokenizer(), text, "toy", s.seqlen, 7), s, openExecutor(student.wasm, 1));
  tr.init();
  const results = [];
  for (let i = 0; i < steps; i++) results.push(await tr.trainStep());
  return { tr, results };
}

test("a short AST run lowers the loss, keeps every mask exact 2:4, and flips masks", async () => {
  const { tr, results } = await run("ast", 30);
  const first = results.slice(0, 3).reduce((a, r) => a + r.loss, 0) / 3;
  const last = results.slice(-3).reduce((a, r) => a + r.loss, 0) / 3;
  assert.ok(last < 0.8 * first, `loss ${first.toFixed(4)} → ${last.toFixed(4)}`);
  assert.ok(results.some((r) => (r.flips ?? 0) > 0), "some mask entries flip during AST");
  for (const lp of tr.student.linears) {
    for (let g = 0; g < lp.N * lp.K; g += 4) {
      const kept = lp.mask![g] + lp.mask![g + 1] + lp.mask![g + 2] + lp.mask![g + 3];
      assert.equal(kept, 2, `layer ${lp.layer} ${lp.op} group ${g / 4}: ${kept} kept`);
      let nz = 0;
      for (let i = 0; i < 4; i++) if (lp.wm.data[g + i] !== 0) nz++;
      assert.ok(nz <= 2, `layer ${lp.layer} ${lp.op} group ${g / 4}: ${nz} nonzeros in W⊙M`);
    }
  }
});

test("fixed-mask fine-tuning keeps its mask and zeros; two runs give identical bytes", async () => {
  const a = await run("fixed", 12);
  const b = await run("fixed", 12);
  assert.ok(a.results.every((r) => r.flips === undefined));
  for (let j = 0; j < a.tr.student.linears.length; j++) {
    const la = a.tr.student.linears[j], lb = b.tr.student.linears[j];
    assert.deepEqual(Buffer.from(la.w.data.buffer, la.w.data.byteOffset, la.w.data.byteLength), Buffer.from(lb.w.data.buffer, lb.w.data.byteOffset, lb.w.data.byteLength));
    for (let i = 0; i < la.mask!.length; i++) if (!la.mask![i]) assert.equal(la.w.data[i], 0, `${la.op}[${i}] pruned but nonzero`);
  }
  assert.deepEqual(a.results.map((r) => r.loss), b.results.map((r) => r.loss));
  assert.ok(a.results.at(-1)!.loss < a.results[0].loss);
});

test("teacher-sampled data is seeded per sample index", () => {
  const wasm = createWasm();
  const m = randomLlama({ ...TINY, maxSeqLen: 64 }, 41, wasm);
  const src = new TeacherSource(m, 16, 9);
  const a = src.sample(5), b = src.sample(3), c = src.sample(5);
  assert.deepEqual(a, c);
  assert.notDeepEqual(a, b);
  assert.equal(a[0], TINY.bosId);
  assert.equal(a.length, 17);
});
