/**
 * @file The `sequential` schedule of a distributed prune (SparseGPT's and Wanda's default): data-parallel
 * calibration. The calibration samples are cut into `--calib-shards` consecutive shards (src/prune/driver.ts
 * calibShards); every shard's activation stream lives in the work dir, and for each decoder layer
 *  - one `stats` job per shard runs the layer's calibration pass over the shard and writes the shard's running
 *    sums (column norms, H, cross terms) — per stage: all groups at once, or with error correction one group
 *    after another, on the layer with the groups before it pruned (written by the coordinator as `partial-<g>`);
 *  - the coordinator (the single-process driver, `pruneModel` with this RemoteStream) adds the shards' sums in
 *    shard order and writes each group's sums (`solve-<g>/stats`); one `solve` job per group — per group and row
 *    block, `--calib-shards` blocks, when the method's rows are independent (Wanda; SparseGPT and magnitude N:M) —
 *    solves the group's operators there (src/prune/solve.ts, the same code as the single-process run) and the
 *    coordinator merges the blocks (quantized runs solve on the coordinator: the codes stay in its objects);
 *  - one `advance` job per shard moves the shard's stream through the pruned layer.
 * The single-process prune with the same --calib-shards sums the same shards in the same order, so the bytes are
 * identical whatever the number of workers.
 */
import fs from "node:fs";
import { LINEAR_OPS, type DenseLinear, type LayerWeights, type LinearOp } from "../model/types.js";
import type { ModelStore } from "../model/residency.js";
import type { CapturePoint } from "../model/forward.js";
import type { DenseLayer } from "../model/linear.js";
import { writeSafetensors, openSafetensors } from "../io/safetensors.js";
import { exactDtype } from "../io/dtype.js";
import type { CalibrationSet } from "../prune/calibration.js";
import { calibShards, type OperatorReport, type RemoteStream, type StatsStage } from "../prune/driver.js";
import type { BlockResult, SolveRequest } from "../prune/solve.js";
import { WorkerError } from "../errors.js";
import type { RawStats } from "../prune/stats.js";
import { packUpper, unpackUpper } from "../prune/gram.js";
import type { JobData } from "./jobs.js";
import { paths, writeDenseLayer, writeStream, type WorkDir } from "./work-dir.js";

export interface PendingJob {
  id: string;
  what: string;
  data: JobData;
  done: () => boolean;
}

export const stageName = (stage: StatsStage) => (stage.kind === "plain" ? "plain" : `group-${stage.g}`);

export const seqPaths = {
  partial: (run: string, l: number, g: number) => `${run}/seq/layer-${l}/partial-${g}.safetensors`,
  pruned: (run: string, l: number) => `${run}/seq/layer-${l}/pruned.safetensors`,
  stats: (run: string, l: number, stage: StatsStage, s: number) => `${run}/seq/layer-${l}/stats-${stageName(stage)}/shard-${s}.safetensors`,
  /** group g's summed statistics, what its solve jobs read */
  group: (run: string, l: number, g: number) => `${run}/seq/layer-${l}/solve-${g}/stats.safetensors`,
  solved: (run: string, l: number, g: number, b: number, blocks: number) => `${run}/seq/layer-${l}/solve-${g}/block-${b}-of-${blocks}.safetensors`,
};

/** A solve job's results into one file: each operator's rows as a tensor, the blocks' rows, reports and energies. */
export function writeBlockResults(file: string, blocks: BlockResult[]): void {
  fs.mkdirSync(file.slice(0, file.lastIndexOf("/")), { recursive: true });
  const meta = blocks.map(({ op, r0, r1, report, energy }) => ({ op, r0, r1, report, energy: Number.isFinite(energy) ? energy : null }));
  writeSafetensors(file, blocks.map((b) => ({ name: b.op, dtype: exactDtype(b.data), shape: [b.r1 - b.r0, b.data.length / Math.max(1, b.r1 - b.r0)], data: b.data })), { blocks: JSON.stringify(meta) });
}

