// Causal self-attention over a whole sequence (positions 0..T-1) for training, grouped-query aware: a forward
// that also keeps each row's log-sum-exp, and its backward. f32_attention (f32-attention.ts) serves inference
// one position at a time; with the tiny heads of small models (headDim 8) its per-position softmax (scalar
// exp, three passes) dominates a training step, so here the exponentials run 4 lanes at a time (exp4) and
// the backward rebuilds p from the stored log-sum-exp in one pass.
//
// Per query head h (kv head h / (nHeads/nKvHeads)) and query position t, with d = headDim:
//   s_j = q_t·k_j / sqrt(d) (j ≤ t),  p_j = exp(s_j − lse_t)   — lse_t from the forward, scores recomputed
//   dp_j = dO_t·v_j,   ds_j = p_j·(dp_j − Σ_i p_i·dp_i)
//   dq_t = Σ_j ds_j·k_j / sqrt(d),   dk_j += ds_j·q_t / sqrt(d),   dv_j += p_j·dO_t
// Recomputing p costs one more q·k pass but needs no (T x T) probabilities stored per head and layer.
// lse is [nHeads][T] floats.
//
// Layout (floats): q, dout, dq are [T][qStride] with head h at h*headDim; k, v, dk, dv are [T][kvStride] with
// kv head g at g*headDim. dq is written; dk and dv are *added to* (the caller zeroes them): query heads of one
// group add into the same kv head, in head order then t order — deterministic. scratch: 2*(T+3) floats.

