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
 * Gradients live in one flat float32 block of `gradFloats` floats: parameter p at `gradPtr + 4·p.offset`. A
 * micro-batch's gradients are *summed* (not averaged) into a block passed in, so data-parallel workers can each
 * fill their own block and the host add them in a fixed order before the optimizer divides by the token count.
 */
import { UsageError } from "../errors.js";
import type { DenseLinear, LinearOp, Model, Tensor } from "../model/types.js";
import { LINEAR_OPS } from "../model/types.js";
import { denseLayer, denseLinear } from "../model/linear.js";

/** SLoRB of one operator (AST §3.4): y += S · P x, P the fixed 0/1 projection summing each group of k inputs. */
export interface Slorb {
  /** (N, G) trainable, G = ceil(K/k) */
  s: Tensor;
  k: number;
  groups: number;
  /** float offset of dS in the gradient block */
  gradOffset: number;
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
  /** float offset of dW in the gradient block */
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
  /** gradient offsets of the non-linear tensors */
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
  const a = model.wasm.arena;
  const params: Param[] = [];
  let offset = 0;
  const add = (name: string, t: Tensor, decay: boolean, linear?: LinearParam): number => {
    const o = offset;
    params.push({ name, t, offset: o, decay, linear });
    offset += t.data.length;
    return o;
  };
  const w = model.weights;
  const embedOffset = add("embed", w.embed, true);
  const linears: LinearParam[] = [];
  const byLayer: Record<LinearOp, LinearParam>[] = [];
  const layerNormOffsets: { attn: number; ffn: number }[] = [];
  w.layers.forEach((layer, l) => {
    const lw = denseLayer(layer, l);
    const attn = add(`layers.${l}.attnNorm`, lw.attnNorm, false);
    const ffn = add(`layers.${l}.ffnNorm`, lw.ffnNorm, false);
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
      lp.gradOffset = add(`layers.${l}.${op}`, t, true, lp);
      linears.push(lp);
      rec[op] = lp;
    }
    byLayer.push(rec);
  });
  const normOffset = add("norm", w.norm, false);
  const lmHeadOffset = c.tiedEmbeddings ? embedOffset : add("lmHead", denseLinear(w.lmHead, "lm_head.weight"), true);
  for (const lp of linears) if (lp.slorb) lp.slorb.gradOffset = add(`layers.${lp.layer}.${lp.op}.slorb`, lp.slorb.s, false);
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
