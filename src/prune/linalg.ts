/**
 * @file Dense symmetric positive-definite linear algebra for SparseGPT and the least-squares solution of
 * error correction: Cholesky (lower), the inverse through it (torch.cholesky_inverse), and the upper
 * Cholesky factor. Row-major float32 storage (arena views); inner products accumulate in float64 in a fixed
 * order, so results are deterministic. O(n³) scalar code: n is an operator's input width.
 */
import { UsageError, WasmError } from "../errors.js";
import type { Wasm } from "../wasm/runtime.js";
import { kernels } from "../kernels/index.js";

/**
 * In place: A (n×n, symmetric; only the lower triangle is read) becomes L, lower triangular with A = L·Lᵀ
 * (the strict upper triangle is zeroed). Returns false when A is not numerically positive definite.
 */
export function choleskyLower(a: Float32Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    const rj = j * n;
    let s = a[rj + j];
    for (let k = 0; k < j; k++) s -= a[rj + k] * a[rj + k];
    if (!(s > 0)) return false;
    const d = Math.sqrt(s);
    a[rj + j] = d;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let t = a[ri + j];
      for (let k = 0; k < j; k++) t -= a[ri + k] * a[rj + k];
      a[ri + j] = t / d;
    }
  }
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) a[i * n + j] = 0;
  return true;
}

/** In place: L (lower triangular, nonzero diagonal) becomes L⁻¹ (lower triangular). */
export function invertLower(l: Float32Array, n: number): void {
  const col = new Float64Array(n);
  // column j of L⁻¹ by forward substitution of e_j, written after its use of the old column entries
  for (let j = 0; j < n; j++) {
    col.fill(0, 0, n);
    col[j] = 1 / l[j * n + j];
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let s = 0;
      for (let k = j; k < i; k++) s += l[ri + k] * col[k];
      col[i] = -s / l[ri + i];
    }
    // L⁻¹[i, j] for i ≥ j only depends on L[i, k ≥ j]; columns < j of L are no longer read, so store
    for (let i = j; i < n; i++) l[i * n + j] = col[i];
  }
}

/** out = A⁻¹ for A = L·Lᵀ given L (torch.cholesky_inverse): A⁻¹ = L⁻ᵀ·L⁻¹. `l` is overwritten by L⁻¹. */
export function choleskyInverse(l: Float32Array, n: number, out: Float32Array): void {
  invertLower(l, n);
  // (L⁻ᵀL⁻¹)[i, j] = Σ_{k ≥ max(i,j)} M[k, i]·M[k, j] with M = L⁻¹ lower
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let k = j; k < n; k++) s += l[k * n + i] * l[k * n + j];
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
}

/** In place: A becomes U, upper triangular with A = Uᵀ·U (torch.linalg.cholesky(A, upper=True)). */
export function choleskyUpper(a: Float32Array, n: number): boolean {
  if (!choleskyLower(a, n)) return false;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      a[i * n + j] = a[j * n + i];
      a[j * n + i] = 0;
    }
  }
  return true;
}

/**
 * Damped inverse of a Gram matrix as SparseGPT prepares it: dead inputs (H_jj = 0) get H_jj = 1, then
 * H + δI with δ = percdamp·mean(diag H); returns (H + δI)⁻¹ in `out` and the dead input indices.
 * `work` (n×n) is scratch. Retries with 10× the damping if the Cholesky fails (a rank-deficient H in float32).
 */
export function dampedInverse(h: Float32Array, n: number, percDamp: number, work: Float32Array, out: Float32Array): { dead: number[]; damp: number } {
  const dead: number[] = [];
  let mean = 0;
  for (let j = 0; j < n; j++) {
    const d = h[j * n + j];
    if (d === 0) dead.push(j);
    mean += d === 0 ? 1 : d;
  }
  mean /= n;
  let damp = percDamp * mean;
  for (let attempt = 0; attempt < 8; attempt++) {
    work.set(h.subarray(0, n * n));
    for (const j of dead) work[j * n + j] = 1;
    for (let j = 0; j < n; j++) work[j * n + j] += damp;
    if (choleskyLower(work, n)) {
      choleskyInverse(work, n, out);
      return { dead, damp };
    }
    damp = damp > 0 ? damp * 10 : 1e-6 * mean;
  }
  throw new UsageError(`Gram matrix of width ${n} is not positive definite even with damping ${damp}: non-finite activations?`);
}

// ---- the same algorithms as WASM SIMD kernels (assembly/f32-cholesky.ts), bit-identical to the above --------



/**
 * choleskyLower (upper = false) / choleskyUpper (upper = true) of the arena block `a` (n×n) by the WASM
 * kernel: bit-identical results, A untouched when it is not positive definite.
 */
export function choleskyWasm(wasm: Wasm, a: number, n: number, upper: boolean): boolean {
  const k = kernels(wasm);
  return wasm.arena.scoped(() => k.f32_cholesky_lower(a, n, upper ? 1 : 0, wasm.arena.allocBytes(k.f32_cholesky_scratch(n))) === 1);
}

/**
 * dampedInverse on arena blocks by the WASM kernels (bit-identical): `out` (n×n) = (H + δI)⁻¹. The product
 * (L⁻¹)ᵀ·L⁻¹ runs through `gram(M, out)` when given (e.g. split over worker threads; rows of
 * f32_tril_gram_rows), else here.
 */
export async function dampedInverseWasm(
  wasm: Wasm, H: number, n: number, percDamp: number, out: number,
  gram?: (m: number, out: number) => Promise<void>,
): Promise<{ dead: number[]; damp: number }> {
  const k = kernels(wasm);
  const a = wasm.arena;
  const mark = a.mark();
  try {
    const h = a.f32(H, n * n);
    const dead: number[] = [];
    let mean = 0;
    for (let j = 0; j < n; j++) {
      const d = h[j * n + j];
      if (d === 0) dead.push(j);
      mean += d === 0 ? 1 : d;
    }
    mean /= n;
    let damp = percDamp * mean;
    const W = a.alloc(n * n);
    const scratch = a.allocBytes(Math.max(k.f32_cholesky_scratch(n), k.f32_tril_inverse_scratch(n), k.f32_tril_gram_scratch(n)));
    for (let attempt = 0; attempt < 8; attempt++) {
      const work = a.f32(W, n * n);
      work.set(a.f32(H, n * n));
      for (const j of dead) work[j * n + j] = 1;
      for (let j = 0; j < n; j++) work[j * n + j] += damp;
      if (k.f32_cholesky_lower(W, n, 0, scratch) === 1) {
        k.f32_tril_inverse(W, n, scratch);
        if (gram) await gram(W, out);
        else k.f32_tril_gram_rows(W, n, out, 0, n, scratch);
        return { dead, damp };
      }
      damp = damp > 0 ? damp * 10 : 1e-6 * mean;
    }
    throw new UsageError(`Gram matrix of width ${n} is not positive definite even with damping ${damp}: non-finite activations?`);
  } finally {
    a.release(mark);
  }
}
