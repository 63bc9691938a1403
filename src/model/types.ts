/**
 * @file A model is Config + Weights (+ its tokenizer): plain data, as in llama2.c. Every weight is float32
 * in the WASM arena (src/wasm/runtime.ts), row-major, linear weights [out, in] (the HF/PyTorch convention,
 * also llama2.c's), so that y = W·x is a GEMV and Y = X·Wᵀ a GEMM "nt".
 */
import type { Wasm } from "../wasm/runtime.js";
import type { Tokenizer } from "../tokenizer/types.js";

export const ARCHITECTURES = Object.freeze(["llama", "mistral", "qwen2"] as const);
export type Architecture = (typeof ARCHITECTURES)[number];

/** How RoPE pairs dimensions: llama2.c/Meta interleaved pairs (2i, 2i+1), or HF rotate_half (i, i+hd/2). */
export type RopeLayout = "interleaved" | "half";

export { DTYPES, type DType } from "../io/dtype.js";
import type { DType } from "../io/dtype.js";

export interface ModelConfig {
  architecture: Architecture;
  /** hidden size */
  dim: number;
  /** MLP intermediate size (with `layerSizes`: the largest over layers, which sizes the activation buffers) */
  hiddenDim: number;
  nLayers: number;
  /** attention heads (with `layerSizes`: the largest over layers) */
  nHeads: number;
  /** k/v heads (with `layerSizes`: the largest over layers; the KV cache keeps this width per layer) */
  nKvHeads: number;
  /** dim / nHeads unless config.json says head_dim */
  headDim: number;
  vocabSize: number;
  /** max_position_embeddings / llama2.c seq_len */
  maxSeqLen: number;
  normEps: number;
  ropeTheta: number;
  ropeLayout: RopeLayout;
  tiedEmbeddings: boolean;
  /** qwen2: q/k/v projections carry a bias */
  qkvBias: boolean;
  bosId: number;
  eosId: number;
  /**
   * Per-layer sizes of a non-uniformly pruned model (structured pruning, src/structured), read from and written
   * to config.json as the wasprune extension "wasprune_layer_sizes" (see config.ts). Absent: every layer has
   * the sizes above. The forward pass reads per-layer widths from the tensors' shapes.
   */
  layerSizes?: LayerSizes[];
}

/** Sizes of one decoder layer that structured pruning may change. */
export interface LayerSizes {
  hiddenDim: number;
  nHeads: number;
  nKvHeads: number;
}

/** The sizes of layer `l`: its `layerSizes` entry, or the model-wide ones. */
export function layerSizesOf(c: ModelConfig, l: number): LayerSizes {
  return c.layerSizes?.[l] ?? { hiddenDim: c.hiddenDim, nHeads: c.nHeads, nKvHeads: c.nKvHeads };
}

/**
 * A float32 tensor living in the arena: `data` is a view at `ptr` (no copy). Exception: a linear weight loaded
 * from a compressed model has only its `sparse` form, no dense copy: `data` is empty and `ptr` 0. Code that
 * needs its dense values rebuilds them per tensor with `denseWeight` (src/sparse/linear.ts); pruning refuses
 * such a model (`refuseCompressed`, src/sparse/compress.ts).
 */
export interface Tensor {
  ptr: number;
  shape: number[];
  data: Float32Array;
  /** the linear weight in a sparse kernel layout (src/sparse/); `linear()` runs the kernel of its format */
  sparse?: SparseWeight;
  /**
   * SLoRB add-on of a trained linear weight (slorb.safetensors beside the model, src/model/slorb.ts):
   * y += S·(P x), S (N, ceil(K/k)), (P x)[q] the sum of inputs q·k .. q·k+k−1
   */
  slorb?: { s: Tensor; k: number };
}

/**
 * A linear weight [N,K] in a sparse kernel layout, in the arena (pointers are byte offsets). Layouts:
 * assembly/f32-spmm-nm.ts ("2:4") and assembly/f32-spmm-csr.ts ("bcsr").
 */
export type SparseWeight =
  | { format: "2:4"; N: number; K: number; /** f32 [ceil(N/4)][K/4][2][4] */ vals: number; /** u8 [ceil(N/4)][K/4][2] */ idx: number; bytes: number }
  | { format: "bcsr"; N: number; K: number; nnz: number; /** u32 [ceil(K/256)·N+1] */ rowptr: number; /** u8 [nnz] */ cols: number; /** f32 [nnz] */ vals: number; bytes: number };

/** Shapes per layer l; nHeads/nKvHeads/hiddenDim are layer l's (layerSizesOf), equal to the config's unless nonuniform. */
export interface LayerWeights {
  /** (dim) */ attnNorm: Tensor;
  /** (nHeads*headDim, dim) */ wq: Tensor;
  /** (nKvHeads*headDim, dim) */ wk: Tensor;
  /** (nKvHeads*headDim, dim) */ wv: Tensor;
  /** (dim, nHeads*headDim) */ wo: Tensor;
  /** (dim) */ ffnNorm: Tensor;
  /** (hiddenDim, dim) w1 */ wGate: Tensor;
  /** (hiddenDim, dim) w3 */ wUp: Tensor;
  /** (dim, hiddenDim) w2 */ wDown: Tensor;
  /** qwen2 only: (nHeads*headDim), (nKvHeads*headDim), (nKvHeads*headDim) */
  bq?: Tensor;
  bk?: Tensor;
  bv?: Tensor;
}

export interface ModelWeights {
  /** (vocab, dim) */ embed: Tensor;
  layers: LayerWeights[];
  /** (dim) */ norm: Tensor;
  /** (vocab, dim); the same object as `embed` when tiedEmbeddings */
  lmHead: Tensor;
}

export interface ModelSource {
  /** what the user named: a .bin file or a directory */
  path: string;
  format: "hf" | "llama2c" | "builtin";
  /** dtype of the stored weights (the largest share when mixed) */
  dtype: DType;
  /** the raw config.json object, kept to write it back with only changed fields edited */
  hfConfig?: Record<string, unknown>;
}

export interface Model {
  config: ModelConfig;
  weights: ModelWeights;
  wasm: Wasm;
  source: ModelSource;
  tokenizer?: Tokenizer;
  /** a device the chosen linear operators run on instead of WASM (src/gpu/offload.ts); none: WASM only */
  backend?: LinearBackend;
}

/**
 * Linear operators on another device. Which operators it takes is fixed when it is attached; `linear` writes
 * y (T, N) = x (T, K) · Wᵀ into the WASM memory (bias not included) before returning.
 */
export interface LinearBackend {
  supportsOp(w: Tensor): boolean;
  linear(w: Tensor, x: number, y: number, T: number): void;
}

/** The names of the linear operators of a decoder layer, in forward order. */
export const LINEAR_OPS = Object.freeze(["wq", "wk", "wv", "wo", "wGate", "wUp", "wDown"] as const);
export type LinearOp = (typeof LINEAR_OPS)[number];

/** HF tensor name of each linear operator of layer i. */
export const HF_LINEAR_NAMES: Readonly<Record<LinearOp, string>> = Object.freeze({
  wq: "self_attn.q_proj",
  wk: "self_attn.k_proj",
  wv: "self_attn.v_proj",
  wo: "self_attn.o_proj",
  wGate: "mlp.gate_proj",
  wUp: "mlp.up_proj",
  wDown: "mlp.down_proj",
});
