// `wasprune prune --structured` as a user types it: a smaller model that inspect/eval/generate open, the report,
// and one clear error line for bad requests.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { UsageError } from "../../src/errors.ts";
import { CLI, STORIES_BIN, TINY_TRAIN, TINY_VALID } from "../helpers/shared.ts";

function run(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test("prune --structured on stories260K (.bin in) writes a smaller HF model that inspect, eval and generate open", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-structured-cli-"));
  try {
    const out = path.join(dir, "small");
    const r = run(["prune", STORIES_BIN, "--structured", "--method", "activation", "--ratio", "0.25", "--calib", TINY_TRAIN, "--nsamples", "16",
      "--eval", TINY_VALID, "--eval-paragraphs", "10", "--out", out, "--json"]);
    assert.equal(r.code, 0, r.err);
    const s = JSON.parse(r.out);
    assert.equal(s.kind, "structured");
    assert.deepEqual([s.sizes.after.hiddenDim, s.sizes.after.nHeads, s.sizes.after.nKvHeads], [129, 6, 3]);
    assert.ok(s.perplexity.refit.perplexity < s.perplexity.noRefit.perplexity);
    assert.ok(s.sizes.after.params < s.sizes.before.params);
    assert.ok(fs.existsSync(path.join(out, "pruning.json")));
    const ins = run(["inspect", out, "--json"]);
    assert.equal(ins.code, 0, ins.err);
    assert.equal(JSON.parse(ins.out).params.total, s.sizes.after.params);
    const ev = run(["eval", out, "--text", TINY_VALID, "--paragraphs", "10", "--json"]);
    assert.equal(ev.code, 0, ev.err);
    assert.ok(Math.abs(JSON.parse(ev.out).perplexity - s.perplexity.refit.perplexity) < 1e-3, "eval of the written model = the reported perplexity");
    const gen = run(["generate", out, "--steps", "12", "--temperature", "0"]);
    assert.equal(gen.code, 0, gen.err);
    // never over a finished output
    const again = run(["prune", "builtin", "--structured", "--ratio", "0.25", "--out", out]);
    assert.notEqual(again.code, 0);
    assert.match(again.err, /^error: .*pruning\.json.*--force/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("prune --structured --method mini-llm (weight SPSA) and taylor (backprop) as a user runs them: the report says what was estimated", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-structured-cli-"));
  try {
    const common = ["--structured", "--ratio", "0.25", "--calib", TINY_TRAIN, "--nsamples", "8", "--json"];
    const m = run(["prune", STORIES_BIN, ...common, "--method", "mini-llm", "--spsa-directions", "6", "--spsa-batch", "4", "--out", path.join(dir, "m")]);
    assert.equal(m.code, 0, m.err);
    const s = JSON.parse(m.out);
    assert.equal(s.method, "mini-llm");
    assert.deepEqual([s.details.spsa.perturbed, s.details.spsa.eps, s.details.spsa.forwardPasses, s.details.spsa.batches], ["226560 linear weights", 1e-3, 12, 2]);
    assert.match(s.formula, /SPSA/);
    const t = run(["prune", STORIES_BIN, ...common, "--method", "taylor", "--out", path.join(dir, "t")]);
    assert.equal(t.code, 0, t.err);
    const ts = JSON.parse(t.out);
    assert.equal(ts.details.gradient.kind, "backprop");
    assert.ok(ts.details.gradient.loss > 0.5 && ts.details.gradient.loss < 3, `calibration loss ${ts.details.gradient.loss}`);
    assert.notDeepEqual(ts.scores.filter((x: { kind: string }) => x.kind === "channel").map((x: { removed: number[] }) => x.removed), s.scores.filter((x: { kind: string }) => x.kind === "channel").map((x: { removed: number[] }) => x.removed));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("prune --structured bad input: one clear error line (spawned), option checks (in process)", async () => {
  for (const [args, re] of [
    [["--structured", "--heads-ratio", "0.3"], /multiple of 1\/4/],
    [["--ratio", "0.25"], /--ratio needs --structured/],
  ] as [string[], RegExp][]) {
    const r = run(["prune", "builtin", "--out", path.join(os.tmpdir(), `wasprune-never-${process.pid}`), ...args]);
    assert.notEqual(r.code, 0, args.join(" "));
    const lines = r.err.trim().split("\n");
    assert.equal(lines.length, 1, r.err);
    assert.match(lines[0], /^error: /);
    assert.match(lines[0], re, args.join(" "));
  }
  const { routePrune, parseRatios, parseStructuredMethod } = await import("../../src/cli/commands/prune-structured.ts");
  const { checkStructuredJob } = await import("../../src/structured/run.ts");
  const { builtinModel } = await import("../../src/model/builtin.ts");
  const usage = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: unknown) => e instanceof UsageError && re.test((e as Error).message), String(re));
  usage(() => parseRatios({ ratio: 1 }), /--ratio 1: expected a fraction in \[0, 1\)/);
  usage(() => parseRatios({ channelsRatio: -0.2 }), /--channels-ratio -0.2: expected a fraction/);
  usage(() => parseRatios({}), /--structured needs --ratio/);
  assert.deepEqual(parseRatios({ ratio: 0.25, headsRatio: 0.5 }), { channelsRatio: 0.25, headsRatio: 0.5 });
  usage(() => parseStructuredMethod("fista"), /with --structured, expected one of mini-llm, mini-llm-exact, gate-hybrid, gate-hybrid-exact, taylor, activation, magnitude/);
  assert.equal(parseStructuredMethod(undefined), "activation", "the default is the criterion that wins on stories260K (README)");
  const cli = (given: string[]) => (k: string) => (given.includes(k) ? "cli" : "default");
  usage(() => routePrune({ structured: true, sparsity: "2:4" }, cli(["sparsity"])), /--sparsity applies to unstructured pruning/);
  usage(() => routePrune({ refit: false }, cli(["refit"])), /--no-refit needs --structured/);
  const opts: Record<string, unknown> = { structured: true, method: "fista" };
  assert.equal(routePrune(opts, cli([])), "structured");
  assert.equal(opts.method, undefined, "a defaulted --method fista does not reach --structured");
  assert.equal(routePrune({ method: "wanda", refit: true }, cli(["method"])), "unstructured");
  const model = builtinModel();
  usage(() => checkStructuredJob({ model, ratios: { channelsRatio: 0.25, headsRatio: 0.25 }, nonuniform: false, out: "x.bin" }), /a llama2\.c \.bin cannot hold removed heads/);
  usage(() => checkStructuredJob({ model, ratios: { channelsRatio: 0.25, headsRatio: 0 }, nonuniform: true, out: "x.bin" }), /cannot hold per-layer sizes/);
  assert.deepEqual(checkStructuredJob({ model, ratios: { channelsRatio: 0.25, headsRatio: 0 }, nonuniform: false, out: "x.bin" }).groups, [0, 0, 0, 0]);
});
