// Helpers shared by the element-wise kernels (f32-elementwise.ts) and their backward (f32-elementwise-backward.ts):
// the pointer check, RMSNorm's inverse root mean square, and the RoPE rotations. Not re-exported by index.ts:
// internal, inlined into their callers.

// @ts-ignore: decorator
@inline
export function assertF32Ptr(p: usize): void {
  assert((p & 3) == 0, "f32 pointer not 4-byte aligned");
}

/**
 * 1/sqrt(Σx²/n + eps) of the n floats at xr, as llama2.c's rmsnorm computes it: a sequential float32 sum of
 * squares (so greedy decoding matches run.c), then the division, eps and the reciprocal root.
 */
// @ts-ignore: decorator
@inline
export function invRms(xr: usize, n: i32, eps: f32): f32 {
  let ss: f32 = 0;
  for (let j = 0; j < n; j++) {
    const v = load<f32>(xr + (<usize>j << 2));
    ss += v * v;
  }
  ss = ss / <f32>n;
  ss += eps;
  return <f32>1.0 / Mathf.sqrt(ss);
}

// RoPE:
// `sign` = 1 rotates by +θ (forward); −1 by −θ, the transpose (backward). Multiplying sin by −1 is exact, and
// x·c − y·(−s) = x·c + y·s, x·(−s) + y·c = y·c − x·s hold bit for bit in IEEE arithmetic, so the backward gives
// the same bytes as a separately written transpose.

/** Interleaved pairs (x[2i], x[2i+1]) of each head → (x0·c − x1·σs, x0·σs + x1·c). */
// @ts-ignore: decorator
@inline
export function ropeInterleaved(x: usize, cos: usize, sin: usize, nHeads: i32, headDim: i32, sign: f32): void {
  const half = headDim >> 1;
  for (let h = 0; h < nHeads; h++) {
    const xh = x + (<usize>h * <usize>headDim << 2);
    for (let i = 0; i < half; i++) {
      const p = xh + (<usize>i << 3);
      const c = load<f32>(cos + (<usize>i << 2));
      const s = load<f32>(sin + (<usize>i << 2)) * sign;
      const x0 = load<f32>(p);
      const x1 = load<f32>(p, 4);
      store<f32>(p, x0 * c - x1 * s);
      store<f32>(p, x0 * s + x1 * c, 4);
    }
  }
}

/** HF rotate_half pairs (x[i], x[i + headDim/2]) of each head → (x·c − y·σs, x·σs + y·c). */
// @ts-ignore: decorator
@inline
export function ropeHalf(x: usize, cos: usize, sin: usize, nHeads: i32, headDim: i32, sign: f32): void {
  const half = headDim >> 1;
  const halfBytes = <usize>half << 2;
  const vsign = f32x4.splat(sign);
  for (let h = 0; h < nHeads; h++) {
    const xlo = x + (<usize>h * <usize>headDim << 2);
    const xhi = xlo + halfBytes;
    let i = 0;
    for (; i + 4 <= half; i += 4) {
      const off = <usize>i << 2;
      const vc0123 = v128.load(cos + off);
      const vs0123 = f32x4.mul(v128.load(sin + off), vsign);
      const vx0123 = v128.load(xlo + off);
      const vy0123 = v128.load(xhi + off);
      v128.store(xlo + off, f32x4.sub(f32x4.mul(vx0123, vc0123), f32x4.mul(vy0123, vs0123)));
      v128.store(xhi + off, f32x4.add(f32x4.mul(vx0123, vs0123), f32x4.mul(vy0123, vc0123)));
    }
    for (; i < half; i++) {
      const off = <usize>i << 2;
      const c = load<f32>(cos + off);
      const s = load<f32>(sin + off) * sign;
      const x0 = load<f32>(xlo + off);
      const x1 = load<f32>(xhi + off);
      store<f32>(xlo + off, x0 * c - x1 * s);
      store<f32>(xhi + off, x0 * s + x1 * c);
    }
  }
}
