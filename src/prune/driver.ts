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
import type { DenseLinear, Model, LayerWeights, LinearOp } from "../model/types.js";
import { denseLayer, type DenseLayer } from "../model/linear.js";
import { createRunState, embed, type CapturePoint, type RunState } from "../model/forward.js";
import { linearName } from "../model/names.js";
import type { CalibrationSet } from "./calibration.js";
import { checkPatternFits, type Pattern } from "./pattern.js";
import { GramCollector, type GramStats } from "./gram.js";
import { problemFromGram } from "./problem.js";
import { WorkerError } from "../errors.js";
import type { Executor } from "../exec/executor.js";
import { describe } from "../model/describe.js";
import { layerPassesOn, runLayerPasses, type LayerPass } from "../model/layer-passes.js";
import type { LayerJobTask } from "./layer-job.js";
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

/** Input width of the operators at a capture point, from the layer's own tensors (layers may differ in size). */
function colsOf(lw: LayerWeights, point: CapturePoint): number {
  const op = point === "qkv" ? lw.wq : point === "o" ? lw.wo : point === "gateup" ? lw.wGate : lw.wDown;
  return op.shape[1];
}

/** Check up front that the pattern fits every operator (a width not divisible by M is an error before any work). */
export function checkModelPattern(model: Model, pattern: Pattern): void {
  model.weights.layers.forEach((lw, l) => {
    for (const g of GROUPS) for (const op of g.ops) checkPatternFits(pattern, lw[op].shape[1], linearName(l, op));
  });
}

/**
 * Prune every linear operator of every decoder layer in place; returns one report per operator.
 *
 * With a worker pool (`model.wasm.parallel`): the calibration passes of a layer run on the workers (samples in
 * contiguous blocks, each slot with its own RunState, the operator inputs copied to per-sample capture
 * buffers), the Gram sums are split over the rows of H and take the samples in order, and each operator's
 * method splits its rows. Under the `parallel` schedule, layers 1.. instead run as whole-layer jobs on the
 * workers, as many in flight as there are slots and memory (layersInFlight; layer 0 runs here first and
 * sizes the jobs' memory regions; if it was resumed from a checkpoint the operators are sharded instead).
 * Every result is bit-identical for any thread count.
 */
export async function pruneModel(
  model: Model, calib: CalibrationSet, settings: PruneSettings, exec: Executor, hooks: DriverHooks = {},
): Promise<OperatorReport[]> {
  checkModelPattern(model, settings.pattern);
  const { wasm, config: c } = model;
  const arena = wasm.arena;
  const maxT = Math.max(...calib.samples.map((s) => s.length));
  const reports: OperatorReport[] = [];
  const totalOps = c.nLayers * 7;

  const m0 = arena.mark();
  try {
    const st = createRunState(model, maxT, maxT);
    const states = [st, ...Array.from({ length: exec.slots - 1 }, () => createRunState(model, maxT, maxT))];
    // the layer-input stream for all samples, [N, dim]
    const stream = arena.alloc(calib.totalTokens * c.dim);
    calib.samples.forEach((s, i) => {
      embed(model, st, s);
      copy(model, st.x, stream + 4 * calib.offsets[i] * c.dim, s.length * c.dim);
    });
    const ctx: LayerContext = { model, exec, calib, stream, states };

    // `parallel` schedule with a pool: layer 0 here (operators sharded), then layers in flight on the workers
    const inFlight = settings.schedule === "parallel" && exec.slots > 1 && c.nLayers > 1 && !settings.methodOptions?.fistaSolver;
    let jobBytes = 0;
    for (let l = 0; l < c.nLayers; l++) {
      if (inFlight && l === 1 && jobBytes > 0) {
        const done = await layersInFlight(ctx, st, jobBytes, settings, hooks, reports, totalOps);
        if (done) return reports;
      }
      if (inFlight && l === 0) arena.resetPeak();
      const dense = denseLayer(model.weights.layers[l], l);
      const saved = hooks.checkpoint?.load(l);
      let layerReports: OperatorReport[];
      const mark = arena.mark();
      const pruned: DenseLayer = { ...dense };
      for (const g of GROUPS) for (const op of g.ops) pruned[op] = tensorLike(model, dense[op]);
      if (saved) {
        for (const op of Object.keys(saved.weights) as LinearOp[]) pruned[op].data.set(saved.weights[op]!);
        layerReports = saved.reports;
      } else {
        const done: OpDone = (r) => hooks.onOperator?.(r, reports.length + r.index + 1, totalOps);
        layerReports = settings.errorCorrection
          ? await pruneLayerCorrected(ctx, l, dense, pruned, settings, done)
          : await pruneLayerPlain(ctx, l, dense, pruned, settings, done);
      }
      // advance the stream through the pruned (sequential) or dense (parallel) layer
      const through = settings.schedule === "sequential" ? pruned : dense;
      await runLayerPasses(exec, c, l, ctx.states, [through], calib.samples.map((s, i) => {
        const at = stream + 4 * calib.offsets[i] * c.dim;
        return { lw: 0, at, T: s.length, out: at };
      }), `layer ${l}: advancing the calibration stream`);
      const weights = {} as Record<LinearOp, Float32Array>;
      for (const g of GROUPS) for (const op of g.ops) {
        dense[op].data.set(pruned[op].data);
        weights[op] = dense[op].data;
      }
      if (!saved) hooks.checkpoint?.save(l, weights, layerReports);
      // a layer job's region: what this layer took above its start (when it was pruned here)
      if (inFlight && l === 0 && !saved) jobBytes = arena.peak - mark;
      arena.release(mark);
      reports.push(...layerReports);
      hooks.onLayer?.(l, layerReports, !!saved);
    }
    return reports;
  } finally {
    arena.release(m0);
  }
}

