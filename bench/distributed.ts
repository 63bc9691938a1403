/**
 * @file `wasprune bench distributed`: the overhead of the queue on one machine — the same prune run locally and as
 * a coordinator with 1, 2 and 3 worker processes (on a 2-core machine this measures overhead, not speed-up), each
 * distributed output checked byte-identical to the local one, with the mean seconds per job kind from the
 * coordinator's pruning.json. Everything runs as a user runs it (CLI processes); Redis is `--queue URL`, or a
 * redis-server of its own from .cache/redis (scripts/install-redis.sh) on a free loopback port.
 * Model: a generated 2048-wide model (`synth tinyllama-1.1b`, 2 layers; random weights: time only), Wanda 50%,
 * sequential with 3 calibration shards and parallel; `quick`: stories260K.
 */
import { checkoutRoot, sharedDir } from "./shared.js";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { UsageError } from "../src/errors.js";
import { redisMissing, startRedis, type RedisServer } from "../src/distributed/local-redis.js";

const ROOT = checkoutRoot();
const CLI = path.join(ROOT, "bin/wasprune.js");
const SHARED = sharedDir();

export interface DistributedRow {
  schedule: string;
  workers: number;
  /** wall seconds of the coordinator (0 workers: the local prune) */
  seconds: number;
  /** seconds ÷ the local prune's */
  overhead: number;
  jobs: number;
  /** mean seconds of a job by kind (from pruning.json) */
  perJob: Record<string, number>;
  identical: boolean;
}

function cli(args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 3_600_000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new UsageError(`bench distributed: wasprune ${args.slice(0, 2).join(" ")} failed:\n${r.stderr}`);
  return r.stdout;
}

/** Start a worker and wait (≤ 60 s) for its "waiting for jobs" line. */
function startWorker(queue: string, work: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, [CLI, "worker", "--queue", queue, "--work-dir", work, "--threads", "1"], { stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    let out = "";
    const t = setTimeout(() => reject(new UsageError(`bench distributed: a worker did not start within 60 s:\n${out}`)), 60_000);
    const on = (d: Buffer) => {
      out += d.toString();
      if (out.includes("waiting for jobs")) {
        clearTimeout(t);
        p.stdout.removeAllListeners("data");
        p.stdout.resume();
        p.stderr.resume();
        resolve(p);
      }
    };
    p.stdout.on("data", on);
    p.stderr.on("data", on);
    p.on("exit", () => reject(new UsageError(`bench distributed: a worker exited:\n${out}`)));
  });
}

async function stopWorker(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  const done = new Promise((r) => p.once("exit", r));
  p.kill("SIGTERM");
  const t = setTimeout(() => p.kill("SIGKILL"), 15_000);
  await done;
  clearTimeout(t);
}

export async function benchDistributed(o: { json?: boolean; quick?: boolean; queue?: string }): Promise<{ model: string; rows: DistributedRow[] }> {
  const log = (s: string) => { if (!o.json) console.log(s); };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-bench-dist-"));
  let redis: RedisServer | undefined;
  try {
    let queue = o.queue;
    if (!queue) {
      const missing = redisMissing();
      if (missing) throw new UsageError(`bench distributed: no --queue and ${missing}`);
      redis = await startRedis();
      queue = redis.url;
    }
    const train = path.join(SHARED, "data/tinystories-train-head/tinystories_train_head.txt");
    let model: string;
    let extra: string[];
    if (o.quick) {
      model = path.join(SHARED, "models/stories260K-hf");
      extra = ["--nsamples", "32"];
    } else {
      model = path.join(tmp, "model-2048");
      const tok = path.join(SHARED, "models/llama2-tokenizer/tokenizer.model");
      cli(["synth", "tinyllama-1.1b", "--layers", "2", "--out", model, "--tokenizer", tok]);
      extra = ["--nsamples", "16", "--seqlen", "128"];
    }
    const rows: DistributedRow[] = [];
    let db = 0;
    for (const schedule of ["sequential", "parallel"]) {
      const args = ["prune", model, "--method", "wanda", "--sparsity", "0.5", "--schedule", schedule, "--calib", train, ...extra, "--threads", "1", "--calib-shards", "3"];
      const local = path.join(tmp, `local-${schedule}`);
      let t0 = performance.now();
      cli([...args, "--out", local, "--json"]);
      const base = (performance.now() - t0) / 1000;
      rows.push({ schedule, workers: 0, seconds: base, overhead: 1, jobs: 0, perJob: {}, identical: true });
      log(`${schedule}: local ${base.toFixed(2)} s`);
      for (const n of [1, 2, 3]) {
        const work = path.join(tmp, `work-${schedule}-${n}`);
        fs.mkdirSync(work);
        const url = `${queue.replace(/\/\d+$/, "")}/${db++ % 8}`;
        const workers = await Promise.all(Array.from({ length: n }, () => startWorker(url, work)));
        try {
          const out = path.join(tmp, `dist-${schedule}-${n}`);
          t0 = performance.now();
          const report = JSON.parse(cli([...args, "--out", out, "--queue", url, "--work-dir", work, "--json"]));
          const seconds = (performance.now() - t0) / 1000;
          const by = new Map<string, { n: number; s: number }>();
          for (const j of report.distributed.jobs as Array<{ what: string; seconds?: number }>) {
            const kind = /statistics/.test(j.what) ? "statistics" : / solve of group /.test(j.what) ? "solve" : /advance/.test(j.what) ? "advance" : /forward/.test(j.what) ? "dense forward" : "layer";
            const b = by.get(kind) ?? { n: 0, s: 0 };
            by.set(kind, { n: b.n + 1, s: b.s + (j.seconds ?? 0) });
          }
          const identical = fs.readFileSync(path.join(out, "model.safetensors")).equals(fs.readFileSync(path.join(local, "model.safetensors")));
          const row = { schedule, workers: n, seconds, overhead: seconds / base, jobs: report.distributed.jobs.length, perJob: Object.fromEntries([...by].map(([k, v]) => [k, v.s / v.n])), identical };
          rows.push(row);
          log(`${schedule}: ${n} worker${n > 1 ? "s" : ""} ${seconds.toFixed(2)} s (${row.overhead.toFixed(2)}x local, ${row.jobs} jobs: ${Object.entries(row.perJob).map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(", ")}) ${identical ? "identical" : "DIFFERENT BYTES"}`);
        } finally {
          await Promise.all(workers.map(stopWorker));
        }
      }
    }
    return { model: o.quick ? "stories260K-hf" : "synth tinyllama-1.1b, 2 layers (2048 wide)", rows };
  } finally {
    await redis?.stop();
    if (redis) fs.rmSync(redis.dir, { recursive: true, force: true });
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
