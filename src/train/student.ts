/**
 * @file The trainable student: its parameters, the 2:4 masks of its linear operators, the masked copies the
 * forward pass reads, the optional SLoRB add-ons, and the flat layout of its gradient buffer.
 *
 * Sparse training keeps a *dense shadow* W of every linear weight (the model's own tensor, which the optimizer
 * updates) and a mask M; the forward and backward passes read the masked copy W⊙M (`wm`), and the gradient
 * with respect to W⊙M is applied to W unchanged — the straight-through estimator of AST (sparse_modeling.py,
 * class STE: forward weight*mask, backward grad_output). With a fixed mask (plain sparse fine-tuning) W is zero
 * outside M and stays so (its gradient is masked).
 *
 * LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", arXiv:2106.09685; the recovery
 * step of LLM-Pruner and MINI-LLM): every linear operator gets y = W x + (α/r)·B (A x), A (r, K) and B (N, r)
 * trained, W and every other tensor of the model frozen. A starts as PEFT's default (kaiming_uniform with
 * a = √5, i.e. U(−1/√K, 1/√K), seeded per operator), B at zero, so training starts at the model itself;
 * `mergeLora` folds (α/r)·B A into W at the end, leaving a standard model of the same shapes.
 *
 * Gradients live in one flat float32 block of `gradFloats` floats: parameter p at `gradPtr + 4·p.offset`. A
 * micro-batch's gradients are *summed* (not averaged) into a block passed in, so data-parallel workers can each
 * fill their own block and the host add them in a fixed order before the optimizer divides by the token count.
 * A frozen tensor has no place in the block (offset −1): the backward pass skips its gradient.
 */
import { UsageError } from "../errors.js";
import type { DenseLinear, LinearOp, Model, Tensor } from "../model/types.js";
import { LINEAR_OPS } from "../model/types.js";
import { denseLayer, denseLinear } from "../model/linear.js";
import { mulberry32, seedFrom } from "../util/rng.js";

/** SLoRB of one operator (AST §3.4): y += S · P x, P the fixed 0/1 projection summing each group of k inputs. */
export interface Slorb {
  /** (N, G) trainable, G = ceil(K/k) */
  s: Tensor;
  k: number;
  groups: number;
  /** float offset of dS in the gradient block */
  gradOffset: number;
}

/** LoRA of one operator: y += scale · B (A x), scale = α / r. */
export interface Lora {
  /** (r, K) */
  a: Tensor;
  /** (N, r) */
  b: Tensor;
  rank: number;
  scale: number;
  /** float offsets of dA and dB in the gradient block */
  gradA: number;
  gradB: number;
}

export interface LinearParam {
  layer: number;
  op: LinearOp;
  /** output, input widths */
  N: number;
  K: number;
  /** the dense shadow weights (N, K): the model's tensor */
  w: DenseLinear;
  /** W ⊙ M (N, K), read by forward and backward; equal to w's values when there is no mask */
  wm: DenseLinear;
  /** 1 = kept, per weight (N·K), host memory; undefined when training dense */
  mask?: Uint8Array;
  slorb?: Slorb;
  lora?: Lora;
  /** float offset of dW in the gradient block; −1 when W is frozen (LoRA) */
  gradOffset: number;
}

/** One trainable tensor and where its gradient goes. */
export interface Param {
  name: string;
  t: Tensor;
  /** float offset of its gradient in the gradient block */
  offset: number;
  /** decoupled weight decay applies (2-D weights, as nanoGPT / AST's configure_optimizers) */
  decay: boolean;
  /** set for the dense shadow of a linear operator */
  linear?: LinearParam;
}

export interface Student {
  model: Model;
  linears: LinearParam[];
  /** linears by layer and op */
  byLayer: Record<LinearOp, LinearParam>[];
  params: Param[];
  gradFloats: number;
  /** gradient offsets of the non-linear tensors (−1: frozen) */
  embedOffset: number;
  normOffset: number;
  lmHeadOffset: number;
  layerNormOffsets: { attn: number; ffn: number }[];
}

export interface StudentOptions {
  /** keep masks (sparse training); false trains every weight */
  sparse: boolean;
  /** SLoRB group size k (AST: 16 here; 64 in their GPT-2 script); undefined = no SLoRB */
  slorbK?: number;
  /** LoRA adapters on every linear operator, everything else frozen (needs sparse: false) */
  lora?: { rank: number; alpha: number; seed: number };
}