type OpDone = (r: OperatorReport & { index: number }) => void;

/** Room kept free in the 4 GiB wasm32 memory besides the layer jobs' regions. */
const RESERVE_BYTES = 256 << 20;
const MAX_BYTES = 4 * 1024 ** 3;

/**
 * The `parallel` schedule's layers 1.. as independent jobs on the pool's workers (src/parallel/layer.worker.ts),
 * each pruning a whole layer with the single-thread code (bit-identical results). In flight: at most one per
 * slot and at most as many as fit in memory — each job gets a region of 1.25x what layer 0 took (measured
 * high-water mark of the arena: captures, Grams, method scratch, pruned tensors) plus its input stream. The
 * main thread advances the dense calibration stream as it hands out layers (so a layer's input is ready
 * when a slot frees), then puts the pruned weights in place, checkpoints and reports in layer order.
 * Returns false (nothing done) when fewer than 2 jobs fit: then the operators are sharded as before.
 */
async function layersInFlight(
  ctx: LayerContext, st: RunState, layer0Bytes: number, settings: PruneSettings, hooks: DriverHooks,
  reports: OperatorReport[], totalOps: number,
): Promise<boolean> {
  const { model, calib, stream, exec } = ctx;
  const { wasm, config: c } = model;
  const arena = wasm.arena;
  const streamBytes = calib.totalTokens * c.dim * 4;
  // + the job's own local executor's packing scratch
  const regionBytes = Math.ceil((layer0Bytes * 1.25 + streamBytes + (2 << 20)) / 65536) * 65536;
  const fit = Math.floor((MAX_BYTES - RESERVE_BYTES - arena.mark()) / regionBytes);
  const slots = Math.min(exec.slots, c.nLayers - 1, fit);
  if (slots < 2) return false;
  const mark = arena.mark();
  try {
    const regions = Array.from({ length: slots }, () => arena.allocBytes(regionBytes));
    // the jobs' RunStates: apart from `st`, which this thread keeps using to advance the stream meanwhile
    const maxT = Math.max(...calib.samples.map((s) => s.length));
    const jobStates = regions.map(() => createRunState(model, maxT, maxT));
    const free = regions.map((_, s) => s);
    const running = new Map<number, Promise<{ l: number; slot: number; out: OperatorReport[] | Error }>>();
    const finished = new Map<number, { reports: OperatorReport[]; resumed: boolean }>();
    const prunedOf = new Map<number, DenseLayer>();
    let next = 1; // next layer to hand out
    let flushed = 1; // next layer to report
    const flush = () => {
      while (finished.has(flushed)) {
        const f = finished.get(flushed)!;
        finished.delete(flushed);
        reports.push(...f.reports);
        hooks.onLayer?.(flushed, f.reports, f.resumed);
        flushed++;
      }
    };
    const install = (l: number, pruned: DenseLayer) => {
      const dense = denseLayer(model.weights.layers[l], l);
      const weights = {} as Record<LinearOp, Float32Array>;
      for (const g of GROUPS) for (const op of g.ops) {
        dense[op].data.set(pruned[op].data);
        weights[op] = dense[op].data;
      }
      return weights;
    };
    const advance = (l: number) => layerPassesOn(wasm, c, l, st, [model.weights.layers[l]], calib.samples.map((s, i) => {
      const at = stream + 4 * calib.offsets[i] * c.dim;
      return { lw: 0, at, T: s.length, out: at };
    }));
    while (next < c.nLayers || running.size > 0) {
      // hand out layers while a slot is free (resumed layers need no slot)
      while (next < c.nLayers && free.length > 0) {
        const l = next++;
        const saved = hooks.checkpoint?.load(l);
        if (saved) {
          advance(l);
          const dense = denseLayer(model.weights.layers[l], l);
          for (const op of Object.keys(saved.weights) as LinearOp[]) dense[op].data.set(saved.weights[op]!);
          finished.set(l, { reports: saved.reports, resumed: true });
          flush();
          continue;
        }
        const slot = free.pop()!;
        // the region: input stream, pruned tensors, then the job's own arena
        const base = regions[slot];
        arena.f32(base, calib.totalTokens * c.dim).set(arena.f32(stream, calib.totalTokens * c.dim));
        let p = base + streamBytes;
        const dense = denseLayer(model.weights.layers[l], l);
        const pruned: DenseLayer = { ...dense };
        for (const g of GROUPS) for (const op of g.ops) {
          const n = dense[op].data.length;
          p = (p + 63) & ~63;
          pruned[op] = { format: "dense", ptr: p, shape: [...dense[op].shape], data: arena.f32(p, n) };
          p += 4 * n;
        }
        prunedOf.set(l, pruned);
        const task: LayerJobTask = {
          op: "pruneLayer", config: c, l, dense: describe(dense), pruned: describe(pruned), calib, stream: base,
          st: jobStates[slot]!, settings, base: p, limit: base + regionBytes,
        };
        running.set(l, exec.run<OperatorReport[]>(task, `layer ${l} (job)`, slot).then(
          (out) => ({ l, slot, out }), (e: unknown) => ({ l, slot, out: e instanceof Error ? e : new Error(String(e)) })));
        // the next layer's input: this layer's dense output (its weights are replaced only when it is done)
        advance(l);
      }
      if (running.size === 0) break;
      const { l, slot, out } = await Promise.race(running.values());
      running.delete(l);
      if (out instanceof Error) {
        await Promise.allSettled(running.values());
        throw out instanceof WorkerError ? out : new WorkerError(`layer ${l}: ${out.message}`);
      }
      const weights = install(l, prunedOf.get(l)!);
      prunedOf.delete(l);
      hooks.checkpoint?.save(l, weights, out);
      free.push(slot);
      let done = reports.length + [...finished.values()].reduce((a, f) => a + f.reports.length, 0);
      for (const r of out) hooks.onOperator?.(r, ++done, totalOps);
      finished.set(l, { reports: out, resumed: false });
      flush();
    }
    flush();
    return true;
  } finally {
    arena.release(mark);
  }
}

