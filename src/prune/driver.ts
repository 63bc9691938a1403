/**
 * @file The layer-by-layer pruning driver (SparseGPT's `llama_sequential`, FISTAPruner's layer loop), written once
 * for every method, on a ModelStore (src/model/residency.ts): a resident model or one streamed a decoder layer at
 * a time — the same code either way.
 *
 * The calibration stream X (every sample's rows, [N, dim]) lives outside the WebAssembly memory (src/io/row-store.ts,
 * host memory, spilled to a file beyond a budget) and passes through a layer in chunks of samples copied into the
 * arena. For decoder layer l:
 *  - schedule `sequential`: X is the output of the already-pruned layers 0..l-1 (SparseGPT/Wanda default);
 *    schedule `parallel`: X is the dense model's activation, so layers are independent (FISTAPruner §3.4).
 *  - the method declares its statistics (src/prune/stats.ts): none (magnitude: no calibration pass at all), the
 *    column norms (wanda), or H = XᵀX/n (sparsegpt, fista); an operator's relative error f(W)/f(0) is reported
 *    by FISTA (its safeguard evaluates it) and, with `measureError`, by every method (the Gram, and one D·H
 *    product per operator: for SparseGPT more than its OBS loop, so off by default).
 *  - without error correction: one pass of the dense layer over X captures the input of every operator.
 *  - with intra-layer error correction (FISTAPruner §3.3): the operator groups (q,k,v), (o), (gate,up), (down) are
 *    pruned in forward order; for each group a pass runs the dense layer (giving X_d) and the layer with the
 *    operators pruned so far (giving X_p) over X, and each operator is fitted on the pruned inputs against the
 *    dense outputs: min ‖W·X_p − W₀·X_d‖² (H = X_pᵀX_p/n, B = W₀·X_dᵀX_p/n).
 * Pruned weights are rounded to the dtype they are stored in (`storeDtype`) as soon as they are solved, so what the
 * next operators and layers see is what is written. The layer goes to the sink (src/prune/output.ts: the output
 * files, written as they are produced, or a model in memory), then the stream advances through the pruned
 * (sequential) or dense (parallel) layer. Every sum takes the samples in order, one batch per sample, so the
 * result is bit-identical for any chunking and any thread count; a layer the sink already holds (a resumed run)
 * is read back from it, not pruned again.
 *
 * With `quantize` (./quantize.ts) each operator is quantized as soon as it is pruned — SparseGPT with GPTQ in its
 * own sweep (joint), every other method by RTN or GPTQ on the pruned support afterwards — and its weights are the
 * dequantized values (exactly what the stored integers mean), so the next operators and layers are calibrated on
 * the quantized model; the codes go to the sink with the weights (`DenseLinear.quant`).
 */
import type { DType } from "../io/dtype.js";
import { RowStore, type Rows } from "../io/row-store.js";
import { WorkerError } from "../errors.js";
import type { Executor } from "../exec/executor.js";
import type { ModelStore } from "../model/residency.js";
import type { DenseLinear, LayerWeights, LinearOp } from "../model/types.js";
import { createRunState, type CapturePoint, type RunState } from "../model/forward.js";
import { denseLayer, type DenseLayer } from "../model/linear.js";
import { linearName } from "../model/names.js";
import { layerSpecsOf } from "../model/specs.js";
import { advanceRows, executorPasses, rowChunks, runLayerPasses, type LayerPass } from "../model/layer-passes.js";
import type { QuantizeSettings } from "./quantize.js";
import type { CalibrationSet } from "./calibration.js";
import { checkPatternFits, type Pattern } from "./pattern.js";
import { StatsCollector, type RawStats, type StatsKind } from "./stats.js";
import { GROUPS, solveGroups, type BlockResult, type SolveRequest } from "./solve.js";
import { checkMemoryFloor, memoryFloor, type MemoryFloor } from "./memory-floor.js";
import { METHODS } from "./methods/index.js";
import { layersInFlight } from "./in-flight.js";
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
  /** the dtype the pruned weights are stored in (default F32): they are rounded to it when solved */
  storeDtype?: DType;
  /** collect the Gram for methods that need less, to report every operator's relative error */
  measureError?: boolean;
  /** quantize every pruned operator (./quantize.ts); stored as the codes, not in `storeDtype` */
  quantize?: QuantizeSettings;
  /**
   * The calibration samples as this many consecutive shards (calibShards) whose statistics are summed in shard
   * order, each shard's sum from zero (default 1: one running sum over all samples). The float32 sums, and so the
   * result, depend on it and on nothing else (not on threads, chunks or machines); a distributed sequential prune
   * computes one shard per job.
   */
  calibShards?: number;
}

