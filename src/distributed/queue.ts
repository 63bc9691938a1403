/**
 * @file The job queue of distributed pruning: BullMQ on Redis (`--queue redis://[user:pass@]host:port[/db]`).
 * The URL's password never leaves this file in a message: `shown` is the URL without it. Job options are set
 * deliberately (see JOB_OPTIONS and workerOptions); a job carries references into the shared work dir and the
 * settings' hash, never tensors.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Queue, type JobsOptions, type RedisOptions, type WorkerOptions } from "bullmq";
import { UsageError } from "../errors.js";
import { defaultBuild, kernelPath, type KernelBuild } from "../wasm/runtime.js";
import { packageRoot } from "../util/package-root.js";

/** The BullMQ queue every coordinator and worker of a Redis database shares (jobs are named by run). */
export const QUEUE_NAME = "wasprune";
/** The format of a job's data; a worker refuses any other. */
export const JOB_FORMAT = 1;

export interface QueueTarget {
  connection: RedisOptions;
  /** the URL as it may be printed: no password */
  shown: string;
}

/**
 * Parse `redis://[user:pass@]host:port[/db]` (one clear error, never echoing the password). `password`: used when
 * the URL has none — the CLI passes WASPRUNE_REDIS_PASSWORD, so the password need not be on a command line that
 * every user of the machine can read in `ps`.
 */
export function parseQueueUrl(url: string, password?: string): QueueTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`--queue: expected redis://[user:password@]host:port[/db], got something that is not a URL`);
  }
  const shown = `${u.protocol}//${u.username ? `${decodeURIComponent(u.username)}@` : ""}${u.host}${u.pathname === "/" ? "" : u.pathname}`;
  if (u.protocol !== "redis:") throw new UsageError(`--queue ${shown}: expected a redis:// URL`);
  if (!u.hostname) throw new UsageError(`--queue ${shown}: no host`);
  const port = u.port ? Number(u.port) : 6379;
  const dbText = u.pathname.replace(/^\//, "");
  const db = dbText === "" ? 0 : Number(dbText);
  if (!Number.isInteger(db) || db < 0) throw new UsageError(`--queue ${shown}: the database "/${dbText}" is not a number`);
  if (u.search || u.hash) throw new UsageError(`--queue ${shown}: query and fragment are not supported`);
  return {
    shown,
    connection: {
      host: u.hostname.replace(/^\[|\]$/g, ""), port, db,
      ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
      ...(u.password ? { password: decodeURIComponent(u.password) } : password ? { password } : {}),
      // BullMQ's workers block on Redis; a command waits through a reconnect instead of failing
      maxRetriesPerRequest: null,
      // a dropped connection is retried every ≤ 2 s, for as long as it takes
      retryStrategy: (times: number) => Math.min(2000, 100 * times),
    },
  };
}

/**
 * Retries of a job: 3 attempts with exponential backoff from 2 s (a worker that threw, e.g. a full disk
 * or a file not yet visible on the shared mount). A worker that dies (SIGKILL, power) is different: its job's lock
 * expires and another worker's stalled check puts the job back (workerOptions). Jobs are kept after they finish
 * (their return values are the status command's history) and removed with the run.
 */
export const JOB_OPTIONS: JobsOptions = {
  attempts: 3,
  backoff: { type: "exponential", delay: 2000 },
  removeOnComplete: false,
  removeOnFail: false,
};

/**
 * A worker's lock on its job is renewed every lock/2 by the worker's event loop; a worker computing on its main
 * thread (--threads 1) does not renew during a kernel call, so the lock must outlast the longest such stretch.
 * The default (5 min) is far above a layer of a 7B model on 16 threads; a lock shorter than a job's longest
 * uninterrupted compute would make BullMQ take the job away from a live worker (then retried: slower, never
 * wrong, as every job's output is a pure function of its inputs written atomically). A dead worker's job is
 * back in the queue after at most lock + stalled interval; a job that stalls 3 times fails.
 */
export function workerOptions(target: QueueTarget, name: string, lockSeconds: number): WorkerOptions {
  const lockDuration = Math.round(lockSeconds * 1000);
  return {
    connection: target.connection, name, concurrency: 1, autorun: false,
    lockDuration, stalledInterval: Math.max(500, Math.min(30_000, Math.round(lockDuration / 2))), maxStalledCount: 2,
  };
}

/** The queue, once Redis answered (bounded: one clear line naming the URL without password after `seconds`). */
export async function openQueue(target: QueueTarget, seconds = 15): Promise<Queue> {
  const queue = new Queue(QUEUE_NAME, { connection: target.connection });
  let lastError = "";
  queue.on("error", (e) => (lastError = redact(String((e as Error).message ?? e), target)));
  await untilReady(queue.waitUntilReady(), seconds, () => queue.close(), target, () => lastError);
  return queue;
}

/** Await `ready` for at most `seconds`; on timeout close and throw one line. */
export async function untilReady(ready: Promise<unknown>, seconds: number, close: () => Promise<void>, target: QueueTarget, lastError: () => string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), seconds * 1000)));
  try {
    const r = await Promise.race([ready.then(() => "ok" as const), timeout]);
    if (r === "timeout") {
      await close().catch(() => {});
      const why = lastError();
      throw new UsageError(`--queue ${target.shown}: Redis did not answer within ${seconds} s${why ? ` (${why})` : ""}`);
    }
  } finally {
    clearTimeout(timer);
  }
}

/** `text` with the connection's password replaced (ioredis errors may quote commands). */
export function redact(text: string, target: QueueTarget): string {
  const pw = target.connection.password;
  return pw ? text.split(pw).join("***") : text;
}

/**
 * What must be equal on the coordinator and every worker for the results to be bit-identical: the package
 * version, the job format, and the kernel build this process runs with its bytes' hash (a Node without relaxed
 * SIMD runs the baseline build, whose float results differ from the relaxed one's).
 */
export function codeVersion(build: KernelBuild = defaultBuild()): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(import.meta.url), "package.json"), "utf8")) as { version: string };
  const wasm = crypto.createHash("sha256").update(fs.readFileSync(kernelPath(build))).digest("hex").slice(0, 12);
  return `wasprune ${pkg.version} job-format ${JOB_FORMAT} kernels ${build} ${wasm}`;
}
