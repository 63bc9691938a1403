/**
 * @file `wasprune train` as a user runs it on stories260K: an exact 2:4 output that eval, inspect and compress
 * read, resume after SIGKILL with byte-identical results, the output policy, and one clear error line for
 * bad input.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CLI, STORIES_HF, TINY_TRAIN, TINY_VALID } from "../helpers/shared.ts";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-train-"));
const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 300_000 });

/** Small settings: a few seconds on stories260K. */
const small = (out: string, extra: string[] = []) => [
  "train", STORIES_HF, "--data", TINY_TRAIN, "--steps", "60", "--batch", "2", "--seqlen", "32", "--checkpoint-every", "4",
  "--eval", TINY_VALID, "--eval-paragraphs", "8", "--eval-every", "20", "--slorb", "--slorb-k", "16", "--out", out, ...extra,
];

function assertCleanError(r: ReturnType<typeof cli>, ...needles: string[]) {
  assert.notEqual(r.status, 0, `expected failure; stdout ${r.stdout}`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `one error line expected, got:\n${r.stderr}`);
  assert.match(lines[0], /^error: /);
  for (const n of needles) assert.ok(lines[0].includes(n), `"${lines[0]}" should mention "${n}"`);
}

test("train: resume after SIGKILL gives the bytes of an uninterrupted run; output is exact 2:4 and loads, compresses, evaluates", async () => {
  const dir = tmp();
  const clean = path.join(dir, "clean");
  const killed = path.join(dir, "killed");
  const r = cli([...small(clean), "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.exactNM, true);
  assert.equal(summary.sparsity, 0.5);
  const evals = summary.log.filter((e: { kind: string }) => e.kind === "eval");
  assert.deepEqual(evals.map((e: { step: number }) => e.step), [0, 20, 40, 60]);
  assert.ok(evals.at(-1).perplexity < evals[0].perplexity, "training lowers the validation perplexity");
  assert.ok(fs.existsSync(path.join(clean, "slorb.safetensors")));
  assert.ok(!fs.existsSync(path.join(clean, ".wasprune-checkpoint")), "checkpoints removed at the end");

  await killAfterCheckpoint(small(killed), killed);
  assert.ok(!fs.existsSync(path.join(killed, "training.json")), "a killed run must not look finished");
  // other settings are refused while a partial run is there
  assertCleanError(cli(small(killed, ["--lr", "0.002"])), "different settings", "--force");
  const resumed = cli([...small(killed), "--json"]);
  assert.equal(resumed.status, 0, resumed.stderr);
  const rs = JSON.parse(resumed.stdout);
  assert.ok(rs.resumedFromStep >= 4, `resumed from step ${rs.resumedFromStep}`);
  for (const f of ["model.safetensors", "slorb.safetensors"]) {
    assert.ok(fs.readFileSync(path.join(clean, f)).equals(fs.readFileSync(path.join(killed, f))), `${f} differs after resume`);
  }
  assert.deepEqual(rs.log, summary.log);

  // a finished output is not overwritten without --force
  assertCleanError(cli(small(clean)), "finished trained model", "--force");

  // the output is a pruned model like prune writes: inspect sees 2:4, compress packs it, eval agrees
  const ins = cli(["inspect", clean, "--json"]);
  assert.equal(ins.status, 0, ins.stderr);
  assert.ok(!/"pattern":\s*null/.test(ins.stdout) || ins.stdout.includes("2:4"));
  const packed = path.join(dir, "packed");
  const c = cli(["compress", clean, "--out", packed, "--json"]);
  assert.equal(c.status, 0, c.stderr);
  const e1 = JSON.parse(cli(["eval", clean, "--text", TINY_VALID, "--paragraphs", "8", "--json", "--threads", "1"]).stdout);
  const e2 = JSON.parse(cli(["eval", packed, "--text", TINY_VALID, "--paragraphs", "8", "--json", "--threads", "1"]).stdout);
  assert.ok(Math.abs(e1.perplexity - e2.perplexity) < 1e-3 * e1.perplexity, `dense ${e1.perplexity} vs compressed ${e2.perplexity}`);
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Run `args` and SIGKILL it as soon as its first checkpoint exists (it must not finish before). */
async function killAfterCheckpoint(args: string[], out: string): Promise<void> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: "ignore" });
  const state = path.join(out, ".wasprune-checkpoint", "state.safetensors");
  await new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      if (fs.existsSync(state)) {
        clearInterval(t);
        child.kill("SIGKILL");
        resolve();
      }
    }, 5);
    child.on("exit", () => {
      clearInterval(t);
      reject(new Error("the run finished before it could be killed"));
    });
  });
  await new Promise((res) => child.on("exit", res));
}

