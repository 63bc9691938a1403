/**
 * @file The LLaMA forward pass on the WASM kernels (llama2.c's `forward`, batched over positions).
 *
 * One `RunState` per model holds every activation buffer, allocated once in the arena for up to `maxT`
 * positions per call, plus the KV cache; a forward call never allocates. `forward(tokens, pos)` runs
 * positions pos..pos+T-1: T > 1 uses GEMM ("nt": X·Wᵀ), T = 1 uses GEMV. The same decoder-layer code
 * (`attentionBlock`, `mlpBlock`) serves eval, generation and the pruning driver, which passes its own
 * (partly pruned) weights and a `capture` hook that sees the input of every linear operator.
 */
import type { Wasm } from "../wasm/runtime.js";
import type { LayerWeights, LinearBackend, LinearWeight, Model, ModelConfig, ModelWeights, Tensor } from "./types.js";
import { intScratchBytes, runLinear } from "./linear.js";
import { kernels } from "../kernels/index.js";
import type { Kernels } from "../wasm/contract.js";

/** Which linear-operator input a capture sees: q/k/v share one input, gate/up share one. */
export type CapturePoint = "qkv" | "o" | "gateup" | "down";
/**
 * Sees the input X (T, cols) of the operators at `point` before they run. It may also write X in place: the
 * structured-pruning scores use that as a forward hook on the outputs of heads ("o") and MLP channels ("down").
 */
export type Capture = (point: CapturePoint, xPtr: number, T: number, cols: number) => void;

/** Activation buffers for up to maxT positions, and the KV cache. Shapes in floats. */
export interface RunState {
  maxT: number;
  /** (maxT, dim) residual stream */ x: number;
  /** (maxT, dim) normed input of a block */ xb: number;
  /** (maxT, nHeads*headDim) */ q: number;
  /** (maxT, nHeads*headDim) attention output */ att: number;
  /** (maxT, dim) block output before the residual add */ out: number;
  /** (maxT, hiddenDim) gate, then silu(gate)*up */ hb: number;
  /** (maxT, hiddenDim) up */ hb2: number;
  /** (maxSeq) attention scores scratch */ scores: number;
  /**
   * generation only: the one-position GEMV, split over threads (src/generate/gemv.ts; same results); false when
   * it did not run (too small, or a layout it does not split). A function: never set it on a state sent to a worker.
   */
  gemv?: (w: LinearWeight, x: number, y: number, scratch: number, scratchBytes: number) => boolean;
  /** the model's device for the operators it took (`model.backend`, src/gpu/offload.ts); never sent to a worker */
  backend?: LinearBackend;
  /** (kvLayers, maxSeq, kvDim) */ keyCache: number;
  /** (kvLayers, maxSeq, kvDim) */ valueCache: number;
  /** layers the KV cache holds: every layer, or 1 (a layer's passes, one layer at a time: slot 0 for any layer) */
  kvLayers: number;
  /** (maxT, vocab); 0 when made without logits (layer passes) */ logits: number;
  /** (maxSeq, headDim/2) RoPE tables */ ropeCos: number;
  ropeSin: number;
  /** scratch for f32_gemm_nt packing (and the sparse GEMMs' XT/YT) */ pack: number;
  /** bytes at `pack` */ packBytes: number;
  /** (maxT, groups) SLoRB group sums, only for a model with SLoRB add-ons (Tensor.slorb) */ slorb?: number;
  /** KV cache length in positions (≤ maxSeqLen) */ cacheLen: number;
}


/** RoPE angle tables as llama2.c computes them (float32 arithmetic): freq_i = 1/θ^(2i/hd), angle = pos·freq_i. */
export function ropeTables(cfg: ModelConfig, seqLen: number): { cos: Float32Array; sin: Float32Array } {
  const half = cfg.headDim / 2;
  const cos = new Float32Array(seqLen * half);
  const sin = new Float32Array(seqLen * half);
  const f = Math.fround;
  for (let i = 0; i < half; i++) {
    const freq = f(1 / f(Math.pow(cfg.ropeTheta, f((2 * i) / cfg.headDim))));
    for (let p = 0; p < seqLen; p++) {
      const v = f(p * freq);
      cos[p * half + i] = Math.cos(v);
      sin[p * half + i] = Math.sin(v);
    }
  }
  return { cos, sin };
}

