/**
 * @file WGSL compute kernels, one per WASM kernel they mirror (their contract: src/wasm/contract.ts),
 * and the host functions that encode them. Matrices are row-major f32 storage buffers; sizes and flags come
 * in a uniform buffer; every kernel's entry point is `main`. Nothing here waits for the device: callers
 * read back with GpuDevice.read when (and only when) the host needs a value.
 *
 * Kernels (WASM counterpart):
 *  - GEMM_NT   Y[M,N] (+)= X[M,K]·W[N,K]ᵀ              f32_gemm_nt      64x64 tiles, 16-deep K slices in
 *                                                                         workgroup memory, 4x4 per thread
 *  - GEMM_TN   C[M,N] (+)= A[K,M]ᵀ·B[K,N]              f32_gram_upper + f32_sym_mirror (A = B = X: H += XᵀX,
 *                                                                         the full matrix), f32_gram_cross
 *  - FISTA_STEP  W⁺ = S_{ηλ_r}(Y − 2η(G − B)) on the mask (+0.0 off it), per-row restart, momentum   f32_fista_step
 *  - ROW_NNZ   nonzeros per row (u32)                    f32_row_nnz
 *  - TOPK_MASK k largest |s| per row, ties lower index  f32_topk_mask    same radix select on the bits
 *  - NM_MASK   n largest |s| per group of m              f32_nm_mask      same rank rule
 *  - MASK_MUL  out = mask ? w : +0.0 (and a second copy) f32_mask_mul
 *  - SPMM_24   Y[M,N] = X[M,K]·Wᵀ, W 2:4 in the "4x" layout of src/sparse/nm.ts   f32_spmm_2of4_4x_nt,
 *                                                                         f32_spmv_2of4_4x (M = 1)
 * Summation orders differ from the WASM kernels (tiles, tree reductions): results agree to float rounding;
 * the masks, which compare bits, agree exactly on the same input.
 */
import type { GpuDevice } from "./device.js";

const TILE = 64;
// Per-row kernels (FISTA_STEP, ROW_NNZ, TOPK_MASK) use 64-thread workgroups (ROWWG): the operators' rows are
// 64..11008 wide, and on lavapipe every barrier of a tree reduction costs a coroutine switch per thread.

/** The 64x64-tile GEMM body; `loadA`/`loadB` fill As[k][m], Bs[k][n] of a 16-deep K slice. */
function gemmShader(op: "nt" | "tn"): string {
  // nt: A = X [M,K] (row m, col k), B = W [N,K]; tn: A = A [K,M], B = B [K,N]
  const load =
    op === "nt"
      ? `
    for (var l = 0u; l < 4u; l++) {
      let e = tid + 256u * l;
      let r = e / 16u; let kk = e % 16u; let k = k0 + kk;
      let m = m0 + r; let n = n0 + r;
      As[kk][r] = select(0.0, a[m * p.K + k], m < p.M && k < p.K);
      Bs[kk][r] = select(0.0, b[n * p.K + k], n < p.N && k < p.K);
    }`
      : `
    for (var l = 0u; l < 4u; l++) {
      let e = tid + 256u * l;
      let kk = e / 64u; let r = e % 64u; let k = k0 + kk;
      let m = m0 + r; let n = n0 + r;
      As[kk][r] = select(0.0, a[k * p.M + m], m < p.M && k < p.K);
      Bs[kk][r] = select(0.0, b[k * p.N + n], n < p.N && k < p.K);
    }`;
  return /* wgsl */ `
struct P { M: u32, N: u32, K: u32, accumulate: u32, alpha: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
var<workgroup> As: array<array<f32, 64>, 16>;
var<workgroup> Bs: array<array<f32, 64>, 16>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tid = lid.y * 16u + lid.x;
  let m0 = wg.y * 64u;
  let n0 = wg.x * 64u;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += 16u) {${load}
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      var av: array<f32, 4>; var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { av[i] = As[kk][lid.y * 4u + i]; bv[i] = Bs[kk][lid.x * 4u + i]; }
      for (var i = 0u; i < 4u; i++) { for (var j = 0u; j < 4u; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); } }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y * 4u + i;
    if (m >= p.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n >= p.N) { continue; }
      let o = m * p.N + n;
      var v = p.alpha * acc[i][j];
      if (p.accumulate != 0u) { v += c[o]; }
      c[o] = v;
    }
  }
}`;
}