/** Shard k of `shards` over n samples: [⌊k·n/S⌋, ⌊(k+1)·n/S⌋) (empty shards dropped). */
export function calibShards(n: number, shards = 1): Array<[number, number]> {
  const S = Math.max(1, Math.min(n, Math.floor(shards)));
  const out: Array<[number, number]> = [];
  for (let k = 0; k < S; k++) {
    const r: [number, number] = [Math.floor((k * n) / S), Math.floor(((k + 1) * n) / S)];
    if (r[1] > r[0]) out.push(r);
  }
  return out;
}

/** Which statistics a pass collects: every group's from the dense layer, or group g's with error correction. */
export type StatsStage = { kind: "plain" } | { kind: "group"; g: number };

/**
 * Statistics and stream advances done elsewhere (src/distributed: by workers, a shard of samples per job): the
 * driver then keeps no stream, adds each shard's running sums in shard order and solves here.
 */
export interface RemoteStream {
  /** layer 0's input (the embeddings) */
  init(): Promise<void>;
  /** each shard's running sums of `stage` at layer l to `add`, in shard order; `before`: the groups before it, pruned */
  stats(l: number, stage: StatsStage, dense: DenseLayer, before: Partial<Record<LinearOp, DenseLinear>>, add: (shard: Map<CapturePoint, RawStats>) => void): Promise<void>;
  /** advance every shard's stream through layer l as pruned (`lw`) */
  advance(l: number, lw: LayerWeights): Promise<void>;
  /** row blocks an operator whose rows are independent is solved in (src/prune/solve.ts solveBlocks) */
  readonly rowBlocks: number;
  /** solve groups of layer l elsewhere (one job per group and row block); per request its blocks' results */
  solve?(l: number, dense: DenseLayer, requests: SolveRequest[]): Promise<BlockResult[][]>;
}

export interface OperatorReport extends PruneStats {
  layer: number;
  op: LinearOp;
  name: string;
  rows: number;
  cols: number;
}

/** Seconds of one layer by phase, and its bytes. */
export interface LayerPhases {
  layer: number;
  /** reading the dense layer (streamed: from disk) */
  read: number;
  /** calibration passes of the layer (captures) */
  forward: number;
  /** statistics (Gram, norms) */
  statistics: number;
  /** the methods' solves (products W₀·H included) */
  solve: number;
  /** handing the pruned layer to the sink (the output files) */
  write: number;
  /** advancing the stream through the layer */
  advance: number;
  /** arena bytes above the layer's start at most (captures, statistics, scratch, pruned tensors) */
  arenaBytes: number;
  resumed: boolean;
}

/** Where pruned layers go: the output files as they are produced, or a model in memory. */
export interface PruneSink {
  /** Layer l as an earlier run of the same job stored it (its linear weights widened to f32), if it did. */
  resumed(l: number): { weights: Record<LinearOp, Float32Array>; reports: OperatorReport[] } | undefined;
  /** Layer l pruned: `dense` is the input layer (norms, biases), `pruned` its pruned linear weights. */
  put(l: number, dense: DenseLayer, pruned: Record<LinearOp, DenseLinear>, reports: OperatorReport[]): Promise<void> | void;
}

export interface DriverHooks {
  onOperator?(r: OperatorReport, done: number, total: number): void;
  onLayer?(l: number, reports: OperatorReport[], phases: LayerPhases): void;
}

export interface DriverOptions {
  /** host-memory bytes for the calibration stream before it spills to a file (default: all in memory) */
  streamBudget?: number;
  /** folder of the stream's spill file */
  spillDir?: string;
  /** the statistics and stream on workers (the sequential schedule of src/distributed) */
  remote?: RemoteStream;
}

/** Input width of the operators at a capture point, from the layer's own tensors (layers may differ in size). */
function colsOf(lw: LayerWeights, point: CapturePoint): number {
  const op = point === "qkv" ? lw.wq : point === "o" ? lw.wo : point === "gateup" ? lw.wGate : lw.wDown;
  return op.shape[1]!;
}

