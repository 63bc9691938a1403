// f32 attention for one query position (decode step) against T cached positions, grouped-query aware.
// Follows llama2.c's forward(): score_t = (q·k_t) / sqrt(headDim); softmax (max-subtracted, sequential sum);
// out = Σ_t score_t · v_t accumulated in t order. Deterministic.
//
// Layout (element offsets): q and out are [nHeads*headDim]; key/value row t of kv head h starts at
// t*kvStride + h*headDim in k / v; `scores` is host scratch of T floats. Pointers need only 4-byte alignment.
import { f32_softmax } from "./f32-elementwise";

// @ts-ignore: decorator
@inline
function dot(a: usize, b: usize, n: i32): f32 {
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

/** out[h] = softmax((q[h]·K[kvh]ᵀ) / sqrt(headDim)) · V[kvh] for each query head h, kvh = h / (nHeads/nKvHeads). */
export function f32_attention(
  q: usize, k: usize, v: usize, out: usize, scores: usize,
  nHeads: i32, nKvHeads: i32, headDim: i32, T: i32, kvStride: i32,
): void {
  assert(nHeads >= 0 && headDim >= 0 && T >= 0 && kvStride >= 0, "f32_attention: negative size");
  assert(nKvHeads > 0 && nHeads % nKvHeads == 0, "f32_attention: nHeads must be a multiple of nKvHeads");
  assert(kvStride >= nKvHeads * headDim, "f32_attention: kvStride < nKvHeads*headDim");
  assert(((q | k | v | out | scores) & 3) == 0, "f32_attention: pointer not 4-byte aligned");
  const group = nHeads / nKvHeads;
  const sqrtHd: f32 = Mathf.sqrt(<f32>headDim);
  const headBytes = <usize>headDim << 2;
  const strideBytes = <usize>kvStride << 2;
  const hd4 = headDim & ~3;
  for (let h = 0; h < nHeads; h++) {
    const qh = q + <usize>h * headBytes;
    const oh = out + <usize>h * headBytes;
    const kvOff = <usize>(h / group) * headBytes;
    // scores
    for (let t = 0; t < T; t++) {
      const kt = k + <usize>t * strideBytes + kvOff;
      store<f32>(scores + (<usize>t << 2), dot(qh, kt, headDim) / sqrtHd);
    }
    f32_softmax(scores, T);
    // out = Σ_t a_t v_t, in t order
    memory.fill(oh, 0, headBytes);
    for (let t = 0; t < T; t++) {
      const vt = v + <usize>t * strideBytes + kvOff;
      const a = load<f32>(scores + (<usize>t << 2));
      const va = f32x4.splat(a);
      for (let off: usize = 0, end = <usize>hd4 << 2; off < end; off += 16) {
        v128.store(oh + off, f32x4.add(v128.load(oh + off), f32x4.mul(va, v128.load(vt + off))));
      }
      for (let i = hd4; i < headDim; i++) {
        const off = <usize>i << 2;
        store<f32>(oh + off, load<f32>(oh + off) + a * load<f32>(vt + off));
      }
    }
  }
}
