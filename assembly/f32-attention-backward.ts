// Backward of causal self-attention over a whole sequence (positions 0..T-1), grouped-query aware: the
// training counterpart of f32_attention (f32-attention.ts), which the forward pass calls once per position.
//
// Per query head h (kv head h / (nHeads/nKvHeads)) and query position t, with d = headDim:
//   s_j = q_t·k_j / sqrt(d) (j ≤ t),  p = softmax(s)   — recomputed exactly as the forward computes them
//   dp_j = dO_t·v_j,   ds_j = p_j·(dp_j − Σ_i p_i·dp_i)
//   dq_t = Σ_j ds_j·k_j / sqrt(d),   dk_j += ds_j·q_t / sqrt(d),   dv_j += p_j·dO_t
// Recomputing p costs one more q·k pass but needs no (T x T) probabilities stored per head and layer.
//
// Layout (floats): q, dout, dq are [T][qStride] with head h at h*headDim; k, v, dk, dv are [T][kvStride] with
// kv head g at g*headDim. dq is written; dk and dv are *added to* (the caller zeroes them): query heads of one
// group add into the same kv head, in head order then t order — deterministic. scratch: 2*T floats.
import { f32_softmax } from "./f32-elementwise";

// @ts-ignore: decorator
@inline
function dot(a: usize, b: usize, n: i32): f32 {
  // the same reduction order as f32-attention.ts's dot, so the recomputed scores are bit-identical
  const n4 = n & ~3;
  let vacc0123 = f32x4.splat(0);
  for (let off: usize = 0, end = <usize>n4 << 2; off < end; off += 16) {
    vacc0123 = f32x4.add(vacc0123, f32x4.mul(v128.load(a + off), v128.load(b + off)));
  }
  let s = (f32x4.extract_lane(vacc0123, 0) + f32x4.extract_lane(vacc0123, 1)) +
    (f32x4.extract_lane(vacc0123, 2) + f32x4.extract_lane(vacc0123, 3));
  for (let i = n4; i < n; i++) {
    const off = <usize>i << 2;
    s += load<f32>(a + off) * load<f32>(b + off);
  }
  return s;
}

/** y[0:n] += a·x[0:n] */
// @ts-ignore: decorator
@inline
function axpy(y: usize, a: f32, x: usize, n: i32): void {
  const n4 = n & ~3;
  const va = f32x4.splat(a);
  for (let off: usize = 0, end = <usize>n4 << 2; off < end; off += 16) {
    v128.store(y + off, f32x4.add(v128.load(y + off), f32x4.mul(va, v128.load(x + off))));
  }
  for (let i = n4; i < n; i++) {
    const off = <usize>i << 2;
    store<f32>(y + off, load<f32>(y + off) + a * load<f32>(x + off));
  }
}

export function f32_attention_backward(
  q: usize, k: usize, v: usize, dout: usize, dq: usize, dk: usize, dv: usize, scratch: usize,
  nHeads: i32, nKvHeads: i32, headDim: i32, T: i32, qStride: i32, kvStride: i32,
): void {
  assert(nHeads >= 0 && headDim >= 0 && T >= 0, "f32_attention_backward: negative size");
  assert(nKvHeads > 0 && nHeads % nKvHeads == 0, "f32_attention_backward: nHeads must be a multiple of nKvHeads");
  assert(qStride >= nHeads * headDim && kvStride >= nKvHeads * headDim, "f32_attention_backward: stride too small");
  assert(((q | k | v | dout | dq | dk | dv | scratch) & 3) == 0, "f32_attention_backward: pointer not 4-byte aligned");
  const group = nHeads / nKvHeads;
  const sqrtHd: f32 = Mathf.sqrt(<f32>headDim);
  const headBytes = <usize>headDim << 2;
  const qsBytes = <usize>qStride << 2;
  const kvsBytes = <usize>kvStride << 2;
  const p = scratch;
  const dp = scratch + (<usize>T << 2);
  for (let h = 0; h < nHeads; h++) {
    const kvOff = <usize>(h / group) * headBytes;
    const hOff = <usize>h * headBytes;
    for (let t = 0; t < T; t++) {
      const qt = q + <usize>t * qsBytes + hOff;
      const dot_ = dout + <usize>t * qsBytes + hOff;
      const dqt = dq + <usize>t * qsBytes + hOff;
      const n = t + 1;
      for (let j = 0; j < n; j++) {
        store<f32>(p + (<usize>j << 2), dot(qt, k + <usize>j * kvsBytes + kvOff, headDim) / sqrtHd);
      }
      f32_softmax(p, n);
      let sum: f32 = 0;
      for (let j = 0; j < n; j++) {
        const d = dot(dot_, v + <usize>j * kvsBytes + kvOff, headDim);
        store<f32>(dp + (<usize>j << 2), d);
        sum += load<f32>(p + (<usize>j << 2)) * d;
      }
      memory.fill(dqt, 0, headBytes);
      for (let j = 0; j < n; j++) {
        const pj = load<f32>(p + (<usize>j << 2));
        const ds = pj * (load<f32>(dp + (<usize>j << 2)) - sum) / sqrtHd;
        const rowOff = <usize>j * kvsBytes + kvOff;
        axpy(dqt, ds, k + rowOff, headDim);
        axpy(dk + rowOff, ds, qt, headDim);
        axpy(dv + rowOff, pj, dot_, headDim);
      }
    }
  }
}
