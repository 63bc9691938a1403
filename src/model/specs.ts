/**
 * @file The name/shape table of a LLaMA-family model: every tensor a config implies, with its Hugging Face name,
 * its shape and its field in ModelWeights / LayerWeights — the one place that maps fields to
 * "model.layers.N.self_attn.q_proj.weight" etc. (loaders, savers, inspect and reports all use it).
 */
import { HF_LINEAR_NAMES, LINEAR_OPS, layerSizesOf, type LayerWeights, type ModelConfig } from "./types.js";

export const HF_EMBED = "model.embed_tokens.weight";
export const HF_NORM = "model.norm.weight";
export const HF_LM_HEAD = "lm_head.weight";

/** One HF tensor: its name, shape, and where it goes in ModelWeights. */
export interface HFTensorSpec {
  name: string;
  shape: number[];
  layer?: number;
  key: keyof LayerWeights | "embed" | "norm" | "lmHead";
}

/** Every tensor `c` implies, in a stable order (lm_head only when untied). */
export function hfTensorSpecs(c: ModelConfig): HFTensorSpec[] {
  const specs: HFTensorSpec[] = [{ name: HF_EMBED, shape: [c.vocabSize, c.dim], key: "embed" }];
  for (let l = 0; l < c.nLayers; l++) {
    const s = layerSizesOf(c, l); // per-layer sizes of a non-uniformly pruned model (config extension)
    const q = s.nHeads * c.headDim;
    const kv = s.nKvHeads * c.headDim;
    const linShape: Record<(typeof LINEAR_OPS)[number], number[]> = {
      wq: [q, c.dim],
      wk: [kv, c.dim],
      wv: [kv, c.dim],
      wo: [c.dim, q],
      wGate: [s.hiddenDim, c.dim],
      wUp: [s.hiddenDim, c.dim],
      wDown: [c.dim, s.hiddenDim],
    };
    const p = `model.layers.${l}.`;
    specs.push({ name: `${p}input_layernorm.weight`, shape: [c.dim], layer: l, key: "attnNorm" });
    specs.push({ name: `${p}post_attention_layernorm.weight`, shape: [c.dim], layer: l, key: "ffnNorm" });
    for (const op of LINEAR_OPS) specs.push({ name: `${p}${HF_LINEAR_NAMES[op]}.weight`, shape: linShape[op], layer: l, key: op });
    if (c.qkvBias) {
      specs.push({ name: `${p}self_attn.q_proj.bias`, shape: [q], layer: l, key: "bq" });
      specs.push({ name: `${p}self_attn.k_proj.bias`, shape: [kv], layer: l, key: "bk" });
      specs.push({ name: `${p}self_attn.v_proj.bias`, shape: [kv], layer: l, key: "bv" });
    }
  }
  specs.push({ name: HF_NORM, shape: [c.dim], key: "norm" });
  if (!c.tiedEmbeddings) specs.push({ name: HF_LM_HEAD, shape: [c.vocabSize, c.dim], key: "lmHead" });
  return specs;
}

/** The specs of decoder layer l, each linear operator's with its op. */
export function layerSpecsOf(c: ModelConfig, l: number): Array<HFTensorSpec & { op?: (typeof LINEAR_OPS)[number] }> {
  return hfTensorSpecs(c)
    .filter((s) => s.layer === l)
    .map((s) => ((LINEAR_OPS as readonly string[]).includes(s.key) ? { ...s, op: s.key as (typeof LINEAR_OPS)[number] } : s));
}