/** What a RunState is made for: a model (its weights tell which buffers it needs) or a store's config and memory. */
export interface RunSpec {
  config: ModelConfig;
  wasm: Wasm;
  weights?: ModelWeights;
  backend?: LinearBackend;
}

export interface RunStateOptions {
  /** KV-cache layers: every layer (default) or 1 (passes of one layer at a time) */
  kvLayers?: number;
  /** allocate the logits buffer (default true) */
  logits?: boolean;
  /** scratch for compressed operators' GEMMs (default: whether `spec.weights` has any) */
  compressed?: boolean;
}

export function createRunState(spec: RunSpec, maxT: number, cacheLen = spec.config.maxSeqLen, opts: RunStateOptions = {}): RunState {
  const { config: c, wasm } = spec;
  const a = wasm.arena;
  const k = kernels(wasm);
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  maxT = Math.max(1, Math.min(maxT, cacheLen));
  const widest = Math.max(c.dim, qDim, kvDim, c.hiddenDim, c.vocabSize);
  const deepest = Math.max(c.dim, qDim, c.hiddenDim);
  const { cos, sin } = ropeTables(c, cacheLen);
  const compressed = opts.compressed ?? (spec.weights ? hasCompressed(spec.weights) : false);
  const sparseBytes = compressed ? k.f32_spmm_nt_scratch(maxT, widest, 0) : 0;
  const quantized = spec.weights ? hasInt(spec.weights) : compressed;
  const intBytes = quantized ? intScratchBytes(k, maxT, deepest) : 0;
  const packBytes = Math.max(16, k.f32_gemm_nt_scratch(maxT, widest, deepest), k.gemm_p8_nt_scratch(maxT, deepest), sparseBytes, intBytes);
  const kvLayers = opts.kvLayers ?? c.nLayers;
  const groups = spec.weights ? slorbGroups(spec.weights) : 0;
  return {
    maxT,
    x: a.alloc(maxT * c.dim),
    xb: a.alloc(maxT * Math.max(c.dim, qDim)),
    q: a.alloc(maxT * qDim),
    att: a.alloc(maxT * qDim),
    out: a.alloc(maxT * Math.max(c.dim, kvDim)),
    hb: a.alloc(maxT * c.hiddenDim),
    hb2: a.alloc(maxT * c.hiddenDim),
    scores: a.alloc(cacheLen),
    keyCache: a.alloc(kvLayers * cacheLen * kvDim),
    valueCache: a.alloc(kvLayers * cacheLen * kvDim),
    kvLayers,
    logits: opts.logits === false ? 0 : a.alloc(maxT * c.vocabSize),
    ropeCos: a.put(cos),
    ropeSin: a.put(sin),
    pack: a.allocBytes(packBytes),
    packBytes,
    cacheLen,
    ...(spec.backend && { backend: spec.backend }),
    ...(groups > 0 && { slorb: a.alloc(maxT * groups) }),
  };
}

/** The linear weights of every layer (and the LM head). */
function linears(w: ModelWeights): LinearWeight[] {
  return [...w.layers.flatMap((lw) => [lw.wq, lw.wk, lw.wv, lw.wo, lw.wGate, lw.wUp, lw.wDown]), w.lmHead];
}

function hasCompressed(w: ModelWeights): boolean {
  return linears(w).some((t) => t.format === "2:4" || t.format === "csr");
}

function hasInt(w: ModelWeights): boolean {
  return linears(w).some((t) => t.format === "int");
}

/** The widest SLoRB add-on of the model (groups), 0 without any. */
function slorbGroups(w: ModelWeights): number {
  return linears(w).reduce((g, t) => (t.slorb ? Math.max(g, t.slorb.s.shape[1]) : g), 0);
}

