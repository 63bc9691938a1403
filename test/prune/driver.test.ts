/**
 * The pruning driver and the prune command on the real model: every method × pattern, patterns confirmed by
 * inspect on the written files, perplexity ordering, resume after SIGKILL, and the output policy.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadModel } from "../../src/model/load.ts";
import { builtinModel } from "../../src/model/builtin.ts";
import { inspectModel } from "../../src/model/inspect.ts";
import { LINEAR_OPS } from "../../src/model/types.ts";
import { perplexity } from "../../src/eval/perplexity.ts";
import { paragraphSequences } from "../../src/eval/text.ts";
import { calibrationSet } from "../../src/prune/calibration.ts";
import { pruneModel } from "../../src/prune/driver.ts";
import { METHOD_NAMES } from "../../src/prune/methods/types.ts";
import { parsePattern } from "../../src/prune/pattern.ts";
import { CLI, STORIES_HF, TINY_TRAIN, TINY_VALID } from "../helpers/shared.ts";
import { openExecutor } from "../../src/workers/index.ts";
import { denseLinear } from "../../src/model/linear.ts";
import { residentStore } from "../../src/model/residency.ts";
import { MemorySink } from "../../src/prune/output.ts";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-prune-"));
const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 300_000 });

test("every method at 0.5 and 2:4 on stories260K: exact patterns, FISTA with correction beats Wanda and SparseGPT", async () => {
  const model = await loadModel(STORIES_HF);
  const tok = model.tokenizer!;
  const calib = calibrationSet(tok, fs.readFileSync(TINY_TRAIN, "utf8"), TINY_TRAIN, 128, 512);
  const evalSeqs = paragraphSequences(tok, fs.readFileSync(TINY_VALID, "utf8"), 300, 512);
  const snapshot = model.weights.layers.map((lw) => LINEAR_OPS.map((op) => denseLinear(lw[op], op).data.slice()));
  const restore = () => model.weights.layers.forEach((lw, l) => LINEAR_OPS.forEach((op, i) => denseLinear(lw[op], op).data.set(snapshot[l][i])));
  const exec = openExecutor(model.wasm, 1);
  const dense = (await perplexity(model, evalSeqs, exec)).perplexity;
  const ppl: Record<string, number> = {};
  for (const pat of ["0.5", "2:4"]) {
    for (const method of METHOD_NAMES) {
      const pattern = parsePattern(pat);
      const reports = await pruneModel(residentStore(model), calib, { method, pattern, schedule: "sequential", errorCorrection: method === "fista" }, exec, new MemorySink(model));
      assert.equal(reports.length, 5 * 7);
      const rep = inspectModel(residentStore(model));
      for (const t of rep.tensors.filter((t) => /_proj\.weight$/.test(t.name))) {
        if (pat === "2:4") assert.ok(t.nm === "2:4" || t.nm === "1:4" || t.nm === "1:2", `${method}: ${t.name} is ${t.nm}`);
        else assert.ok(Math.abs(t.zeroFraction - 0.5) < 0.01, `${method}: ${t.name} has ${t.zeroFraction} zeros`);
      }
      ppl[`${method} ${pat}`] = (await perplexity(model, evalSeqs, exec)).perplexity;
      restore();
    }
  }
  console.log(`dense ${dense.toFixed(3)}`, Object.entries(ppl).map(([k, v]) => `${k}: ${v.toFixed(3)}`).join(", "));
  for (const pat of ["0.5", "2:4"]) {
    const p = (m: string) => ppl[`${m} ${pat}`];
    assert.ok(p("magnitude") > p("wanda") && p("magnitude") > p("sparsegpt") && p("magnitude") > p("fista"), `magnitude worst at ${pat}`);
    assert.ok(p("fista") < p("wanda") && p("fista") < p("sparsegpt"), `fista best at ${pat}`);
    assert.ok(p("fista") > dense);
  }
});

test("parallel schedule and error correction for a baseline run and stay exact", async () => {
  const model = builtinModel();
  const text = Array.from({ length: 12 }, (_, i) => `paragraph ${i}: ` + "the cat sat on the mat. ".repeat(3 + i)).join("\n\n");
  const calib = calibrationSet(model.tokenizer!, text, "inline", 12, 64);
  const reports = await pruneModel(residentStore(model), calib, { method: "wanda", pattern: parsePattern("4:8"), schedule: "parallel", errorCorrection: true, measureError: true }, openExecutor(model.wasm, 1), new MemorySink(model));
  assert.equal(reports.length, 4 * 7);
  for (const t of inspectModel(residentStore(model)).tensors.filter((t) => /_proj\.weight$/.test(t.name))) {
    assert.ok(["4:8", "2:4", "1:2", "1:4", "2:8"].includes(t.nm ?? ""), `${t.name}: ${t.nm}`);
  }
  for (const r of reports) assert.ok(r.relErr !== null && r.relErr >= 0 && Number.isFinite(r.relErr));
});

test("prune CLI: writes an HF model that inspect confirms, with pruning.json; refuses to overwrite", () => {
  const out = path.join(tmp(), "pruned");
  const args = ["prune", STORIES_HF, "--method", "sparsegpt", "--sparsity", "2:4", "--calib", TINY_TRAIN, "--nsamples", "16", "--out", out, "--json"];
  const r = cli(args);
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.operators.length, 35);
  for (const f of ["config.json", "model.safetensors", "tokenizer.model", "pruning.json"]) assert.ok(fs.existsSync(path.join(out, f)), f);
  assert.ok(!fs.existsSync(path.join(out, ".wasprune-checkpoint")));
  const report = JSON.parse(fs.readFileSync(path.join(out, "pruning.json"), "utf8")).wasprune;
  assert.equal(report.method, "sparsegpt");
  assert.equal(report.pattern, "2:4");
  const ins = JSON.parse(cli(["inspect", out, "--json"]).stdout);
  for (const t of ins.tensors.filter((t: { name: string }) => /_proj\.weight$/.test(t.name))) assert.equal(t.nm, "2:4", t.name);
  // the written model runs
  const g = cli(["generate", out, "--prompt", "Once upon a time", "--temperature", "0", "--steps", "20"]);
  assert.equal(g.status, 0, g.stderr);
  assert.ok(g.stdout.startsWith("Once upon a time"));
  // no silent overwrite
  const again = cli(args);
  assert.notEqual(again.status, 0);
  assert.match(again.stderr, /^error: --out .*pruned: holds a finished pruned model \(pruning\.json\); pass --force/);
  assert.equal(cli([...args, "--force"]).status, 0);
});

test("prune CLI: bad options give one clear error line", () => {
  const dir = tmp();
  const empty = path.join(dir, "empty.txt");
  fs.writeFileSync(empty, "\n\n  \n");
  const file = path.join(dir, "afile");
  fs.writeFileSync(file, "x");
  const base = ["prune", STORIES_HF, "--calib", TINY_TRAIN, "--nsamples", "4"];
  const cases: Array<[string[], RegExp]> = [
    [[...base, "--sparsity", "1.0", "--out", path.join(dir, "a")], /--sparsity 1\.0: a fraction must be in \[0, 1\)/],
    [[...base, "--sparsity", "-0.1", "--out", path.join(dir, "a")], /--sparsity -0\.1: a fraction must be in \[0, 1\)/],
    [[...base, "--sparsity", "4:4", "--out", path.join(dir, "a")], /N < M/],
    [[...base, "--sparsity", "3:5", "--out", path.join(dir, "a")], /multiple of 5, got 64/],
    [[...base, "--method", "obs", "--out", path.join(dir, "a")], /--method obs: expected one of magnitude, wanda, sparsegpt, fista/],
    [["prune", STORIES_HF, "--calib", empty, "--out", path.join(dir, "a")], /empty\.txt: --calib has no text/],
    [[...base, "--out", file], /afile: is a file, expected a directory/],
  ];
  for (const [args, re] of cases) {
    const r = cli(args);
    assert.notEqual(r.status, 0, args.join(" "));
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, re);
  }
  assert.ok(!fs.existsSync(path.join(dir, "a", "pruning.json")));
});

test("a prune killed mid-way resumes from its layer checkpoints to a byte-identical model", async () => {
  const dir = tmp();
  const args = (out: string) => ["prune", STORIES_HF, "--method", "fista", "--sparsity", "0.5", "--calib", TINY_TRAIN, "--nsamples", "24", "--out", out];
  const clean = path.join(dir, "clean");
  assert.equal(cli(args(clean)).status, 0);
  const killed = path.join(dir, "killed");
  const child = spawn(process.execPath, [CLI, ...args(killed)], { stdio: "ignore" });
  const ck = path.join(killed, ".wasprune-checkpoint");
  // wait until two layers are checkpointed, then SIGKILL
  await new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      const n = fs.existsSync(ck) ? fs.readdirSync(ck).filter((f) => /^layer-\d+\.json$/.test(f)).length : 0;
      if (n >= 2) {
        clearInterval(t);
        child.kill("SIGKILL");
        resolve();
      }
    }, 20);
    child.on("exit", () => {
      clearInterval(t);
      reject(new Error("the prune finished before it could be killed"));
    });
  });
  await new Promise((r) => child.on("exit", r));
  assert.ok(!fs.existsSync(path.join(killed, "pruning.json")), "a killed run must not look finished");
  const resumed = cli([...args(killed), "--json"]);
  assert.equal(resumed.status, 0, resumed.stderr);
  const summary = JSON.parse(resumed.stdout);
  assert.ok(summary.resumedLayers.length >= 2, `resumed ${summary.resumedLayers}`);
  assert.ok(fs.readFileSync(path.join(clean, "model.safetensors")).equals(fs.readFileSync(path.join(killed, "model.safetensors"))));
  // a rerun with other settings is refused while a partial prune is there
  const other = path.join(dir, "other");
  fs.mkdirSync(path.join(other, ".wasprune-checkpoint"), { recursive: true });
  fs.writeFileSync(path.join(other, ".wasprune-checkpoint", "manifest.json"), JSON.stringify({ method: "wanda" }));
  const r = cli(args(other));
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /holds a partial prune with different settings/);
});

test("prune CLI: --fista-lasso runs the lasso path as a candidate and records it in pruning.json", () => {
  const out = path.join(tmp(), "lasso");
  const r = cli(["prune", STORIES_HF, "--method", "fista", "--fista-lasso", "--sparsity", "2:4", "--calib", TINY_TRAIN, "--nsamples", "8", "--out", out, "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(fs.readFileSync(path.join(out, "pruning.json"), "utf8")).wasprune;
  assert.deepEqual(report.methodOptions, { fista: { lassoPath: true } });
  // the lasso candidate was solved and measured for every operator (whether it wins rows depends on the budget)
  for (const op of report.operators) assert.ok(Number.isFinite(op.relErr_lasso) && op.relErr_lasso > 0 && op.relErr_lasso < 1, `${op.name}: ${op.relErr_lasso}`);
});

test("prune CLI on a --nonuniform structured model: operators of per-layer widths are pruned at their own width", () => {
  const dir = tmp();
  const small = path.join(dir, "nonuniform");
  const s = cli(["prune", STORIES_HF, "--structured", "--method", "activation", "--ratio", "0.25", "--nonuniform", "--calib", TINY_TRAIN, "--nsamples", "16", "--out", small]);
  assert.equal(s.status, 0, s.stderr);
  const widths = JSON.parse(cli(["inspect", small, "--json"]).stdout).tensors
    .filter((t: { name: string }) => t.name.endsWith("down_proj.weight")).map((t: { shape: number[] }) => t.shape[1]);
  assert.ok(new Set(widths).size > 1, `per-layer widths expected, got ${widths}`);
  const out = path.join(dir, "pruned");
  const r = cli(["prune", small, "--method", "sparsegpt", "--sparsity", "0.5", "--calib", TINY_TRAIN, "--nsamples", "16", "--out", out]);
  assert.equal(r.status, 0, r.stderr);
  for (const t of JSON.parse(cli(["inspect", out, "--json"]).stdout).tensors.filter((t: { name: string }) => /_proj\.weight$/.test(t.name))) {
    assert.ok(Math.abs(t.zeroFraction - 0.5) < 0.02, `${t.name} (${t.shape}): ${t.zeroFraction}`);
  }
  // a width that M does not divide is refused up front, naming the layer's operator
  const bad = widths.findIndex((w: number) => w % 4 !== 0);
  if (bad >= 0) {
    const e = cli(["prune", small, "--method", "wanda", "--sparsity", "2:4", "--calib", TINY_TRAIN, "--nsamples", "4", "--out", path.join(dir, "x")]);
    assert.notEqual(e.status, 0);
    assert.match(e.stderr, /model\.layers\.\d+\.(mlp\.down_proj|self_attn\.o_proj)\.weight: 2:4 sparsity needs the input width to be a multiple of 4/);
  }
});
