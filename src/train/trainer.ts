/**
 * @file A training run's state and its step: student (dense shadow + masks + SLoRB), teacher, optimizer, data,
 * and the AST recipe (Huang et al. 2024, "Pruning Large Language Models with Semi-Structural Adaptive Sparse
 * Training", arXiv:2407.20584; code github.com/thu-ml/Adaptive-Sparse-Trainer):
 *
 *  loss per predicted token = α·CE(student, next token) + (1 − α)·τ²·KL(softmax(z_teacher/τ) ‖ softmax(z/τ))
 *     (main.py: hardness_task·task_loss + hardness_kldiv·kl_loss; sparse_modeling.py Distill_Model.kl_loss;
 *      the defaults α = 0.33, τ = 2), averaged over every predicted token of the step;
 *  masks: recomputed every `maskInterval` steps (AST: 10) from the dense shadow weights, N:M by magnitude or
 *     Wanda (mask.ts); the forward uses W⊙M, the gradient reaches W straight through (student.ts);
 *  decay of pruned weights: λ_t = λ·min(1, t/ramp), inside AdamW (adamw.ts; main.py get_decay);
 *  learning rate: linear warm-up, then cosine to lr/10 (main.py get_lr with min_lr = lr/10);
 *  SLoRB: y += S·(P x), P summing groups of k inputs, S initialised to the mean of the pruned weights of each
 *     group (mask.ts initSlorb), trained.
 * "fixed" is plain sparse fine-tuning for comparison: the first mask is kept, pruned weights are zero.
 * "lora" trains LoRA adapters (student.ts) on a frozen dense student — MINI-LLM's and LLM-Pruner's recovery
 *   after structured pruning — with the same loss, data, schedule and AdamW (no masks, no decay of pruned
 *   weights); the student may have other shapes than the teacher (a structurally pruned model: only the
 *   logits meet, so only the vocabulary must agree); the adapters are merged into the weights at the end.
 *
 * Every step's data is a function of (seed, step) (data.ts) and every sum runs in a fixed order, so a run
 * resumed from a checkpoint (state.ts) ends with the same bytes as one that never stopped. A step's gradient is
 * summed over a fixed grid of sequence blocks (data-parallel.ts) on the executor's slots (inline with one), with
 * the same bytes for any thread count.
 */
import { UsageError } from "../errors.js";
import { logitsNll } from "../eval/perplexity.js";
import type { Model } from "../model/types.js";
import type { Executor } from "../exec/executor.js";
import { adamwStep, createAdamW, type AdamWState } from "./adamw.js";
import { createTrainState, trainBackward, trainForward, type TrainState } from "./backprop.js";
import type { DataSource } from "./data.js";
import { initSlorb, nmMaskInto, wandaScale, type MaskMetric } from "./mask.js";
import { createStudent, refreshMasked, type Student } from "./student.js";
import { blockGrid, describeStudent, sequenceGrads, slotRuns, type StudentDesc, type TrainBlocksTask } from "./data-parallel.js";
import { kernels } from "../kernels/index.js";

export const TRAIN_METHODS = Object.freeze(["ast", "fixed", "lora"] as const);
export type TrainMethod = (typeof TRAIN_METHODS)[number];

export interface TrainSettings {
  /** N kept of every M (0 with LoRA: no masks) */
  n: number;
  m: number;
  method: TrainMethod;
  metric: MaskMetric;
  maskInterval: number;
  steps: number;
  lr: number;
  /** warm-up steps */
  warmup: number;
  /** sequences per micro-batch */
  batch: number;
  seqlen: number;
  /** micro-batches per step */
  accum: number;
  alpha: number;
  temperature: number;
  /** AST's λ (srste_decay) */
  decay: number;
  /** steps over which λ_t ramps from 0 to λ */
  decayRamp: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  clip: number;
  /** SLoRB group size, or 0 for none */
  slorbK: number;
  /** LoRA rank r and α (scale α/r), used by method "lora" */
  loraRank: number;
  loraAlpha: number;
  seed: number;
  /** the step's sequences are summed in this many contiguous blocks (at most; fixed, whatever --threads) */
  gradBlocks: number;
}