/** y (T, N) = x (T, K) · Wᵀ (+ bias): the kernel of the weight's format; GEMV for one position, GEMM otherwise. */
export function linear(k: Kernels, st: RunState, w: LinearWeight, x: number, y: number, T: number, bias?: Tensor): void {
  const [N, K] = w.shape as [number, number];
  if (st.backend?.supportsOp(w)) st.backend.linear(w, x, y, T);
  else if (T === 1 && st.gemv?.(w, x, y, st.pack, st.packBytes)) {
    // done by the split GEMV
  } else if (w.format !== "dense") runLinear(k, w, x, y, T, st.pack, st.packBytes);
  else if (T === 1) k.f32_gemv(w.ptr, x, y, N, K, 0);
  else k.f32_gemm_nt(x, w.ptr, y, T, N, K, 0, st.pack);
  if (w.slorb) {
    // y += S·(P x), as the training forward computes it (src/train/backprop.ts linearF)
    if (st.slorb === undefined) throw new RangeError("linear: a SLoRB weight needs a RunState made for its model");
    k.f32_group_sum(x, st.slorb, T, K, w.slorb.k);
    k.f32_gemm_nt(st.slorb, w.slorb.s.ptr, y, T, N, w.slorb.s.shape[1], 1, st.pack);
  }
  if (bias) k.f32_add_bias_rows(y, bias.ptr, T, N);
}

/** What a decoder layer's code reads of its model: the config and the instance (a Model or a ModelStore). */
export type LayerModel = Pick<Model, "config" | "wasm">;

/**
 * Attention sub-block of layer `l` for positions pos..pos+T-1: reads st.x, writes st.out (dim per position,
 * the o_proj output, residual not added). K/V of these positions go to the cache of layer `l` (slot 0 of a
 * RunState whose cache holds one layer).
 */
export function attentionBlock(
  model: LayerModel, st: RunState, lw: LayerWeights, l: number, T: number, pos: number, capture?: Capture, stopAfter?: CapturePoint,
): void {
  const c = model.config;
  const k = kernels(model.wasm);
  // widths of this layer from its tensors (a structurally pruned model may differ per layer, see
  // ModelConfig.layerSizes); the KV cache keeps the model-wide width per layer as its slab stride
  const qDim = lw.wq.shape[0];
  const kvDim = lw.wk.shape[0];
  const nHeads = qDim / c.headDim;
  const nKvHeads = kvDim / c.headDim;
  const slab = st.cacheLen * c.nKvHeads * c.headDim;
  const half = c.headDim / 2;
  k.f32_rmsnorm(st.x, lw.attnNorm.ptr, st.xb, T, c.dim, c.normEps);
  capture?.("qkv", st.xb, T, c.dim);
  if (stopAfter === "qkv") return;
  const slot = st.kvLayers === 1 ? 0 : l;
  if (slot >= st.kvLayers) throw new RangeError(`layer ${l}: the KV cache holds ${st.kvLayers} layers`);
  const kc = st.keyCache + 4 * slot * slab;
  const vc = st.valueCache + 4 * slot * slab;
  const kRow = kc + 4 * pos * kvDim;
  const vRow = vc + 4 * pos * kvDim;
  linear(k, st, lw.wq, st.xb, st.q, T, lw.bq);
  linear(k, st, lw.wk, st.xb, kRow, T, lw.bk);
  linear(k, st, lw.wv, st.xb, vRow, T, lw.bv);
  const rope = c.ropeLayout === "interleaved" ? k.f32_rope_interleaved : k.f32_rope_half;
  for (let t = 0; t < T; t++) {
    const p = pos + t;
    const cs = st.ropeCos + 4 * p * half;
    const sn = st.ropeSin + 4 * p * half;
    rope(st.q + 4 * t * qDim, cs, sn, nHeads, c.headDim);
    rope(kRow + 4 * t * kvDim, cs, sn, nKvHeads, c.headDim);
  }
  for (let t = 0; t < T; t++) {
    k.f32_attention(
      st.q + 4 * t * qDim, kc, vc, st.att + 4 * t * qDim, st.scores,
      nHeads, nKvHeads, c.headDim, pos + t + 1, kvDim,
    );
  }
  capture?.("o", st.att, T, qDim);
  if (stopAfter === "o") return;
  linear(k, st, lw.wo, st.att, st.out, T);
}

