// FISTA for the per-operator lasso of FISTAPruner (Zhao et al. 2024):
//   min_W  f(W) + Σ_r λ_r ‖W_r‖₁,   f(W) = tr(W H Wᵀ) − 2 tr(W Bᵀ) + const,   ∇f = 2(W·H − B),
// with W [rows, cols], H [cols, cols] symmetric, B [rows, cols]. The problem separates by rows, so every
// row has its own λ_r and its own momentum state t_r (adaptive restart is per row).
//
// One iteration (Beck & Teboulle 2009, FISTA with the gradient restart of O'Donoghue & Candès 2015):
//   G      = Y·H                                   (f32_fista_wh in gemm.ts, the O(rows·cols²) part)
//   W⁺     = S_{ηλ}(Y − 2η(G − B)) [on mask]      (soft threshold; the mask fixes a support for the refit: +0.0 off it)
//   restart if ⟨Y − W⁺, W⁺ − W⟩ > 0 (the momentum points uphill): t = 1, Y = W⁺
//   else    t⁺ = (1 + √(1 + 4t²))/2,  Y = W⁺ + (t − 1)/t⁺ · (W⁺ − W)
// f32_fista_step does everything after G, one row at a time (the row stays in L1 between its two passes).
// Soft threshold as z − clamp(z, −θ, θ): exactly 0 when |z| ≤ θ.
//
// Summation order: the restart dot product is accumulated in 4 lanes over j ≡ lane (mod 4), reduced as
// (l0 + l1) + (l2 + l3), then the scalar tail in order — the same for every call.
import { hsum4 } from "./simd";

/**
 * One FISTA step after G = Y·H (see the file header). y, g, b, wOld, wNew: [rows, cols]; lam: [rows] λ_r;
 * t: [rows] momentum state (1 at the start); mask: [rows, cols] 0/1 or 0 for none; eta: the step 1/L.
 * On return wNew holds W⁺ and y the next extrapolation point; the host swaps wOld and wNew.
 */
export function f32_fista_step(
  y: usize, g: usize, b: usize, wOld: usize, wNew: usize, lam: usize, t: usize, mask: usize,
  rows: i32, cols: i32, eta: f32,
): void {
  const rowB = <usize>cols << 2;
  const c4 = cols & ~3;
  const twoEta: f32 = 2 * eta;
  const v2eta = f32x4.splat(twoEta);
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * rowB;
    const theta: f32 = eta * load<f32>(lam + (<usize>r << 2));
    const vtheta = f32x4.splat(theta);
    const vntheta = f32x4.splat(-theta);
    let vdot = f32x4.splat(0);
    let j = 0;
    for (; j < c4; j += 4) {
      const o = off + (<usize>j << 2);
      const vy = v128.load(y + o);
      const vz = f32x4.sub(vy, f32x4.mul(v2eta, f32x4.sub(v128.load(g + o), v128.load(b + o))));
      let vw = f32x4.sub(vz, f32x4.min(f32x4.max(vz, vntheta), vtheta));
      if (mask) vw = v128.and(vw, f32x4.ne(v128.load(mask + o), f32x4.splat(0))); // +0.0 off the support
      v128.store(wNew + o, vw);
      vdot = f32x4.add(vdot, f32x4.mul(f32x4.sub(vy, vw), f32x4.sub(vw, v128.load(wOld + o))));
    }
    let dot = hsum4(vdot);
    for (; j < cols; j++) {
      const o = off + (<usize>j << 2);
      const yv = load<f32>(y + o);
      const z = yv - twoEta * (load<f32>(g + o) - load<f32>(b + o));
      let w = z - min(max(z, -theta), theta);
      if (mask && load<f32>(mask + o) == 0) w = 0;
      store<f32>(wNew + o, w);
      dot += (yv - w) * (w - load<f32>(wOld + o));
    }
    const tp = t + (<usize>r << 2);
    const tk = load<f32>(tp);
    let beta: f32 = 0;
    if (dot > 0) {
      store<f32>(tp, 1);
    } else {
      const tn: f32 = (1 + sqrt<f32>(1 + 4 * tk * tk)) / 2;
      beta = (tk - 1) / tn;
      store<f32>(tp, tn);
    }
    const vbeta = f32x4.splat(beta);
    j = 0;
    for (; j < c4; j += 4) {
      const o = off + (<usize>j << 2);
      const vw = v128.load(wNew + o);
      v128.store(y + o, f32x4.add(vw, f32x4.mul(vbeta, f32x4.sub(vw, v128.load(wOld + o)))));
    }
    for (; j < cols; j++) {
      const o = off + (<usize>j << 2);
      const w = load<f32>(wNew + o);
      store<f32>(y + o, w + beta * (w - load<f32>(wOld + o)));
    }
  }
}

/** out[r] = Σ_j a[r,j]·b[r,j] (f32, lanes then tail as in the header). */
export function f32_row_dot(a: usize, b: usize, out: usize, rows: i32, cols: i32): void {
  const rowB = <usize>cols << 2;
  const c4 = cols & ~3;
  for (let r = 0; r < rows; r++) {
    const off = <usize>r * rowB;
    let vacc = f32x4.splat(0);
    let j = 0;
    for (; j < c4; j += 4) {
      const o = off + (<usize>j << 2);
      vacc = f32x4.add(vacc, f32x4.mul(v128.load(a + o), v128.load(b + o)));
    }
    let s = hsum4(vacc);
    for (; j < cols; j++) {
      const o = off + (<usize>j << 2);
      s += load<f32>(a + o) * load<f32>(b + o);
    }
    store<f32>(out + (<usize>r << 2), s);
  }
}
