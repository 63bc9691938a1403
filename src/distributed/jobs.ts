/**
 * @file What a distributed-pruning job is and how a worker runs one. A job's data names its run folder in the
 * work dir, the settings hash (sha256 of the run's run.json) and the code version of the coordinator that
 * made it; a worker whose code differs, or whose run.json hashes differently, refuses the job (BullMQ's
 * UnrecoverableError: failed at once, with the message, never retried). The kinds:
 *  - `forward` (shard s): the dense forward of the shard's samples, from layer 0's input stream through the dense
 *    layers, writing each layer's input stream (the `parallel` schedule's activations, split by samples);
 *  - `stats`, `solve`, `advance` (the `sequential` schedule, ./sequential.ts): a shard's statistics of a layer, a
 *    group's (row block's) solve on the summed statistics, a shard's stream through the pruned layer;
 *  - `layer` (layer l): layer l pruned start to finish (src/prune/driver.ts `pruneLayer`, the same code as the
 *    single-process run) on its dense input stream, written as results/layer-<l>.safetensors.
 * Every output is a pure function of the job's inputs, written atomically, so a retried or repeated job writes
 * the same bytes.
 */
import fs from "node:fs";
import { UsageError } from "../errors.js";
import type { Executor } from "../exec/executor.js";
import { MemoryRows, RowStore } from "../io/row-store.js";
import { createRunState, type RunState } from "../model/forward.js";
import { advanceRows, executorPasses } from "../model/layer-passes.js";
import type { Wasm } from "../wasm/runtime.js";
import { GROUPS, solveGroupRows } from "../prune/solve.js";
import { collectStage, prunedTensors, pruneLayer, statsKind, type LayerContext, type StatsStage } from "../prune/driver.js";
import { StatsCollector } from "../prune/stats.js";
import type { Rows } from "../io/row-store.js";
import type { CapturePoint } from "../model/forward.js";
import type { DenseLinear, LinearOp } from "../model/types.js";
import { openSafetensors } from "../io/safetensors.js";
import { readRawStats, seqPaths, writeBlockResults, writeRawStats } from "./sequential.js";
import { JOB_FORMAT } from "./queue.js";
import { layerDigest, paths, readDenseLayer, readLayerDigest, readStream, runHash, writeResult, writeStream, type RunFile, type WorkDir } from "./work-dir.js";
import type { ModelStore } from "../model/residency.js";
import { denseLayer, type DenseLayer } from "../model/linear.js";

export interface JobData {
  format: number;
  /** code version of the coordinator (src/distributed/queue.ts codeVersion) */
  code: string;
  /** sha256 of run.json */
  hash: string;
  /** the run folder, relative to the work dir */
  run: string;
  kind: "forward" | "layer" | "stats" | "solve" | "advance";
  /** forward, stats, advance: the shard (forward: writes the input streams of layers 1..upTo) */
  shard?: number;
  upTo?: number;
  /** layer, stats, advance: the decoder layer */
  layer?: number;
  /** stats: which statistics */
  stage?: StatsStage;
  /** solve: the operator group (index into GROUPS) and row block `block` of `blocks` */
  group?: number;
  block?: number;
  blocks?: number;
}

export interface JobResult {
  worker: string;
  seconds: number;
  /** where the job's dense layers came from: the worker's own copy of the model (`worker --model`) or the work dir */
  layersFrom?: { model: number; workDir: number };
}

/** A job refused before any work (wrong code, settings or path): not worth a retry. */
export class RefusedJob extends UsageError {}

export interface WorkerContext {
  work: WorkDir;
  wasm: Wasm;
  exec: Executor;
  code: string;
  /** `worker --model DIR`: the worker's own copy of the model (streamed, its layer slot taken at start) */
  model?: { dir: string; store: ModelStore; warn(line: string): void; verified: Map<number, string> };
}

/** A job's dense layer reads, by source (JobResult.layersFrom). */
type LayerReads = { model: number; workDir: number };

/** Check a job's data against this worker and read its run file (RefusedJob when it does not match). */
export function admit(ctx: WorkerContext, data: JobData): RunFile {
  if (!data || data.format !== JOB_FORMAT) throw new RefusedJob(`job format ${String(data?.format)}: this worker reads format ${JOB_FORMAT}; run the same wasprune version everywhere`);
  if (data.code !== ctx.code) throw new RefusedJob(`code version differs: this worker runs "${ctx.code}", the job was made by "${data.code}"; run the same wasprune build on every machine (results would not be bit-identical)`);
  let file: string;
  try {
    file = ctx.work.resolve(paths.run(data.run));
  } catch (e) {
    throw new RefusedJob((e as Error).message);
  }
  if (!fs.existsSync(file)) throw new RefusedJob(`${file}: no such run file in this worker's work dir ${ctx.work.root} (is it the coordinator's shared --work-dir?)`);
  const text = fs.readFileSync(file, "utf8");
  if (runHash(text) !== data.hash) throw new RefusedJob(`settings hash differs: ${file} hashes to ${runHash(text).slice(0, 16)}, the job expects ${String(data.hash).slice(0, 16)}; refused`);
  return JSON.parse(text) as RunFile;
}