/** Check up front, from the shapes alone, that the pattern fits every operator. */
export function checkModelPattern(store: Pick<ModelStore, "config">, pattern: Pattern): void {
  for (let l = 0; l < store.config.nLayers; l++) {
    for (const s of layerSpecsOf(store.config, l)) if (s.op) checkPatternFits(pattern, s.shape[1]!, s.name);
  }
}

/** The statistics a group's operators get: the method's, or the Gram when the error is to be measured. */
export function statsKind(settings: PruneSettings): StatsKind {
  const k = METHODS[settings.method].stats(settings.errorCorrection);
  const needGram = !!settings.measureError || settings.quantize?.method === "gptq";
  if (!needGram || k === "gram" || k === "cross") return k;
  return settings.errorCorrection ? "cross" : "gram";
}

/** Floats of captures per chunk of samples (the sums take samples in order, so the chunking is free). */
const CHUNK_FLOATS = 48 << 20;

/** What every layer step needs. */
export interface LayerContext {
  store: Pick<ModelStore, "config" | "wasm">;
  exec: Executor;
  calib: CalibrationSet;
  stream: Rows;
  /** RunState per executor slot (a one-layer KV cache, no logits) */
  states: RunState[];
  settings: PruneSettings;
  time: { forward: number; statistics: number; solve: number };
  /** statistics from workers instead of `stream` */
  remote?: RemoteStream;
}

/**
 * A streamed layer's slot is scratch: when nothing reads a dense operator after it is solved (sequential, no
 * error correction) its pruned weights go over the dense ones, so the arena holds one layer, not two.
 */
function writesInPlace(store: Pick<ModelStore, "resident">, settings: PruneSettings): boolean {
  return !store.resident && settings.schedule === "sequential" && !settings.errorCorrection;
}

/** The least WebAssembly memory the prune of `store` needs (src/prune/memory-floor.ts), from where the arena is now. */
export function pruneMemoryFloor(store: Pick<ModelStore, "resident" | "config" | "wasm">, settings: PruneSettings): MemoryFloor {
  return memoryFloor(store.config, settings.method, statsKind(settings), settings.errorCorrection, store.wasm.arena.mark(), !writesInPlace(store, settings));
}

/**
 * Prune every linear operator of every decoder layer of `store` into `sink`; returns one report per operator.
 * Under the `parallel` schedule on a resident model with workers, layers 1.. run as whole-layer jobs on them
 * (src/prune/in-flight.ts); otherwise every layer runs here, its operators' work split over the executor.
 */