/**
 * One layer pruned start to finish on this thread (a worker's layer job): `model` holds config and the
 * job's wasm (its arena bounded to the job's region, no pool); `stream` is the layer's input [N, dim].
 */
export async function pruneLayerJob(
  model: Model, exec: Executor, l: number, dense: DenseLayer, pruned: DenseLayer, calib: CalibrationSet, stream: number, st: RunState,
  settings: PruneSettings,
): Promise<OperatorReport[]> {
  const ctx: LayerContext = { model, exec, calib, stream, states: [st] };
  return settings.errorCorrection
    ? pruneLayerCorrected(ctx, l, dense, pruned, settings, () => {})
    : pruneLayerPlain(ctx, l, dense, pruned, settings, () => {});
}

/** What every layer step needs: the model, the calibration stream, and one RunState per thread slot. */
interface LayerContext {
  model: Model;
  exec: Executor;
  calib: CalibrationSet;
  stream: number;
  /** RunState per pool slot (one, in this thread, without a pool) */
  states: RunState[];
}

/** Capture buffers of at most this many floats per chunk of samples (the Grams take samples in order). */
const CAPTURE_FLOATS = 64 << 20;

/** Consecutive samples whose captures (tokens × `floatsPerToken`) fit CAPTURE_FLOATS (at least one sample). */
function sampleChunks(calib: CalibrationSet, floatsPerToken: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const budget = Math.max(1, Math.floor(CAPTURE_FLOATS / floatsPerToken));
  let i0 = 0;
  while (i0 < calib.samples.length) {
    let i1 = i0 + 1;
    let tokens = calib.samples[i0].length;
    while (i1 < calib.samples.length && tokens + calib.samples[i1].length <= budget) tokens += calib.samples[i1++].length;
    out.push([i0, i1]);
    i0 = i1;
  }
  return out;
}