export const DEFAULTS = Object.freeze({
  method: "ast" as TrainMethod,
  metric: "magnitude" as MaskMetric,
  maskInterval: 10,
  batch: 8,
  seqlen: 256,
  accum: 1,
  alpha: 0.33,
  temperature: 2,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.95, // AST main.py
  clip: 1.0, // AST main.py grad_clip
  slorbK: 16,
  loraRank: 8, // LLM-Pruner's recovery: r 8, α 16
  loraAlpha: 16,
  seed: 1337,
  gradBlocks: 4,
});

export interface StepResult {
  step: number;
  /** mean per token over the step */
  loss: number;
  ce: number;
  kl: number;
  tokens: number;
  gradNorm: number;
  lr: number;
  maskedDecay: number;
  /** mask entries changed by the recompute after this step (undefined when none ran) */
  flips?: number;
}

export class Trainer {
  readonly student: Student;
  readonly ts: TrainState;
  readonly opt: AdamWState;
  /** the gradient block (Student.gradFloats floats) */
  readonly gradPtr: number;
  /** done steps */
  step = 0;
  /** Wanda column statistics per linear operator (Σ_t x_j², samples) */
  wanda?: { sq: Float64Array[]; samples: number };
  /** the teacher as a dense "student" (no masks) and its activations: its forward shares the training kernels */
  private readonly teacherNet?: { st: Student; ts: TrainState };
  /** the step's block grid over its batch·accum sequences */
  readonly grid: Array<[number, number]>;
  /** gradient buffer of each block (block 0: gradPtr) */
  private readonly blockGrads: number[];
  /** per executor slot (runs of blocks): training activations, the teacher's (slot 0 shares the trainer's own) */
  private readonly slots: Array<{ ts: TrainState; tts?: TrainState; blocks: [number, number] }> = [];
  private desc?: { student: StudentDesc; teacher?: StudentDesc };

  constructor(
    readonly model: Model,
    readonly teacher: Model | undefined,
    readonly data: DataSource,
    readonly s: TrainSettings,
    /** where the step's gradient blocks run (src/exec/executor.ts; its slots' buffers are taken here) */
    readonly exec: Executor,
    evalMaxLen = 0,
  ) {
    if (s.alpha < 1 && !teacher) throw new UsageError("train: the KL term (α < 1) needs a teacher model");
    const c = model.config;
    const lora = s.method === "lora";
    if (!lora) {
      for (const l of model.weights.layers) for (const t of [l.wq, l.wk, l.wv, l.wo, l.wGate, l.wUp, l.wDown]) {
        if (t.shape[1] % s.m !== 0) throw new UsageError(`train: ${s.n}:${s.m} needs every input width to be a multiple of ${s.m}, got ${t.shape[1]}`);
      }
    }
    if (s.seqlen > c.maxSeqLen) throw new UsageError(`--seqlen ${s.seqlen} exceeds the model's context of ${c.maxSeqLen}`);
    this.student = lora
      ? createStudent(model, { sparse: false, lora: { rank: s.loraRank, alpha: s.loraAlpha, seed: s.seed } })
      : createStudent(model, { sparse: true, slorbK: s.slorbK > 0 ? s.slorbK : undefined });
    this.ts = createTrainState(this.student, Math.max(s.seqlen, Math.min(evalMaxLen, c.maxSeqLen)));
    this.opt = createAdamW(this.student);
    this.gradPtr = model.wasm.arena.alloc(this.student.gradFloats);
    if (teacher && s.alpha < 1) {
      const tc = teacher.config;
      if (tc.vocabSize !== c.vocabSize) throw new UsageError(`--teacher has a vocabulary of ${tc.vocabSize}, the student ${c.vocabSize}`);
      const tst = createStudent(teacher, { sparse: false });
      this.teacherNet = { st: tst, ts: createTrainState(tst, s.seqlen) };
    }
    // data parallelism: every buffer is taken here, on the main thread, once
    const a = model.wasm.arena;
    this.grid = blockGrid(s.batch * s.accum, s.gradBlocks);
    const G = this.grid.length;
    this.blockGrads = [this.gradPtr];
    for (let b = 1; b < G; b++) this.blockGrads.push(a.alloc(this.student.gradFloats));
    slotRuns(G, exec.slots).forEach((blocks, p) => {
      if (p === 0) this.slots.push({ ts: this.ts, tts: this.teacherNet?.ts, blocks });
      else this.slots.push({
        ts: createTrainState(this.student, s.seqlen),
        tts: this.teacherNet ? createTrainState(this.teacherNet.st, s.seqlen) : undefined,
        blocks,
      });
    });
  }

