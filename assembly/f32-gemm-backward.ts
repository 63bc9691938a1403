// f32 GEMM variants of the backward pass of a linear layer Y[T,N] = X[T,K] · W[N,K]ᵀ (f32-gemm.ts):
//
//   f32_gemm_nn: C[M,N] (=|+=) A[M,K] · B[K,N]      dX[T,K] = dY[T,N] · W[N,K]    (M=T,  K=N_out, N=K_in)
//   f32_gemm_tn: C[M,N] (=|+=) A[K,M]ᵀ · B[K,N]     dW[N,K] += dY[T,N]ᵀ · X[T,K]  (M=N_out, K=T, N=K_in)
//
// In both, B is row-major with its rows along the reduction index, so the 8 output columns of a panel are
// 8 contiguous floats of one B row: no packing of B is needed. The two differ only in how A is walked
// (A(i,k) at a + i·aRowStride + k·aKStride), so they share one 4x8 micro-kernel:
//
//   for k0 in steps of KC:                  (a KC x 8 slab of B, 8 KiB, stays in L1 across all row blocks)
//     for each 8-column panel j:
//       for i in steps of 4 rows: 4x8 micro-kernel over k in [k0, k0+KC): broadcast A(i+r, k)
//                                 (load32_splat), mul+add against B[k, j:j+8]; 8 f32x4 accumulators
//
// The first K block stores (or adds, when accumulate = 1); later blocks add. Rows past a multiple of 4 use a
// 1x8 kernel; columns past a multiple of 8 a scalar loop. Summation order per output: blocks of KC in order,
// k in order inside a block: deterministic, independent of M and N. Pointers need only 4-byte alignment.

// @ts-ignore: decorator
@inline const KC = 256;

// @ts-ignore: decorator
@inline
function store8(c: usize, vacc0123: v128, vacc4567: v128, add: bool): void {
  if (add) {
    vacc0123 = f32x4.add(vacc0123, v128.load(c));
    vacc4567 = f32x4.add(vacc4567, v128.load(c, 16));
  }
  v128.store(c, vacc0123);
  v128.store(c, vacc4567, 16);
}

/** C[0:4, 0:8] (=|+=) Σ_k A(r, k) · B[k, 0:8] for kc values of k; A(r,k) at a + r·ars + k·aks, B rows ldb bytes apart. */
function ukernel4x8(a: usize, ars: usize, aks: usize, b: usize, ldb: usize, kc: i32, c: usize, ldc: usize, add: bool): void {
  let vacc0_0123 = f32x4.splat(0);
  let vacc0_4567 = f32x4.splat(0);
  let vacc1_0123 = f32x4.splat(0);
  let vacc1_4567 = f32x4.splat(0);
  let vacc2_0123 = f32x4.splat(0);
  let vacc2_4567 = f32x4.splat(0);
  let vacc3_0123 = f32x4.splat(0);
  let vacc3_4567 = f32x4.splat(0);
  const a1 = ars;
  const a2 = ars * 2;
  const a3 = ars * 3;
  for (let k = 0; k < kc; k++) {
    const vb0123 = v128.load(b);
    const vb4567 = v128.load(b, 16);
    let va = v128.load32_splat(a);
    vacc0_0123 = f32x4.add(vacc0_0123, f32x4.mul(va, vb0123));
    vacc0_4567 = f32x4.add(vacc0_4567, f32x4.mul(va, vb4567));
    va = v128.load32_splat(a + a1);
    vacc1_0123 = f32x4.add(vacc1_0123, f32x4.mul(va, vb0123));
    vacc1_4567 = f32x4.add(vacc1_4567, f32x4.mul(va, vb4567));
    va = v128.load32_splat(a + a2);
    vacc2_0123 = f32x4.add(vacc2_0123, f32x4.mul(va, vb0123));
    vacc2_4567 = f32x4.add(vacc2_4567, f32x4.mul(va, vb4567));
    va = v128.load32_splat(a + a3);
    vacc3_0123 = f32x4.add(vacc3_0123, f32x4.mul(va, vb0123));
    vacc3_4567 = f32x4.add(vacc3_4567, f32x4.mul(va, vb4567));
    a += aks;
    b += ldb;
  }
  store8(c, vacc0_0123, vacc0_4567, add);
  store8(c + ldc, vacc1_0123, vacc1_4567, add);
  store8(c + 2 * ldc, vacc2_0123, vacc2_4567, add);
  store8(c + 3 * ldc, vacc3_0123, vacc3_4567, add);
}

