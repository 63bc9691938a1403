/**
 * @file Hugging Face names of a model's tensors, in file order: the one place that maps Weights fields to
 * "model.layers.N.self_attn.q_proj.weight" etc. Used by inspect, the HF writer and the pruning report.
 */
import { HF_LINEAR_NAMES, LINEAR_OPS, type LinearOp, type Model, type Tensor } from "./types.js";

export interface NamedTensor {
  name: string;
  tensor: Tensor;
  kind: "embedding" | "attention" | "mlp" | "norm" | "bias" | "lm_head";
  layer?: number;
  op?: LinearOp;
}

export function linearName(layer: number, op: LinearOp): string {
  return `model.layers.${layer}.${HF_LINEAR_NAMES[op]}.weight`;
}

export function namedTensors(model: Model): NamedTensor[] {
  const w = model.weights;
  const out: NamedTensor[] = [{ name: "model.embed_tokens.weight", tensor: w.embed, kind: "embedding" }];
  w.layers.forEach((lw, l) => {
    const p = `model.layers.${l}`;
    out.push({ name: `${p}.input_layernorm.weight`, tensor: lw.attnNorm, kind: "norm", layer: l });
    for (const op of LINEAR_OPS) {
      out.push({ name: linearName(l, op), tensor: lw[op], kind: op === "wGate" || op === "wUp" || op === "wDown" ? "mlp" : "attention", layer: l, op });
    }
    if (lw.bq) out.push({ name: `${p}.self_attn.q_proj.bias`, tensor: lw.bq, kind: "bias", layer: l });
    if (lw.bk) out.push({ name: `${p}.self_attn.k_proj.bias`, tensor: lw.bk, kind: "bias", layer: l });
    if (lw.bv) out.push({ name: `${p}.self_attn.v_proj.bias`, tensor: lw.bv, kind: "bias", layer: l });
    out.push({ name: `${p}.post_attention_layernorm.weight`, tensor: lw.ffnNorm, kind: "norm", layer: l });
  });
  out.push({ name: "model.norm.weight", tensor: w.norm, kind: "norm" });
  if (!model.config.tiedEmbeddings) out.push({ name: "lm_head.weight", tensor: w.lmHead, kind: "lm_head" });
  return out;
}
