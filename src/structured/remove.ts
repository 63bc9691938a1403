/**
 * @file Physical removal of structures (smaller tensors, smaller config) and the least-squares refit of the
 * operators that consume them (o_proj, down_proj).
 *
 * Refit ("beyond the paper": cheap recovery without training). With the structures removed, the consumer
 * W₀ (rows × cols) only sees its kept inputs K. On calibration data X (the consumer's input in the pruned
 * model, whose kept columns equal the dense layer's on the same layer input: heads and channels are
 * independent of each other), fit the kept columns to the dense output — the error-correction target of the
 * unstructured driver:
 *
 *     min_{W_K} ‖W_K·X_K − W₀·X‖²/n + δ‖W_K − W₀_K‖²   ⇒   W_K (H_KK + δI) = W₀ H_{:,K} + δ W₀_K
 *                                                      ⇒   W_K = W₀_K + W₀_R · H_RK · (H_KK + δI)⁻¹
 *
 * with H = XᵀX/n from the Gram collector (src/prune/gram.ts) and R the removed inputs. The ridge term pulls
 * toward W₀ (not toward 0, which plain damping of H would do), δ = percDamp·mean(diag H_KK) as SparseGPT
 * damps, solved by Cholesky (src/prune/linalg.ts). The layers are refit in order on the calibration stream of
 * the already-pruned model (sequential schedule): o_proj of layer l, then down_proj of layer l fed by the
 * refit attention, then the stream advances through the pruned layer.
 */
import { UsageError } from "../errors.js";
import { attentionBlock, createRunState, embed, layerForward, mlpBlock } from "../model/forward.js";
import { linearName } from "../model/names.js";
import { dense, type DenseLinear, type LayerSizes, type LayerWeights, type Model, type ModelConfig, type Tensor } from "../model/types.js";
import { denseLayer, type DenseLayer } from "../model/linear.js";
import { GramCollector } from "../prune/gram.js";
import type { Executor } from "../exec/executor.js";
import { choleskyLower } from "../prune/linalg.js";
import { createProblem, relativeError } from "../prune/problem.js";
import { groupKvRows, groupQCols, groupSize, type KeepPlan } from "./structures.js";
import { kernels } from "../kernels/index.js";

/** Rows of q (= columns of o) and rows of k/v kept by a plan for one layer. */
export function keptAttentionIndices(c: ModelConfig, groups: readonly number[]): { q: number[]; kv: number[] } {
  const q: number[] = [];
  const kv: number[] = [];
  for (const g of groups) {
    const [q0, q1] = groupQCols(c, g);
    for (let i = q0; i < q1; i++) q.push(i);
    const [k0, k1] = groupKvRows(c, g);
    for (let i = k0; i < k1; i++) kv.push(i);
  }
  return { q, kv };
}

function newTensor(model: Model, shape: number[], data?: Float32Array): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const ptr = model.wasm.arena.alloc(n);
  const t = { ptr, shape, data: model.wasm.arena.f32(ptr, n) };
  if (data) t.data.set(data);
  return t;
}

function pickRows(model: Model, w: Float32Array, cols: number, rows: readonly number[]): Tensor {
  const t = newTensor(model, cols === 1 ? [rows.length] : [rows.length, cols]);
  rows.forEach((r, i) => t.data.set(w.subarray(r * cols, (r + 1) * cols), i * cols));
  return t;
}

function pickCols(model: Model, w: Float32Array, rows: number, cols: number, keep: readonly number[]): Tensor {
  const t = newTensor(model, [rows, keep.length]);
  for (let r = 0; r < rows; r++) for (let i = 0; i < keep.length; i++) t.data[r * keep.length + i] = w[r * cols + keep[i]];
  return t;
}

/** The config of a model whose layers have `sizes`: standard fields when uniform, else the maxima + layerSizes. */
export function shrunkConfig(c: ModelConfig, sizes: LayerSizes[]): ModelConfig {
  const uniform = sizes.every((s) => s.hiddenDim === sizes[0].hiddenDim && s.nHeads === sizes[0].nHeads && s.nKvHeads === sizes[0].nKvHeads);
  const max = (k: keyof LayerSizes): number => Math.max(...sizes.map((s) => s[k]));
  const { layerSizes: _old, ...rest } = c;
  return { ...rest, hiddenDim: max("hiddenDim"), nHeads: max("nHeads"), nKvHeads: max("nKvHeads"), ...(uniform ? {} : { layerSizes: sizes }) };
}

/**
 * A new model (same arena, same embeddings/norms) with only the kept structures: q/k/v rows and o columns of the
 * kept k/v groups, gate/up rows and down columns of the kept channels. `consumers` replaces the dense o_proj /
 * down_proj (full width; e.g. refit ones) before the columns are picked.
 */