export function readBlockResults(file: string): BlockResult[] {
  const st = openSafetensors(file);
  try {
    const meta = JSON.parse(st.metadata.blocks ?? "null") as Array<{ op: LinearOp; r0: number; r1: number; report: OperatorReport; energy: number | null }> | null;
    if (!Array.isArray(meta)) throw new WorkerError(`${file}: no "blocks" metadata (not a solve job's result)`);
    return meta.map(({ op, r0, r1, report, energy }) => {
      const e = st.header.get(op);
      if (!e) throw new WorkerError(`${file}: lacks the rows of "${op}"`);
      const data = new Float32Array(e.shape.reduce((a, b) => a * b, 1));
      st.readF32Into(op, data);
      return { op, r0, r1, data, report, energy: energy ?? NaN };
    });
  } finally {
    st.close();
  }
}

/**
 * A shard's running sums per capture point into one file (tensors "<point>.<array>", tokens in the metadata).
 * The Gram sums kept in their upper triangle (H, H_d: below the diagonal is never read, `finish` mirrors the
 * upper triangle onto it) are stored as that triangle, row by row (metadata "upper": tensor → cols), read back
 * with zeros below: half the bytes of the statistics a SparseGPT shard sends, the same H after `finish`.
 */
export function writeRawStats(file: string, stats: Map<CapturePoint, RawStats>): void {
  const upper: Record<string, number> = {};
  const tensors = [...stats].flatMap(([p, r]) => Object.entries(r.arrays).map(([k, v]) => {
    const name = `${p}.${k}`;
    if (!r.upper?.includes(k)) return { name, dtype: "F32" as const, shape: [v.length], data: v };
    const n = Math.round(Math.sqrt(v.length));
    if (n * n !== v.length) throw new WorkerError(`${name}: an upper-triangular sum of ${v.length} floats is not square`);
    upper[name] = n;
    return { name, dtype: "F32" as const, shape: [(n * (n + 1)) / 2], data: packUpper(v, n) };
  }));
  fs.mkdirSync(file.slice(0, file.lastIndexOf("/")), { recursive: true });
  writeSafetensors(file, tensors, { tokens: JSON.stringify(Object.fromEntries([...stats].map(([p, r]) => [p, r.n]))), upper: JSON.stringify(upper) });
}

export function readRawStats(file: string): Map<CapturePoint, RawStats> {
  const st = openSafetensors(file);
  try {
    const tokens = JSON.parse(st.metadata.tokens ?? "{}") as Record<string, number>;
    const upper = JSON.parse(st.metadata.upper ?? "{}") as Record<string, number>;
    const out = new Map<CapturePoint, RawStats>(Object.entries(tokens).map(([p, n]) => [p as CapturePoint, { n, arrays: {}, upper: [] }]));
    for (const [name, e] of st.header) {
      const [p, k] = name.split(".") as [CapturePoint, string];
      const r = out.get(p);
      if (!r) throw new WorkerError(`${file}: tensor "${name}" has no token count in the metadata`);
      const data = new Float32Array(e.shape[0]!);
      st.readF32Into(name, data);
      const n = upper[name];
      r.arrays[k] = n === undefined ? data : unpackUpper(data, n);
      if (n !== undefined) r.upper = [...r.upper!, k];
    }
    return out;
  } finally {
    st.close();
  }
}

/** Some of a layer's linear weights (each in the narrowest exact dtype). */
export function writeOps(file: string, ops: Partial<Record<LinearOp, DenseLinear>>): void {
  fs.mkdirSync(file.slice(0, file.lastIndexOf("/")), { recursive: true });
  writeSafetensors(file, LINEAR_OPS.filter((op) => ops[op]).map((op) => ({ name: op, dtype: exactDtype(ops[op]!.data), shape: ops[op]!.shape, data: ops[op]!.data })));
}

export class QueueStream implements RemoteStream {
  readonly shards: Array<[number, number]>;
  readonly rowBlocks: number;

