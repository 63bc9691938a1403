/**
 * @file Hugging Face checkpoint directory: config.json + model.safetensors (or sharded, via
 * model.safetensors.index.json). Every tensor the config implies must be present with exactly the shape it
 * implies; F32/F16/BF16 are widened to f32 straight into the arena.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, MissingFileError, missingTensor, notFloatWeight, notFound, shapeMismatch } from "../errors.js";
import { openCheckpoint, INDEX_FILE, SINGLE_FILE, numel } from "../io/safetensors.js";
import { DTYPE_SIZE, isFloatDType } from "../io/dtype.js";
import { parseHFConfig } from "./config.js";
import { HF_LINEAR_NAMES, LINEAR_OPS, layerSizesOf, type DType, type LayerWeights, type ModelConfig, type ModelWeights, type Tensor } from "./types.js";
import type { Wasm } from "../wasm/runtime.js";

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

export interface HFLoaded {
  config: ModelConfig;
  weights: ModelWeights;
  dtype: DType;
  hfConfig: Record<string, unknown>;
}

export function readHFConfigFile(dir: string): Record<string, unknown> {
  const file = path.join(dir, "config.json");
  if (!fs.existsSync(file)) throw new MissingFileError(`${file} not found (a Hugging Face model directory needs config.json)`);
  try {
    const raw = JSON.parse(fs.readFileSync(file, "utf8")) as unknown;
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error("not an object");
    return raw as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(`config.json: is not a valid JSON object (${(e as Error).message})`);
  }
}

/**
 * ModelWeights from one tensor per spec of `config` (made in spec order by `make`, which also says its stored
 * dtype and bytes), with lm_head tied when the config says so, and the dtype holding the most bytes.
 */
export function assembleWeights(
  config: ModelConfig,
  make: (s: HFTensorSpec) => { tensor: Tensor; dtype: DType; bytes: number },
): { weights: ModelWeights; dtype: DType } {
  const bytesByDtype: Partial<Record<DType, number>> = {};
  const layers: Partial<LayerWeights>[] = Array.from({ length: config.nLayers }, () => ({}));
  const top: Partial<ModelWeights> = {};
  for (const s of hfTensorSpecs(config)) {
    const { tensor, dtype, bytes } = make(s);
    bytesByDtype[dtype] = (bytesByDtype[dtype] ?? 0) + bytes;
    if (s.layer === undefined) (top as Record<string, Tensor>)[s.key] = tensor;
    else (layers[s.layer] as Record<string, Tensor>)[s.key] = tensor;
  }
  if (config.tiedEmbeddings) top.lmHead = top.embed;
  const dtype = (Object.entries(bytesByDtype) as [DType, number][]).sort((a, b) => b[1] - a[1])[0]?.[0] ?? "F32";
  return { weights: { ...(top as Omit<ModelWeights, "layers">), layers: layers as LayerWeights[] }, dtype };
}

export function loadHFWeights(dir: string, wasm: Wasm): HFLoaded {
  const hfConfig = readHFConfigFile(dir);
  const config = parseHFConfig(hfConfig, "config.json");
  const ck = openCheckpoint(dir);
  if (!ck) throw notFound("model weights", [path.join(dir, SINGLE_FILE), path.join(dir, INDEX_FILE)]);
  try {
    const where = (name: string): string => {
      const t = ck.tensors.get(name);
      return t ? path.basename(t.file.path) : ck.files.length === 1 ? path.basename(ck.files[0]!.path) : INDEX_FILE;
    };
    // HF ties when told to; a checkpoint with no lm_head but an embedding is tied whatever config.json says
    if (!config.tiedEmbeddings && !ck.tensors.has(HF_LM_HEAD) && ck.tensors.has(HF_EMBED)) config.tiedEmbeddings = true;
    const specs = hfTensorSpecs(config);
    for (const s of specs) {
      const t = ck.tensors.get(s.name);
      if (!t) throw missingTensor(where(s.name), s.name);
      if (t.entry.shape.length !== s.shape.length || t.entry.shape.some((d, i) => d !== s.shape[i])) {
        throw shapeMismatch(where(s.name), s.name, t.entry.shape, s.shape);
      }
      if (!isFloatDType(t.entry.dtype)) throw notFloatWeight(where(s.name), s.name, t.entry.dtype);
    }
    const loaded = assembleWeights(config, (s) => {
      const { entry } = ck.tensors.get(s.name)!;
      const n = numel(s.shape);
      const ptr = wasm.arena.alloc(n);
      const tensor: Tensor = { ptr, shape: s.shape, data: wasm.arena.f32(ptr, n) };
      ck.readF32Into(s.name, tensor.data);
      return { tensor, dtype: entry.dtype as DType, bytes: n * DTYPE_SIZE[entry.dtype] }; // dtype checked above
    });
    return { config, ...loaded, hfConfig };
  } finally {
    ck.close();
  }
}

/** Unused-tensor report for callers that want to warn (e.g. rotary_emb.inv_freq in old checkpoints). */
export function extraTensors(names: Iterable<string>, c: ModelConfig): string[] {
  const want = new Set(hfTensorSpecs(c).map((s) => s.name));
  return [...names].filter((n) => !want.has(n) && !(c.tiedEmbeddings && n === HF_LM_HEAD));
}