export function shrinkModel(model: Model, plan: KeepPlan, consumers?: { wo: Float32Array[]; wDown: Float32Array[] }): Model {
  const c = model.config;
  if (plan.channels.length !== c.nLayers || plan.groups.length !== c.nLayers) throw new UsageError(`keep plan has ${plan.channels.length} layers, the model ${c.nLayers}`);
  const sizes: LayerSizes[] = [];
  const layers = model.weights.layers.map((layer, l): LayerWeights => {
    const lw = denseLayer(layer, l);
    const ch = plan.channels[l];
    const gr = plan.groups[l];
    if (ch.length === 0) throw new UsageError(`layer ${l}: removing all MLP channels is not supported`);
    if (gr.length === 0) throw new UsageError(`layer ${l}: removing all k/v groups (every attention head) is not supported`);
    const { q, kv } = keptAttentionIndices(c, gr);
    const hid = lw.wGate.shape[0];
    const qDim = lw.wq.shape[0];
    sizes.push({ hiddenDim: ch.length, nHeads: gr.length * groupSize(c), nKvHeads: gr.length });
    return {
      attnNorm: lw.attnNorm,
      ffnNorm: lw.ffnNorm,
      wq: dense(pickRows(model, lw.wq.data, c.dim, q)),
      wk: dense(pickRows(model, lw.wk.data, c.dim, kv)),
      wv: dense(pickRows(model, lw.wv.data, c.dim, kv)),
      wo: dense(pickCols(model, consumers?.wo[l] ?? lw.wo.data, c.dim, qDim, q)),
      wGate: dense(pickRows(model, lw.wGate.data, c.dim, ch)),
      wUp: dense(pickRows(model, lw.wUp.data, c.dim, ch)),
      wDown: dense(pickCols(model, consumers?.wDown[l] ?? lw.wDown.data, c.dim, hid, ch)),
      ...(lw.bq ? { bq: pickRows(model, lw.bq.data, 1, q) } : {}),
      ...(lw.bk ? { bk: pickRows(model, lw.bk.data, 1, kv) } : {}),
      ...(lw.bv ? { bv: pickRows(model, lw.bv.data, 1, kv) } : {}),
    };
  });
  return { ...model, config: shrunkConfig(c, sizes), weights: { ...model.weights, layers } };
}

/**
 * W_K = W₀_K + W₀_R·H_RK·(H_KK + δI)⁻¹ (file header), returned full width with the removed columns zero.
 * H (cols × cols) is read as float32 row-major.
 */
export function refitColumns(
  W0: Float32Array, rows: number, cols: number, H: Float32Array, keep: readonly number[], percDamp: number,
): { W: Float32Array; damp: number } {
  const k = keep.length;
  const kept = new Uint8Array(cols);
  for (const j of keep) kept[j] = 1;
  const removed = [...Array(cols).keys()].filter((j) => !kept[j]);
  const W = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (const j of keep) W[r * cols + j] = W0[r * cols + j];
  if (removed.length === 0 || k === 0) return { W, damp: 0 };
  // M = W₀_R · H_RK (rows × k)
  const M = new Float64Array(rows * k);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < k; i++) {
      let s = 0;
      for (const j of removed) s += W0[r * cols + j] * H[j * cols + keep[i]];
      M[r * k + i] = s;
    }
  }
  let mean = 0;
  for (const j of keep) mean += H[j * cols + j];
  mean /= k;
  let damp = percDamp * mean > 0 ? percDamp * mean : 1e-8;
  const L = new Float32Array(k * k);
  for (let attempt = 0; ; attempt++) {
    for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) L[a * k + b] = H[keep[a] * cols + keep[b]] + (a === b ? damp : 0);
    if (choleskyLower(L, k)) break;
    if (attempt === 8) throw new UsageError(`refit: Gram matrix of ${k} kept inputs is not positive definite even with damping ${damp}: non-finite activations?`);
    damp *= 10;
  }
  // D·(L Lᵀ) = M, row by row: L y = m, Lᵀ d = y
  const y = new Float64Array(k);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < k; i++) {
      let s = M[r * k + i];
      for (let j = 0; j < i; j++) s -= L[i * k + j] * y[j];
      y[i] = s / L[i * k + i];
    }
    for (let i = k - 1; i >= 0; i--) {
      let s = y[i];
      for (let j = i + 1; j < k; j++) s -= L[j * k + i] * y[j];
      y[i] = s / L[i * k + i];
    }
    for (let i = 0; i < k; i++) W[r * cols + keep[i]] += y[i];
  }
  return { W, damp };
}

export interface RefitReport {
  layer: number;
  op: "wo" | "wDown";
  name: string;
  rows: number;
  cols: number;
  kept: number;
  /** ‖W X_K − W₀ X‖² / ‖W₀ X‖² with the removed columns simply dropped */
  relErrDropped: number;
  /** the same after the refit */
  relErrRefit: number;
  damp: number;
}

