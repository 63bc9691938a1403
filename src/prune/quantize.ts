/**
 * @file Weight quantization on the calibration statistics of pruning (the Gram H = XᵀX/n of each operator's
 * input), operator by operator, for the driver (./driver.ts) — the schemes and file format are src/quant's:
 *  - `rtn`: round-to-nearest on each group's min/max grid (assembly/f32-quant.ts);
 *  - `gptq` (Frantar et al. 2022, IST-DASLab/gptq `fasterquant`): columns in OBS order, each kept weight rounded
 *    onto its grid and the rounding error fed forward through the upper Cholesky factor of (H + δI)⁻¹ (δ = 1% of
 *    mean diag H, dead inputs zeroed), 128-column blocks with lazy batch updates — SparseGPT's OBS loop
 *    (assembly/f32-obs.ts f32_obs_block, row blocks over the executor) with a fixed mask: the support of the
 *    pruned weights, so a pruned weight stays +0.0 and its error is corrected like a rounding error. Group grids
 *    are fitted when their first column is reached, on the error-updated values (the reference reads the block's
 *    stale copy for groups that start inside a block; with groups of 128 the two agree); per-channel grids on
 *    the weights before the sweep, as the reference does;
 *  - joint (`sparsegpt` with `gptq`): SparseGPT's own sweep chooses the mask and quantizes the kept weights in the
 *    same pass (IST-DASLab/sparsegpt `fasterprune` with its quantizer): the buffers here go to the method.
 * Act-order (`actOrder`, gptq.py's `actorder` with `static_groups`): columns in order of decreasing H_jj, every grid
 * fitted on the weights before the sweep in the original column order (compressed-tensors' actorder "weight": the
 * stored layout is unchanged), so a permuted column still uses its own group's grid (the kernel's gidx).
 */
import type { Executor } from "../exec/executor.js";
import type { Wasm } from "../wasm/runtime.js";
import { kernels } from "../kernels/index.js";
import { qrange, type Grid, type QuantMethod, type QuantScheme } from "../quant/scheme.js";
import { codesOf, type QuantizedWeight } from "../quant/codes.js";
import type { ObsQuant } from "./row-tasks.js";
import { obsRows } from "./row-tasks.js";
import { hinvFactors } from "./methods/sparsegpt.js";

export interface QuantizeSettings {
  scheme: QuantScheme;
  method: QuantMethod;
  /** GPTQ's damping, a fraction of mean(diag H) (0.01) */
  percDamp?: number;
  /** GPTQ: columns by decreasing H_jj, static grids (not with SparseGPT's joint sweep) */
  actOrder?: boolean;
  /**
   * declare dynamic int8 input activations in the written config groups (compressed-tensors' W4A8 / W8A8
   * presets; the inference commands then run the operators on int8 activations): the weights are the same
   */
  activations?: "int8";
}

/** Grid buffers for an operator (rows × ng scales, zero points when asymmetric, column groups): the caller's arena scope. */
export function quantBuffers(wasm: Wasm, rows: number, cols: number, grid: Grid): ObsQuant {
  const a = wasm.arena;
  const [qmin, qmax] = qrange(grid.bits);
  return {
    qs: a.zeros(Math.max(rows * grid.ng, 1)),
    qz: grid.symmetric ? 0 : a.zeros(Math.max(rows * grid.ng, 1)),
    gidx: a.zeros(Math.max(cols, 1)),
    ng: grid.ng,
    group: grid.strategy === "group" ? grid.group : 0,
    qmin,
    qmax,
  };
}

/** Per-channel grids (group 0: given parameters) fitted on W as it is now; group grids are fitted in the sweep. */
export function fitChannelGrids(wasm: Wasm, W: number, rows: number, cols: number, q: ObsQuant): void {
  if (q.group === 0) kernels(wasm).f32_quant_params(W, cols, rows, 0, cols, q.qs, q.qz, 1, 0, q.qmin, q.qmax);
}

/** Round-to-nearest of W (rows × cols, in place) on its groups' min/max grids. */
export function rtnQuantize(wasm: Wasm, W: number, rows: number, cols: number, q: ObsQuant): void {
  const k = kernels(wasm);
  const group = q.group || cols;
  for (let g = 0; g < q.ng; g++) k.f32_quant_params(W, cols, rows, g * group, Math.min(group, cols - g * group), q.qs, q.qz, q.ng, g, q.qmin, q.qmax);
  if (rows > 0 && cols > 0) k.f32_quant_rows(W, cols, rows, q.qs, q.qz, q.ng, group, q.qmin, q.qmax);
}

/**
 * GPTQ of W (rows × cols, in place) against the Gram H (cols × cols), keeping W's zeros at +0.0 (the fixed
 * support of a pruned operator; a dense one has none). Its scratch stays allocated (the caller's scope).
 */
