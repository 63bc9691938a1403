/**
 * @file The command-line side of distributed pruning (src/distributed): the coordinator's queue for
 * `prune --queue`, `wasprune worker` and `wasprune queue status`.
 */
import { UsageError } from "../../errors.js";
import { QueueRunner } from "../../distributed/coordinator.js";
import { openQueue, parseQueueUrl } from "../../distributed/queue.js";
import { queueStatus, renderStatus } from "../../distributed/status.js";
import { runWorker } from "../../distributed/worker.js";
import { WorkDir } from "../../distributed/work-dir.js";

/** The queue of a `--queue URL` option; a URL without a password takes WASPRUNE_REDIS_PASSWORD's (kept out of `ps`). */
function queueTarget(url: string) {
  return parseQueueUrl(url, process.env.WASPRUNE_REDIS_PASSWORD || undefined);
}

/** The queue and the layer runner of `prune --queue URL --work-dir DIR`. */
export async function openCoordinator(url: string, workDir: string): Promise<{ runner: QueueRunner; close(): Promise<void> }> {
  const target = queueTarget(url);
  const work = new WorkDir(workDir);
  const queue = await openQueue(target);
  return { runner: new QueueRunner(queue, target, work, (line) => process.stderr.write(line + "\n")), close: () => queue.close() };
}

export async function workerCommand(o: { queue: string; workDir: string; threads: number; lockSeconds: number; model?: string }): Promise<void> {
  if (!(o.lockSeconds > 0)) throw new UsageError(`--lock-seconds must be positive, got ${o.lockSeconds}`);
  await runWorker({ target: queueTarget(o.queue), workDir: o.workDir, threads: o.threads, lockSeconds: o.lockSeconds, model: o.model });
}

export async function queueStatusCommand(o: { queue: string; json?: boolean }): Promise<void> {
  const target = queueTarget(o.queue);
  const queue = await openQueue(target);
  try {
    const s = await queueStatus(queue, target);
    console.log(o.json ? JSON.stringify(s, null, 2) : renderStatus(s));
  } finally {
    await queue.close();
  }
}