export async function pruneModel(
  store: ModelStore, calib: CalibrationSet, settings: PruneSettings, exec: Executor, sink: PruneSink,
  hooks: DriverHooks = {}, opts: DriverOptions = {},
): Promise<OperatorReport[]> {
  checkModelPattern(store, settings.pattern);
  const { wasm, config: c } = store;
  const arena = wasm.arena;
  const maxT = Math.max(1, ...calib.samples.map((s) => s.length));
  const reports: OperatorReport[] = [];
  const totalOps = c.nLayers * 7;
  const inPlace = writesInPlace(store, settings);
  checkMemoryFloor(pruneMemoryFloor(store, settings), settings.method);
  const m0 = arena.mark();
  const remote = opts.remote;
  const stream = new RowStore(remote ? [] : calib.samples.map((s) => s.length), c.dim, { budget: opts.streamBudget, spillDir: opts.spillDir });
  try {
    const states = Array.from({ length: exec.slots }, () => createRunState(store, maxT, maxT, { kvLayers: 1, logits: false }));
    const needStream = statsKind(settings) !== "none";
    let layer0Bytes = 0;
    if (needStream && remote) await remote.init();
    else if (needStream) {
      const tmp = new Float32Array(maxT * c.dim);
      calib.samples.forEach((s, i) => {
        store.embedRows(s, tmp);
        stream.write(i, tmp);
      });
    }
    const ctx: LayerContext = { store, exec, calib, stream, states, settings, time: { forward: 0, statistics: 0, solve: 0 }, remote };
    // the `parallel` schedule on a resident model with workers: layer 0 here, then layers in flight on them
    // (quantized operators carry their codes in this thread's objects, so they stay here)
    const inFlight = !remote && settings.schedule === "parallel" && exec.slots > 1 && c.nLayers > 1 && store.resident && needStream && !settings.methodOptions?.fistaSolver && !settings.quantize;
    for (let l = 0; l < c.nLayers; l++) {
      if (inFlight && l === 1 && layer0Bytes > 0 && (await layersInFlight(store, ctx, sink, layer0Bytes, hooks, reports))) return reports;
      const t0 = performance.now();
      const dense = denseLayer(store.acquire(l), l);
      const tRead = (performance.now() - t0) / 1000;
      const mark = arena.mark();
      arena.resetPeak();
      try {
        const saved = sink.resumed(l);
        const pruned = inPlace ? linearsOf(dense) : prunedTensors(store, dense);
        ctx.time = { forward: 0, statistics: 0, solve: 0 };
        let layerReports: OperatorReport[];
        if (saved) {
          for (const op of Object.keys(pruned) as LinearOp[]) pruned[op].data.set(saved.weights[op]);
          layerReports = saved.reports;
        } else {
          const done = (r: OperatorReport & { index: number }) => hooks.onOperator?.(r, reports.length + r.index + 1, totalOps);
          layerReports = await pruneLayer(ctx, l, dense, pruned, done);
        }
        // advance the stream through the pruned (sequential) or dense (parallel) layer, then hand the layer over
        // (a sink may write into the very model the dense weights came from)
        const ta = performance.now();
        if (needStream && l + 1 < c.nLayers) {
          const lw = settings.schedule === "sequential" ? { ...dense, ...pruned } : dense;
          await (remote ? remote.advance(l, lw) : advanceStream(ctx, l, lw));
        }
        const tw = performance.now();
        if (!saved) await sink.put(l, dense, pruned, layerReports);
        const phases: LayerPhases = {
          layer: l, read: tRead, ...ctx.time, write: (performance.now() - tw) / 1000, advance: (tw - ta) / 1000,
          arenaBytes: arena.peak - mark, resumed: !!saved,
        };
        if (l === 0 && !saved) layer0Bytes = phases.arenaBytes;
        reports.push(...layerReports);
        hooks.onLayer?.(l, layerReports, phases);
      } finally {
        arena.release(mark);
        store.release(l);
      }
    }
    return reports;
  } finally {
    stream.close();
    arena.release(m0);
  }
}

/** The linear operators of a layer, as they are (the pruned weights written over the dense ones). */
function linearsOf(dense: DenseLayer): Record<LinearOp, DenseLinear> {
  return Object.fromEntries(GROUPS.flatMap((g) => g.ops.map((op) => [op, dense[op]]))) as Record<LinearOp, DenseLinear>;
}

/** Fresh arena tensors for the pruned linear weights of a layer (shapes of `dense`'s). */
export function prunedTensors(store: Pick<ModelStore, "wasm">, dense: DenseLayer): Record<LinearOp, DenseLinear> {
  const out = {} as Record<LinearOp, DenseLinear>;
  for (const g of GROUPS) {
    for (const op of g.ops) {
      const n = dense[op].data.length;
      const ptr = store.wasm.arena.alloc(n);
      out[op] = { format: "dense", ptr, shape: [...dense[op].shape], data: store.wasm.arena.f32(ptr, n) };
    }
  }
  return out;
}

/** One decoder layer pruned into `pruned`: plain, or with intra-layer error correction. */
export async function pruneLayer(
  ctx: LayerContext, l: number, dense: DenseLayer, pruned: Record<LinearOp, DenseLinear>,
  done: (r: OperatorReport & { index: number }) => void = () => {},
): Promise<OperatorReport[]> {
  return ctx.settings.errorCorrection ? pruneLayerCorrected(ctx, l, dense, pruned, done) : pruneLayerPlain(ctx, l, dense, pruned, done);
}

/** A chunk of samples in the arena: their input rows (stream at chunk start) and per-point capture blocks. */
interface Chunk {
  i0: number;
  i1: number;
  /** arena rows of sample i: at(i) */
  at(i: number): number;
}

/** Copy samples [i0, i1) of the stream into a fresh arena block; `at(i)` is sample i's first row. */
function loadChunk(ctx: LayerContext, i0: number, i1: number): Chunk {
  const { calib, stream, store } = ctx;
  const dim = store.config.dim;
  const a = store.wasm.arena;
  const base = calib.offsets[i0]!;
  const tokens = calib.offsets[i1 - 1]! + calib.samples[i1 - 1]!.length - base;
  const rows = a.alloc(tokens * dim);
  const at = (i: number) => rows + 4 * (calib.offsets[i]! - base) * dim;
  for (let i = i0; i < i1; i++) stream.read(i, a.f32(at(i), stream.size(i)));
  return { i0, i1, at };
}