/** Run an admitted job. */
export async function runJob(ctx: WorkerContext, data: JobData, run: RunFile): Promise<LayerReads> {
  const a = ctx.wasm.arena;
  const m = a.mark();
  const reads: LayerReads = { model: 0, workDir: 0 };
  try {
    if (data.kind === "forward") await forwardJob(ctx, data, run, reads);
    else if (data.kind === "layer") await layerJob(ctx, data, run, reads);
    else if (data.kind === "stats") await statsJob(ctx, data, run, reads);
    else if (data.kind === "solve") await solveJob(ctx, data, run);
    else if (data.kind === "advance") await advanceJob(ctx, data, run);
    else throw new RefusedJob(`job kind ${JSON.stringify(data.kind)}: unknown`);
    return reads;
  } finally {
    a.release(m);
  }
}

/**
 * Dense layer l for a job, `release()` when done with it: from the worker's own copy of the model when it has
 * one and that layer's digest is the one the coordinator stored with the work dir's file (so the values are the
 * same bits), else — a different model, an older file without a digest — the work dir's file, from then on
 * for every job, with one line saying why. The copy may be in another dtype or layout: only the widened values
 * count.
 */
function denseLayerFor(ctx: WorkerContext, data: JobData, l: number, reads: LayerReads): { lw: DenseLayer; release(): void } {
  const file = ctx.work.resolve(paths.dense(data.run, l));
  const model = ctx.model;
  if (model) {
    let acquired = false;
    try {
      const want = readLayerDigest(file);
      if (want === undefined) throw new Error("the work dir's layer file has no digest");
      const lw = denseLayer(model.store.acquire(l), l);
      acquired = true;
      // hashed once per layer and digest: the later jobs on the same layer (other shards, stages) read it unhashed
      if (model.verified.get(l) !== want) {
        if (layerDigest(lw) !== want) throw new Error("its weights differ from the coordinator's (another model, or another version of it)");
        model.verified.set(l, want);
      }
      reads.model++;
      return { lw, release: () => model.store.release(l) };
    } catch (e) {
      if (acquired) model.store.release(l);
      // one line, then the work dir for the rest of the worker's jobs (a wrong copy would fail every layer)
      ctx.model = undefined;
      model.store.close();
      model.warn(`--model ${model.dir} not used: layer ${l}: ${(e as Error).message}; reading the work dir's copies from now on`);
    }
  }
  reads.workDir++;
  return { lw: readDenseLayer(file, ctx.wasm), release: () => {} };
}

function states(ctx: WorkerContext, run: RunFile): RunState[] {
  const maxT = Math.max(1, ...run.calib.samples.map((s) => s.length));
  return Array.from({ length: ctx.exec.slots }, () => createRunState({ config: run.config, wasm: ctx.wasm }, maxT, maxT, { kvLayers: 1, logits: false }));
}

function checkIndex(what: string, v: number | undefined, n: number): number {
  if (!Number.isInteger(v) || v! < 0 || v! >= n) throw new RefusedJob(`${what} ${String(v)}: expected 0..${n - 1}`);
  return v!;
}

async function forwardJob(ctx: WorkerContext, data: JobData, run: RunFile, reads: LayerReads): Promise<void> {
  const c = run.config;
  const s = checkIndex("shard", data.shard, run.shards.length);
  const upTo = checkIndex("upTo", data.upTo, c.nLayers);
  const [i0, i1] = run.shards[s]!;
  const lengths = run.calib.samples.slice(i0, i1).map((x) => x.length);
  const floats = lengths.reduce((t, n) => t + n, 0) * c.dim;
  const st = states(ctx, run);
  let rows = new MemoryRows(readStream(ctx.work.resolve(paths.stream(data.run, 0, s)), floats), lengths, c.dim);
  for (let l = 0; l < upTo; l++) {
    const next = ctx.work.resolve(paths.stream(data.run, l + 1, s));
    // a repeated job continues after the streams an earlier attempt wrote (each one whole: renamed)
    if (fs.existsSync(next)) {
      rows = new MemoryRows(readStream(next, floats), lengths, c.dim);
      continue;
    }
    const a = ctx.wasm.arena;
    const m = a.mark();
    try {
      const { lw, release } = denseLayerFor(ctx, data, l, reads);
      try {
        await advanceRows(ctx.wasm, c, lw, rows, executorPasses(ctx.exec, c, l, st, `layer ${l}: dense forward of shard ${s}`));
      } finally {
        release();
      }
    } finally {
      a.release(m);
    }
    writeStream(next, rows.data);
  }
}