export async function gptqQuantize(
  exec: Executor, H: number, W: number, rows: number, cols: number, q: ObsQuant, opts: { percDamp?: number; blockSize?: number; actOrder?: boolean } = {},
): Promise<{ damp: number; dead: number }> {
  if (opts.actOrder) return gptqActOrder(exec, H, W, rows, cols, q, opts);
  const wasm = exec.wasm;
  const a = wasm.arena;
  const f = await hinvFactors(exec, H, cols, opts.percDamp ?? 0.01, false);
  const w = a.f32(W, rows * cols);
  const support = new Uint8Array(rows * cols);
  for (let i = 0; i < support.length; i++) support[i] = w[i] !== 0 ? 1 : 0;
  for (const j of f.dead) for (let r = 0; r < rows; r++) w[r * cols + j] = 0;
  fitChannelGrids(wasm, W, rows, cols, q);
  await sweep(exec, f.chol, W, rows, cols, support, q, opts.blockSize ?? 128);
  return { damp: f.damp, dead: f.dead.length };
}

/** GPTQ's column sweep of W against the Cholesky factor `chol`, the support fixed (mask per block from `support`). */
async function sweep(exec: Executor, chol: number, W: number, rows: number, cols: number, support: Uint8Array, q: ObsQuant, blockSize: number): Promise<void> {
  const a = exec.wasm.arena;
  const Err = a.alloc(rows * blockSize);
  const S = a.alloc(rows * blockSize);
  const M = a.alloc(rows * blockSize);
  for (let i1 = 0; i1 < cols; i1 += blockSize) {
    const i2 = Math.min(i1 + blockSize, cols);
    const count = i2 - i1;
    const m = a.f32(M, rows * count);
    for (let r = 0; r < rows; r++) for (let i = 0; i < count; i++) m[r * count + i] = support[r * cols + i1 + i]!;
    await obsRows(exec, { W, Hinv: chol, cols, Err, S, M, blockSize, n: 0, m: 0, block: [i1, i2], quant: q }, rows, rows * count * (count / 2 + cols - i1), `GPTQ, columns ${i1}..${i2 - 1}`);
  }
}

/**
 * GPTQ with act-order: grids fitted on W (dead inputs zeroed) per original group, then W, H and the support
 * permuted by decreasing H_jj (ties: lower index), the sweep with column j in group perm[j] / group, W put back.
 */
async function gptqActOrder(exec: Executor, H: number, W: number, rows: number, cols: number, q: ObsQuant, opts: { percDamp?: number; blockSize?: number }): Promise<{ damp: number; dead: number }> {
  const wasm = exec.wasm;
  const a = wasm.arena;
  const k = kernels(wasm);
  const h = a.f32(H, cols * cols);
  const w = a.f32(W, rows * cols);
  const support = new Uint8Array(rows * cols);
  for (let i = 0; i < support.length; i++) support[i] = w[i] !== 0 ? 1 : 0;
  for (let j = 0; j < cols; j++) if (h[j * cols + j] === 0) for (let r = 0; r < rows; r++) w[r * cols + j] = 0;
  const group = q.group || cols;
  for (let g = 0; g < q.ng; g++) k.f32_quant_params(W, cols, rows, g * group, Math.min(group, cols - g * group), q.qs, q.qz, q.ng, g, q.qmin, q.qmax);
  const perm = Array.from({ length: cols }, (_, j) => j).sort((i, j) => h[j * cols + j]! - h[i * cols + i]! || i - j);
  const Hp = a.alloc(cols * cols);
  const hp = a.f32(Hp, cols * cols);
  for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) hp[i * cols + j] = h[perm[i]! * cols + perm[j]!]!;
  const Wp = a.alloc(rows * cols);
  const wp = a.f32(Wp, rows * cols);
  const sp = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      wp[r * cols + j] = w[r * cols + perm[j]!]!;
      sp[r * cols + j] = support[r * cols + perm[j]!]!;
    }
  }
  const gidx = a.i32(q.gidx, Math.max(cols, 1));
  for (let j = 0; j < cols; j++) gidx[j] = Math.floor(perm[j]! / group);
  const f = await hinvFactors(exec, Hp, cols, opts.percDamp ?? 0.01, false);
  await sweep(exec, f.chol, Wp, rows, cols, sp, { ...q, group: 0 }, opts.blockSize ?? 128);
  const out = a.f32(Wp, rows * cols);
  const back = a.f32(W, rows * cols);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) back[r * cols + perm[j]!] = out[r * cols + j]!;
  return { damp: f.damp, dead: f.dead.length };
}

/** The codes of a quantized W (its values are on the grids of `q`), named `what` in errors. */
export function quantizedWeight(wasm: Wasm, W: number, rows: number, cols: number, grid: Grid, q: ObsQuant, what: string): QuantizedWeight {
  const a = wasm.arena;
  const scale = a.f32(q.qs, rows * grid.ng).slice();
  const zero = q.qz ? a.f32(q.qz, rows * grid.ng).slice() : undefined;
  return codesOf(a.f32(W, rows * cols), rows, cols, grid, scale, zero, what);
}