export const GEMM_NT = gemmShader("nt");
export const GEMM_TN = gemmShader("tn");

/** One workgroup per row: the fused prox / restart / momentum step of assembly/f32-fista.ts, same formulas. */
export const FISTA_STEP = /* wgsl */ `
const ROWWG = 64u;
struct P { rows: u32, cols: u32, useMask: u32, momentum: u32, eta: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> bm: array<f32>;
@group(0) @binding(4) var<storage, read> wOld: array<f32>;
@group(0) @binding(5) var<storage, read_write> wNew: array<f32>;
@group(0) @binding(6) var<storage, read> lam: array<f32>;
@group(0) @binding(7) var<storage, read_write> t: array<f32>;
@group(0) @binding(8) var<storage, read> mask: array<f32>;
var<workgroup> part: array<f32, ROWWG>;
var<workgroup> beta: f32;
@compute @workgroup_size(ROWWG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = wg.x + wg.y * 65535u;
  if (r >= p.rows) { return; }
  let off = r * p.cols;
  let twoEta = 2.0 * p.eta;
  let theta = p.eta * lam[r];
  var dot = 0.0;
  for (var j = lid.x; j < p.cols; j += ROWWG) {
    let o = off + j;
    let yv = y[o];
    let z = yv - twoEta * (g[o] - bm[o]);
    var w = z - clamp(z, -theta, theta);
    if (p.useMask != 0u && mask[o] == 0.0) { w = 0.0; }
    wNew[o] = w;
    dot += (yv - w) * (w - wOld[o]);
  }
  part[lid.x] = dot;
  workgroupBarrier();
  for (var s = ROWWG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) { part[lid.x] += part[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    var bt = 0.0;
    if (p.momentum == 0u) {
      t[r] = 1.0;                       // IHT: t = 1 every step, so Y = W⁺
    } else if (part[0] > 0.0) {
      t[r] = 1.0;                       // restart: the momentum points uphill
    } else {
      let tk = t[r];
      let tn = (1.0 + sqrt(1.0 + 4.0 * tk * tk)) / 2.0;
      bt = (tk - 1.0) / tn;
      t[r] = tn;
    }
    beta = bt;
  }
  workgroupBarrier();
  let bb = beta;
  for (var j = lid.x; j < p.cols; j += ROWWG) {
    let o = off + j;
    let w = wNew[o];
    y[o] = w + bb * (w - wOld[o]);
  }
}`;

/** Nonzeros per row, one workgroup per row. */
export const ROW_NNZ = /* wgsl */ `
const ROWWG = 64u;
struct P { rows: u32, cols: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
var<workgroup> part: array<u32, ROWWG>;
@compute @workgroup_size(ROWWG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let r = wg.x + wg.y * 65535u;
  if (r >= p.rows) { return; }
  var n = 0u;
  for (var j = lid.x; j < p.cols; j += ROWWG) { if (w[r * p.cols + j] != 0.0) { n++; } }
  part[lid.x] = n;
  workgroupBarrier();
  for (var s = ROWWG / 2u; s > 0u; s >>= 1u) {
    if (lid.x < s) { part[lid.x] += part[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { out[r] = part[0]; }
}`;

/**
 * Per row: mask = 1 at the k largest |score| (ties: lower index). As f32_topk_mask: find the k-th largest
 * |s| bit pattern T by 31 counting passes (bit 30 down), keep every s > T and the first k − #{s > T} equal to
 * T in column order (each thread owns a contiguous chunk; an exclusive scan of the per-chunk counts of T).
 */