/**
 * Refit o_proj and down_proj of every layer on the calibration sequences (file header). Returns full-width
 * consumers (removed columns zero) for shrinkModel and one report per operator. The model is not changed.
 */
export async function refitConsumers(
  model: Model, plan: KeepPlan, calib: readonly number[][], exec: Executor, opts: { percDamp?: number; onLayer?(l: number): void } = {},
): Promise<{ wo: Float32Array[]; wDown: Float32Array[]; reports: RefitReport[] }> {
  const c = model.config;
  const wasm = model.wasm;
  const a = wasm.arena;
  const k = kernels(wasm);
  const percDamp = opts.percDamp ?? 0.01;
  const wo: Float32Array[] = [];
  const wDown: Float32Array[] = [];
  const reports: RefitReport[] = [];
  const outer = a.mark();
  try {
    const maxLen = Math.max(2, ...calib.map((s) => s.length));
    const st = createRunState(model, maxLen, maxLen);
    const offsets: number[] = [];
    let total = 0;
    for (const s of calib) {
      offsets.push(total);
      total += s.length;
    }
    const stream = a.alloc(total * c.dim);
    const copy = (src: number, dst: number, n: number): void => a.f32(dst, n).set(a.f32(src, n));
    calib.forEach((s, i) => {
      embed(model, st, s);
      copy(st.x, stream + 4 * offsets[i] * c.dim, s.length * c.dim);
    });
    for (let l = 0; l < c.nLayers; l++) {
      const w0s = denseLayer(model.weights.layers[l], l);
      const qDim = w0s.wq.shape[0];
      const hid = w0s.wGate.shape[0];
      const { q } = keptAttentionIndices(c, plan.groups[l]);
      const layer: DenseLayer = { ...w0s, wo: masked(model, w0s.wo, q), wDown: masked(model, w0s.wDown, plan.channels[l]) };

      /** `forward(i)` runs sample i up to the operator and returns its input there (T rows of `cols`). */
      const fit = async (op: "wo" | "wDown", cols: number, keep: readonly number[], forward: (i: number) => number): Promise<Float32Array> => {
        const w0 = w0s[op];
        const m = a.mark();
        try {
          const gram = new GramCollector(exec, cols);
          for (let i = 0; i < calib.length; i++) {
            const x = forward(i);
            await gram.addBatches([{ xp: x, xd: x, T: calib[i].length }]);
          }
          const stats = gram.finish();
          const H = a.f32(stats.H, cols * cols);
          const { W, damp } = refitColumns(w0.data, c.dim, cols, H, keep, percDamp);
          const problem = await createProblem(exec, { rows: c.dim, cols, W0: w0.ptr, H: stats.H, nTokens: stats.n });
          const relErrDropped = await relativeError(exec, problem, layer[op].ptr);
          layer[op].data.set(W);
          const relErrRefit = await relativeError(exec, problem, layer[op].ptr);
          reports.push({ layer: l, op, name: linearName(l, op), rows: c.dim, cols, kept: keep.length, relErrDropped, relErrRefit, damp });
          return W;
        } finally {
          a.release(m);
        }
      };
      let captured = 0;
      const capture = (want: "o" | "down") => (point: string, x: number) => {
        if (point === want) captured = x;
      };
      wo.push(await fit("wo", qDim, q, (i) => {
        copy(stream + 4 * offsets[i] * c.dim, st.x, calib[i].length * c.dim);
        attentionBlock(model, st, layer, l, calib[i].length, 0, capture("o"));
        return captured;
      }));
      wDown.push(await fit("wDown", hid, plan.channels[l], (i) => {
        const T = calib[i].length;
        copy(stream + 4 * offsets[i] * c.dim, st.x, T * c.dim);
        attentionBlock(model, st, layer, l, T, 0);
        k.f32_add(st.x, st.out, st.x, T * c.dim);
        mlpBlock(model, st, layer, T, capture("down"));
        return captured;
      }));
      calib.forEach((s, i) => {
        const at = stream + 4 * offsets[i] * c.dim;
        copy(at, st.x, s.length * c.dim);
        layerForward(model, st, layer, l, s.length, 0);
        copy(st.x, at, s.length * c.dim);
      });
      opts.onLayer?.(l);
    }
  } finally {
    a.release(outer);
  }
  return { wo, wDown, reports };
}

/** A full-width copy of a consumer with only the `keep` columns (arena). */
function masked(model: Model, w: DenseLinear, keep: readonly number[]): DenseLinear {
  const [rows, cols] = w.shape;
  const t = newTensor(model, [rows, cols]);
  for (let r = 0; r < rows; r++) for (const j of keep) t.data[r * cols + j] = w.data[r * cols + j];
  return dense(t);
}