/** Per-point capture blocks of a chunk: cap(point, i) is sample i's input rows of the operators at `point`. */
function captureBlocks(ctx: LayerContext, ch: Chunk, colsAt: (point: CapturePoint) => number, points: readonly CapturePoint[]) {
  const { calib } = ctx;
  const a = ctx.store.wasm.arena;
  const base = calib.offsets[ch.i0]!;
  const tokens = calib.offsets[ch.i1 - 1]! + calib.samples[ch.i1 - 1]!.length - base;
  const blocks = new Map(points.map((p) => [p, a.alloc(tokens * colsAt(p))]));
  return (point: CapturePoint, i: number) => blocks.get(point)! + 4 * (calib.offsets[i]! - base) * colsAt(point);
}

const range = (i0: number, i1: number) => Array.from({ length: i1 - i0 }, (_, j) => i0 + j);

/** No correction: one pass of the dense layer; each operator fitted to its own dense input. */
async function pruneLayerPlain(
  ctx: LayerContext, l: number, dense: DenseLayer, pruned: Record<LinearOp, DenseLinear>, done: (r: OperatorReport & { index: number }) => void,
): Promise<OperatorReport[]> {
  const { store, exec, settings } = ctx;
  const arena = store.wasm.arena;
  const kind = statsKind(settings);
  const mark = arena.mark();
  const stats = new Map(GROUPS.map((g) => [g.point, new StatsCollector(exec, colsOf(dense, g.point), kind)]));
  if (kind !== "none") await collectShards(ctx, l, { kind: "plain" }, dense, {}, stats);
  let index = 0;
  const out = await solveGroups(ctx, l, GROUPS.map((g, gi) => ({ g: gi, stats: stats.get(g.point)! })), dense, pruned, (r) => done({ ...r, index: index++ }));
  arena.release(mark);
  return out;
}

/** The operators of the groups before group g, as pruned (error correction's partial layer). */
function prunedBefore(g: number, pruned: Partial<Record<LinearOp, DenseLinear>>): Partial<Record<LinearOp, DenseLinear>> {
  return Object.fromEntries(GROUPS.slice(0, g).flatMap((x) => x.ops.map((op) => [op, pruned[op]!]))) as Partial<Record<LinearOp, DenseLinear>>;
}

/**
 * The statistics of `stage` at layer l into `totals`, summed shard by shard (settings.calibShards; each shard's
 * running sum from zero, added in shard order: shard 0 straight into the zeroed totals). With `ctx.remote` the
 * shards' sums come from workers; here each shard is one `collectStage`.
 */
async function collectShards(
  ctx: LayerContext, l: number, stage: StatsStage, dense: DenseLayer, pruned: Partial<Record<LinearOp, DenseLinear>>, totals: Map<CapturePoint, StatsCollector>,
): Promise<void> {
  if (ctx.remote) {
    const t0 = performance.now();
    const before = stage.kind === "group" ? prunedBefore(stage.g, pruned) : {};
    await ctx.remote.stats(l, stage, dense, before, (shard) => {
      for (const [p, t] of totals) {
        const raw = shard.get(p);
        if (!raw) throw new WorkerError(`layer ${l}: a shard's statistics lack the ${p} group`);
        t.addRaw(raw);
      }
    });
    ctx.time.statistics += (performance.now() - t0) / 1000;
    return;
  }
  const a = ctx.store.wasm.arena;
  for (const [k, range] of calibShards(ctx.calib.samples.length, ctx.settings.calibShards).entries()) {
    if (k === 0) {
      await collectStage(ctx, l, stage, dense, pruned, range, totals);
      continue;
    }
    const m = a.mark();
    const parts = new Map([...totals].map(([p, t]) => [p, new StatsCollector(ctx.exec, t.cols, t.kind)]));
    await collectStage(ctx, l, stage, dense, pruned, range, parts);
    for (const [p, part] of parts) totals.get(p)!.addRaw(part.raw());
    a.release(m);
  }
}

/**
 * Add the statistics of `stage` over samples [s0, s1) (read from ctx.stream) into `into`: the calibration pass of
 * the dense layer (plain: every group's input), or with error correction of the dense layer and the layer with
 * the groups before g pruned (group g's input X_p, and X_d for the cross term). Chunks of samples through the
 * arena, each sample one batch in order (so the chunking is free).
 */
