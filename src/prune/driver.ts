/**
 * @file The layer-by-layer pruning driver (SparseGPT's `llama_sequential`, FISTAPruner's layer loop), written
 * once for every method.
 *
 * For decoder layer l, with input stream X (all calibration tokens, [N, dim]):
 *  - schedule `sequential`: X is the output of the already-pruned layers 0..l-1 (SparseGPT/Wanda default);
 *    schedule `parallel`: X is the dense model's activation, so layers are independent (FISTAPruner §3.4).
 *  - without error correction: one pass of the dense layer over X captures the input of every operator;
 *    each operator gets H = XᵀX/n and B = W₀H (min ‖(W − W₀)X‖²).
 *  - with intra-layer error correction (FISTAPruner §3.3): the operator groups (q,k,v), (o), (gate,up), (down)
 *    are pruned in forward order; for each group a pass runs the dense layer (giving X_d) and the layer with
 *    the operators pruned so far (giving X_p) over X, and each operator gets H = X_pᵀX_p/n, B = W₀·X_dᵀX_p/n,
 *    i.e. it is fitted on the pruned inputs against the dense outputs: min ‖W·X_p − W₀·X_d‖².
 * After the layer, the stream advances through the pruned (sequential) or dense (parallel) layer, the pruned
 * weights replace the dense ones in the model, and the layer is checkpointed (src/prune/checkpoint.ts).
 */
import type { Model, LayerWeights, LinearOp, Tensor } from "../model/types.js";
import { createRunState, layerForward, embed, type CapturePoint, type RunState } from "../model/forward.js";
import { linearName } from "../model/names.js";
import type { CalibrationSet } from "./calibration.js";
import { checkPatternFits, type Pattern } from "./pattern.js";
import { GramCollector, type GramStats } from "./gram.js";
import { problemFromGram } from "./problem.js";
import { METHODS } from "./methods/index.js";
import type { MethodName, PruneOptions, PruneStats } from "./methods/types.js";

export const SCHEDULES = Object.freeze(["sequential", "parallel"] as const);
export type Schedule = (typeof SCHEDULES)[number];

export interface PruneSettings {
  method: MethodName;
  pattern: Pattern;
  schedule: Schedule;
  errorCorrection: boolean;
  /** per-method knobs (SparseGPT block size, FISTA iterations, …) */
  methodOptions?: PruneOptions;
}

export interface OperatorReport extends PruneStats {
  layer: number;
  op: LinearOp;
  name: string;
  rows: number;
  cols: number;
}

export interface LayerCheckpointer {
  /** pruned weights of layer l, if a checkpoint exists (then the layer is not pruned again) */
  load(l: number): { weights: Partial<Record<LinearOp, Float32Array>>; reports: OperatorReport[] } | undefined;
  save(l: number, weights: Record<LinearOp, Float32Array>, reports: OperatorReport[]): void;
}

export interface DriverHooks {
  checkpoint?: LayerCheckpointer;
  onOperator?(r: OperatorReport, done: number, total: number): void;
  onLayer?(l: number, reports: OperatorReport[], resumed: boolean): void;
}

const GROUPS: ReadonlyArray<{ point: CapturePoint; ops: readonly LinearOp[] }> = [
  { point: "qkv", ops: ["wq", "wk", "wv"] },
  { point: "o", ops: ["wo"] },
  { point: "gateup", ops: ["wGate", "wUp"] },
  { point: "down", ops: ["wDown"] },
];

function colsOf(model: Model, point: CapturePoint): number {
  const c = model.config;
  return point === "o" ? c.nHeads * c.headDim : point === "down" ? c.hiddenDim : c.dim;
}

/** Check up front that the pattern fits every operator (a width not divisible by M is an error before any work). */
export function checkModelPattern(model: Model, pattern: Pattern): void {
  for (const g of GROUPS) for (const op of g.ops) checkPatternFits(pattern, model.weights.layers[0][op].shape[1], `${linearName(0, op)}`);
}

/** Prune every linear operator of every decoder layer in place; returns one report per operator. */
export function pruneModel(model: Model, calib: CalibrationSet, settings: PruneSettings, hooks: DriverHooks = {}): OperatorReport[] {
  checkModelPattern(model, settings.pattern);
  const { wasm, config: c } = model;
  const arena = wasm.arena;
  const maxT = Math.max(...calib.samples.map((s) => s.length));
  const reports: OperatorReport[] = [];
  const totalOps = c.nLayers * 7;

  return arena.scoped(() => {
    const st = createRunState(model, maxT, maxT);
    // the layer-input stream for all samples, [N, dim]
    const stream = arena.alloc(calib.totalTokens * c.dim);
    calib.samples.forEach((s, i) => {
      embed(model, st, s);
      copy(model, st.x, stream + 4 * calib.offsets[i] * c.dim, s.length * c.dim);
    });

    for (let l = 0; l < c.nLayers; l++) {
      const dense = model.weights.layers[l];
      const saved = hooks.checkpoint?.load(l);
      let layerReports: OperatorReport[];
      const mark = arena.mark();
      const pruned: LayerWeights = { ...dense };
      for (const g of GROUPS) for (const op of g.ops) pruned[op] = tensorLike(model, dense[op]);
      if (saved) {
        for (const op of Object.keys(saved.weights) as LinearOp[]) pruned[op].data.set(saved.weights[op]!);
        layerReports = saved.reports;
      } else {
        layerReports = settings.errorCorrection
          ? pruneLayerCorrected(model, st, calib, stream, l, dense, pruned, settings, (r) => hooks.onOperator?.(r, reports.length + r.index + 1, totalOps))
          : pruneLayerPlain(model, st, calib, stream, l, dense, pruned, settings, (r) => hooks.onOperator?.(r, reports.length + r.index + 1, totalOps));
      }
      // advance the stream through the pruned (sequential) or dense (parallel) layer
      const through = settings.schedule === "sequential" ? pruned : dense;
      calib.samples.forEach((s, i) => {
        const at = stream + 4 * calib.offsets[i] * c.dim;
        copy(model, at, st.x, s.length * c.dim);
        layerForward(model, st, through, l, s.length, 0);
        copy(model, st.x, at, s.length * c.dim);
      });
      const weights = {} as Record<LinearOp, Float32Array>;
      for (const g of GROUPS) for (const op of g.ops) {
        dense[op].data.set(pruned[op].data);
        weights[op] = dense[op].data;
      }
      if (!saved) hooks.checkpoint?.save(l, weights, layerReports);
      arena.release(mark);
      reports.push(...layerReports);
      hooks.onLayer?.(l, layerReports, !!saved);
    }
    return reports;
  });
}

