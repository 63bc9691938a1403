/**
 * Distributed pruning as a user runs it: a redis-server of the test's own (Debian's, scripts/install-redis.sh; a
 * free loopback port, its own config and data dir, a password), `wasprune worker` processes and the coordinator
 * `wasprune prune … --queue --work-dir` on stories260K, each drill in its own Redis
 * database and work dir:
 *  - coordinator + 2 workers → model.safetensors byte-identical to the single-process prune, the password in no
 *    output; `queue status` reports the finished jobs and the workers;
 *  - a worker SIGKILLed while it prunes a layer → the job is taken over by another worker, same bytes;
 *  - the coordinator SIGKILLed after its first layer → the same command resumes, same bytes;
 *  - Redis SIGKILLed mid-prune and restarted: the coordinator and the worker reconnect, same bytes;
 *  - the sequential schedule (error correction, 3 calibration shards) → identical to the local run with the
 *    same --calib-shards;
 *  - workers refuse jobs of another code version, another settings hash, or a path outside their work dir.
 * Every wait has a time limit and every poll a count.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Queue, QueueEvents } from "bullmq";
import { CLI, REPO, STORIES_HF, TINY_TRAIN } from "../helpers/shared.ts";
import { redisMissing, startRedis, type RedisServer } from "../helpers/redis.ts";
import { parseQueueUrl, QUEUE_NAME, codeVersion, JOB_FORMAT } from "../../src/distributed/queue.ts";
import { WorkDir, paths, runHash } from "../../src/distributed/work-dir.ts";

const skip = redisMissing();
const PASSWORD = "pw-Zq81 secret";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-dist-"));
let redis: RedisServer;
const children: ChildProcess[] = [];

before(async () => {
  if (!skip) redis = await startRedis({ password: PASSWORD });
});
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await redis?.stop();
  if (redis) fs.rmSync(redis.dir, { recursive: true, force: true });
  fs.rmSync(tmp, { recursive: true, force: true });
});

const url = (db: number) => `${redis.url}/${db}`;
const PRUNE = ["--method", "sparsegpt", "--sparsity", "0.5", "--schedule", "parallel", "--calib", TINY_TRAIN, "--nsamples", "32", "--threads", "1"];

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, `wasprune ${args.join(" ")}\n${r.stderr}`);
  return r;
}

/** A CLI process whose output is collected; `waitFor` resolves on the first line matching (bounded). */
function start(args: string[]) {
  const p = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(p);
  let out = "";
  const waiters: Array<{ re: RegExp; resolve: (line: string) => void }> = [];
  const feed = (d: Buffer) => {
    out += d.toString();
    for (const w of [...waiters]) {
      const m = out.split("\n").find((line) => w.re.test(line));
      if (m !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  p.stdout.on("data", feed);
  p.stderr.on("data", feed);
  const exited = new Promise<number | null>((resolve) => p.on("exit", (code) => resolve(code)));
  return {
    p,
    get out() {
      return out;
    },
    exited,
    waitFor(re: RegExp, ms = 30_000): Promise<string> {
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no line matching ${re} within ${ms} ms; output:\n${out}`)), ms);
        const w = { re, resolve: (line: string) => (clearTimeout(t), resolve(line)) };
        waiters.push(w);
        feed(Buffer.alloc(0));
        void exited.then(() => setTimeout(() => waiters.includes(w) && (clearTimeout(t), reject(new Error(`exited before a line matching ${re}; output:\n${out}`))), 50));
      });
    },
    async within(ms: number): Promise<number | null> {
      let timer: NodeJS.Timeout | undefined;
      const t = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), ms)));
      const r = await Promise.race([exited, t]);
      clearTimeout(timer);
      if (r === "timeout") throw new Error(`wasprune ${args.join(" ")} did not finish within ${ms} ms; output:\n${out}`);
      return r;
    },
  };
}

async function worker(db: number, work: string, extra: string[] = []) {
  const w = start(["worker", "--queue", url(db), "--work-dir", work, "--threads", "1", ...extra]);
  const line = await w.waitFor(/waiting for jobs/);
  const name = /worker (\S+):/.exec(line)![1]!;
  return Object.assign(w, { name });
}

async function stop(w: { p: ChildProcess; within(ms: number): Promise<number | null> }) {
  w.p.kill("SIGTERM");
  await w.within(15_000);
}

function dir(name: string): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

const model = (out: string) => fs.readFileSync(path.join(out, "model.safetensors"));
let localOut = "";

test("coordinator + 2 workers: bytes identical to the single-process prune; the password is printed nowhere; queue status", { skip }, async () => {
  localOut = path.join(tmp, "local");
  cli(["prune", STORIES_HF, ...PRUNE, "--out", localOut]);
  const work = dir("work-1");
  const ws = [await worker(1, work), await worker(1, work)];
  const out = path.join(tmp, "dist-1");
  const c = start(["prune", STORIES_HF, ...PRUNE, "--out", out, "--queue", url(1), "--work-dir", work, "--json"]);
  assert.equal(await c.within(90_000), 0, c.out);
  assert.ok(model(out).equals(model(localOut)), "distributed model.safetensors differs from the local run's");
  const report = JSON.parse(fs.readFileSync(path.join(out, "pruning.json"), "utf8")).wasprune;
  const layerJobs = report.distributed.jobs.filter((j: { what: string }) => j.what.startsWith("layer"));
  assert.equal(layerJobs.length, 5);
  for (const j of report.distributed.jobs) assert.ok(ws.some((w) => w.name === j.worker), `job ${j.id} done by ${j.worker}`);
  assert.ok(report.distributed.jobs.some((j: { what: string }) => j.what.startsWith("dense forward")));

  // the password from the environment instead of the URL (kept out of `ps`)
  const bare = url(1).replace(`:${encodeURIComponent(PASSWORD)}@`, "");
  assert.ok(!bare.includes("@"), bare);
  const st = spawnSync(process.execPath, [CLI, "queue", "status", "--queue", bare, "--json"], {
    encoding: "utf8", timeout: 30_000, env: { ...process.env, WASPRUNE_REDIS_PASSWORD: PASSWORD },
  });
  assert.equal(st.status, 0, st.stderr);
  const s = JSON.parse(st.stdout);
  assert.equal(s.counts.done, report.distributed.jobs.length);
  assert.equal(s.counts.failed, 0);
  assert.equal(s.counts.waiting + s.counts.active, 0);
  assert.deepEqual(s.workers.map((w: { name: string }) => w.name).sort(), ws.map((w) => w.name).sort());
  assert.equal(s.workers.reduce((t: number, w: { jobsDone: number }) => t + w.jobsDone, 0), report.distributed.jobs.length);
  assert.equal(s.eta, 0);
  const text = spawnSync(process.execPath, [CLI, "queue", "status", "--queue", url(1)], { encoding: "utf8", timeout: 30_000 });
  assert.match(text.stdout, /0 waiting, 0 active, \d+ done, 0 failed/);
  for (const w of ws) await stop(w);
  for (const o of [c.out, st.stdout, text.stdout, text.stderr, fs.readFileSync(path.join(out, "pruning.json"), "utf8"), ...ws.map((w) => w.out)]) {
    assert.ok(!o.includes(PASSWORD) && !o.includes(encodeURIComponent(PASSWORD)), "the Redis password was printed");
  }
});

test("a worker SIGKILLed while it prunes a layer: another takes the job over, same bytes", { skip }, async () => {
  assert.ok(localOut, "needs the first test's local run");
  const work = dir("work-2");
  // a short lock, so the dead worker's job is back in the queue within seconds
  const a = await worker(2, work, ["--lock-seconds", "2"]);
  const out = path.join(tmp, "dist-2");
  const c = start(["prune", STORIES_HF, ...PRUNE, "--out", out, "--queue", url(2), "--work-dir", work, "--json"]);
  await a.waitFor(/\(layer 2\) started/, 60_000);
  a.p.kill("SIGKILL");
  await a.within(10_000);
  assert.doesNotMatch(a.out, /\(layer 2\) done/, "the worker finished layer 2 before it was killed");
  const b = await worker(2, work, ["--lock-seconds", "2"]);
  assert.equal(await c.within(90_000), 0, c.out);
  assert.ok(model(out).equals(model(localOut)), "model.safetensors differs after the worker was killed");
  const report = JSON.parse(fs.readFileSync(path.join(out, "pruning.json"), "utf8")).wasprune;
  const l2 = report.distributed.jobs.find((j: { what: string }) => j.what === "layer 2");
  assert.equal(l2.worker, b.name, "layer 2 must have been finished by the second worker");
  assert.match(b.out, /\(layer 2\) started/);
  await stop(b);
});

test("Redis SIGKILLed mid-prune and restarted on its append-only file: coordinator and worker reconnect, same bytes", { skip }, async () => {
  assert.ok(localOut, "needs the first test's local run");
  const work = dir("work-6");
  const w = await worker(6, work);
  const out = path.join(tmp, "dist-6");
  const c = start(["prune", STORIES_HF, ...PRUNE, "--out", out, "--queue", url(6), "--work-dir", work, "--json"]);
  await w.waitFor(/\(layer 1\) started/, 60_000);
  // the server dies without a shutdown (appendfsync always: every acknowledged write is on disk), stays down a
  // moment, then comes back on the same port and data folder
  await redis.stop(true);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(c.p.exitCode, null, `the coordinator gave up while Redis was down:\n${c.out}`);
  await redis.start();
  assert.equal(await c.within(120_000), 0, c.out);
  assert.ok(model(out).equals(model(localOut)), "model.safetensors differs after Redis was restarted");
  const report = JSON.parse(fs.readFileSync(path.join(out, "pruning.json"), "utf8")).wasprune;
  assert.equal(report.distributed.jobs.filter((j: { what: string }) => j.what.startsWith("layer")).length, 5);
  await stop(w);
});

test("the coordinator SIGKILLed after its first layer: the same command resumes, same bytes", { skip }, async () => {
  const work = dir("work-3");
  const w = await worker(3, work);
  const out = path.join(tmp, "dist-3");
  const args = ["prune", STORIES_HF, ...PRUNE, "--out", out, "--queue", url(3), "--work-dir", work, "--json"];
  const c = start(args);
  const record = path.join(out, ".wasprune-checkpoint", "layer-0.json");
  for (let i = 0; i < 3000 && !fs.existsSync(record) && c.p.exitCode === null; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(fs.existsSync(record), "layer 0 never finished");
  c.p.kill("SIGKILL");
  await c.within(10_000);
  assert.ok(!fs.existsSync(path.join(out, "pruning.json")), "the killed coordinator finished anyway");
  const again = start(args);
  assert.equal(await again.within(90_000), 0, again.out);
  assert.ok(model(out).equals(model(localOut)), "model.safetensors differs after the coordinator was killed");
  const report = JSON.parse(fs.readFileSync(path.join(out, "pruning.json"), "utf8")).wasprune;
  assert.ok(report.resumedLayers.includes(0), `resumed ${report.resumedLayers}`);
  await stop(w);
});

test("workers refuse jobs of another code version, another settings hash, or a path outside the work dir", { skip }, async () => {
  const work = dir("work-0");
  const w = await worker(0, work);
  const target = parseQueueUrl(url(0));
  const queue = new Queue(QUEUE_NAME, { connection: target.connection });
  const events = new QueueEvents(QUEUE_NAME, { connection: target.connection });
  try {
    await events.waitUntilReady();
    const run = "runs/test";
    fs.mkdirSync(path.join(work, run), { recursive: true });
    fs.writeFileSync(path.join(work, paths.run(run)), "{}");
    const good = { format: JOB_FORMAT, code: codeVersion(), hash: runHash("{}"), run, kind: "layer", layer: 0 };
    const cases: Array<[object, RegExp]> = [
      [{ ...good, code: "wasprune 0.0.1 job-format 1 kernels baseline 000000000000" }, /code version differs/],
      [{ ...good, hash: "0".repeat(64) }, /settings hash differs/],
      [{ ...good, run: "../../etc" }, /outside the work dir/],
      [{ ...good, run: "/etc" }, /relative to the work dir/],
    ];
    for (const [data, re] of cases) {
      const job = await queue.add("layer", data, { attempts: 3 });
      await assert.rejects(job.waitUntilFinished(events, 20_000), re);
      const failed = await queue.getJob(job.id!);
      assert.equal(failed!.attemptsMade, 1, "a refused job is not retried");
      assert.match(failed!.failedReason, re);
    }
    assert.equal((w.out.match(/refused job/g) ?? []).length, cases.length);
  } finally {
    await events.close();
    await queue.close();
    await stop(w);
  }
});

test("compiled (dist/, what bin/wasprune.js runs): the code version and the local redis-server are found as from the sources", { skip: !fs.existsSync(path.join(REPO, "dist/src/distributed/queue.js")) && "dist/ is not built" }, () => {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", `
    const q = await import(${JSON.stringify(path.join(REPO, "dist/src/distributed/queue.js"))});
    const l = await import(${JSON.stringify(path.join(REPO, "dist/src/distributed/local-redis.js"))});
    console.log(JSON.stringify({ code: q.codeVersion("baseline"), missing: l.redisMissing() ?? null }));`], { encoding: "utf8", timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout);
  assert.equal(got.code, codeVersion("baseline"));
  assert.equal(got.missing, redisMissing() ?? null);
});

test("--queue URLs: parsed without ever echoing the password; job paths resolved inside the work dir", () => {
  const t = parseQueueUrl("redis://ann:p%40ss@10.0.0.5:6380/2");
  assert.deepEqual([t.connection.host, t.connection.port, t.connection.db, t.connection.username, t.connection.password], ["10.0.0.5", 6380, 2, "ann", "p@ss"]);
  assert.equal(t.shown, "redis://ann@10.0.0.5:6380/2");
  assert.equal(parseQueueUrl("redis://10.0.0.5:6380", "from-env").connection.password, "from-env", "no password in the URL: the given one");
  assert.equal(parseQueueUrl("redis://:inurl@10.0.0.5:6380", "from-env").connection.password, "inurl", "the URL's wins");
  for (const bad of ["http://:hunter2@h:1", "redis://:hunter2@h:1/x", "redis://:hunter2@h:1?a=b"]) {
    assert.throws(() => parseQueueUrl(bad), (e: Error) => !e.message.includes("hunter2"));
  }
  const work = dir("resolve");
  fs.mkdirSync(path.join(work, "runs"));
  fs.symlinkSync("/etc", path.join(work, "runs", "out"));
  const wd = new WorkDir(work);
  assert.equal(wd.resolve("runs/a/run.json"), path.join(fs.realpathSync(work), "runs/a/run.json"));
  assert.throws(() => wd.resolve("runs/../../x"), /outside the work dir/);
  assert.throws(() => wd.resolve("runs/out/passwd"), /symlink/);
  assert.throws(() => wd.resolve("/etc/passwd"), /relative/);
});

test("the sequential schedule: shards' statistics on 2 workers (error correction, 3 shards) = the local run with --calib-shards 3", { skip }, async () => {
  const seq = ["--method", "sparsegpt", "--sparsity", "0.5", "--error-correction", "--calib-shards", "3", "--calib", TINY_TRAIN, "--nsamples", "32", "--threads", "1"];
  const local = path.join(tmp, "local-seq");
  cli(["prune", STORIES_HF, ...seq, "--out", local]);
  const work = dir("work-4");
  const ws = [await worker(4, work), await worker(4, work)];
  const out = path.join(tmp, "dist-4");
  const c = start(["prune", STORIES_HF, ...seq, "--out", out, "--queue", url(4), "--work-dir", work]);
  assert.equal(await c.within(120_000), 0, c.out);
  assert.ok(model(out).equals(model(local)), "distributed sequential model.safetensors differs from the local run's");
  const report = JSON.parse(fs.readFileSync(path.join(out, "pruning.json"), "utf8")).wasprune;
  assert.equal(report.calibShards, 3);
  const jobs = report.distributed.jobs as Array<{ what: string; worker: string }>;
  // 5 layers × 4 operator groups (error correction) × 3 shards, and 4 advances × 3 shards
  assert.equal(jobs.filter((j) => / statistics \(group-\d\) of shard [0-2]$/.test(j.what)).length, 60);
  assert.equal(jobs.filter((j) => / stream advance of shard [0-2]$/.test(j.what)).length, 12);
  // SparseGPT unstructured: a block's mask spans rows, so each group is one job (4 per layer)
  assert.equal(jobs.filter((j) => / solve of group [0-3], row block 0 of 1$/.test(j.what)).length, 20);
  assert.equal(report.operators.length, 35);
  for (const w of ws) await stop(w);
});

test("solves in row blocks on workers (SparseGPT 2:4, 2 shards, measured error): same bytes, reports merged", { skip }, async () => {
  const seq = ["--method", "sparsegpt", "--sparsity", "2:4", "--calib-shards", "2", "--measure-error", "--calib", TINY_TRAIN, "--nsamples", "16", "--threads", "1"];
  const local = path.join(tmp, "local-rows");
  cli(["prune", STORIES_HF, ...seq, "--out", local]);
  const work = dir("work-7");
  const ws = [await worker(7, work), await worker(7, work)];
  const out = path.join(tmp, "dist-7");
  const c = start(["prune", STORIES_HF, ...seq, "--out", out, "--queue", url(7), "--work-dir", work]);
  assert.equal(await c.within(120_000), 0, c.out);
  assert.ok(model(out).equals(model(local)), "row-block solves' model.safetensors differs from the local run's");
  const report = JSON.parse(fs.readFileSync(path.join(out, "pruning.json"), "utf8")).wasprune;
  const jobs = report.distributed.jobs as Array<{ what: string; worker: string }>;
  // 5 layers × 4 groups × 2 row blocks: every operator solved in halves, on whichever worker took each
  const solves = jobs.filter((j) => / solve of group [0-3], row block [01] of 2$/.test(j.what));
  assert.equal(solves.length, 40);
  for (const j of solves) assert.ok(ws.some((w) => w.name === j.worker), `${j.what} done by ${j.worker}`);
  const mine = JSON.parse(fs.readFileSync(path.join(local, "pruning.json"), "utf8")).wasprune.operators as Array<{ name: string; rows: number; sparsity: number; relErr: number }>;
  assert.equal(report.operators.length, mine.length);
  report.operators.forEach((r: { name: string; rows: number; sparsity: number; relErr: number }, i: number) => {
    const m = mine[i]!;
    assert.equal(r.name, m.name);
    assert.equal(r.rows, m.rows, `${r.name}: rows of the merged report`);
    assert.ok(Math.abs(r.sparsity - 0.5) < 1e-9 && Math.abs(r.sparsity - m.sparsity) < 1e-12, `${r.name}: sparsity ${r.sparsity} vs ${m.sparsity}`);
    assert.ok(m.relErr > 0 && Math.abs(r.relErr - m.relErr) <= 1e-5 * m.relErr, `${r.name}: merged relErr ${r.relErr} vs whole ${m.relErr}`);
  });
  for (const w of ws) await stop(w);
});

test("worker --model: dense layers read from the worker's own copy (checked by digest), same bytes; a copy that differs is not used, with one line", { skip }, async () => {
  type Rec = { what: string; layersFrom?: { model: number; workDir: number } };
  const jobsOf = (out: string) => JSON.parse(fs.readFileSync(path.join(out, "pruning.json"), "utf8")).wasprune.distributed.jobs as Rec[];
  const other = path.join(tmp, "other-model"); // the same config, other weights
  cli(["synth", path.join(STORIES_HF, "config.json"), "--out", other, "--dtype", "F32", "--seed", "5"]);
  const schedules = {
    sequential: ["--method", "wanda", "--sparsity", "0.5", "--calib-shards", "2", "--calib", TINY_TRAIN, "--nsamples", "8", "--threads", "1"],
    parallel: ["--method", "wanda", "--sparsity", "0.5", "--schedule", "parallel", "--calib", TINY_TRAIN, "--nsamples", "8", "--threads", "1"],
  };
  let db = 8;
  for (const [name, args, copy] of [["sequential", schedules.sequential, STORIES_HF], ["parallel", schedules.parallel, STORIES_HF], ["sequential", schedules.sequential, other]] as const) {
    const local = path.join(tmp, `local-model-${name}`);
    if (!fs.existsSync(local)) cli(["prune", STORIES_HF, ...args, "--out", local]);
    const work = dir(`work-${db}`);
    const w = await worker(db, work, ["--model", copy]);
    const out = path.join(tmp, `dist-${db}`);
    const c = start(["prune", STORIES_HF, ...args, "--out", out, "--queue", url(db), "--work-dir", work]);
    assert.equal(await c.within(120_000), 0, c.out);
    assert.ok(model(out).equals(model(local)), `${name} with --model ${copy}: model.safetensors differs from the local run's`);
    // the jobs that read a dense layer: statistics (sequential), the dense forward and the layer jobs (parallel)
    const readers = jobsOf(out).filter((j) => j.layersFrom);
    assert.ok(readers.length >= (name === "sequential" ? 10 : 6), `${readers.length} jobs read a dense layer: ${readers.map((j) => j.what).join("; ")}`);
    const fromModel = readers.reduce((t, j) => t + j.layersFrom!.model, 0);
    const fromWorkDir = readers.reduce((t, j) => t + j.layersFrom!.workDir, 0);
    await stop(w);
    if (copy === STORIES_HF) {
      assert.equal(fromWorkDir, 0, `${name}: every dense layer from the worker's copy`);
      assert.ok(fromModel >= readers.length);
      assert.doesNotMatch(w.out, /not used/);
    } else {
      assert.equal(fromModel, 0, "a copy with other weights must not be used");
      assert.equal(w.out.match(/--model \S+ not used: layer \d+: its weights differ/g)?.length, 1, w.out);
    }
    db++;
  }
});

test("prune --queue without --work-dir, or a bad --calib-shards: one clear error", () => {
  const r = spawnSync(process.execPath, [CLI, "prune", STORIES_HF, "--out", path.join(tmp, "x"), "--queue", "redis://127.0.0.1:1"], { encoding: "utf8", timeout: 30_000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /^error: --queue needs --work-dir/);
  assert.equal(r.stderr.trim().split("\n").length, 1);
  const s = spawnSync(process.execPath, [CLI, "prune", STORIES_HF, "--out", path.join(tmp, "x"), "--calib-shards", "0"], { encoding: "utf8", timeout: 30_000 });
  assert.match(s.stderr, /^error: --calib-shards must be a positive integer/);
});