/** MLP sub-block: reads st.x, writes st.out (the down_proj output, residual not added). */
export function mlpBlock(model: LayerModel, st: RunState, lw: LayerWeights, T: number, capture?: Capture, stopAfter?: CapturePoint): void {
  const c = model.config;
  const k = kernels(model.wasm);
  const hiddenDim = lw.wGate.shape[0]; // this layer's width (see attentionBlock)
  k.f32_rmsnorm(st.x, lw.ffnNorm.ptr, st.xb, T, c.dim, c.normEps);
  capture?.("gateup", st.xb, T, c.dim);
  if (stopAfter === "gateup") return;
  linear(k, st, lw.wGate, st.xb, st.hb, T);
  linear(k, st, lw.wUp, st.xb, st.hb2, T);
  k.f32_silu_mul(st.hb, st.hb2, st.hb, T * hiddenDim);
  capture?.("down", st.hb, T, hiddenDim);
  if (stopAfter === "down") return;
  linear(k, st, lw.wDown, st.hb, st.out, T);
}

/** The capture points in forward order. */
export const CAPTURE_ORDER: readonly CapturePoint[] = Object.freeze(["qkv", "o", "gateup", "down"]);

/**
 * One decoder layer in place on st.x. With `stopAfter`, the layer stops right after that capture point (a
 * calibration pass that only needs an operator's input; st.x is then not the layer's output).
 */
export function layerForward(
  model: LayerModel, st: RunState, lw: LayerWeights, l: number, T: number, pos: number, capture?: Capture, stopAfter?: CapturePoint,
): void {
  const k = kernels(model.wasm);
  const n = T * model.config.dim;
  attentionBlock(model, st, lw, l, T, pos, capture, stopAfter);
  if (stopAfter === "qkv" || stopAfter === "o") return;
  k.f32_add(st.x, st.out, st.x, n);
  mlpBlock(model, st, lw, T, capture, stopAfter);
  if (stopAfter) return;
  k.f32_add(st.x, st.out, st.x, n);
}

/** Copy token embeddings of `tokens` into st.x. */
export function embed(model: Model, st: RunState, tokens: ArrayLike<number>): void {
  const { dim, vocabSize } = model.config;
  const x = model.wasm.arena.f32(st.x, tokens.length * dim);
  const table = model.weights.embed.data;
  for (let t = 0; t < tokens.length; t++) {
    const id = tokens[t];
    if (!(id >= 0 && id < vocabSize)) throw new RangeError(`token id ${id} outside the vocabulary [0, ${vocabSize})`);
    x.set(table.subarray(id * dim, (id + 1) * dim), t * dim);
  }
}

/** Final norm and classifier for the last `nLogits` of T positions; logits at st.logits (nLogits, vocab) (resident). */
export function head(model: Model, st: RunState, T: number, nLogits: number): void {
  const c = model.config;
  const k = kernels(model.wasm);
  const first = T - nLogits;
  k.f32_rmsnorm(st.x + 4 * first * c.dim, model.weights.norm.ptr, st.xb, nLogits, c.dim, c.normEps);
  linear(k, st, model.weights.lmHead, st.xb, st.logits, nLogits);
}

/**
 * Run `tokens` at positions pos.. (chunks of st.maxT). Returns a view of the logits of the last position, or of
 * every position when `allLogits` (then tokens.length must be ≤ st.maxT).
 */
export function forward(model: Model, st: RunState, tokens: ArrayLike<number>, pos: number, allLogits = false): Float32Array {
  const c = model.config;
  const total = tokens.length;
  if (total === 0) throw new RangeError("forward: no tokens");
  if (pos + total > st.cacheLen) throw new RangeError(`forward: positions up to ${pos + total} exceed the context of ${st.cacheLen}`);
  if (allLogits && total > st.maxT) throw new RangeError(`forward: ${total} positions with all logits exceed maxT ${st.maxT}`);
  let done = 0;
  let T = 0;
  while (done < total) {
    T = Math.min(st.maxT, total - done);
    embed(model, st, Array.prototype.slice.call(tokens, done, done + T) as number[]);
    for (let l = 0; l < c.nLayers; l++) layerForward(model, st, model.weights.layers[l], l, T, pos + done, undefined);
    done += T;
  }
  const n = allLogits ? T : 1;
  head(model, st, T, n);
  return model.wasm.arena.f32(st.logits, n * c.vocabSize);
}