type OpDone = (r: OperatorReport & { index: number }) => void;

/** No correction: one pass of the dense layer; each operator fitted to its own dense input. */
function pruneLayerPlain(
  model: Model, st: RunState, calib: CalibrationSet, stream: number, l: number,
  dense: LayerWeights, pruned: LayerWeights, settings: PruneSettings, done: OpDone,
): OperatorReport[] {
  const mark = model.wasm.arena.mark();
  const grams = new Map(GROUPS.map((g) => [g.point, new GramCollector(model.wasm, colsOf(model, g.point))]));
  forEachSample(model, st, calib, stream, (T) => {
    layerForward(model, st, dense, l, T, 0, (point, x, TT) => grams.get(point)!.addBatch(x, TT));
  });
  const out: OperatorReport[] = [];
  for (const g of GROUPS) {
    const stats = grams.get(g.point)!.finish();
    for (const op of g.ops) {
      const r = solveInto(model, l, op, dense[op], stats, pruned[op], settings);
      out.push(r);
      done({ ...r, index: out.length - 1 });
    }
  }
  model.wasm.arena.release(mark);
  return out;
}

/** Intra-layer error correction: groups in forward order, each fitted on pruned inputs to dense outputs. */
function pruneLayerCorrected(
  model: Model, st: RunState, calib: CalibrationSet, stream: number, l: number,
  dense: LayerWeights, pruned: LayerWeights, settings: PruneSettings, done: OpDone,
): OperatorReport[] {
  const c = model.config;
  const arena = model.wasm.arena;
  const out: OperatorReport[] = [];
  const maxT = st.maxT;
  // the layer as pruned so far: dense operators until their group is done
  const partial: LayerWeights = { ...dense };
  for (const g of GROUPS) {
    const cols = colsOf(model, g.point);
    const gram = new GramCollector(model.wasm, cols, { cross: true });
    const xd = arena.alloc(maxT * cols);
    const xp = arena.alloc(maxT * cols);
    const grab = (dst: number) => (point: CapturePoint, x: number, T: number) => {
      if (point === g.point) copy(model, x, dst, T * cols);
    };
    calib.samples.forEach((s, i) => {
      const at = stream + 4 * calib.offsets[i] * c.dim;
      const T = s.length;
      copy(model, at, st.x, T * c.dim);
      layerForward(model, st, dense, l, T, 0, grab(xd));
      copy(model, at, st.x, T * c.dim);
      layerForward(model, st, partial, l, T, 0, grab(xp));
      gram.addBatchPair(xp, xd, T);
    });
    const stats = gram.finish();
    for (const op of g.ops) {
      const r = solveInto(model, l, op, dense[op], stats, pruned[op], settings);
      partial[op] = pruned[op];
      out.push(r);
      done({ ...r, index: out.length - 1 });
    }
    gram.free();
  }
  return out;
}

function forEachSample(model: Model, st: RunState, calib: CalibrationSet, stream: number, fn: (T: number) => void): void {
  const dim = model.config.dim;
  calib.samples.forEach((s, i) => {
    copy(model, stream + 4 * calib.offsets[i] * dim, st.x, s.length * dim);
    fn(s.length);
  });
}

/** Solve one operator and copy its pruned weights into `into` (allocated before the Gram statistics). */
function solveInto(
  model: Model, l: number, op: LinearOp, w0: Tensor, stats: GramStats, into: Tensor, settings: PruneSettings,
): OperatorReport {
  const [rows, cols] = w0.shape;
  const wasm = model.wasm;
  return wasm.arena.scoped(() => {
    const t0 = performance.now();
    const problem = problemFromGram(wasm, w0.ptr, rows, stats);
    const { W, stats: s } = METHODS[settings.method].prune(wasm, problem, settings.pattern, settings.methodOptions);
    into.data.set(wasm.arena.f32(W, rows * cols));
    const seconds = (performance.now() - t0) / 1000;
    return { layer: l, op, name: linearName(l, op), rows, cols, ...s, seconds };
  });
}

function copy(model: Model, src: number, dst: number, n: number): void {
  const a = model.wasm.arena;
  a.f32(dst, n).set(a.f32(src, n));
}

function tensorLike(model: Model, t: Tensor): Tensor {
  const ptr = model.wasm.arena.alloc(t.data.length);
  return { ptr, shape: [...t.shape], data: model.wasm.arena.f32(ptr, t.data.length) };
}