  /** Initial masks (and Wanda statistics, SLoRB) from the starting weights; not called on resume. */
  init(): void {
    const st = this.student;
    if (this.s.method === "lora") return; // adapters are initialised with the student, nothing else moves
    if (this.s.metric === "wanda") this.collectWanda();
    this.recomputeMasks();
    for (const lp of st.linears) {
      initSlorb(lp); // from the weights the first mask prunes, before a fixed mask zeroes them
      if (this.s.method === "fixed") {
        // plain sparse fine-tuning starts from the one-shot (magnitude / Wanda) pruned weights
        const w = lp.w.data;
        for (let i = 0; i < w.length; i++) if (!lp.mask![i]) w[i] = 0;
      }
      refreshMasked(lp);
    }
  }

  /** Refresh every masked copy W⊙M (after loading a checkpoint). */
  refreshAll(): void {
    for (const lp of this.student.linears) refreshMasked(lp);
  }

  /** Wanda's ‖X_j‖² over the first step's sequences, through the starting (dense) weights. */
  private collectWanda(): void {
    const st = this.student;
    const a = this.model.wasm.arena;
    const sq = st.linears.map((lp) => new Float64Array(lp.K));
    let samples = 0;
    const T = this.s.seqlen;
    for (let i = 0; i < this.s.batch * this.s.accum; i++) {
      const seq = this.data.sample(i);
      trainForward(st, this.ts, seq.subarray(0, T));
      samples += T;
      st.linears.forEach((lp, j) => {
        const A = this.ts.layers[lp.layer];
        const src = lp.op === "wq" || lp.op === "wk" || lp.op === "wv" ? A.xn1 : lp.op === "wo" ? A.att : lp.op === "wDown" ? A.h : A.xn2;
        const x = a.f32(src, T * lp.K);
        const acc = sq[j];
        for (let t = 0; t < T; t++) for (let k = 0; k < lp.K; k++) acc[k] += x[t * lp.K + k] ** 2;
      });
    }
    this.wanda = { sq, samples };
  }

  /** New N:M masks from the dense shadow weights; returns the number of flipped entries. */
  recomputeMasks(): number {
    let flips = 0;
    this.student.linears.forEach((lp, j) => {
      const scale = this.wanda ? wandaScale(this.wanda.sq[j], this.wanda.samples) : undefined;
      flips += nmMaskInto(lp.w.data, lp.K, this.s.n, this.s.m, lp.mask!, scale);
      refreshMasked(lp);
    });
    return flips;
  }

  /** Learning rate of step t (0-based): linear warm-up, then cosine from lr to lr/10 (AST main.py get_lr). */
  lrAt(t: number): number {
    const { lr, warmup, steps } = this.s;
    if (t < warmup) return (lr * (t + 1)) / warmup;
    const ratio = steps > warmup ? (t - warmup) / Math.max(1, steps - warmup) : 1;
    const minLr = lr / 10;
    return minLr + 0.5 * (1 + Math.cos(Math.PI * Math.min(1, ratio))) * (lr - minLr);
  }

  /** λ_t = λ·min(1, t/ramp) (AST main.py get_decay). */
  decayAt(t: number): number {
    if (this.s.method !== "ast") return 0;
    return this.s.decay * Math.min(1, t / Math.max(1, this.s.decayRamp));
  }

  /**
   * Gradients of the summed loss of sequences `indices` *added* into the block at `gradPtr`; returns the summed
   * CE, KL and the count of predicted tokens. This is the unit of work a data-parallel worker would own.
   */
  microBatch(indices: number[], gradPtr: number): { ce: number; kl: number; tokens: number } {
    const out = new Float64Array(2 * indices.length);
    sequenceGrads(this.student, this.ts, this.teacherNet, indices.map((i) => this.data.sample(i)), this.lossSettings(), gradPtr, out, 0);
    let ce = 0;
    let kl = 0;
    for (let i = 0; i < indices.length; i++) {
      ce += out[2 * i];
      kl += out[2 * i + 1];
    }
    return { ce, kl, tokens: indices.length * this.s.seqlen };
  }