/** Wrap a loaded model as a student; allocates masked copies and SLoRB blocks in the model's arena. */
export function createStudent(model: Model, opts: StudentOptions): Student {
  const c = model.config;
  if (c.qkvBias) throw new UsageError(`train: ${c.architecture} models with q/k/v biases are not supported yet`);
  for (const l of model.weights.layers) for (const op of LINEAR_OPS) if (l[op].format !== "dense") {
    throw new UsageError("train: the model is stored compressed; decompress it first (wasprune decompress)");
  }
  for (const l of model.weights.layers) for (const op of LINEAR_OPS) if (l[op].slorb) {
    throw new UsageError("train: the model carries SLoRB add-ons (slorb.safetensors), which training would drop; start from a model without them");
  }
  if (opts.lora && (opts.sparse || opts.slorbK !== undefined)) throw new UsageError("train: LoRA adapters train a dense model without masks or SLoRB");
  const a = model.wasm.arena;
  const params: Param[] = [];
  let offset = 0;
  const add = (name: string, t: Tensor, decay: boolean, linear?: LinearParam): number => {
    const o = offset;
    params.push({ name, t, offset: o, decay, linear });
    offset += t.data.length;
    return o;
  };
  const frozen = !!opts.lora;
  /** a base tensor: trained unless LoRA freezes it */
  const base = (name: string, t: Tensor, decay: boolean, linear?: LinearParam): number => (frozen ? -1 : add(name, t, decay, linear));
  const w = model.weights;
  const embedOffset = base("embed", w.embed, true);
  const linears: LinearParam[] = [];
  const byLayer: Record<LinearOp, LinearParam>[] = [];
  const layerNormOffsets: { attn: number; ffn: number }[] = [];
  w.layers.forEach((layer, l) => {
    const lw = denseLayer(layer, l);
    const attn = base(`layers.${l}.attnNorm`, lw.attnNorm, false);
    const ffn = base(`layers.${l}.ffnNorm`, lw.ffnNorm, false);
    layerNormOffsets.push({ attn, ffn });
    const rec = {} as Record<LinearOp, LinearParam>;
    for (const op of LINEAR_OPS) {
      const t = lw[op];
      const [N, K] = t.shape;
      let wm: DenseLinear = t;
      if (opts.sparse) {
        const ptr = a.alloc(N * K);
        wm = { format: "dense", ptr, shape: [N, K], data: a.f32(ptr, N * K) };
        wm.data.set(t.data);
      }
      const lp: LinearParam = { layer: l, op, N, K, w: t, wm, mask: opts.sparse ? new Uint8Array(N * K).fill(1) : undefined, gradOffset: -1 };
      if (opts.slorbK !== undefined) {
        const k = opts.slorbK;
        const groups = Math.ceil(K / k);
        const ptr = a.zeros(N * groups);
        lp.slorb = { s: { ptr, shape: [N, groups], data: a.f32(ptr, N * groups) }, k, groups, gradOffset: -1 };
      }
      if (opts.lora) {
        const { rank, alpha, seed } = opts.lora;
        const bound = 1 / Math.sqrt(K);
        const rand = mulberry32(seedFrom(seed, "lora", l, op));
        const A = new Float32Array(rank * K);
        for (let i = 0; i < A.length; i++) A[i] = (2 * rand() - 1) * bound;
        const pa = a.put(A);
        const pb = a.zeros(N * rank);
        lp.lora = {
          a: { ptr: pa, shape: [rank, K], data: a.f32(pa, rank * K) }, b: { ptr: pb, shape: [N, rank], data: a.f32(pb, N * rank) },
          rank, scale: alpha / rank, gradA: -1, gradB: -1,
        };
      }
      lp.gradOffset = base(`layers.${l}.${op}`, t, true, lp);
      linears.push(lp);
      rec[op] = lp;
    }
    byLayer.push(rec);
  });
  const normOffset = base("norm", w.norm, false);
  const lmHeadOffset = c.tiedEmbeddings ? embedOffset : base("lmHead", denseLinear(w.lmHead, "lm_head.weight"), true);
  for (const lp of linears) if (lp.slorb) lp.slorb.gradOffset = add(`layers.${lp.layer}.${lp.op}.slorb`, lp.slorb.s, false);
  for (const lp of linears) {
    if (!lp.lora) continue;
    lp.lora.gradA = add(`layers.${lp.layer}.${lp.op}.lora_A`, lp.lora.a, true);
    lp.lora.gradB = add(`layers.${lp.layer}.${lp.op}.lora_B`, lp.lora.b, true);
  }
  return { model, linears, byLayer, params, gradFloats: offset, embedOffset, normOffset, lmHeadOffset, layerNormOffsets };
}

/** Refresh the masked copy W ⊙ M of one operator (after an optimizer step or a mask change). */
export function refreshMasked(lp: LinearParam): void {
  if (!lp.mask) return;
  const w = lp.w.data;
  const wm = lp.wm.data;
  const m = lp.mask;
  for (let i = 0; i < w.length; i++) wm[i] = m[i] ? w[i] : 0;
}

/**
 * Fold every adapter into its weight, W ← W + scale·B A (float64 sums over r, one rounding to float32), and
 * zero B, so the student computes (up to that rounding) what it computed before, with no adapter left.
 */
export function mergeLora(st: Student): void {
  for (const lp of st.linears) {
    const lo = lp.lora;
    if (!lo) continue;
    const { N, K } = lp;
    const w = lp.w.data;
    const A = lo.a.data;
    const B = lo.b.data;
    const r = lo.rank;
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < K; j++) {
        let s = 0;
        for (let q = 0; q < r; q++) s += B[i * r + q] * A[q * K + j];
        w[i * K + j] = w[i * K + j] + lo.scale * s;
      }
    }
    B.fill(0);
    refreshMasked(lp);
  }
}

/** The model as the forward pass and saveHF see it: linear weights replaced by their masked copies. */
export function maskedModelView(st: Student): Model {
  const m = st.model;
  return {
    ...m,
    weights: {
      ...m.weights,
      layers: m.weights.layers.map((lw, l) => {
        const out = { ...lw };
        for (const op of LINEAR_OPS) out[op] = st.byLayer[l][op].wm;
        return out;
      }),
    },
  };
}