// @ts-ignore: decorator
@inline
function dot(a: usize, b: usize, n: i32): f32 {
  // the same reduction order as f32-attention.ts's dot
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

/**
 * e^x on 4 lanes, Cephes expf (x = n·ln2 + r, |r| ≤ ln2/2, degree-6 polynomial, ×2^n through the exponent
 * bits): relative error ~2 ulp on [−87, 88]; below −87 it returns 0 (softmax arguments here are ≤ 0).
 */
// @ts-ignore: decorator
@inline
function exp4(x: v128): v128 {
  const under = f32x4.lt(x, f32x4.splat(-87.0));
  x = f32x4.min(x, f32x4.splat(88.3762626647949));
  x = f32x4.max(x, f32x4.splat(-87.0));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  const r2 = f32x4.mul(r, r);
  p = f32x4.add(f32x4.add(f32x4.mul(p, r2), r), f32x4.splat(1.0));
  const pow2n = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return v128.andnot(f32x4.mul(p, pow2n), under);
}

/**
 * out_t = Σ_{j ≤ t} softmax(q_t·k_j / sqrt(d))_j · v_j for every head and t < T; lse[h*T + t] = log Σ_j e^{s_j}.
 * Layout as f32_attention_backward; scratch: T floats (plus 3 of padding: exp4 reads whole lanes).
 */
export function f32_attention_causal(
  q: usize, k: usize, v: usize, out: usize, lse: usize, scratch: usize,
  nHeads: i32, nKvHeads: i32, headDim: i32, T: i32, qStride: i32, kvStride: i32,
): void {
  assert(nHeads >= 0 && headDim >= 0 && T >= 0, "f32_attention_causal: negative size");
  assert(nKvHeads > 0 && nHeads % nKvHeads == 0, "f32_attention_causal: nHeads must be a multiple of nKvHeads");
  assert(qStride >= nHeads * headDim && kvStride >= nKvHeads * headDim, "f32_attention_causal: stride too small");
  assert(((q | k | v | out | lse | scratch) & 3) == 0, "f32_attention_causal: pointer not 4-byte aligned");
  const group = nHeads / nKvHeads;
  const invSqrt: f32 = <f32>1.0 / Mathf.sqrt(<f32>headDim);
  const headBytes = <usize>headDim << 2;
  const qsBytes = <usize>qStride << 2;
  const kvsBytes = <usize>kvStride << 2;
  const s = scratch;
  for (let h = 0; h < nHeads; h++) {
    const kvOff = <usize>(h / group) * headBytes;
    const hOff = <usize>h * headBytes;
    for (let t = 0; t < T; t++) {
      const qt = q + <usize>t * qsBytes + hOff;
      const ot = out + <usize>t * qsBytes + hOff;
      const n = t + 1;
      let m: f32 = -Infinity;
      for (let j = 0; j < n; j++) {
        const sj = dot(qt, k + <usize>j * kvsBytes + kvOff, headDim) * invSqrt;
        store<f32>(s + (<usize>j << 2), sj);
        m = max(m, sj);
      }
      const vm = f32x4.splat(m);
      let vsum = f32x4.splat(0);
      let j = 0;
      for (; j + 4 <= n; j += 4) {
        const p = s + (<usize>j << 2);
        const e = exp4(f32x4.sub(v128.load(p), vm));
        v128.store(p, e);
        vsum = f32x4.add(vsum, e);
      }
      let sum = (f32x4.extract_lane(vsum, 0) + f32x4.extract_lane(vsum, 1)) + (f32x4.extract_lane(vsum, 2) + f32x4.extract_lane(vsum, 3));
      if (j < n) {
        const p = s + (<usize>j << 2);
        const e = exp4(f32x4.sub(v128.load(p), vm));
        for (let i = 0; j + i < n; i++) {
          let ei: f32;
          switch (i) {
            case 0: ei = f32x4.extract_lane(e, 0); break;
            case 1: ei = f32x4.extract_lane(e, 1); break;
            default: ei = f32x4.extract_lane(e, 2); break;
          }
          store<f32>(p + (<usize>i << 2), ei);
          sum += ei;
        }
      }
      store<f32>(lse + ((<usize>h * <usize>T + <usize>t) << 2), m + Mathf.log(sum));
      const inv: f32 = <f32>1.0 / sum;
      memory.fill(ot, 0, headBytes);
      for (let jj = 0; jj < n; jj++) {
        axpy(ot, load<f32>(s + (<usize>jj << 2)) * inv, v + <usize>jj * kvsBytes + kvOff, headDim);
      }
    }
  }
}

export function f32_attention_backward(
  q: usize, k: usize, v: usize, lse: usize, dout: usize, dq: usize, dk: usize, dv: usize, scratch: usize,
  nHeads: i32, nKvHeads: i32, headDim: i32, T: i32, qStride: i32, kvStride: i32,
): void {
  assert(nHeads >= 0 && headDim >= 0 && T >= 0, "f32_attention_backward: negative size");
  assert(nKvHeads > 0 && nHeads % nKvHeads == 0, "f32_attention_backward: nHeads must be a multiple of nKvHeads");
  assert(qStride >= nHeads * headDim && kvStride >= nKvHeads * headDim, "f32_attention_backward: stride too small");
  assert(((q | k | v | lse | dout | dq | dk | dv | scratch) & 3) == 0, "f32_attention_backward: pointer not 4-byte aligned");
  const group = nHeads / nKvHeads;
  const invSqrt: f32 = <f32>1.0 / Mathf.sqrt(<f32>headDim);
  const headBytes = <usize>headDim << 2;
  const qsBytes = <usize>qStride << 2;
  const kvsBytes = <usize>kvStride << 2;
  const p = scratch;
  const dp = scratch + (<usize>(T + 3) << 2);
  for (let h = 0; h < nHeads; h++) {
    const kvOff = <usize>(h / group) * headBytes;
    const hOff = <usize>h * headBytes;
    for (let t = 0; t < T; t++) {
      const qt = q + <usize>t * qsBytes + hOff;
      const dot_ = dout + <usize>t * qsBytes + hOff;
      const dqt = dq + <usize>t * qsBytes + hOff;
      const n = t + 1;
      for (let j = 0; j < n; j++) {
        store<f32>(p + (<usize>j << 2), dot(qt, k + <usize>j * kvsBytes + kvOff, headDim) * invSqrt);
      }
      const vl = f32x4.splat(load<f32>(lse + ((<usize>h * <usize>T + <usize>t) << 2)));
      for (let j = 0; j < n; j += 4) {
        const pj = p + (<usize>j << 2);
        v128.store(pj, exp4(f32x4.sub(v128.load(pj), vl))); // lanes past n are scratch padding
      }
      let sum: f32 = 0;
      for (let j = 0; j < n; j++) {
        const d = dot(dot_, v + <usize>j * kvsBytes + kvOff, headDim);
        store<f32>(dp + (<usize>j << 2), d);
        sum += load<f32>(p + (<usize>j << 2)) * d;
      }
      memory.fill(dqt, 0, headBytes);
      for (let j = 0; j < n; j++) {
        const pj = load<f32>(p + (<usize>j << 2));
        const ds = pj * (load<f32>(dp + (<usize>j << 2)) - sum) * invSqrt;
        const rowOff = <usize>j * kvsBytes + kvOff;
        axpy(dqt, ds, k + rowOff, headDim);
        axpy(dk + rowOff, ds, qt, headDim);
        axpy(dv + rowOff, pj, dot_, headDim);
      }
    }
  }
}
