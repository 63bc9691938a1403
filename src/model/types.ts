/**
 * @file A model is Config + Weights (+ its tokenizer): plain data, as in llama2.c. Every weight is float32
 * in the WASM arena (src/wasm/runtime.ts), row-major, linear weights [out, in] (the HF/PyTorch convention,
 * also llama2.c's), so that y = W·x is a GEMV and Y = X·Wᵀ a GEMM "nt".
 */
import type { Wasm } from "../wasm/runtime.js";
import type { Tokenizer } from "../tokenizer/types.js";
import type { QuantizedWeight } from "../quant/codes.js";

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

/** A float32 tensor in the arena (norms, biases, the embedding table): `data` views `ptr` (no copy). */
export interface Tensor {
  ptr: number;
  shape: number[];
  data: Float32Array;
}

/**
 * SLoRB add-on of a trained linear weight (slorb.safetensors beside the model, src/model/slorb.ts):
 * y += S·(P x), S (N, ceil(K/k)), (P x)[q] the sum of inputs q·k .. q·k+k−1
 */
export interface Slorb {
  s: Tensor;
  k: number;
}

/**
 * A linear weight (N, K) = (out, in) in the arena, tagged by the layout the forward pass runs (`linear()`,
 * src/model/forward.ts, picks the kernel by `format`):
 *  - `dense`: f32 row-major at `ptr`, `data` views it;
 *  - `2:4`: the "4x" kernel layout of assembly/spmm-nm.ts (a compressed model's 2:4 operator);
 *  - `csr`: the panel CSR of assembly/spmm-csr.ts (a compressed model's unstructured operator);
 *  - `int`: int8 / int4 codes with scales, the layout of assembly/qgemm.ts (a quantized model's operator).
 * A compressed operator has no dense copy: whoever needs its dense values rebuilds them per tensor
 * (`denseWeight`, src/model/linear.ts); pruning needs dense weights (`denseLinear`).
 */
export type LinearWeight = DenseLinear | LinearPacked | Linear2of4 | LinearCsr | LinearInt;
export type CompressedLinear = Linear2of4 | LinearCsr | LinearInt;

/**
 * The dtype of a weight in memory for the inference kernels (they widen half precision in registers and
 * accumulate in f32): the dense p8 panels, the values of 2:4 and CSR operators.
 */
export const WEIGHT_DTYPES = Object.freeze(["f32", "bf16", "f16"] as const);
export type WeightDType = (typeof WEIGHT_DTYPES)[number];

export interface DenseLinear extends Tensor {
  format: "dense";
  slorb?: Slorb;
  /**
   * set by a quantizing prune (src/prune/quantize.ts): the integer codes, scales and zero points whose
   * dequantized values `data` holds exactly (what the output writes instead of the f32 values)
   */
  quant?: QuantizedWeight;
}

/**
 * A dense linear weight packed once at load for inference (src/model/packed.ts): p8 panels (8 rows, K-major;
 * assembly/gemv.ts) in `dtype`, read by both the GEMV and the GEMM (assembly/gemm.ts *_gemm_p8_nt) with no
 * per-call packing. It replaces the row-major copy (no second copy); pruning and training need row-major f32
 * (`denseLinear` refuses this with the way out), so only inference commands load packed weights.
 */
export interface LinearPacked {
  format: "p8";
  dtype: WeightDType;
  shape: number[];
  /** [ceil(N/8)][K][8] values of `dtype` */ ptr: number;
  /** bytes at ptr */ bytes: number;
  slorb?: Slorb;
}

export interface Linear2of4 {
  format: "2:4";
  /** dtype of the values (f32: the "4x" layout; bf16/f16: its half layout, see src/sparse/nm.ts) */
  dtype: WeightDType;
  shape: number[];
  /** f32 [ceil(N/4)][K/4][2][4], or half [ceil(N/4)][K/4][4][2] */ vals: number;
  /** u8 [ceil(N/4)][K/4][2] */ idx: number;
  /** bytes of the layout (values + indices) */ bytes: number;
  slorb?: Slorb;
}

export interface LinearCsr {
  format: "csr";
  /** dtype of the values */
  dtype: WeightDType;
  shape: number[];
  nnz: number;
  /** u32 [ceil(K/256)·N+1] */ rowptr: number;
  /** u8 [nnz] */ cols: number;
  /** [nnz] of `dtype` */ vals: number;
  /** bytes of the layout */ bytes: number;
  slorb?: Slorb;
}

