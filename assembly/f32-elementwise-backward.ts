// Backward of the element-wise kernels of f32-elementwise.ts (rmsnorm, silu·up, RoPE in both layouts), of the
// embedding lookup (scatter-add), and the group sums of SLoRB (src/train/slorb.ts).
//
// Conventions: `d*` are gradients of a scalar loss; "accumulate" kernels add into their output (a residual
// stream's gradient, or a weight gradient summed over rows and micro-batches). Every sum runs in a fixed
// order (rows in order, then columns in order), so results are deterministic. Pointers need 4-byte alignment.
import { assertF32Ptr, invRms, ropeHalf, ropeInterleaved } from "./elementwise-common";

/**
 * RMSNorm backward, y = g ⊙ x·r with r = 1/sqrt(mean(x²) + eps) (computed as the forward does, in f32):
 *   dx (+)= r·(g⊙dy) − (r³/n)·x·Σ_j(g_j·dy_j·x_j)        (written, or added when accumulate = 1)
 *   dg += Σ_rows dy ⊙ x·r
 * x, dy, dx: `rows` rows of n; dx may not alias dy.
 */
export function f32_rmsnorm_backward(x: usize, g: usize, dy: usize, dx: usize, dg: usize, rows: i32, n: i32, eps: f32, accumulate: i32): void {
  assert(rows >= 0 && n >= 0, "f32_rmsnorm_backward: negative size");
  assert(accumulate == 0 || accumulate == 1, "f32_rmsnorm_backward: accumulate must be 0 or 1");
  assertF32Ptr(x); assertF32Ptr(g); assertF32Ptr(dy); assertF32Ptr(dx); assertF32Ptr(dg);
  if (n == 0) return;
  const rowBytes = <usize>n << 2;
  for (let row = 0; row < rows; row++) {
    const xr = x + <usize>row * rowBytes;
    const dyr = dy + <usize>row * rowBytes;
    const dxr = dx + <usize>row * rowBytes;
    // r exactly as f32_rmsnorm computes it
    const r = invRms(xr, n, eps);
    let dot: f32 = 0;
    for (let j = 0; j < n; j++) {
      const off = <usize>j << 2;
      dot += load<f32>(g + off) * load<f32>(dyr + off) * load<f32>(xr + off);
    }
    const c: f32 = r * r * r * dot / <f32>n;
    const vr = f32x4.splat(r);
    const vc = f32x4.splat(c);
    let j = 0;
    for (; j + 4 <= n; j += 4) {
      const off = <usize>j << 2;
      const vx0123 = v128.load(xr + off);
      const vdy0123 = v128.load(dyr + off);
      let vdx0123 = f32x4.sub(f32x4.mul(vr, f32x4.mul(v128.load(g + off), vdy0123)), f32x4.mul(vc, vx0123));
      if (accumulate) vdx0123 = f32x4.add(v128.load(dxr + off), vdx0123);
      v128.store(dxr + off, vdx0123);
      v128.store(dg + off, f32x4.add(v128.load(dg + off), f32x4.mul(vdy0123, f32x4.mul(vx0123, vr))));
    }
    for (; j < n; j++) {
      const off = <usize>j << 2;
      const xv = load<f32>(xr + off);
      const dyv = load<f32>(dyr + off);
      let d = r * (load<f32>(g + off) * dyv) - c * xv;
      if (accumulate) d = load<f32>(dxr + off) + d;
      store<f32>(dxr + off, d);
      store<f32>(dg + off, load<f32>(dg + off) + dyv * (xv * r));
    }
  }
}

/**
 * SwiGLU backward, h = silu(a)·u with silu(a) = a·σ(a):
 *   da = dh·u·σ(a)·(1 + a·(1 − σ(a))),   du = dh·a·σ(a).
 * da and du are written (they may alias dh, not a or u).
 */
export function f32_silu_mul_backward(gate: usize, up: usize, dh: usize, dgate: usize, dup: usize, n: i32): void {
  assert(n >= 0, "f32_silu_mul_backward: negative size");
  assertF32Ptr(gate); assertF32Ptr(up); assertF32Ptr(dh); assertF32Ptr(dgate); assertF32Ptr(dup);
  for (let i = 0; i < n; i++) {
    const off = <usize>i << 2;
    const a = load<f32>(gate + off);
    const u = load<f32>(up + off);
    const d = load<f32>(dh + off);
    const s: f32 = <f32>1.0 / (<f32>1.0 + Mathf.exp(-a));
    store<f32>(dgate + off, d * u * s * (<f32>1.0 + a * (<f32>1.0 - s)));
    store<f32>(dup + off, d * a * s);
  }
}

