// Losses on logits and their gradients: cross-entropy against the next token, and the distillation term
// KL(teacher ‖ student) at temperature τ. Each returns its loss summed over rows (f64) and writes (or adds,
// accumulate = 1) `scale` times the gradient w.r.t. the student logits z into dz.
//
//   CE_t  = −log softmax(z_t)[y_t],                   ∂CE_t/∂z_t = softmax(z_t) − onehot(y_t)
//   KL_t  = τ²·Σ_v p̂_t(v)·(log p̂_t(v) − log p_t(v)),  p̂ = softmax(z_teacher/τ), p = softmax(z/τ)
//           ∂KL_t/∂z_t = τ·(p − p̂)
// The τ² factor is AST's (sparse_modeling.py, Distill_Model.kl_loss: F.kl_div(log_softmax(s/τ), log_softmax(t/τ),
// log_target=True, reduction="sum")·τ²/tokens): it keeps the gradient's size independent of τ (Hinton et al. 2015).
// Probabilities are float32 (as the forward's softmax); the logs and loss sums are float64.

// @ts-ignore: decorator
@inline
function rowMax(z: usize, V: i32, inv: f32): f32 {
  let m = load<f32>(z) * inv;
  for (let i = 1; i < V; i++) {
    const v = load<f32>(z + (<usize>i << 2)) * inv;
    if (v > m) m = v;
  }
  return m;
}

/**
 * Cross-entropy of `rows` rows of V logits against targets (i32; a negative target skips the row: no loss,
 * zero gradient). Returns Σ CE; dz (+)= scale·(softmax(z) − onehot(y)).
 */
export function f32_cross_entropy_backward(z: usize, targets: usize, dz: usize, rows: i32, V: i32, scale: f32, accumulate: i32): f64 {
  assert(rows >= 0 && V > 0, "f32_cross_entropy_backward: bad sizes");
  assert(accumulate == 0 || accumulate == 1, "f32_cross_entropy_backward: accumulate must be 0 or 1");
  assert(((z | targets | dz) & 3) == 0, "f32_cross_entropy_backward: pointer not 4-byte aligned");
  const rowBytes = <usize>V << 2;
  let loss: f64 = 0;
  for (let r = 0; r < rows; r++) {
    const zr = z + <usize>r * rowBytes;
    const dr = dz + <usize>r * rowBytes;
    const y = load<i32>(targets + (<usize>r << 2));
    if (y < 0) {
      if (!accumulate) memory.fill(dr, 0, rowBytes);
      continue;
    }
    assert(y < V, "f32_cross_entropy_backward: target outside the vocabulary");
    const m = rowMax(zr, V, 1);
    let sum: f64 = 0;
    for (let i = 0; i < V; i++) sum += <f64>Mathf.exp(load<f32>(zr + (<usize>i << 2)) - m);
    loss += <f64>m + Math.log(sum) - <f64>load<f32>(zr + (<usize>y << 2));
    const inv: f32 = <f32>(1.0 / sum);
    for (let i = 0; i < V; i++) {
      const off = <usize>i << 2;
      let g = Mathf.exp(load<f32>(zr + off) - m) * inv;
      if (i == y) g -= 1;
      g *= scale;
      store<f32>(dr + off, accumulate ? load<f32>(dr + off) + g : g);
    }
  }
  return loss;
}

/**
 * KL(teacher ‖ student) at temperature tau over `rows` rows of V logits (z: student, zt: teacher), times tau².
 * Returns Σ rows of it; dz (+)= scale·tau·(softmax(z/tau) − softmax(zt/tau)).
 */
export function f32_kl_backward(z: usize, zt: usize, dz: usize, rows: i32, V: i32, tau: f32, scale: f32, accumulate: i32): f64 {
  assert(rows >= 0 && V > 0 && tau > 0, "f32_kl_backward: bad sizes or temperature");
  assert(accumulate == 0 || accumulate == 1, "f32_kl_backward: accumulate must be 0 or 1");
  assert(((z | zt | dz) & 3) == 0, "f32_kl_backward: pointer not 4-byte aligned");
  const rowBytes = <usize>V << 2;
  const inv: f32 = <f32>1.0 / tau;
  let loss: f64 = 0;
  for (let r = 0; r < rows; r++) {
    const zr = z + <usize>r * rowBytes;
    const tr = zt + <usize>r * rowBytes;
    const dr = dz + <usize>r * rowBytes;
    const ms = rowMax(zr, V, inv);
    const mt = rowMax(tr, V, inv);
    let ss: f64 = 0;
    let st: f64 = 0;
    for (let i = 0; i < V; i++) {
      const off = <usize>i << 2;
      ss += <f64>Mathf.exp(load<f32>(zr + off) * inv - ms);
      st += <f64>Mathf.exp(load<f32>(tr + off) * inv - mt);
    }
    const lss = Math.log(ss);
    const lst = Math.log(st);
    const iss: f32 = <f32>(1.0 / ss);
    const ist: f32 = <f32>(1.0 / st);
    let kl: f64 = 0;
    for (let i = 0; i < V; i++) {
      const off = <usize>i << 2;
      const as_ = load<f32>(zr + off) * inv - ms;
      const at = load<f32>(tr + off) * inv - mt;
      const ps = Mathf.exp(as_) * iss;
      const pt = Mathf.exp(at) * ist;
      const logPt = <f64>at - lst;
      const logPs = <f64>as_ - lss;
      kl += Math.exp(logPt) * (logPt - logPs);
      const g = scale * tau * (ps - pt);
      store<f32>(dr + off, accumulate ? load<f32>(dr + off) + g : g);
    }
    loss += kl;
  }
  return loss * <f64>tau * <f64>tau;
}
