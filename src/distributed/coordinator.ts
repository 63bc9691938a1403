/**
 * @file The coordinator of a distributed prune (`wasprune prune … --queue URL --work-dir DIR`): the pruning of
 * src/prune/run.ts (output policy, checkpoints, eval, pruning.json) with the layers pruned by workers. For the
 * `parallel` schedule:
 *  1. run.json (settings, config, calibration tokens, code version) and each dense layer (its exact values, each
 *     tensor in the narrowest dtype that holds it) into the run's folder of the work dir
 *     (src/distributed/work-dir.ts); layer 0's input stream (the embeddings) per shard of SHARD_SAMPLES samples;
 *  2. one `forward` job per shard: the dense forward of its samples, writing every layer's input stream;
 *  3. one `layer` job per decoder layer: the layer pruned by the same code as a single-process run;
 *  4. as layers finish, in layer order, each goes to the sink (the output written as produced), so a
 *     coordinator killed and run again resumes from the finished layers (the output's checkpoints, and the
 *     results already in the work dir; queued and running jobs are taken over, failed ones retried).
 * Job ids are derived from the run and the layer/shard, so a rerun never queues a job twice. The result is
 * byte-identical to the single-process prune with the same settings, whichever workers take which jobs, in any
 * order: each job's output is a pure function of files the coordinator wrote, computed by the same code.
 */
import fs from "node:fs";
import type { Job, Queue } from "bullmq";
import { UsageError } from "../errors.js";
import type { ModelStore } from "../model/residency.js";
import { denseLayer } from "../model/linear.js";
import type { CalibrationSet } from "../prune/calibration.js";
import { calibShards, pruneModel, statsKind, type DriverHooks, type DriverOptions, type OperatorReport, type PruneSettings, type PruneSink } from "../prune/driver.js";
import type { Executor } from "../exec/executor.js";
import { QueueStream, type PendingJob } from "./sequential.js";
import type { LayerRunner } from "../prune/run.js";
import { JOB_FORMAT, JOB_OPTIONS, codeVersion, redact, type QueueTarget } from "./queue.js";
import type { JobData, JobResult } from "./jobs.js";
import { paths, readResult, runOf, sampleShards, writeAtomic, writeDenseLayer, writeStream, type RunFile, type WorkDir } from "./work-dir.js";

/** Samples per dense-forward job. */
export const SHARD_SAMPLES = 16;
/** How often the coordinator looks at its jobs (ms). */
const POLL_MS = 200;
/** Times a job that finished without its output file is queued again before the run stops. */
const MAX_REQUEUES = 2;

export interface JobRecord {
  id: string;
  what: string;
  worker?: string;
  seconds?: number;
  /** attempts the job made (retries after a failure or a stall) */
  attempts: number;
  /** done by an earlier coordinator (its output was in the work dir) */
  reused: boolean;
  /** the dense layers the job read from the worker's own model copy and from the work dir */
  layersFrom?: { model: number; workDir: number };
}

export interface DistributedReport {
  queue: string;
  workDir: string;
  run: string;
  code: string;
  jobs: JobRecord[];
}

export class QueueRunner implements LayerRunner {
  private readonly jobs: JobRecord[] = [];
  private runRel = "";

  constructor(
    private readonly queue: Queue,
    private readonly target: QueueTarget,
    private readonly work: WorkDir,
    private readonly log: (line: string) => void = () => {},
  ) {}

  report(): DistributedReport {
    return { queue: this.target.shown, workDir: this.work.root, run: this.runRel, code: codeVersion(), jobs: this.jobs };
  }