export async function collectStage(
  ctx: LayerContext, l: number, stage: StatsStage, dense: DenseLayer, pruned: Partial<Record<LinearOp, DenseLinear>>,
  [s0, s1]: [number, number], into: Map<CapturePoint, StatsCollector>,
): Promise<void> {
  const { store, calib, exec } = ctx;
  const arena = store.wasm.arena;
  const groups = stage.kind === "plain" ? GROUPS : [GROUPS[stage.g]!];
  const withDense = stage.kind === "group" && into.get(groups[0]!.point)!.kind === "cross";
  const partial: DenseLayer = stage.kind === "group" ? { ...dense, ...prunedBefore(stage.g, pruned) } : dense;
  const perToken = store.config.dim + groups.reduce((t, g) => t + (withDense ? 2 : 1) * colsOf(dense, g.point), 0);
  const what = groups.flatMap((g) => g.ops.map((op) => linearName(l, op))).join(", ");
  for (const [c0, c1] of rowChunks(calib.samples.slice(s0, s1).map((x) => x.length), perToken, CHUNK_FLOATS)) {
    const [i0, i1] = [s0 + c0, s0 + c1];
    const m = arena.mark();
    const t0 = performance.now();
    const ch = loadChunk(ctx, i0, i1);
    const points = groups.map((g) => g.point);
    const xp = captureBlocks(ctx, ch, (p) => colsOf(dense, p), points);
    const xd = withDense ? captureBlocks(ctx, ch, (p) => colsOf(dense, p), points) : xp;
    const passes: LayerPass[] = range(i0, i1).flatMap((i) => {
      const T = calib.samples[i]!.length;
      if (stage.kind === "plain") return [{ lw: 0, at: ch.at(i), T, caps: Object.fromEntries(points.map((p) => [p, xp(p, i)])) }];
      const p = points[0]!;
      return [...(withDense ? [{ lw: 0, at: ch.at(i), T, caps: { [p]: xd(p, i) } }] : []), { lw: 1, at: ch.at(i), T, caps: { [p]: xp(p, i) } }];
    });
    await runLayerPasses(exec, store.config, l, ctx.states, stage.kind === "plain" ? [dense] : [dense, partial], passes,
      stage.kind === "plain" ? `layer ${l}: calibration forward` : `layer ${l}: calibration forward (dense and pruned) for ${what}`);
    const t1 = performance.now();
    for (const g of groups) {
      await into.get(g.point)!.add(range(i0, i1).map((i) => ({ xp: xp(g.point, i), xd: xd(g.point, i), T: calib.samples[i]!.length })),
        `layer ${l}: statistics of ${g.ops.map((op) => linearName(l, op)).join(", ")}`);
    }
    ctx.time.forward += (t1 - t0) / 1000;
    ctx.time.statistics += (performance.now() - t1) / 1000;
    arena.release(m);
  }
}

/** Intra-layer error correction: groups in forward order, each fitted on pruned inputs to dense outputs. */
async function pruneLayerCorrected(
  ctx: LayerContext, l: number, dense: DenseLayer, pruned: Record<LinearOp, DenseLinear>, done: (r: OperatorReport & { index: number }) => void,
): Promise<OperatorReport[]> {
  const { exec, settings } = ctx;
  const kind = statsKind(settings);
  const out: OperatorReport[] = [];
  let index = 0;
  for (const [gi, g] of GROUPS.entries()) {
    const stats = new StatsCollector(exec, colsOf(dense, g.point), kind);
    // fitted on the input of the layer with the groups before this one pruned (collectStage)
    if (kind !== "none") await collectShards(ctx, l, { kind: "group", g: gi }, dense, pruned, new Map([[g.point, stats]]));
    out.push(...(await solveGroups(ctx, l, [{ g: gi, stats }], dense, pruned, (r) => done({ ...r, index: index++ }))));
    stats.free();
  }
  return out;
}

/** Pass the stream through layer `lw` in chunks, in place. */
export async function advanceStream(ctx: LayerContext, l: number, lw: LayerWeights): Promise<void> {
  await advanceRows(ctx.store.wasm, ctx.store.config, lw, ctx.stream, executorPasses(ctx.exec, ctx.store.config, l, ctx.states, `layer ${l}: advancing the calibration stream`));
}