/** No correction: one pass of the dense layer; each operator fitted to its own dense input. */
async function pruneLayerPlain(
  ctx: LayerContext, l: number, dense: DenseLayer, pruned: DenseLayer, settings: PruneSettings, done: OpDone,
): Promise<OperatorReport[]> {
  const { model, calib, stream } = ctx;
  const arena = model.wasm.arena;
  const dim = model.config.dim;
  const mark = arena.mark();
  const grams = new Map(GROUPS.map((g) => [g.point, new GramCollector(ctx.exec, colsOf(dense, g.point))]));
  const perToken = GROUPS.reduce((a, g) => a + colsOf(dense, g.point), 0);
  for (const [i0, i1] of sampleChunks(calib, perToken)) {
    const m = arena.mark();
    const base = calib.offsets[i0];
    const tokens = calib.offsets[i1 - 1] + calib.samples[i1 - 1].length - base;
    const capBase = new Map(GROUPS.map((g) => [g.point, arena.alloc(tokens * colsOf(dense, g.point))]));
    const capOf = (point: CapturePoint, i: number) => capBase.get(point)! + 4 * (calib.offsets[i] - base) * colsOf(dense, point);
    const idx = Array.from({ length: i1 - i0 }, (_, j) => i0 + j);
    await runLayerPasses(ctx.exec, model.config, l, ctx.states, [dense], idx.map((i) => ({
      lw: 0, at: stream + 4 * calib.offsets[i] * dim, T: calib.samples[i].length,
      caps: Object.fromEntries(GROUPS.map((g) => [g.point, capOf(g.point, i)])),
    })), `layer ${l}: calibration forward`);
    for (const g of GROUPS) {
      await grams.get(g.point)!.addBatches(idx.map((i) => {
        const x = capOf(g.point, i);
        return { xp: x, xd: x, T: calib.samples[i].length };
      }), `layer ${l}: Gram of ${g.ops.map((op) => linearName(l, op)).join(", ")}`);
    }
    arena.release(m);
  }
  const out: OperatorReport[] = [];
  for (const g of GROUPS) {
    const stats = grams.get(g.point)!.finish();
    for (const op of g.ops) {
      const r = await solveInto(model, ctx.exec, l, op, dense[op], stats, pruned[op], settings);
      out.push(r);
      done({ ...r, index: out.length - 1 });
    }
  }
  arena.release(mark);
  return out;
}

