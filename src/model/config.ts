/**
 * @file Hugging Face config.json <-> ModelConfig, for the LLaMA family (llama, mistral, qwen2).
 * Defaults follow transformers' LlamaConfig/MistralConfig/Qwen2Config; anything that would change the
 * computation in a way wasprune does not implement (rope_scaling, biases other than qwen2's q/k/v,
 * activations other than SiLU) is a ConfigError rather than silently wrong output.
 */
import { ConfigError, configField } from "../errors.js";
import { ARCHITECTURES, type Architecture, type LayerSizes, type ModelConfig } from "./types.js";

/**
 * wasprune's config.json extension for non-uniformly pruned models (src/structured): one entry per decoder
 * layer, `{"intermediate_size": n, "num_attention_heads": h, "num_key_value_heads": kv}`; the standard fields
 * hold the largest value over layers. Hugging Face transformers ignores it (and cannot load such a model);
 * wasprune's loader reads the per-layer shapes from it.
 */
export const LAYER_SIZES_FIELD = "wasprune_layer_sizes";

const CLASS_TO_ARCH: Readonly<Record<string, Architecture>> = Object.freeze({
  LlamaForCausalLM: "llama",
  MistralForCausalLM: "mistral",
  Qwen2ForCausalLM: "qwen2",
});

const ARCH_TO_CLASS: Readonly<Record<Architecture, string>> = Object.freeze({
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
});

/** Parse a config.json object. `file` names it in messages. */
export function parseHFConfig(raw: unknown, file = "config.json"): ModelConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new ConfigError(`${file}: not a JSON object`);
  const c = raw as Record<string, unknown>;

  let architecture: Architecture | undefined;
  const mt = c.model_type;
  if (typeof mt === "string") {
    if (!(ARCHITECTURES as readonly string[]).includes(mt)) {
      throw configField(file, "model_type", `is "${mt}"; supported: ${ARCHITECTURES.join(", ")}`);
    }
    architecture = mt as Architecture;
  }
  const archs = c.architectures;
  if (Array.isArray(archs) && archs.length > 0) {
    const a = CLASS_TO_ARCH[String(archs[0])];
    if (!a) throw configField(file, "architectures", `is ${JSON.stringify(archs)}; supported: ${Object.keys(CLASS_TO_ARCH).join(", ")}`);
    if (architecture && a !== architecture) throw configField(file, "architectures", `${JSON.stringify(archs)} contradicts model_type "${architecture}"`);
    architecture = a;
  }
  if (!architecture) throw configField(file, "model_type", "is missing (and no \"architectures\")");

  const int = (k: string, dflt?: number): number => {
    const v = c[k] ?? dflt;
    if (v === undefined) throw configField(file, k, "is missing");
    if (!Number.isSafeInteger(v) || (v as number) <= 0) throw configField(file, k, `is ${JSON.stringify(v)}, expected a positive integer`);
    return v as number;
  };
  const num = (k: string, dflt: number): number => {
    const v = c[k] ?? dflt;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw configField(file, k, `is ${JSON.stringify(v)}, expected a positive number`);
    return v;
  };
  const tokenId = (k: string, dflt: number): number => {
    let v = c[k];
    if (Array.isArray(v)) v = v[0]; // llama 3 lists several eos ids; the first is the canonical one
    if (v === undefined || v === null) return dflt;
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw configField(file, k, `is ${JSON.stringify(c[k])}, expected a token id`);
    return v as number;
  };

  if (c.rope_scaling !== undefined && c.rope_scaling !== null) {
    throw configField(file, "rope_scaling", `is ${JSON.stringify(c.rope_scaling)}; RoPE scaling is not supported`);
  }
  const act = c.hidden_act ?? "silu";
  if (act !== "silu") throw configField(file, "hidden_act", `is ${JSON.stringify(act)}; only "silu" is supported`);
  if (c.mlp_bias === true) throw configField(file, "mlp_bias", "is true; MLP biases are not supported");
  if (c.attention_bias === true && architecture !== "qwen2") {
    throw configField(file, "attention_bias", "is true; attention biases are supported for qwen2 (q/k/v) only");
  }

  const dim = int("hidden_size");
  const nHeads = int("num_attention_heads");
  const nKvHeads = int("num_key_value_heads", nHeads);
  if (nHeads % nKvHeads !== 0) throw configField(file, "num_key_value_heads", `(${nKvHeads}) does not divide num_attention_heads (${nHeads})`);
  if (c.head_dim === undefined && dim % nHeads !== 0) throw configField(file, "num_attention_heads", `(${nHeads}) does not divide hidden_size (${dim})`);
  const headDim = int("head_dim", Math.floor(dim / nHeads));
  if (headDim % 2 !== 0) throw configField(file, "head_dim", `is ${headDim}; RoPE needs an even head dimension`);
  const tie = c.tie_word_embeddings ?? false;
  if (typeof tie !== "boolean") throw configField(file, "tie_word_embeddings", `is ${JSON.stringify(tie)}, expected a boolean`);

  const hiddenDim = int("intermediate_size");
  const nLayers = int("num_hidden_layers");
  const layerSizes = parseLayerSizes(c[LAYER_SIZES_FIELD], file, { hiddenDim, nHeads, nKvHeads, nLayers });
  return {
    architecture,
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    headDim,
    vocabSize: int("vocab_size"),
    maxSeqLen: int("max_position_embeddings", 2048),
    normEps: num("rms_norm_eps", 1e-6),
    ropeTheta: num("rope_theta", 10000),
    ropeLayout: "half",
    tiedEmbeddings: tie,
    qkvBias: architecture === "qwen2",
    bosId: tokenId("bos_token_id", 1),
    eosId: tokenId("eos_token_id", 2),
    ...(layerSizes ? { layerSizes } : {}),
  };
}

