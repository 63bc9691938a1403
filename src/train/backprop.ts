/**
 * @file The training forward pass (every activation the backward pass needs is kept) and the backward pass,
 * on the WASM kernels. One sequence at a time, positions 0..T-1, causal; the forward follows the inference
 * forward (src/model/forward.ts: same kernels, same order) except that every linear operator runs as a GEMM
 * (T ≥ 1) on the masked copy W⊙M, plus SLoRB and LoRA when present, and attention runs over the whole sequence at once
 * (f32_attention_causal, which keeps each row's log-sum-exp for the backward; logits agree to ~1e-6).
 *
 * `TrainState` holds the activations of up to maxT positions for every layer and the gradient scratch,
 * allocated once (llama2.c's RunState, grown by what backward needs); no call here allocates.
 */
import type { Wasm } from "../wasm/runtime.js";
import { ropeTables } from "../model/forward.js";
import { denseLinear } from "../model/linear.js";
import type { LinearParam, Student } from "./student.js";
import { kernels } from "../kernels/index.js";
import type { Kernels } from "../wasm/contract.js";

/** Saved activations of one decoder layer, each (maxT, width) floats. */
export interface LayerActs {
  /** (T, dim) rmsnorm(xIn) */ xn1: number;
  /** (T, qDim) after RoPE */ q: number;
  /** (T, kvDim) after RoPE */ k: number;
  /** (T, kvDim) */ v: number;
  /** (T, qDim) attention output (o_proj input) */ att: number;
  /** (nHeads, T) log-sum-exp of each attention row */ lse: number;
  /** (T, dim) residual after attention */ xMid: number;
  /** (T, dim) rmsnorm(xMid) */ xn2: number;
  /** (T, hidden) gate before silu */ gate: number;
  /** (T, hidden) up */ up: number;
  /** (T, hidden) silu(gate)·up (down_proj input) */ h: number;
}

export interface TrainState {
  maxT: number;
  /** (nLayers+1, maxT, dim): xs[l] = input of layer l, xs[nLayers] = final residual */ xs: number[];
  layers: LayerActs[];
  /** (maxT, dim) final rmsnorm */ xnF: number;
  /** (maxT, vocab) */ logits: number;
  /** (maxT) i32 input ids / next-token targets */ tokens: number;
  targets: number;
  // gradient scratch
  /** (maxT, dim) gradient of the residual stream */ dx: number;
  /** (maxT, max(dim, qDim)) */ dxn: number;
  /** (maxT, dim) block output (forward) */ out: number;
  /** (maxT, qDim) */ dq: number;
  /** (maxT, kvDim) */ dk: number;
  dv: number;
  /** (maxT, qDim) */ datt: number;
  /** (maxT, hidden) */ dgate: number;
  dup: number;
  dh: number;
  /** (maxT, vocab) */ dlogits: number;
  /** 2·(maxT+3) floats: attention scores and their gradient */ attScratch: number;
  /** (maxT, maxGroups) SLoRB group sums and their gradient */ gsum: number;
  dgsum: number;
  /** (maxT, max LoRA rank) LoRA's scale·A x and its gradient */ loraU: number;
  loraDu: number;
  /** (dim) sink for the gradient of a frozen norm */ dgFrozen: number;
  /** (maxT, headDim/2) */ ropeCos: number;
  ropeSin: number;
  pack: number;
  packBytes: number;
}