test("train --method lora after prune --structured: smaller student distilled from the dense model; SIGKILL + resume on other thread counts gives the same bytes; merged output evaluates as trained", async () => {
  const dir = tmp();
  const small = path.join(dir, "small");
  const p = cli(["prune", STORIES_HF, "--structured", "--method", "activation", "--ratio", "0.25", "--calib", TINY_TRAIN, "--nsamples", "16", "--out", small]);
  assert.equal(p.status, 0, p.stderr);
  const lora = (out: string, threads: string, extra: string[] = []) => [
    "train", STORIES_HF, "--init", small, "--method", "lora", "--lora-rank", "4", "--data", TINY_TRAIN, "--steps", "60", "--batch", "3",
    "--seqlen", "32", "--lr", "3e-3", "--checkpoint-every", "4", "--eval", TINY_VALID, "--eval-paragraphs", "8", "--eval-every", "20",
    "--threads", threads, "--out", out, ...extra,
  ];
  const clean = path.join(dir, "clean");
  const r = cli([...lora(clean, "1"), "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.deepEqual(summary.lora, { rank: 4, alpha: 16, adapterParams: summary.lora.adapterParams, merged: true });
  assert.ok(summary.lora.adapterParams > 0);
  const evals = summary.log.filter((e: { kind: string }) => e.kind === "eval");
  assert.ok(evals.at(-1).perplexity < evals[0].perplexity, `LoRA lowers the validation perplexity: ${evals[0].perplexity} → ${evals.at(-1).perplexity}`);
  // the output is a standard model of the student's (smaller) shapes, adapters merged: eval gives the trainer's number
  const cfg = JSON.parse(fs.readFileSync(path.join(clean, "config.json"), "utf8"));
  assert.deepEqual([cfg.intermediate_size, cfg.num_attention_heads, cfg.num_key_value_heads], [129, 6, 3]);
  const e = JSON.parse(cli(["eval", clean, "--text", TINY_VALID, "--paragraphs", "8", "--json", "--threads", "1"]).stdout);
  assert.ok(Math.abs(e.perplexity - evals.at(-1).perplexity) <= 1e-4 * e.perplexity, `eval ${e.perplexity} vs trainer ${evals.at(-1).perplexity}`);

  const killed = path.join(dir, "killed");
  await killAfterCheckpoint(lora(killed, "2"), killed);
  assert.ok(!fs.existsSync(path.join(killed, "training.json")), "a killed run must not look finished");
  const resumed = cli([...lora(killed, "3"), "--json"]);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.ok(JSON.parse(resumed.stdout).resumedFromStep >= 4);
  assert.ok(fs.readFileSync(path.join(clean, "model.safetensors")).equals(fs.readFileSync(path.join(killed, "model.safetensors"))), "1 thread vs killed at 2 + resumed at 3: other bytes");
  assertCleanError(cli(lora(path.join(dir, "x"), "1", ["--sparsity", "2:4"])), "--sparsity 2:4", "--method lora");
  fs.rmSync(dir, { recursive: true, force: true });
});

test("train: bad input gives one clear error line and writes nothing", () => {
  const dir = tmp();
  const out = path.join(dir, "o");
  const base = ["train", STORIES_HF, "--data", TINY_TRAIN, "--steps", "3", "--out", out];
  assertCleanError(cli([...base, "--sparsity", "0.5"]), "--sparsity 0.5", "N:M");
  assertCleanError(cli([...base, "--sparsity", "3:2"]), "--sparsity 3:2");
  assertCleanError(cli(["train", STORIES_HF, "--data", path.join(dir, "nope.txt"), "--steps", "3", "--out", out]), "--data", "not found");
  assertCleanError(cli([...base, "--steps", "0"]), "--steps", "positive integer");
  assertCleanError(cli([...base, "--alpha", "1.5"]), "--alpha");
  assertCleanError(cli([...base, "--method", "sgd"]), "--method sgd", "ast, fixed");
  assertCleanError(cli([...base, "--mask-metric", "random"]), "--mask-metric random");
  assertCleanError(cli([...base, "--seqlen", "4096"]), "--seqlen 4096", "512");
  assertCleanError(cli([...base, "--init", "builtin"]), "--init");
  assertCleanError(cli([...base, "--eval", dir]), "--eval", "directory");
  assert.ok(!fs.existsSync(out), "nothing written on bad input");
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, "notes.txt"), "mine");
  assertCleanError(cli(base), "not a wasprune output");
  fs.rmSync(dir, { recursive: true, force: true });
});