function parseLayerSizes(
  raw: unknown, file: string, top: { hiddenDim: number; nHeads: number; nKvHeads: number; nLayers: number },
): LayerSizes[] | undefined {
  if (raw === undefined || raw === null) return undefined;
  const F = LAYER_SIZES_FIELD;
  if (!Array.isArray(raw) || raw.length !== top.nLayers) {
    throw configField(file, F, `must be a list of ${top.nLayers} per-layer entries (num_hidden_layers), got ${Array.isArray(raw) ? `${raw.length} entries` : JSON.stringify(raw)}`);
  }
  const out = raw.map((e, l): LayerSizes => {
    const o = (typeof e === "object" && e !== null ? e : {}) as Record<string, unknown>;
    const get = (k: string): number => {
      const v = o[k];
      if (!Number.isSafeInteger(v) || (v as number) <= 0) throw configField(file, `${F}[${l}].${k}`, `is ${JSON.stringify(v)}, expected a positive integer`);
      return v as number;
    };
    const s = { hiddenDim: get("intermediate_size"), nHeads: get("num_attention_heads"), nKvHeads: get("num_key_value_heads") };
    if (s.nHeads % s.nKvHeads !== 0) throw configField(file, `${F}[${l}].num_key_value_heads`, `(${s.nKvHeads}) does not divide num_attention_heads (${s.nHeads})`);
    if (s.nHeads / s.nKvHeads !== top.nHeads / top.nKvHeads) {
      throw configField(file, `${F}[${l}]`, `has ${s.nHeads / s.nKvHeads} query heads per k/v head, the model ${top.nHeads / top.nKvHeads}`);
    }
    return s;
  });
  const max = (k: keyof LayerSizes): number => Math.max(...out.map((s) => s[k]));
  const pairs: [string, number, number][] = [
    ["intermediate_size", top.hiddenDim, max("hiddenDim")],
    ["num_attention_heads", top.nHeads, max("nHeads")],
    ["num_key_value_heads", top.nKvHeads, max("nKvHeads")],
  ];
  for (const [k, v, m] of pairs) if (v !== m) throw configField(file, k, `is ${v}, expected the largest ${F} value ${m}`);
  return out;
}

/** The HF config fields ModelConfig determines, as config.json spells them. */
export function hfConfigFields(cfg: ModelConfig, dtype: string): Record<string, unknown> {
  return {
    architectures: [ARCH_TO_CLASS[cfg.architecture]],
    model_type: cfg.architecture,
    hidden_size: cfg.dim,
    intermediate_size: cfg.hiddenDim,
    num_hidden_layers: cfg.nLayers,
    num_attention_heads: cfg.nHeads,
    num_key_value_heads: cfg.nKvHeads,
    ...(cfg.headDim !== cfg.dim / cfg.nHeads ? { head_dim: cfg.headDim } : {}),
    vocab_size: cfg.vocabSize,
    max_position_embeddings: cfg.maxSeqLen,
    rms_norm_eps: cfg.normEps,
    rope_theta: cfg.ropeTheta,
    hidden_act: "silu",
    tie_word_embeddings: cfg.tiedEmbeddings,
    bos_token_id: cfg.bosId,
    eos_token_id: cfg.eosId,
    torch_dtype: TORCH_DTYPE[dtype] ?? "float32",
    ...(cfg.architecture === "qwen2" ? {} : { attention_bias: false, mlp_bias: false }),
    ...(cfg.layerSizes
      ? {
          [LAYER_SIZES_FIELD]: cfg.layerSizes.map((s) => ({
            intermediate_size: s.hiddenDim, num_attention_heads: s.nHeads, num_key_value_heads: s.nKvHeads,
          })),
        }
      : {}),
  };
}

export const TORCH_DTYPE: Readonly<Record<string, string>> = Object.freeze({ F32: "float32", F16: "float16", BF16: "bfloat16" });

/**
 * config.json for `cfg`: the raw source config with only the fields whose value changed edited (so unknown
 * fields survive), or a fresh one when there is no source config.
 */
export function toHFConfig(cfg: ModelConfig, dtype: string, source?: Record<string, unknown>): Record<string, unknown> {
  const fields = hfConfigFields(cfg, dtype);
  if (!source) return fields;
  const out: Record<string, unknown> = { ...source };
  if (!cfg.layerSizes) delete out[LAYER_SIZES_FIELD];
  for (const [k, v] of Object.entries(fields)) {
    if (k === "architectures" || k === "attention_bias" || k === "mlp_bias") {
      if (!(k in source)) continue; // leave what the source did not say unsaid
      if (k === "architectures") continue; // same architecture; keep the source's spelling
    }
    const old = source[k];
    // a list of eos ids whose first is still ours stays as it was
    if (k === "eos_token_id" && Array.isArray(old) && old[0] === v) continue;
    if (k === "max_position_embeddings" || k === "rms_norm_eps" || k === "rope_theta" || k === "hidden_act" || k === "bos_token_id") {
      if (old === undefined) continue; // defaults we filled in
    }
    if (JSON.stringify(old) !== JSON.stringify(v)) out[k] = v;
  }
  return out;
}