export function createTrainState(st: Student, maxT: number): TrainState {
  const m = st.model;
  const c = m.config;
  const a = m.wasm.arena;
  const k = kernels(m.wasm);
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  const widest = Math.max(c.dim, qDim, kvDim, c.hiddenDim, c.vocabSize);
  const deepest = Math.max(c.dim, qDim, c.hiddenDim);
  const maxGroups = Math.max(1, ...st.linears.map((lp) => lp.slorb?.groups ?? 1));
  const maxRank = Math.max(1, ...st.linears.map((lp) => lp.lora?.rank ?? 1));
  const { cos, sin } = ropeTables(c, maxT);
  const packBytes = Math.max(16, k.f32_gemm_nt_scratch(maxT, widest, deepest));
  const xs: number[] = [];
  for (let l = 0; l <= c.nLayers; l++) xs.push(a.alloc(maxT * c.dim));
  const layers: LayerActs[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    layers.push({
      xn1: a.alloc(maxT * c.dim), q: a.alloc(maxT * qDim), k: a.alloc(maxT * kvDim), v: a.alloc(maxT * kvDim),
      att: a.alloc(maxT * qDim), lse: a.alloc(c.nHeads * maxT), xMid: a.alloc(maxT * c.dim), xn2: a.alloc(maxT * c.dim),
      gate: a.alloc(maxT * c.hiddenDim), up: a.alloc(maxT * c.hiddenDim), h: a.alloc(maxT * c.hiddenDim),
    });
  }
  return {
    maxT, xs, layers,
    xnF: a.alloc(maxT * c.dim), logits: a.alloc(maxT * c.vocabSize), tokens: a.alloc(maxT), targets: a.alloc(maxT),
    dx: a.alloc(maxT * c.dim), dxn: a.alloc(maxT * Math.max(c.dim, qDim)), out: a.alloc(maxT * c.dim),
    dq: a.alloc(maxT * qDim), dk: a.alloc(maxT * kvDim), dv: a.alloc(maxT * kvDim), datt: a.alloc(maxT * qDim),
    dgate: a.alloc(maxT * c.hiddenDim), dup: a.alloc(maxT * c.hiddenDim), dh: a.alloc(maxT * c.hiddenDim),
    dlogits: a.alloc(maxT * c.vocabSize), attScratch: a.alloc(2 * (maxT + 3)),
    gsum: a.alloc(maxT * maxGroups), dgsum: a.alloc(maxT * maxGroups),
    loraU: a.alloc(maxT * maxRank), loraDu: a.alloc(maxT * maxRank), dgFrozen: a.alloc(c.dim),
    ropeCos: a.put(cos), ropeSin: a.put(sin),
    pack: a.allocBytes(packBytes), packBytes,
  };
}


/** ts.loraU (T, r) = scale · x Aᵀ. */
function loraDown(k: Kernels, ts: TrainState, lp: LinearParam, x: number, T: number): void {
  const lo = lp.lora!;
  k.f32_gemm_nt(x, lo.a.ptr, ts.loraU, T, lo.rank, lp.K, 0, ts.pack);
  k.f32_scale(ts.loraU, lo.scale, T * lo.rank);
}

/** y (T, N) = x (T, K) · (W⊙M)ᵀ (+ S·(P x) with SLoRB) (+ scale·B A x with LoRA). */
function linearF(k: Kernels, ts: TrainState, lp: LinearParam, x: number, y: number, T: number): void {
  k.f32_gemm_nt(x, lp.wm.ptr, y, T, lp.N, lp.K, 0, ts.pack);
  const s = lp.slorb;
  if (s) {
    k.f32_group_sum(x, ts.gsum, T, lp.K, s.k);
    k.f32_gemm_nt(ts.gsum, s.s.ptr, y, T, lp.N, s.groups, 1, ts.pack);
  }
  const lo = lp.lora;
  if (lo) {
    loraDown(k, ts, lp, x, T);
    k.f32_gemm_nt(ts.loraU, lo.b.ptr, y, T, lp.N, lo.rank, 1, ts.pack);
  }
}

/**
 * Backward of linearF: dx (=|+=) dy · (W⊙M) (+ SLoRB's Pᵀ Sᵀ dy) (+ LoRA's du·A), dW += dyᵀ x (unless W is
 * frozen), dS += dyᵀ (P x); LoRA, with u = scale·A x recomputed: dB += dyᵀ u, du = scale·dy B, dA += duᵀ x.
 * The gradient of the masked copy goes to the dense shadow unchanged (straight-through, see student.ts).
 */