  private lossSettings() {
    return { T: this.s.seqlen, alpha: this.s.alpha, temperature: this.s.temperature };
  }

  /**
   * The step's gradient (summed, into gradPtr) over its sequences, block by block of the fixed grid; per
   * sequence [ce, kl]. One task per slot, a contiguous run of blocks each into its own buffer (inline on this
   * thread with one slot), then the blocks added in block order here: the same sums in the same order for any
   * thread count.
   */
  private async stepGradients(seqs: Int32Array[]): Promise<Float64Array> {
    const k = kernels(this.model.wasm);
    const n = this.student.gradFloats;
    const L = this.lossSettings();
    this.desc ??= { student: describeStudent(this.student), teacher: this.teacherNet ? describeStudent(this.teacherNet.st) : undefined };
    const desc = this.desc;
    const parts = await this.exec.each<Float64Array>(this.slots.map((s) => s.blocks), (run, p) => {
      const slot = this.slots[p]!;
      const blocks: TrainBlocksTask["blocks"] = [];
      for (let b = run[0]; b < run[1]; b++) blocks.push({ grad: this.blockGrads[b], seqs: seqs.slice(this.grid[b][0], this.grid[b][1]) });
      return { op: "trainBlocks", student: desc.student, teacher: desc.teacher, ts: slot.ts, tts: slot.tts, loss: L, gradFloats: n, blocks } satisfies TrainBlocksTask;
    }, `train step ${this.step + 1}`);
    const out = new Float64Array(2 * seqs.length);
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    for (let b = 1; b < this.grid.length; b++) k.f32_add(this.gradPtr, this.blockGrads[b], this.gradPtr, n);
    return out;
  }

  /** One optimizer step over batch·accum sequences. */
  async trainStep(): Promise<StepResult> {
    const s = this.s;
    const t = this.step;
    const a = this.model.wasm.arena;
    // sequences (t·S + i), i < S: micro-batch mb holds i ∈ [mb·batch, (mb+1)·batch)
    const S = s.batch * s.accum;
    const seqs = Array.from({ length: S }, (_, i) => this.data.sample(t * S + i));
    const losses = await this.stepGradients(seqs);
    let ce = 0;
    let kl = 0;
    for (let i = 0; i < S; i++) {
      ce += losses[2 * i];
      kl += losses[2 * i + 1];
    }
    const tokens = S * s.seqlen;
    const lr = this.lrAt(t);
    const maskedDecay = this.decayAt(t);
    const gradNorm = adamwStep(this.student, this.opt, a.f32(this.gradPtr, this.student.gradFloats), 1 / tokens, {
      lr, beta1: s.beta1, beta2: s.beta2, eps: 1e-8, weightDecay: s.weightDecay, maskedDecay, clip: s.clip, mode: s.method === "lora" ? "dense" : s.method,
    });
    for (const lp of this.student.linears) refreshMasked(lp);
    this.step = t + 1;
    let flips: number | undefined;
    if (s.method === "ast" && this.step % s.maskInterval === 0) flips = this.recomputeMasks();
    const ceMean = ce / tokens;
    const klMean = kl / tokens;
    return {
      step: this.step, loss: s.alpha * ceMean + (1 - s.alpha) * klMean, ce: ceMean, kl: klMean, tokens, gradNorm, lr, maskedDecay, flips,
    };
  }

  /** Perplexity of the student as it runs now (W⊙M, SLoRB) on `sequences` (each ≤ the state's maxT). */
  perplexity(sequences: number[][]): { perplexity: number; meanNll: number; tokens: number } {
    const a = this.model.wasm.arena;
    const V = this.model.config.vocabSize;
    let nll = 0;
    let count = 0;
    for (const seq of sequences) {
      if (seq.length < 2) continue;
      if (seq.length > this.ts.maxT) throw new RangeError(`eval sequence of ${seq.length} tokens exceeds the training state's ${this.ts.maxT}`);
      trainForward(this.student, this.ts, seq);
      nll += logitsNll(a.f32(this.ts.logits, seq.length * V), V, seq);
      count += seq.length - 1;
    }
    return { perplexity: Math.exp(nll / count), meanNll: nll / count, tokens: count };
  }
}