test("train: data-parallel steps write the same bytes with --threads 1 (no pool), 2 and 3", () => {
  const dir = tmp();
  const hashes: string[] = [];
  for (const th of ["1", "2", "3"]) {
    const out = path.join(dir, `t${th}`);
    // 3 sequences x 2 micro-batches: 4 gradient blocks of 1-2 sequences, split 1/2/3 ways across the slots
    const r = cli([
      "train", STORIES_HF, "--data", TINY_TRAIN, "--steps", "5", "--batch", "3", "--accum", "2", "--seqlen", "32",
      "--slorb", "--out", out, "--threads", th, "--json",
    ]);
    assert.equal(r.status, 0, r.stderr);
    hashes.push(["model.safetensors", "slorb.safetensors"].map((f) => fs.readFileSync(path.join(out, f)).toString("base64")).join("|"));
    const log = JSON.parse(r.stdout).log.filter((e: { kind: string }) => e.kind === "step");
    assert.equal(log.length, 5);
  }
  assert.ok(hashes[0] === hashes[1], "--threads 2 wrote different bytes from --threads 1");
  assert.ok(hashes[0] === hashes[2], "--threads 3 wrote different bytes from --threads 1");
});

test("train: a worker that dies mid-step fails the command with one error line naming the step", () => {
  const out = path.join(tmp(), "dead");
  const r = spawnSync(process.execPath, [CLI, "train", STORIES_HF, "--data", TINY_TRAIN, "--steps", "3", "--batch", "2", "--seqlen", "16", "--out", out, "--threads", "2"], {
    encoding: "utf8", timeout: 300_000, env: { ...process.env, WASPRUNE_TEST_WORKER_EXIT: "trainBlocks" },
  });
  assertCleanError(r, "train step 1", "worker thread exited");
  assert.ok(!fs.existsSync(path.join(out, "model.safetensors")));
});

test("train --slorb: the loader reads slorb.safetensors beside the model, so eval (dense or compressed) keeps SLoRB's gain", () => {
  const dir = tmp();
  const out = path.join(dir, "t");
  const r = cli([
    "train", STORIES_HF, "--data", TINY_TRAIN, "--steps", "20", "--batch", "4", "--seqlen", "64", "--lr", "3e-3", "--slorb",
    "--eval", TINY_VALID, "--eval-paragraphs", "8", "--eval-every", "20", "--out", out, "--threads", "2", "--json",
  ]);
  assert.equal(r.status, 0, r.stderr);
  const trained = JSON.parse(r.stdout).log.filter((e: { kind: string }) => e.kind === "eval").at(-1).perplexity as number;
  const ppl = (m: string) => {
    const e = cli(["eval", m, "--text", TINY_VALID, "--paragraphs", "8", "--json", "--threads", "1"]);
    assert.equal(e.status, 0, e.stderr);
    return JSON.parse(e.stdout).perplexity as number;
  };
  const loaded = ppl(out);
  assert.ok(Math.abs(loaded - trained) <= 1e-5 * trained, `eval of the written model ${loaded} vs the trainer's ${trained}`);
  const bare = path.join(dir, "bare");
  fs.mkdirSync(bare);
  for (const f of fs.readdirSync(out)) if (f !== "slorb.safetensors") fs.copyFileSync(path.join(out, f), path.join(bare, f));
  assert.notEqual(ppl(bare), loaded, "without slorb.safetensors the model computes something else");
  const packed = path.join(dir, "packed");
  assert.equal(cli(["compress", out, "--out", packed]).status, 0);
  assert.ok(fs.existsSync(path.join(packed, "slorb.safetensors")), "compress carries the add-ons");
  assert.ok(Math.abs(ppl(packed) - loaded) <= 1e-5 * loaded);
});