function linearB(
  k: Kernels, ts: TrainState, lp: LinearParam, x: number, dy: number, dx: number, T: number,
  grads: number, accumulate: number,
): void {
  k.f32_gemm_nn(dy, lp.wm.ptr, dx, T, lp.K, lp.N, accumulate);
  if (lp.gradOffset >= 0) k.f32_gemm_tn(dy, x, grads + 4 * lp.gradOffset, lp.N, lp.K, T, 1);
  const s = lp.slorb;
  if (s) {
    k.f32_group_sum(x, ts.gsum, T, lp.K, s.k);
    k.f32_gemm_tn(dy, ts.gsum, grads + 4 * s.gradOffset, lp.N, s.groups, T, 1);
    k.f32_gemm_nn(dy, s.s.ptr, ts.dgsum, T, s.groups, lp.N, 0);
    k.f32_group_expand_add(ts.dgsum, dx, T, lp.K, s.k);
  }
  const lo = lp.lora;
  if (lo) {
    loraDown(k, ts, lp, x, T);
    k.f32_gemm_tn(dy, ts.loraU, grads + 4 * lo.gradB, lp.N, lo.rank, T, 1);
    k.f32_gemm_nn(dy, lo.b.ptr, ts.loraDu, T, lo.rank, lp.N, 0);
    k.f32_scale(ts.loraDu, lo.scale, T * lo.rank);
    k.f32_gemm_tn(ts.loraDu, x, grads + 4 * lo.gradA, lo.rank, lp.K, T, 1);
    k.f32_gemm_nn(ts.loraDu, lo.a.ptr, dx, T, lp.K, lo.rank, 1);
  }
}

/**
 * Forward over `tokens` (T ≤ maxT, positions 0..T-1) keeping every activation; logits at ts.logits (T, vocab).
 */
export function trainForward(st: Student, ts: TrainState, tokens: ArrayLike<number>): void {
  const m = st.model;
  const c = m.config;
  const k = kernels(m.wasm);
  const a = m.wasm.arena;
  const T = tokens.length;
  if (T < 1 || T > ts.maxT) throw new RangeError(`trainForward: ${T} positions, the state holds 1..${ts.maxT}`);
  const ids = a.i32(ts.tokens, T);
  const x0 = a.f32(ts.xs[0], T * c.dim);
  const table = m.weights.embed.data;
  for (let t = 0; t < T; t++) {
    const id = tokens[t];
    if (!(id >= 0 && id < c.vocabSize)) throw new RangeError(`token id ${id} outside the vocabulary [0, ${c.vocabSize})`);
    ids[t] = id;
    x0.set(table.subarray(id * c.dim, (id + 1) * c.dim), t * c.dim);
  }
  const half = c.headDim / 2;
  const rope = c.ropeLayout === "interleaved" ? k.f32_rope_interleaved : k.f32_rope_half;
  for (let l = 0; l < c.nLayers; l++) {
    const lw = m.weights.layers[l];
    const ops = st.byLayer[l];
    const A = ts.layers[l];
    const x = ts.xs[l];
    const qDim = ops.wq.N;
    const kvDim = ops.wk.N;
    const nHeads = qDim / c.headDim;
    const nKv = kvDim / c.headDim;
    const hidden = ops.wGate.N;
    // attention
    k.f32_rmsnorm(x, lw.attnNorm.ptr, A.xn1, T, c.dim, c.normEps);
    linearF(k, ts, ops.wq, A.xn1, A.q, T);
    linearF(k, ts, ops.wk, A.xn1, A.k, T);
    linearF(k, ts, ops.wv, A.xn1, A.v, T);
    for (let t = 0; t < T; t++) {
      const cs = ts.ropeCos + 4 * t * half;
      const sn = ts.ropeSin + 4 * t * half;
      rope(A.q + 4 * t * qDim, cs, sn, nHeads, c.headDim);
      rope(A.k + 4 * t * kvDim, cs, sn, nKv, c.headDim);
    }
    k.f32_attention_causal(A.q, A.k, A.v, A.att, A.lse, ts.attScratch, nHeads, nKv, c.headDim, T, qDim, kvDim);
    linearF(k, ts, ops.wo, A.att, ts.out, T);
    k.f32_add(x, ts.out, A.xMid, T * c.dim);
    // MLP
    k.f32_rmsnorm(A.xMid, lw.ffnNorm.ptr, A.xn2, T, c.dim, c.normEps);
    linearF(k, ts, ops.wGate, A.xn2, A.gate, T);
    linearF(k, ts, ops.wUp, A.xn2, A.up, T);
    k.f32_silu_mul(A.gate, A.up, A.h, T * hidden);
    linearF(k, ts, ops.wDown, A.h, ts.out, T);
    k.f32_add(A.xMid, ts.out, ts.xs[l + 1], T * c.dim);
  }
  k.f32_rmsnorm(ts.xs[c.nLayers], m.weights.norm.ptr, ts.xnF, T, c.dim, c.normEps);
  k.f32_gemm_nt(ts.xnF, denseLinear(m.weights.lmHead, "lm_head.weight").ptr, ts.logits, T, c.vocabSize, c.dim, 0, ts.pack);
}

