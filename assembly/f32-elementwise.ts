// f32 element-wise kernels: rmsnorm, softmax, silu·up, add, bias rows, scale, RoPE (two layouts).
//
// Pure functions of pointers and sizes (contract: src/wasm/contract.ts). Pointers need only be 4-byte aligned:
// rows of odd width inside a matrix start anywhere, and v128.load/store allow unaligned addresses.
// Numerics follow llama2.c (run.c) where the model's greedy output depends on them:
//  - rmsnorm: ss = Σx² (sequential, float32), ss = ss/n + eps, ss = 1/sqrt(ss), out = g * (ss * x);
//  - softmax: max, then exp(x - max) summed sequentially (float32), then x /= sum.
import { assertF32Ptr, invRms, ropeHalf, ropeInterleaved } from "./elementwise-common";

/** out[r,:] = g[:] * (x[r,:] / sqrt(mean(x[r,:]²) + eps)), `rows` rows of n. out may alias x. */
export function f32_rmsnorm(x: usize, g: usize, out: usize, rows: i32, n: i32, eps: f32): void {
  assert(rows >= 0 && n >= 0, "f32_rmsnorm: negative size");
  assertF32Ptr(x); assertF32Ptr(g); assertF32Ptr(out);
  if (n == 0) return;
  const rowBytes = <usize>n << 2;
  for (let r = 0; r < rows; r++) {
    const xr = x + <usize>r * rowBytes;
    const or = out + <usize>r * rowBytes;
    const ss = invRms(xr, n, eps);
    const vss = f32x4.splat(ss);
    let j = 0;
    for (; j + 4 <= n; j += 4) {
      const off = <usize>j << 2;
      const vx0123 = v128.load(xr + off);
      const vg0123 = v128.load(g + off);
      v128.store(or + off, f32x4.mul(vg0123, f32x4.mul(vss, vx0123)));
    }
    for (; j < n; j++) {
      const off = <usize>j << 2;
      store<f32>(or + off, load<f32>(g + off) * (ss * load<f32>(xr + off)));
    }
  }
}

/** x[0..n) = softmax(x) in place: subtract the max, exponentiate, divide by the (sequential) sum. */
export function f32_softmax(x: usize, n: i32): void {
  assert(n >= 0, "f32_softmax: negative size");
  assertF32Ptr(x);
  if (n == 0) return;
  let maxVal = load<f32>(x);
  for (let i = 1; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (v > maxVal) maxVal = v;
  }
  let sum: f32 = 0;
  for (let i = 0; i < n; i++) {
    const p = x + (<usize>i << 2);
    const e = Mathf.exp(load<f32>(p) - maxVal);
    store<f32>(p, e);
    sum += e;
  }
  for (let i = 0; i < n; i++) {
    const p = x + (<usize>i << 2);
    store<f32>(p, load<f32>(p) / sum);
  }
}

/** out[i] = silu(gate[i]) * up[i], silu(v) = v * (1 / (1 + exp(-v))) as in llama2.c. out may alias either. */
export function f32_silu_mul(gate: usize, up: usize, out: usize, n: i32): void {
  assert(n >= 0, "f32_silu_mul: negative size");
  assertF32Ptr(gate); assertF32Ptr(up); assertF32Ptr(out);
  for (let i = 0; i < n; i++) {
    const off = <usize>i << 2;
    let v = load<f32>(gate + off);
    v = v * (<f32>1.0 / (<f32>1.0 + Mathf.exp(-v)));
    store<f32>(out + off, v * load<f32>(up + off));
  }
}

/** out[i] = a[i] + b[i]; out may alias a or b. */
export function f32_add(a: usize, b: usize, out: usize, n: i32): void {
  assert(n >= 0, "f32_add: negative size");
  assertF32Ptr(a); assertF32Ptr(b); assertF32Ptr(out);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const off = <usize>i << 2;
    const va0123 = v128.load(a + off);
    const va4567 = v128.load(a + off, 16);
    const vb0123 = v128.load(b + off);
    const vb4567 = v128.load(b + off, 16);
    v128.store(out + off, f32x4.add(va0123, vb0123));
    v128.store(out + off, f32x4.add(va4567, vb4567), 16);
  }
  for (; i < n; i++) {
    const off = <usize>i << 2;
    store<f32>(out + off, load<f32>(a + off) + load<f32>(b + off));
  }
}

/** y[r,:] += b[:] for `rows` rows of n. */
export function f32_add_bias_rows(y: usize, b: usize, rows: i32, n: i32): void {
  assert(rows >= 0 && n >= 0, "f32_add_bias_rows: negative size");
  assertF32Ptr(y); assertF32Ptr(b);
  const rowBytes = <usize>n << 2;
  for (let r = 0; r < rows; r++) {
    f32_add(y + <usize>r * rowBytes, b, y + <usize>r * rowBytes, n);
  }
}

/** x[i] *= s. */
export function f32_scale(x: usize, s: f32, n: i32): void {
  assert(n >= 0, "f32_scale: negative size");
  assertF32Ptr(x);
  const vs = f32x4.splat(s);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = x + (<usize>i << 2);
    v128.store(p, f32x4.mul(v128.load(p), vs));
  }
  for (; i < n; i++) {
    const p = x + (<usize>i << 2);
    store<f32>(p, load<f32>(p) * s);
  }
}

/**
 * RoPE, llama2.c / Meta layout: in each of nHeads heads of headDim, the pair (x[2i], x[2i+1]) becomes
 * (x0·c − x1·s, x0·s + x1·c) with c = cos[i], s = sin[i], i < headDim/2. headDim must be even.
 */
export function f32_rope_interleaved(x: usize, cos: usize, sin: usize, nHeads: i32, headDim: i32): void {
  assert(nHeads >= 0 && headDim >= 0 && (headDim & 1) == 0, "f32_rope_interleaved: bad nHeads/headDim");
  assertF32Ptr(x); assertF32Ptr(cos); assertF32Ptr(sin);
  ropeInterleaved(x, cos, sin, nHeads, headDim, 1);
}

/** RoPE, HF rotate_half layout: (x[i], x[i + headDim/2]) of each head rotated by (cos[i], sin[i]). */
export function f32_rope_half(x: usize, cos: usize, sin: usize, nHeads: i32, headDim: i32): void {
  assert(nHeads >= 0 && headDim >= 0 && (headDim & 1) == 0, "f32_rope_half: bad nHeads/headDim");
  assertF32Ptr(x); assertF32Ptr(cos); assertF32Ptr(sin);
  ropeHalf(x, cos, sin, nHeads, headDim, 1);
}
