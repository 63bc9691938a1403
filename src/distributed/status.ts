/**
 * @file `wasprune queue status --queue URL`: what the queue holds (BullMQ's counts), the workers connected now
 * (Redis' client list, as BullMQ names them) with their throughput over the finished jobs still in the queue,
 * the jobs running (which layer or shard, on which worker, for how long), the last failures, and a rough ETA
 * (the jobs left × the mean seconds of a finished job of the same kind ÷ the workers).
 */
import type { Job, Queue } from "bullmq";
import { redact, type QueueTarget } from "./queue.js";
import type { JobData, JobResult } from "./jobs.js";
import { jobLabel } from "./worker.js";

export interface QueueStatus {
  queue: string;
  counts: { waiting: number; active: number; done: number; failed: number; delayed: number };
  workers: Array<{ name: string; jobsDone: number; meanSeconds: number | null }>;
  running: Array<{ id: string; what: string; run: string; seconds: number; attempt: number }>;
  failed: Array<{ id: string; what: string; reason: string }>;
  /** seconds, rough; null when nothing finished yet to estimate from */
  eta: number | null;
}

/** Finished jobs looked at for throughput (the most recent). */
const HISTORY = 500;

export async function queueStatus(queue: Queue, target: QueueTarget): Promise<QueueStatus> {
  const c = await queue.getJobCounts("waiting", "active", "completed", "failed", "delayed", "prioritized", "waiting-children");
  const counts = {
    waiting: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c["waiting-children"] ?? 0), active: c.active ?? 0, done: c.completed ?? 0, failed: c.failed ?? 0, delayed: c.delayed ?? 0,
  };
  const clients = await queue.getWorkers();
  const done = (await queue.getJobs(["completed"], 0, HISTORY - 1)) as Array<Job<JobData, JobResult>>;
  const per = new Map<string, { n: number; s: number }>();
  const perKind = new Map<string, { n: number; s: number }>();
  for (const j of done) {
    const r = j.returnvalue;
    if (!r) continue;
    const w = per.get(r.worker) ?? { n: 0, s: 0 };
    per.set(r.worker, { n: w.n + 1, s: w.s + r.seconds });
    const k = perKind.get(j.data.kind) ?? { n: 0, s: 0 };
    perKind.set(j.data.kind, { n: k.n + 1, s: k.s + r.seconds });
  }
  // BullMQ names a worker's connections "<prefix>:<queue>:w:<worker name>" (a worker may hold two)
  const names = [...new Set(clients.map((w) => (w.rawname ?? "").split(":w:")[1] ?? w.addr ?? "?"))];
  const workers = names.map((name) => {
    const p = per.get(name);
    return { name, jobsDone: p?.n ?? 0, meanSeconds: p ? p.s / p.n : null };
  });
  const now = Date.now();
  const active = (await queue.getJobs(["active"], 0, 99)) as Array<Job<JobData, JobResult>>;
  const running = active.map((j) => ({
    id: String(j.id), what: jobLabel(j.data), run: j.data?.run ?? "?", seconds: j.processedOn ? (now - j.processedOn) / 1000 : 0, attempt: j.attemptsMade + 1,
  }));
  const failedJobs = (await queue.getJobs(["failed"], 0, 4)) as Array<Job<JobData, JobResult>>;
  const failed = failedJobs.map((j) => ({ id: String(j.id), what: jobLabel(j.data), reason: redact(j.failedReason ?? "", target) }));
  const left = [...((await queue.getJobs(["waiting", "prioritized", "delayed", "active"], 0, 9999)) as Array<Job<JobData, JobResult>>)];
  let eta: number | null = null;
  if (left.length === 0) eta = 0;
  else if (perKind.size) {
    const mean = (k: string) => {
      const p = perKind.get(k) ?? [...perKind.values()][0]!;
      return p.s / p.n;
    };
    eta = left.reduce((t, j) => t + mean(j.data?.kind), 0) / Math.max(1, workers.length);
  }
  return { queue: target.shown, counts, workers, running, failed, eta };
}

export function renderStatus(s: QueueStatus): string {
  const c = s.counts;
  const lines = [
    `queue ${s.queue}: ${c.waiting} waiting, ${c.active} active, ${c.done} done, ${c.failed} failed${c.delayed ? `, ${c.delayed} delayed (retry backoff)` : ""}`,
    `workers: ${s.workers.length}${s.workers.length ? "" : " (none connected)"}`,
    ...s.workers.map((w) => `  ${w.name}: ${w.jobsDone} jobs done${w.meanSeconds === null ? "" : `, ${w.meanSeconds.toFixed(2)} s per job`}`),
    ...(s.running.length ? ["running:", ...s.running.map((r) => `  ${r.what} (job ${r.id}, attempt ${r.attempt}) for ${r.seconds.toFixed(1)} s`)] : ["running: nothing"]),
    ...(s.failed.length ? ["failed:", ...s.failed.map((f) => `  ${f.what} (job ${f.id}): ${f.reason}`)] : []),
    `eta: ${s.eta === null ? "unknown (no job finished yet)" : `~${s.eta.toFixed(0)} s (rough: jobs left × mean seconds per job of their kind ÷ workers)`}`,
  ];
  return lines.join("\n");
}