async function layerJob(ctx: WorkerContext, data: JobData, run: RunFile, reads: LayerReads): Promise<void> {
  const c = run.config;
  const l = checkIndex("layer", data.layer, c.nLayers);
  const { calib, settings } = run;
  const stream = new RowStore(calib.samples.map((x) => x.length), c.dim);
  try {
    if (statsKind(settings) !== "none") {
      run.shards.forEach(([i0, i1], s) => {
        const floats = calib.samples.slice(i0, i1).reduce((t, x) => t + x.length, 0) * c.dim;
        const rows = readStream(ctx.work.resolve(paths.stream(data.run, l, s)), floats);
        for (let i = i0; i < i1; i++) {
          const o = (calib.offsets[i]! - calib.offsets[i0]!) * c.dim;
          stream.write(i, rows.subarray(o, o + stream.size(i)));
        }
      });
    }
    const { lw: dense, release } = denseLayerFor(ctx, data, l, reads);
    try {
      const pruned = prunedTensors({ wasm: ctx.wasm }, dense);
      const lctx: LayerContext = { store: { config: c, wasm: ctx.wasm }, exec: ctx.exec, calib, stream, states: states(ctx, run), settings, time: { forward: 0, statistics: 0, solve: 0 } };
      const reports = await pruneLayer(lctx, l, dense, pruned);
      writeResult(ctx.work.resolve(paths.result(data.run, l)), pruned, reports);
    } finally {
      release();
    }
  } finally {
    stream.close();
  }
}

/** Samples [i0, i1) of the calibration set read by their global index (the stream of one shard). */
class ShardRows implements Rows {
  constructor(
    private readonly data: Float32Array,
    private readonly calib: RunFile["calib"],
    private readonly i0: number,
    readonly width: number,
  ) {}
  get lengths(): number[] {
    return this.calib.samples.map((x) => x.length);
  }
  get offsets(): number[] {
    return this.calib.offsets;
  }
  size(i: number): number {
    return this.calib.samples[i]!.length * this.width;
  }
  read(i: number, dst: Float32Array): void {
    const o = (this.calib.offsets[i]! - this.calib.offsets[this.i0]!) * this.width;
    dst.set(this.data.subarray(o, o + this.size(i)));
  }
  write(): void {
    throw new RefusedJob("a shard's statistics job never writes its stream");
  }
}

/** The input stream of shard s at layer l as rows of its own samples, and its floats. */
function shardStream(ctx: WorkerContext, data: JobData, run: RunFile, l: number, s: number): { data: Float32Array; lengths: number[] } {
  const [i0, i1] = run.shards[s]!;
  const lengths = run.calib.samples.slice(i0, i1).map((x) => x.length);
  return { data: readStream(ctx.work.resolve(paths.stream(data.run, l, s)), lengths.reduce((t, n) => t + n, 0) * run.config.dim), lengths };
}

function checkStage(stage: StatsStage | undefined): StatsStage {
  if (stage?.kind === "plain") return stage;
  if (stage?.kind === "group" && Number.isInteger(stage.g) && stage.g >= 0 && stage.g < GROUPS.length) return stage;
  throw new RefusedJob(`stage ${JSON.stringify(stage)}: expected plain or group 0..${GROUPS.length - 1}`);
}

/** Linear weights of a layer file (all, or those of `only`) into arena tensors. */
function readOps(file: string, ctx: WorkerContext, only?: readonly LinearOp[]): Partial<Record<LinearOp, DenseLinear>> {
  const st = openSafetensors(file);
  try {
    const out: Partial<Record<LinearOp, DenseLinear>> = {};
    for (const [name, e] of st.header) {
      if (only && !only.includes(name as LinearOp)) continue;
      const n = e.shape.reduce((a, b) => a * b, 1);
      const ptr = ctx.wasm.arena.alloc(n);
      const data = ctx.wasm.arena.f32(ptr, n);
      st.readF32Into(name, data);
      out[name as LinearOp] = { format: "dense", ptr, shape: [...e.shape], data };
    }
    return out;
  } finally {
    st.close();
  }
}