/** 1x8 micro-kernel for the rows past a multiple of 4. */
function ukernel1x8(a: usize, aks: usize, b: usize, ldb: usize, kc: i32, c: usize, add: bool): void {
  let vacc0_0123 = f32x4.splat(0);
  let vacc0_4567 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const va = v128.load32_splat(a);
    vacc0_0123 = f32x4.add(vacc0_0123, f32x4.mul(va, v128.load(b)));
    vacc0_4567 = f32x4.add(vacc0_4567, f32x4.mul(va, v128.load(b, 16)));
    a += aks;
    b += ldb;
  }
  store8(c, vacc0_0123, vacc0_4567, add);
}

/** C[M,N] (=|+=) Σ_k A(i,k)·B[k,j], A(i,k) at a + i·ars + k·aks (bytes), B [K,N] and C [M,N] row-major. */
function gemmStrided(a: usize, ars: usize, aks: usize, b: usize, c: usize, M: i32, N: i32, K: i32, accumulate: i32): void {
  const ldb = <usize>N << 2;
  const ldc = <usize>N << 2;
  if (K == 0) {
    if (!accumulate) for (let i = 0; i < M; i++) memory.fill(c + <usize>i * ldc, 0, ldc);
    return;
  }
  const MM = M & ~3;
  const NN = N & ~7;
  for (let k0 = 0; k0 < K; k0 += KC) {
    const kc = min(KC, K - k0);
    const add = accumulate != 0 || k0 > 0;
    const ak = a + <usize>k0 * aks;
    const bk = b + <usize>k0 * ldb;
    for (let j = 0; j < NN; j += 8) {
      const bj = bk + (<usize>j << 2);
      for (let i = 0; i < MM; i += 4) {
        ukernel4x8(ak + <usize>i * ars, ars, aks, bj, ldb, kc, c + <usize>i * ldc + (<usize>j << 2), ldc, add);
      }
      for (let i = MM; i < M; i++) {
        ukernel1x8(ak + <usize>i * ars, aks, bj, ldb, kc, c + <usize>i * ldc + (<usize>j << 2), add);
      }
    }
    // columns past a multiple of 8: scalar, same k order
    for (let j = NN; j < N; j++) {
      for (let i = 0; i < M; i++) {
        let s: f32 = 0;
        let ap = ak + <usize>i * ars;
        let bp = bk + (<usize>j << 2);
        for (let k = 0; k < kc; k++) {
          s += load<f32>(ap) * load<f32>(bp);
          ap += aks;
          bp += ldb;
        }
        const cp = c + <usize>i * ldc + (<usize>j << 2);
        store<f32>(cp, add ? load<f32>(cp) + s : s);
      }
    }
  }
}

/** C[M,N] (=|+=) A[M,K] · B[K,N]: the input gradient dX = dY · W of a linear layer. */
export function f32_gemm_nn(a: usize, b: usize, c: usize, M: i32, N: i32, K: i32, accumulate: i32): void {
  assert(M >= 0 && N >= 0 && K >= 0, "f32_gemm_nn: negative size");
  assert(((a | b | c) & 3) == 0, "f32_gemm_nn: pointer not 4-byte aligned");
  assert(accumulate == 0 || accumulate == 1, "f32_gemm_nn: accumulate must be 0 or 1");
  if (M == 0 || N == 0) return;
  gemmStrided(a, <usize>K << 2, 4, b, c, M, N, K, accumulate);
}

/** C[M,N] (=|+=) A[K,M]ᵀ · B[K,N]: the weight gradient dW += dYᵀ · X of a linear layer. */
export function f32_gemm_tn(a: usize, b: usize, c: usize, M: i32, N: i32, K: i32, accumulate: i32): void {
  assert(M >= 0 && N >= 0 && K >= 0, "f32_gemm_tn: negative size");
  assert(((a | b | c) & 3) == 0, "f32_gemm_tn: pointer not 4-byte aligned");
  assert(accumulate == 0 || accumulate == 1, "f32_gemm_tn: accumulate must be 0 or 1");
  if (M == 0 || N == 0) return;
  gemmStrided(a, 4, <usize>M << 2, b, c, M, N, K, accumulate);
}
