/**
 * @file A model's tensors with their Hugging Face names, in file order, for inspect and the pruning report.
 * The name/shape table itself is `hfTensorSpecs` (src/model/specs.ts), the one place that maps Weights fields
 * to "model.layers.N.self_attn.q_proj.weight" etc.; this file pairs it with the model's tensors.
 */
import { hfTensorSpecs } from "./specs.js";
import { HF_LINEAR_NAMES, LINEAR_OPS, type LinearOp, type LinearWeight, type Model, type Tensor } from "./types.js";

export interface NamedTensor {
  name: string;
  tensor: Tensor | LinearWeight;
  kind: "embedding" | "attention" | "mlp" | "norm" | "bias" | "lm_head";
  layer?: number;
  op?: LinearOp;
}

export function linearName(layer: number, op: LinearOp): string {
  return `model.layers.${layer}.${HF_LINEAR_NAMES[op]}.weight`;
}

export const KIND: Readonly<Record<string, NamedTensor["kind"]>> = Object.freeze({
  embed: "embedding", lmHead: "lm_head", norm: "norm", attnNorm: "norm", ffnNorm: "norm",
  bq: "bias", bk: "bias", bv: "bias",
  wq: "attention", wk: "attention", wv: "attention", wo: "attention",
  wGate: "mlp", wUp: "mlp", wDown: "mlp",
});

export function namedTensors(model: Model): NamedTensor[] {
  const w = model.weights;
  return hfTensorSpecs(model.config).map((s) => {
    const holder = (s.layer === undefined ? w : w.layers[s.layer]) as unknown as Record<string, Tensor | LinearWeight>;
    const op = (LINEAR_OPS as readonly string[]).includes(s.key) ? (s.key as LinearOp) : undefined;
    return { name: s.name, tensor: holder[s.key], kind: KIND[s.key], layer: s.layer, op };
  });
}

/** Position of a layer tensor in transformers' module registration order (self_attn q, k, v, o; mlp; norms). */
const STATE_DICT_RANK: Readonly<Record<string, number>> = Object.freeze({
  wq: 0, bq: 1, wk: 2, bk: 3, wv: 4, bv: 5, wo: 6, wGate: 7, wUp: 8, wDown: 9, attnNorm: 10, ffnNorm: 11,
});

/**
 * `specs` (of hfTensorSpecs) in the order of transformers' `model.state_dict()`: embed_tokens; per layer
 * q_proj (weight, bias), k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, input_layernorm,
 * post_attention_layernorm; norm; lm_head. save_pretrained shards in this order, so planShards given it
 * assigns tensors to the same files.
 */
export function stateDictOrder<S extends { layer?: number; key: string }>(specs: readonly S[]): S[] {
  const pos = (s: S): number => (s.layer === undefined ? (s.key === "embed" ? -1 : s.key === "norm" ? 1e9 : 1e9 + 1) : s.layer * 16 + STATE_DICT_RANK[s.key]!);
  return [...specs].sort((a, b) => pos(a) - pos(b));
}
