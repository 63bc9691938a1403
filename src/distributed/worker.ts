/**
 * @file `wasprune worker`: takes distributed-pruning jobs (./jobs.ts) from the queue, one at a time, with its own
 * WebAssembly instance and --threads pool, until SIGTERM/SIGINT (it finishes the job it holds first; a second
 * signal stops at once).
 * One line per job on stdout (started, done, refused); the Redis password is never printed.
 */
import os from "node:os";
import { UnrecoverableError, Worker, type Job } from "bullmq";
import { createWasm } from "../wasm/runtime.js";
import { openExecutor } from "../workers/index.js";
import { admit, runJob, RefusedJob, type JobData, type JobResult, type WorkerContext } from "./jobs.js";
import { QUEUE_NAME, codeVersion, redact, untilReady, workerOptions, type QueueTarget } from "./queue.js";
import { WorkDir } from "./work-dir.js";
import { openStore } from "../model/load.js";

export interface WorkerOptions {
  target: QueueTarget;
  workDir: string;
  threads: number;
  /** the job lock (src/distributed/queue.ts workerOptions) */
  lockSeconds: number;
  /** the worker's own copy of the model: dense layers read from it (checked against the coordinator's digest) */
  model?: string;
  log?(line: string): void;
  /** resolves when the worker should stop (default: SIGTERM or SIGINT) */
  stop?: Promise<void>;
}

/** Describe a job for a log line. */
export function jobLabel(data: JobData): string {
  switch (data?.kind) {
    case "layer": return `layer ${data.layer}`;
    case "forward": return `dense forward of shard ${data.shard}`;
    case "stats": return `layer ${data.layer} statistics (${data.stage?.kind === "group" ? `group ${data.stage.g}` : "plain"}) of shard ${data.shard}`;
    case "solve": return `layer ${data.layer} solve of group ${data.group}, row block ${data.block} of ${data.blocks}`;
    case "advance": return `layer ${data.layer} advance of shard ${data.shard}`;
    default: return `kind ${String(data?.kind)}`;
  }
}

export async function runWorker(o: WorkerOptions): Promise<void> {
  const log = o.log ?? ((line: string) => process.stdout.write(line + "\n"));
  const work = new WorkDir(o.workDir);
  const name = `${os.hostname()}:${process.pid}`;
  const wasm = createWasm();
  // the model's layer slot is taken before any job's arena mark, so it outlives every job
  const store = o.model ? await openStore(o.model, { residency: "streamed", wasm, requireTokenizer: false }) : undefined;
  const exec = openExecutor(wasm, o.threads);
  const ctx: WorkerContext = {
    work, wasm, exec, code: codeVersion(wasm.build),
    model: store && { dir: o.model!, store, warn: (line) => log(`worker ${name}: ${line}`), verified: new Map() },
  };
  const processor = async (job: Job<JobData>): Promise<JobResult> => {
    const t0 = performance.now();
    let run;
    try {
      run = admit(ctx, job.data);
    } catch (e) {
      if (e instanceof RefusedJob) {
        log(`worker ${name}: refused job ${job.id} (${jobLabel(job.data)}): ${e.message}`);
        throw new UnrecoverableError(`refused by worker ${name}: ${e.message}`);
      }
      throw e;
    }
    log(`worker ${name}: job ${job.id} (${jobLabel(job.data)}) started, attempt ${job.attemptsMade + 1}`);
    const layersFrom = await runJob(ctx, job.data, run);
    const seconds = (performance.now() - t0) / 1000;
    log(`worker ${name}: job ${job.id} (${jobLabel(job.data)}) done in ${seconds.toFixed(2)} s`);
    return { worker: name, seconds, ...(layersFrom.model + layersFrom.workDir > 0 ? { layersFrom } : {}) };
  };
  const worker = new Worker<JobData, JobResult>(QUEUE_NAME, processor, workerOptions(o.target, name, o.lockSeconds));
  let lastError = "";
  worker.on("error", (e) => {
    const msg = redact(String((e as Error).message ?? e), o.target);
    if (msg !== lastError) log(`worker ${name}: ${msg}`);
    lastError = msg;
  });
  worker.on("failed", (job, e) => {
    if (job && !(e instanceof UnrecoverableError)) log(`worker ${name}: job ${job.id} (${jobLabel(job.data)}) failed: ${redact(e.message, o.target)}`);
  });
  const stop = o.stop ?? new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
  try {
    await untilReady(worker.waitUntilReady(), 15, () => worker.close(true), o.target, () => lastError);
    log(`worker ${name}: waiting for jobs on ${o.target.shown} (work dir ${work.root}${o.model ? `, dense layers from ${o.model}` : ""}, ${o.threads} thread${o.threads === 1 ? "" : "s"}, ${ctx.code})`);
    const running = worker.run();
    await stop;
    // the job it holds is finished first; a second SIGTERM/SIGINT (or Redis unreachable, when the close would
    // wait for a reconnect) stops at once, the job's lock then expires and another worker takes it over
    log(`worker ${name}: stopping (again to stop at once)`);
    const force = () => {
      log(`worker ${name}: stopping at once`);
      void Promise.race([worker.close(true), new Promise((r) => setTimeout(r, 5000))]).finally(() => process.exit(1));
    };
    process.once("SIGTERM", force);
    process.once("SIGINT", force);
    await worker.close();
    await running;
    process.off("SIGTERM", force);
    process.off("SIGINT", force);
  } finally {
    await exec.close();
    ctx.model?.store.close();
  }
}