/**
 * Backward from ts.dlogits (T, vocab), set by the loss, through the activations of the last trainForward;
 * gradients are *added* into the block at `grads` (layout: Student.params); frozen tensors (offset −1) get none.
 */
export function trainBackward(st: Student, ts: TrainState, T: number, grads: number): void {
  const m = st.model;
  const c = m.config;
  const k = kernels(m.wasm);
  const dim = c.dim;
  /** where the gradient of the tensor at `off` goes (a norm's, when frozen, into a sink) */
  const g = (off: number) => (off >= 0 ? grads + 4 * off : ts.dgFrozen);
  // classifier (tied: its gradient adds into the embedding's) and final norm
  k.f32_gemm_nn(ts.dlogits, denseLinear(m.weights.lmHead, "lm_head.weight").ptr, ts.dxn, T, dim, c.vocabSize, 0);
  if (st.lmHeadOffset >= 0) k.f32_gemm_tn(ts.dlogits, ts.xnF, g(st.lmHeadOffset), c.vocabSize, dim, T, 1);
  k.f32_rmsnorm_backward(ts.xs[c.nLayers], m.weights.norm.ptr, ts.dxn, ts.dx, g(st.normOffset), T, dim, c.normEps, 0);
  const half = c.headDim / 2;
  const ropeB = c.ropeLayout === "interleaved" ? k.f32_rope_interleaved_backward : k.f32_rope_half_backward;
  for (let l = c.nLayers - 1; l >= 0; l--) {
    const lw = m.weights.layers[l];
    const ops = st.byLayer[l];
    const A = ts.layers[l];
    const qDim = ops.wq.N;
    const kvDim = ops.wk.N;
    const nHeads = qDim / c.headDim;
    const nKv = kvDim / c.headDim;
    const hidden = ops.wGate.N;
    const norms = st.layerNormOffsets[l];
    // MLP: ts.dx = ∂L/∂xs[l+1] = ∂L/∂(block output) = ∂L/∂xMid (residual part)
    linearB(k, ts, ops.wDown, A.h, ts.dx, ts.dh, T, grads, 0);
    k.f32_silu_mul_backward(A.gate, A.up, ts.dh, ts.dgate, ts.dup, T * hidden);
    linearB(k, ts, ops.wGate, A.xn2, ts.dgate, ts.dxn, T, grads, 0);
    linearB(k, ts, ops.wUp, A.xn2, ts.dup, ts.dxn, T, grads, 1);
    k.f32_rmsnorm_backward(A.xMid, lw.ffnNorm.ptr, ts.dxn, ts.dx, g(norms.ffn), T, dim, c.normEps, 1);
    // attention: ts.dx = ∂L/∂xMid
    linearB(k, ts, ops.wo, A.att, ts.dx, ts.datt, T, grads, 0);
    m.wasm.arena.f32(ts.dk, T * kvDim).fill(0);
    m.wasm.arena.f32(ts.dv, T * kvDim).fill(0);
    k.f32_attention_backward(A.q, A.k, A.v, A.lse, ts.datt, ts.dq, ts.dk, ts.dv, ts.attScratch, nHeads, nKv, c.headDim, T, qDim, kvDim);
    for (let t = 0; t < T; t++) {
      const cs = ts.ropeCos + 4 * t * half;
      const sn = ts.ropeSin + 4 * t * half;
      ropeB(ts.dq + 4 * t * qDim, cs, sn, nHeads, c.headDim);
      ropeB(ts.dk + 4 * t * kvDim, cs, sn, nKv, c.headDim);
    }
    linearB(k, ts, ops.wq, A.xn1, ts.dq, ts.dxn, T, grads, 0);
    linearB(k, ts, ops.wk, A.xn1, ts.dk, ts.dxn, T, grads, 1);
    linearB(k, ts, ops.wv, A.xn1, ts.dv, ts.dxn, T, grads, 1);
    k.f32_rmsnorm_backward(ts.xs[l], lw.attnNorm.ptr, ts.dxn, ts.dx, g(norms.attn), T, dim, c.normEps, 1);
  }
  if (st.embedOffset >= 0) k.f32_embedding_backward(ts.tokens, ts.dx, g(st.embedOffset), T, dim, c.vocabSize);
}