/**
 * A quantized linear weight as the integer kernels read it (assembly/qgemm.ts), loaded from a pack-quantized
 * checkpoint without widening: the file's codes (weight_packed's bytes) interleaved into panels of 4 rows, the
 * f32 scales (and with zero points the terms s·(offset + zero point)).
 */
export interface LinearIntDense {
  format: "int";
  /** every code stored (dense, or a pruned model's zeros stored as codes) */ pattern: "dense";
  bits: 4 | 8;
  shape: number[];
  strategy: "group" | "channel";
  /** scale groups per row (1 per channel) */ ng: number;
  /** inputs per group (the input count per channel) */ group: number;
  symmetric: boolean;
  /** the kernels' activation block: the group size (32, 64, 128), or 128 per channel */ block: number;
  /**
   * how the kernels round the activations in each block: 16 (int16, error ≤ 2^-16 of the block's largest
   * magnitude) or 8 (W8A8 / W4A8: int8, error ≤ 2^-8, qu8a8_gemm_nt / qu4a8_gemm_nt's i8 dot products); the load option
   * `--int-activations` (src/model/weight-file.ts)
   */
  activationBits: 16 | 8;
  /** u8 codes in panels [ceil(N/4)][Kp/32][4][32 inputs' bytes], Kp = K padded to `block` */ codes: number;
  /** f32 scales [4·ceil(N/4)][ng], zero past row N */ scales: number;
  /** with zero points: f32 [4·ceil(N/4)][ng] s·(2^(bits−1) + z); 0 when symmetric */ zeroTerms: number;
  /** bytes of the layout */ bytes: number;
  slorb?: Slorb;
}

/**
 * A 2:4-sparse int4 weight as qu4_gemm_2of4_nt reads it (assembly/qgemm.ts): only the kept half of the codes,
 * with their positions (2 bits each), so 3 bits a weight plus the scales; placed from a pack-quantized operator
 * whose every group of 4 inputs holds at most 2 nonzero weights.
 */
export interface LinearInt2of4 {
  format: "int";
  pattern: "2:4";
  bits: 4;
  shape: number[];
  strategy: "group" | "channel";
  /** scale groups per row (1 per channel) */ ng: number;
  /** inputs per group (the input count per channel) */ group: number;
  symmetric: boolean;
  /** the activation block: the group size (32, 64, 128), or 128 per channel */ block: number;
  /** u16 [ceil(N/4)][Kp/16][8] kept codes (assembly/qgemm.ts) */ codes: number;
  /** u8 [ceil(N/4)][Kp/4][2] their positions */ idx: number;
  /** f32 [ceil(N/4)][ng][4] */ scales: number;
  /** i16 [ceil(N/4)][ng][8], each row's zero point twice; 0 when symmetric */ zeroPoints: number;
  /** bytes of the layout */ bytes: number;
  slorb?: Slorb;
}

/** A quantized linear weight in either integer layout. */
export type LinearInt = LinearIntDense | LinearInt2of4;

/** A dense linear weight over an arena tensor (the same memory). */
export function dense(t: Tensor): DenseLinear {
  return { ptr: t.ptr, shape: t.shape, data: t.data, format: "dense" };
}

/** Shapes per layer l; nHeads/nKvHeads/hiddenDim are layer l's (layerSizesOf), equal to the config's unless nonuniform. */
export interface LayerWeights {
  /** (dim) */ attnNorm: Tensor;
  /** (nHeads*headDim, dim) */ wq: LinearWeight;
  /** (nKvHeads*headDim, dim) */ wk: LinearWeight;
  /** (nKvHeads*headDim, dim) */ wv: LinearWeight;
  /** (dim, nHeads*headDim) */ wo: LinearWeight;
  /** (dim) */ ffnNorm: Tensor;
  /** (hiddenDim, dim) w1 */ wGate: LinearWeight;
  /** (hiddenDim, dim) w3 */ wUp: LinearWeight;
  /** (dim, hiddenDim) w2 */ wDown: LinearWeight;
  /** qwen2 only: (nHeads*headDim), (nKvHeads*headDim), (nKvHeads*headDim) */
  bq?: Tensor;
  bk?: Tensor;
  bv?: Tensor;
}

export interface ModelWeights {
  /** (vocab, dim) */ embed: Tensor;
  layers: LayerWeights[];
  /** (dim) */ norm: Tensor;
  /** (vocab, dim); over the same memory as `embed` when tiedEmbeddings */
  lmHead: LinearWeight;
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
  supportsOp(w: LinearWeight): boolean;
  linear(w: LinearWeight, x: number, y: number, T: number): void;
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