  constructor(
    private readonly store: ModelStore,
    private readonly calib: CalibrationSet,
    private readonly work: WorkDir,
    private readonly run: string,
    calibShardCount: number | undefined,
    private readonly job: (d: Partial<JobData>) => JobData,
    private readonly complete: (jobs: PendingJob[]) => Promise<void>,
  ) {
    this.shards = calibShards(calib.samples.length, calibShardCount);
    this.rowBlocks = this.shards.length;
  }

  private at(p: string): string {
    return this.work.resolve(p);
  }

  async init(): Promise<void> {
    const { calib, store } = this;
    const dim = store.config.dim;
    this.shards.forEach(([i0, i1], s) => {
      const f = this.at(paths.stream(this.run, 0, s));
      if (fs.existsSync(f)) return;
      const rows = new Float32Array(calib.samples.slice(i0, i1).reduce((t, x) => t + x.length, 0) * dim);
      let o = 0;
      for (let i = i0; i < i1; i++) {
        store.embedRows(calib.samples[i]!, rows.subarray(o, o + calib.samples[i]!.length * dim));
        o += calib.samples[i]!.length * dim;
      }
      writeStream(f, rows);
    });
  }

  async stats(l: number, stage: StatsStage, dense: DenseLayer, before: Partial<Record<LinearOp, DenseLinear>>, add: (shard: Map<CapturePoint, RawStats>) => void): Promise<void> {
    const dfile = this.at(paths.dense(this.run, l));
    if (!fs.existsSync(dfile)) writeDenseLayer(dfile, dense, { digest: true });
    if (stage.kind === "group" && stage.g > 0) writeOps(this.at(seqPaths.partial(this.run, l, stage.g)), before);
    const jobs = this.shards.map((_, s): PendingJob => ({
      id: `${this.run.slice(5)}-stats-${l}-${stageName(stage)}-${s}`, what: `layer ${l} statistics (${stageName(stage)}) of shard ${s}`,
      data: this.job({ kind: "stats", layer: l, shard: s, stage }), done: () => fs.existsSync(this.at(seqPaths.stats(this.run, l, stage, s))),
    }));
    await this.complete(jobs);
    for (let s = 0; s < this.shards.length; s++) add(readRawStats(this.at(seqPaths.stats(this.run, l, stage, s))));
  }

  async solve(l: number, dense: DenseLayer, requests: SolveRequest[]): Promise<BlockResult[][]> {
    const dfile = this.at(paths.dense(this.run, l));
    if (!fs.existsSync(dfile)) writeDenseLayer(dfile, dense, { digest: true });
    const jobs: PendingJob[] = [];
    for (const { g, raw, blocks } of requests) {
      const sfile = this.at(seqPaths.group(this.run, l, g));
      const solved = (b: number) => this.at(seqPaths.solved(this.run, l, g, b, blocks));
      if (!Array.from({ length: blocks }, (_, b) => b).every((b) => fs.existsSync(solved(b)))) writeRawStats(sfile, raw);
      for (let b = 0; b < blocks; b++) {
        jobs.push({
          id: `${this.run.slice(5)}-solve-${l}-${g}-${b}-of-${blocks}`, what: `layer ${l} solve of group ${g}, row block ${b} of ${blocks}`,
          data: this.job({ kind: "solve", layer: l, group: g, block: b, blocks }), done: () => fs.existsSync(solved(b)),
        });
      }
    }
    await this.complete(jobs);
    return requests.map(({ g, blocks }) => Array.from({ length: blocks }, (_, b) => readBlockResults(this.at(seqPaths.solved(this.run, l, g, b, blocks)))).flat());
  }

  async advance(l: number, lw: LayerWeights): Promise<void> {
    const next = (s: number) => this.at(paths.stream(this.run, l + 1, s));
    if (this.shards.every((_, s) => fs.existsSync(next(s)))) return;
    writeDenseLayer(this.at(seqPaths.pruned(this.run, l)), lw as DenseLayer);
    await this.complete(this.shards.map((_, s) => ({
      id: `${this.run.slice(5)}-advance-${l}-${s}`, what: `layer ${l} stream advance of shard ${s}`,
      data: this.job({ kind: "advance", layer: l, shard: s }), done: () => fs.existsSync(next(s)),
    })));
  }
}