/**
 * RoPE backward, llama2.c / Meta layout: the transpose of the rotation, (dy0, dy1) → (dy0·c + dy1·s, −dy0·s + dy1·c),
 * in place on dx (nHeads heads of headDim).
 */
export function f32_rope_interleaved_backward(dx: usize, cos: usize, sin: usize, nHeads: i32, headDim: i32): void {
  assert(nHeads >= 0 && headDim >= 0 && (headDim & 1) == 0, "f32_rope_interleaved_backward: bad nHeads/headDim");
  assertF32Ptr(dx); assertF32Ptr(cos); assertF32Ptr(sin);
  ropeInterleaved(dx, cos, sin, nHeads, headDim, -1);
}

/** RoPE backward, HF rotate_half layout: the transpose rotation of (dx[i], dx[i + headDim/2]), in place. */
export function f32_rope_half_backward(dx: usize, cos: usize, sin: usize, nHeads: i32, headDim: i32): void {
  assert(nHeads >= 0 && headDim >= 0 && (headDim & 1) == 0, "f32_rope_half_backward: bad nHeads/headDim");
  assertF32Ptr(dx); assertF32Ptr(cos); assertF32Ptr(sin);
  ropeHalf(dx, cos, sin, nHeads, headDim, -1);
}

/** Embedding backward: dE[tokens[t], :] += dx[t, :] for t in order (a token seen twice adds twice). tokens: i32. */
export function f32_embedding_backward(tokens: usize, dx: usize, dE: usize, T: i32, dim: i32, vocab: i32): void {
  assert(T >= 0 && dim >= 0 && vocab >= 0, "f32_embedding_backward: negative size");
  assertF32Ptr(tokens); assertF32Ptr(dx); assertF32Ptr(dE);
  const rowBytes = <usize>dim << 2;
  for (let t = 0; t < T; t++) {
    const id = load<i32>(tokens + (<usize>t << 2));
    assert(id >= 0 && id < vocab, "f32_embedding_backward: token id outside the vocabulary");
    const src = dx + <usize>t * rowBytes;
    const dst = dE + <usize>id * rowBytes;
    let j = 0;
    for (; j + 4 <= dim; j += 4) {
      const off = <usize>j << 2;
      v128.store(dst + off, f32x4.add(v128.load(dst + off), v128.load(src + off)));
    }
    for (; j < dim; j++) {
      const off = <usize>j << 2;
      store<f32>(dst + off, load<f32>(dst + off) + load<f32>(src + off));
    }
  }
}

/**
 * SLoRB input projection (AST's fixed x_proj): s[t, q] = Σ_{j in group q} x[t, j], groups of k consecutive inputs
 * (the last one shorter when k does not divide n). x: rows of n; s: rows of ceil(n/k).
 */
export function f32_group_sum(x: usize, s: usize, rows: i32, n: i32, k: i32): void {
  assert(rows >= 0 && n >= 0 && k > 0, "f32_group_sum: bad sizes");
  assertF32Ptr(x); assertF32Ptr(s);
  const groups = (n + k - 1) / k;
  for (let r = 0; r < rows; r++) {
    const xr = x + (<usize>r * <usize>n << 2);
    const sr = s + (<usize>r * <usize>groups << 2);
    for (let q = 0; q < groups; q++) {
      const j1 = min(n, (q + 1) * k);
      let acc: f32 = 0;
      for (let j = q * k; j < j1; j++) acc += load<f32>(xr + (<usize>j << 2));
      store<f32>(sr + (<usize>q << 2), acc);
    }
  }
}

/** Transpose of f32_group_sum: dx[t, j] += ds[t, group(j)]. */
export function f32_group_expand_add(ds: usize, dx: usize, rows: i32, n: i32, k: i32): void {
  assert(rows >= 0 && n >= 0 && k > 0, "f32_group_expand_add: bad sizes");
  assertF32Ptr(ds); assertF32Ptr(dx);
  const groups = (n + k - 1) / k;
  for (let r = 0; r < rows; r++) {
    const xr = dx + (<usize>r * <usize>n << 2);
    const sr = ds + (<usize>r * <usize>groups << 2);
    for (let j = 0; j < n; j++) {
      const p = xr + (<usize>j << 2);
      store<f32>(p, load<f32>(p) + load<f32>(sr + (<usize>(j / k) << 2)));
    }
  }
}