export const TOPK_MASK = /* wgsl */ `
const ROWWG = 64u;
struct P { rows: u32, cols: u32, k: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> s: array<u32>;
@group(0) @binding(2) var<storage, read_write> mask: array<f32>;
var<workgroup> part: array<u32, ROWWG>;
var<workgroup> total: u32;
const ABS = 0x7fffffffu;
fn reduce(lid: u32, v: u32) -> u32 {
  part[lid] = v;
  workgroupBarrier();
  for (var st = ROWWG / 2u; st > 0u; st >>= 1u) {
    if (lid < st) { part[lid] += part[lid + st]; }
    workgroupBarrier();
  }
  let out = part[0];
  workgroupBarrier();
  return out;
}
@compute @workgroup_size(ROWWG)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lidv: vec3u) {
  let r = wg.x + wg.y * 65535u;
  if (r >= p.rows) { return; }
  let lid = lidv.x;
  let off = r * p.cols;
  if (p.k == 0u || p.k >= p.cols) {
    let v = select(0.0, 1.0, p.k != 0u);
    for (var j = lid; j < p.cols; j += ROWWG) { mask[off + j] = v; }
    return;
  }
  var t = 0u;
  for (var bit = 30i; bit >= 0i; bit--) {
    let cand = t | (1u << u32(bit));
    var n = 0u;
    for (var j = lid; j < p.cols; j += ROWWG) { if ((s[off + j] & ABS) >= cand) { n++; } }
    if (reduce(lid, n) >= p.k) { t = cand; }
  }
  var gt = 0u;
  for (var j = lid; j < p.cols; j += ROWWG) { if ((s[off + j] & ABS) > t) { gt++; } }
  let need = p.k - reduce(lid, gt);
  // contiguous chunks, in column order, for the tie rule
  let chunk = (p.cols + ROWWG - 1u) / ROWWG;
  let j0 = min(lid * chunk, p.cols);
  let j1 = min(j0 + chunk, p.cols);
  var eq = 0u;
  for (var j = j0; j < j1; j++) { if ((s[off + j] & ABS) == t) { eq++; } }
  part[lid] = eq;
  workgroupBarrier();
  if (lid == 0u) {
    var run = 0u;
    for (var i = 0u; i < ROWWG; i++) { let v = part[i]; part[i] = run; run += v; }
  }
  workgroupBarrier();
  var before = part[lid];
  for (var j = j0; j < j1; j++) {
    let v = s[off + j] & ABS;
    var keep = 0.0;
    if (v > t) { keep = 1.0; }
    else if (v == t) { if (before < need) { keep = 1.0; } before++; }
    mask[off + j] = keep;
  }
}`;

/** mask = 1 at the n largest |s| of each group of m consecutive entries (ties: lower index), a thread per group. */
export const NM_MASK = /* wgsl */ `
struct P { groups: u32, n: u32, m: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> s: array<u32>;
@group(0) @binding(2) var<storage, read_write> mask: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let gi = gid.x + gid.y * nw.x * 64u;
  if (gi >= p.groups) { return; }
  let o = gi * p.m;
  for (var i = 0u; i < p.m; i++) {
    let si = s[o + i] & 0x7fffffffu;
    var rank = 0u;
    for (var j = 0u; j < p.m; j++) {
      let sj = s[o + j] & 0x7fffffffu;
      if (sj > si || (sj == si && j < i)) { rank++; }
    }
    mask[o + i] = select(0.0, 1.0, rank < p.n);
  }
}`;

/** out = mask ? w : +0.0; out2 = the same (IHT sets W and its extrapolation point Y at once). */
export const MASK_MUL = /* wgsl */ `
struct P { n: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> out2: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nw: vec3u) {
  let i = gid.x + gid.y * nw.x * 256u;
  if (i >= p.n) { return; }
  let v = select(0.0, w[i], mask[i] != 0.0);
  out[i] = v;
  out2[i] = v;
}`;

/**
 * Y[M,N] = X[M,K]·Wᵀ, W 2:4 in the 4x layout: vals [NB][G][2][4] f32, idx bytes [NB][G][2] read as u32
 * words (the 16 bits of block b, group g: low byte s = 0, high byte s = 1; bits 2r.. = column in the group).
 * A thread per output; a workgroup is 64 outputs of one row m (X's row is shared through the cache).
 */