/** Intra-layer error correction: groups in forward order, each fitted on pruned inputs to dense outputs. */
async function pruneLayerCorrected(
  ctx: LayerContext, l: number, dense: DenseLayer, pruned: DenseLayer, settings: PruneSettings, done: OpDone,
): Promise<OperatorReport[]> {
  const { model, calib, stream } = ctx;
  const arena = model.wasm.arena;
  const dim = model.config.dim;
  const out: OperatorReport[] = [];
  // the layer as pruned so far: dense operators until their group is done
  const partial: LayerWeights = { ...dense };
  for (const g of GROUPS) {
    const cols = colsOf(dense, g.point);
    const gram = new GramCollector(ctx.exec, cols, { cross: true });
    for (const [i0, i1] of sampleChunks(calib, 2 * cols)) {
      const m = arena.mark();
      const base = calib.offsets[i0];
      const tokens = calib.offsets[i1 - 1] + calib.samples[i1 - 1].length - base;
      const xdBase = arena.alloc(tokens * cols);
      const xpBase = arena.alloc(tokens * cols);
      const idx = Array.from({ length: i1 - i0 }, (_, j) => i0 + j);
      const at = (i: number) => 4 * (calib.offsets[i] - base) * cols;
      await runLayerPasses(ctx.exec, model.config, l, ctx.states, [dense, partial], idx.flatMap((i) => [
        { lw: 0, at: stream + 4 * calib.offsets[i] * dim, T: calib.samples[i].length, caps: { [g.point]: xdBase + at(i) } },
        { lw: 1, at: stream + 4 * calib.offsets[i] * dim, T: calib.samples[i].length, caps: { [g.point]: xpBase + at(i) } },
      ]), `layer ${l}: calibration forward (dense and pruned) for ${g.ops.map((op) => linearName(l, op)).join(", ")}`);
      await gram.addBatches(idx.map((i) => ({ xp: xpBase + at(i), xd: xdBase + at(i), T: calib.samples[i].length })),
        `layer ${l}: Gram of ${g.ops.map((op) => linearName(l, op)).join(", ")}`);
      arena.release(m);
    }
    const stats = gram.finish();
    for (const op of g.ops) {
      const r = await solveInto(model, ctx.exec, l, op, dense[op], stats, pruned[op], settings);
      partial[op] = pruned[op];
      out.push(r);
      done({ ...r, index: out.length - 1 });
    }
    gram.free();
  }
  return out;
}

/** Solve one operator and copy its pruned weights into `into` (allocated before the Gram statistics). */
async function solveInto(
  model: Model, exec: Executor, l: number, op: LinearOp, w0: DenseLinear, stats: GramStats, into: DenseLinear, settings: PruneSettings,
): Promise<OperatorReport> {
  const [rows, cols] = w0.shape;
  const wasm = model.wasm;
  const name = linearName(l, op);
  const m = wasm.arena.mark();
  try {
    const t0 = performance.now();
    const problem = await problemFromGram(exec, w0.ptr, rows, stats);
    const { W, stats: s } = await METHODS[settings.method].prune(exec, problem, settings.pattern, settings.methodOptions);
    into.data.set(wasm.arena.f32(W, rows * cols));
    const seconds = (performance.now() - t0) / 1000;
    return { layer: l, op, name, rows, cols, ...s, seconds };
  } catch (e) {
    if (e instanceof WorkerError) throw new WorkerError(`${name} (${settings.method}): ${e.message}`);
    // in a layer job (no pool of its own) any failure is named here: the main thread only knows the layer
    if (e instanceof Error && (wasm.arena as { limit?: number }).limit !== undefined) {
      e.message = `${name} (${settings.method}): ${e.message}`;
    }
    throw e;
  } finally {
    wasm.arena.release(m);
  }
}

function copy(model: Model, src: number, dst: number, n: number): void {
  const a = model.wasm.arena;
  a.f32(dst, n).set(a.f32(src, n));
}

function tensorLike(model: Model, t: DenseLinear): DenseLinear {
  const ptr = model.wasm.arena.alloc(t.data.length);
  return { format: "dense", ptr, shape: [...t.shape], data: model.wasm.arena.f32(ptr, t.data.length) };
}