  async run(
    store: ModelStore, calib: CalibrationSet, settings: PruneSettings, exec: Executor, sink: PruneSink, hooks: DriverHooks, opts: DriverOptions,
  ): Promise<OperatorReport[]> {
    if (settings.methodOptions?.fistaSolver) throw new UsageError(`--queue: workers solve on WASM; --device webgpu is not distributed`);
    const c = store.config;
    const code = codeVersion(store.wasm.build);
    const shards = settings.schedule === "parallel" ? sampleShards(calib.samples.length, SHARD_SAMPLES) : calibShards(calib.samples.length, settings.calibShards);
    const run: RunFile = { code, config: c, settings: JSON.parse(JSON.stringify(settings)) as PruneSettings, calib, shards };
    const { rel, text, hash } = runOf(run);
    this.runRel = rel;
    const at = (p: string) => this.work.resolve(p);
    if (!fs.existsSync(at(paths.run(rel)))) writeAtomic(at(paths.run(rel)), text);
    this.log(`coordinator: run ${rel} in ${this.work.root}, queue ${this.target.shown}`);
    const data = (d: Partial<JobData>): JobData => ({ format: JOB_FORMAT, code, hash, run: rel, kind: "layer", ...d });
    if (settings.schedule === "sequential") {
      // the driver itself, its statistics and stream advances done by jobs, a shard of samples each
      const remote = new QueueStream(store, calib, this.work, rel, settings.calibShards, data, (jobs) => this.complete(jobs, () => {}));
      return pruneModel(store, calib, settings, exec, sink, hooks, { ...opts, remote });
    }

    // layers the output already holds (a resumed run), and those whose results are in the work dir
    const saved = new Map<number, ReturnType<PruneSink["resumed"]>>();
    const needed: number[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      const s = sink.resumed(l);
      if (s) saved.set(l, s);
      else needed.push(l);
    }
    const toPrune = needed.filter((l) => !fs.existsSync(at(paths.result(rel, l))));

    if (toPrune.length) {
      // the dense layers, each read once from the model (streamed models: one at a time)
      const upTo = Math.max(...toPrune);
      for (let l = 0; l <= upTo; l++) {
        const file = at(paths.dense(rel, l));
        if (fs.existsSync(file)) continue;
        try {
          writeDenseLayer(file, denseLayer(store.acquire(l), l), { digest: true });
        } finally {
          store.release(l);
        }
      }
      if (statsKind(settings) !== "none") {
        const forwards: PendingJob[] = [];
        run.shards.forEach(([i0, i1], s) => {
          const f0 = at(paths.stream(rel, 0, s));
          if (!fs.existsSync(f0)) {
            const rows = new Float32Array(calib.samples.slice(i0, i1).reduce((t, x) => t + x.length, 0) * c.dim);
            let o = 0;
            for (let i = i0; i < i1; i++) {
              store.embedRows(calib.samples[i]!, rows.subarray(o, o + calib.samples[i]!.length * c.dim));
              o += calib.samples[i]!.length * c.dim;
            }
            writeStream(f0, rows);
          }
          const done = () => toPrune.every((l) => fs.existsSync(at(paths.stream(rel, l, s))));
          if (!done()) forwards.push({ id: `${rel.slice(5)}-forward-${s}`, what: `dense forward of shard ${s}`, data: data({ kind: "forward", shard: s, upTo }), done });
        });
        await this.complete(forwards, () => {});
      }
    }
    const layerJobs = toPrune.map((l) => ({ id: `${rel.slice(5)}-layer-${l}`, what: `layer ${l}`, data: data({ kind: "layer", layer: l }), done: () => fs.existsSync(at(paths.result(rel, l))) }));
    for (const l of needed.filter((x) => !toPrune.includes(x))) this.jobs.push({ id: `${rel.slice(5)}-layer-${l}`, what: `layer ${l}`, attempts: 0, reused: true });

    // hand layers to the sink in order as they are ready
    const reports: OperatorReport[] = [];
    let next = 0;
    const flush = async () => {
      while (next < c.nLayers) {
        const l = next;
        const s = saved.get(l);
        if (!s && !fs.existsSync(at(paths.result(rel, l)))) return;
        const tw = performance.now();
        let layerReports: OperatorReport[];
        if (s) layerReports = s.reports;
        else {
          const r = readResult(at(paths.result(rel, l)));
          const dense = denseLayer(store.acquire(l), l);
          try {
            await sink.put(l, dense, r.pruned, r.reports);
          } finally {
            store.release(l);
          }
          layerReports = r.reports;
        }
        reports.push(...layerReports);
        hooks.onLayer?.(l, layerReports, {
          layer: l, read: 0, forward: 0, statistics: 0, solve: layerReports.reduce((t, r) => t + r.seconds, 0),
          write: (performance.now() - tw) / 1000, advance: 0, arenaBytes: 0, resumed: !!s,
        });
        next++;
      }
    };
    await this.complete(layerJobs, flush);
    await flush();
    if (next !== c.nLayers) throw new UsageError(`coordinator: layer ${next} has no result after its job finished`);
    return reports;
  }

  /** Queue the jobs (a rerun takes over queued/running ones, retries failed ones) and wait until each is done. */
  private async complete(list: PendingJob[], progress: () => Promise<void> | void): Promise<void> {
    const pending = new Map(list.map((j) => [j.id, { ...j, requeues: 0 }]));
    for (const j of pending.values()) if (!j.done()) await this.enqueue(j.id, j.data);
    while (pending.size) {
      for (const [id, j] of pending) {
        const job = await this.queue.getJob(id);
        const state = job ? await job.getState() : "missing";
        if (j.done() && (state === "completed" || state === "missing")) {
          // read again: the job may have completed between getJob and getState (its return value then unread)
          this.record(j, state === "completed" ? await this.queue.getJob(id) : job);
          pending.delete(id);
          continue;
        }
        if (state === "failed") throw new UsageError(`${j.what} (job ${id}) failed after ${job!.attemptsMade} attempt(s): ${redact(job!.failedReason ?? "no reason given", this.target)}`);
        if (state === "completed" || state === "missing") {
          // finished (or lost with Redis' data) without its output in this work dir: queue it again, a bounded number of times
          if (++j.requeues > MAX_REQUEUES) throw new UsageError(`${j.what} (job ${id}): finished ${MAX_REQUEUES + 1} times without its output in ${this.work.root}; do the workers see the same --work-dir?`);
          await job?.remove().catch(() => {});
          await this.enqueue(id, j.data);
        }
      }
      await progress();
      if (pending.size) await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  private async enqueue(id: string, data: JobData): Promise<void> {
    const old = await this.queue.getJob(id);
    if (old) {
      const state = await old.getState();
      if (state === "failed") {
        this.log(`coordinator: retrying job ${id}, failed before: ${redact(old.failedReason ?? "", this.target)}`);
        await old.retry("failed", { resetAttemptsMade: true, resetAttemptsStarted: true });
        return;
      }
      if (state !== "completed") return; // waiting, active, delayed: taken over as it is
      await old.remove();
    }
    await this.queue.add(data.kind, data, { ...JOB_OPTIONS, jobId: id });
  }

  private record(j: { id: string; what: string }, job: Job<JobData, JobResult> | undefined): void {
    const r = job?.returnvalue;
    this.jobs.push({ id: j.id, what: j.what, worker: r?.worker, seconds: r?.seconds, attempts: job?.attemptsMade ?? 0, reused: !job, ...(r?.layersFrom ? { layersFrom: r.layersFrom } : {}) });
  }
}