export const SPMM_24 = /* wgsl */ `
struct P { M: u32, N: u32, K: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> vals: array<f32>;
@group(0) @binding(3) var<storage, read> idx: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
var<workgroup> xs: array<f32, 1024>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let m = wg.y;
  let n = wg.x * 64u + lid.x;
  let G = p.K / 4u;
  let b = n / 4u;
  let r = n % 4u;
  var acc0 = 0.0;
  var acc1 = 0.0;
  for (var k0 = 0u; k0 < p.K; k0 += 1024u) {
    let kn = min(1024u, p.K - k0);
    for (var j = lid.x; j < kn; j += 64u) { xs[j] = x[m * p.K + k0 + j]; }
    workgroupBarrier();
    if (n < p.N) {
      for (var g = k0 / 4u; g < (k0 + kn) / 4u; g++) {
        let q = b * G + g;
        let bits = (idx[q / 2u] >> (16u * (q % 2u))) & 0xffffu;
        let c0 = (bits >> (2u * r)) & 3u;
        let c1 = (bits >> (8u + 2u * r)) & 3u;
        let base = q * 8u;
        let xo = 4u * g - k0;
        acc0 = fma(vals[base + r], xs[xo + c0], acc0);
        acc1 = fma(vals[base + 4u + r], xs[xo + c1], acc1);
      }
    }
    workgroupBarrier();
  }
  if (n < p.N) { y[m * p.N + n] = acc0 + acc1; }
}`;

// ---- host side: encode the kernels ---------------------------------------------------------------------------

/** Workgroup grid for `n` one-dimensional groups (split over y above the 65535 limit). */
export function grid1(n: number): [number, number] {
  return n <= 65535 ? [Math.max(n, 1), 1] : [65535, Math.ceil(n / 65535)];
}

export function gemmNt(g: GpuDevice, x: GPUBuffer, w: GPUBuffer, y: GPUBuffer, M: number, N: number, K: number, accumulate = false, enc?: GPUCommandEncoder): void {
  const u = g.uniforms([M, N, K, accumulate ? 1 : 0, 1], new Set([4]));
  g.dispatch(GEMM_NT, [u, x, w, y], [Math.ceil(N / TILE), Math.ceil(M / TILE)], enc);
}

/** C[M,N] (+)= alpha · A[K,M]ᵀ · B[K,N]; for A = B = X [T, cols]: the Gram update H += XᵀX. */
export function gemmTn(g: GpuDevice, a: GPUBuffer, b: GPUBuffer, c: GPUBuffer, M: number, N: number, K: number, accumulate = true, alpha = 1, enc?: GPUCommandEncoder): void {
  const u = g.uniforms([M, N, K, accumulate ? 1 : 0, alpha], new Set([4]));
  g.dispatch(GEMM_TN, [u, a, b, c], [Math.ceil(N / TILE), Math.ceil(M / TILE)], enc);
}

export function rowNnz(g: GpuDevice, w: GPUBuffer, out: GPUBuffer, rows: number, cols: number, enc?: GPUCommandEncoder): void {
  g.dispatch(ROW_NNZ, [g.uniforms([rows, cols]), w, out], grid1(rows), enc);
}

export function topkMask(g: GpuDevice, score: GPUBuffer, mask: GPUBuffer, rows: number, cols: number, k: number, enc?: GPUCommandEncoder): void {
  g.dispatch(TOPK_MASK, [g.uniforms([rows, cols, Math.max(0, k)]), score, mask], grid1(rows), enc);
}

export function nmMask(g: GpuDevice, score: GPUBuffer, mask: GPUBuffer, rows: number, cols: number, n: number, m: number, enc?: GPUCommandEncoder): void {
  const groups = (rows * cols) / m;
  g.dispatch(NM_MASK, [g.uniforms([groups, n, m]), score, mask], grid1(Math.ceil(groups / 64)), enc);
}

export function maskMul(g: GpuDevice, w: GPUBuffer, mask: GPUBuffer, out: GPUBuffer, out2: GPUBuffer, n: number, enc?: GPUCommandEncoder): void {
  g.dispatch(MASK_MUL, [g.uniforms([n]), w, mask, out, out2], grid1(Math.ceil(n / 256)), enc);
}

/** Y[M,N] = X[M,K]·Wᵀ for W 2:4 in the 4x layout (vals, idx uploaded as they are packed by pack2of4). */
export function spmm24(g: GpuDevice, x: GPUBuffer, vals: GPUBuffer, idx: GPUBuffer, y: GPUBuffer, M: number, N: number, K: number, enc?: GPUCommandEncoder): void {
  g.dispatch(SPMM_24, [g.uniforms([M, N, K]), x, vals, idx, y], [Math.ceil(N / 64), M], enc);
}