/** The running sums of one shard's statistics at one stage of layer l (the driver's collectStage, from zero). */
async function statsJob(ctx: WorkerContext, data: JobData, run: RunFile, reads: LayerReads): Promise<void> {
  const c = run.config;
  const l = checkIndex("layer", data.layer, c.nLayers);
  const s = checkIndex("shard", data.shard, run.shards.length);
  const stage = checkStage(data.stage);
  const { data: rows } = shardStream(ctx, data, run, l, s);
  const { lw: dense, release } = denseLayerFor(ctx, data, l, reads);
  try {
    await shardStats(ctx, data, run, l, s, stage, rows, dense);
  } finally {
    release();
  }
}

async function shardStats(ctx: WorkerContext, data: JobData, run: RunFile, l: number, s: number, stage: StatsStage, rows: Float32Array, dense: DenseLayer): Promise<void> {
  const c = run.config;
  const before = stage.kind === "group" && stage.g > 0 ? readOps(ctx.work.resolve(seqPaths.partial(data.run, l, stage.g)), ctx) : {};
  const kind = statsKind(run.settings);
  const groups = stage.kind === "plain" ? GROUPS : [GROUPS[stage.g]!];
  const into = new Map<CapturePoint, StatsCollector>(groups.map((g) => [g.point, new StatsCollector(ctx.exec, dense[g.ops[0]!].shape[1]!, kind)]));
  const lctx: LayerContext = {
    store: { config: c, wasm: ctx.wasm }, exec: ctx.exec, calib: run.calib, stream: new ShardRows(rows, run.calib, run.shards[s]![0], c.dim),
    states: states(ctx, run), settings: run.settings, time: { forward: 0, statistics: 0, solve: 0 },
  };
  await collectStage(lctx, l, stage, dense, before, run.shards[s]!, into);
  writeRawStats(ctx.work.resolve(seqPaths.stats(data.run, l, stage, s)), new Map([...into].map(([p, t]) => [p, t.raw()])));
}

/** Row block `block` of `blocks` of group g's operators of layer l, on the group's summed statistics. */
async function solveJob(ctx: WorkerContext, data: JobData, run: RunFile): Promise<void> {
  const c = run.config;
  const l = checkIndex("layer", data.layer, c.nLayers);
  const g = checkIndex("group", data.group, GROUPS.length);
  if (!Number.isInteger(data.blocks) || data.blocks! < 1) throw new RefusedJob(`blocks ${String(data.blocks)}: expected a positive integer`);
  const blocks = data.blocks!;
  const b = checkIndex("block", data.block, blocks);
  const point = GROUPS[g]!.point;
  const raw = readRawStats(ctx.work.resolve(seqPaths.group(data.run, l, g))).get(point);
  if (!raw) throw new RefusedJob(`layer ${l} group ${g}: its statistics file lacks the ${point} group`);
  // the group's operators only: the four groups' jobs read the layer once between them
  const dense = readOps(ctx.work.resolve(paths.dense(data.run, l)), ctx, GROUPS[g]!.ops);
  const first = dense[GROUPS[g]!.ops[0]!];
  if (!first) throw new RefusedJob(`layer ${l}: its dense layer file lacks ${GROUPS[g]!.ops.join(", ")}`);
  const stats = new StatsCollector(ctx.exec, first.shape[1]!, statsKind(run.settings));
  stats.addRaw(raw);
  const sctx = { store: { config: c, wasm: ctx.wasm }, exec: ctx.exec, settings: run.settings, time: { forward: 0, statistics: 0, solve: 0 } };
  const results = await solveGroupRows(sctx, l, g, dense, stats.finish(), b, blocks);
  writeBlockResults(ctx.work.resolve(seqPaths.solved(data.run, l, g, b, blocks)), results);
}

/** Shard s's stream through the pruned layer l: the input stream of layer l + 1. */
async function advanceJob(ctx: WorkerContext, data: JobData, run: RunFile): Promise<void> {
  const c = run.config;
  const l = checkIndex("layer", data.layer, c.nLayers - 1);
  const s = checkIndex("shard", data.shard, run.shards.length);
  const { data: rows, lengths } = shardStream(ctx, data, run, l, s);
  const mem = new MemoryRows(rows, lengths, c.dim);
  const lw = readDenseLayer(ctx.work.resolve(seqPaths.pruned(data.run, l)), ctx.wasm);
  await advanceRows(ctx.wasm, c, lw, mem, executorPasses(ctx.exec, c, l, states(ctx, run), `layer ${l}: advancing shard ${s}`));
  writeStream(ctx.work.resolve(paths.stream(data.run, l + 1, s)), mem.data);
}
