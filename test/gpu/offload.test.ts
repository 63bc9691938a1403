/**
 * @file eval/generate with the linear layers really on the WebGPU device (src/gpu/offload.ts): the same
 * perplexity and greedy text as on WASM, for the dense model (WGSL GEMM) and a 2:4 compressed one (2:4 SpMM
 * on the arena's kernel layout), through the CLI so the device thread, the one-line report and the clean exit
 * are what a user gets. On lavapipe (a CPU behind Vulkan), so slow: 20 paragraphs, 60 steps.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { CLI, STORIES_HF, TINY_VALID } from "../helpers/shared.js";
import { gpuInChildOrSkip } from "./helpers.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "wasprune-offload-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const run = (args: string[]) => {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, `${args.join(" ")}\n${r.stderr}`);
  return r;
};
/** stderr lines that are wasprune's (not Dawn's warnings) */
const ours = (stderr: string) => stderr.split("\n").filter((l) => l.trim() && !/^Warning: /.test(l) && !/^\s+at /.test(l));
const evalArgs = (model: string) => ["eval", model, "--text", TINY_VALID, "--paragraphs", "20", "--json"];
const ppl = (stdout: string) => (JSON.parse(stdout) as { perplexity: number }).perplexity;
const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

test("eval --device webgpu: every linear layer on the device, perplexity within 1e-4 of WASM", async (t) => {
  if (!gpuInChildOrSkip(t)) return;
  const w = run([...evalArgs(STORIES_HF), "--device", "wasm"]);
  const g = run([...evalArgs(STORIES_HF), "--device", "webgpu"]);
  assert.match(ours(g.stderr).join("\n"), /^device: .*: 36 of 36 linear layers on WebGPU$/);
  assert.deepEqual(ours(w.stderr), []);
  const [pw, pg] = [ppl(w.stdout), ppl(g.stdout)];
  t.diagnostic(`perplexity wasm ${pw} webgpu ${pg} rel ${rel(pg, pw).toExponential(2)}`);
  assert.ok(rel(pg, pw) <= 1e-4, `${pg} vs ${pw}`);
});

test("generate --device webgpu --temperature 0: the same greedy text as WASM for 60 steps", async (t) => {
  if (!gpuInChildOrSkip(t)) return;
  const args = ["generate", STORIES_HF, "--steps", "60", "--temperature", "0", "--prompt", "Once upon a time"];
  const w = run([...args, "--device", "wasm"]);
  const g = run([...args, "--device", "webgpu"]);
  assert.ok(w.stdout.length > 100, w.stdout);
  assert.equal(g.stdout, w.stdout);
});

test("a compressed 2:4 model: eval --device webgpu (2:4 SpMM on the device) matches its WASM run", async (t) => {
  if (!gpuInChildOrSkip(t)) return;
  const pruned = path.join(tmp, "pruned"), packed = path.join(tmp, "packed");
  run(["prune", STORIES_HF, "--out", pruned, "--method", "magnitude", "--sparsity", "2:4", "--threads", "1"]);
  run(["compress", pruned, "--out", packed, "--threads", "1"]);
  const w = run([...evalArgs(packed), "--device", "wasm"]);
  const g = run([...evalArgs(packed), "--device", "webgpu"]);
  assert.match(ours(g.stderr).join("\n"), /: 36 of 36 linear layers on WebGPU$/);
  const [pw, pg] = [ppl(w.stdout), ppl(g.stdout)];
  t.diagnostic(`2:4 compressed: perplexity wasm ${pw} webgpu ${pg} rel ${rel(pg, pw).toExponential(2)}`);
  assert.ok(rel(pg, pw) <= 1e-4, `${pg} vs ${pw}`);
});

test("a quantized model: eval --device webgpu keeps its int4 operators on the integer kernels (WASM), one line says so", async (t) => {
  if (!gpuInChildOrSkip(t)) return;
  const q = path.join(tmp, "w4g32");
  run(["quantize", STORIES_HF, "--scheme", "w4g32", "--method", "rtn", "--out", q, "--threads", "1"]);
  const w = run([...evalArgs(q), "--device", "wasm"]);
  const g = run([...evalArgs(q), "--device", "webgpu"]);
  // the tied LM head (row-major f32) goes to the device; the 35 int4 operators have no device kernel
  assert.match(ours(g.stderr).join("\n"), /: 1 of 36 linear layers on WebGPU, the rest on WASM; no device kernel, on WASM: 30 int4 g32, 5 int4 channel$/);
  type Out = { perplexity: number; weights: { layouts: Record<string, number> } };
  const [ow, og] = [JSON.parse(w.stdout) as Out, JSON.parse(g.stdout) as Out];
  assert.deepEqual(og.weights.layouts, ow.weights.layouts);
  assert.equal(og.weights.layouts["int4 g32"], 30);
  t.diagnostic(`w4g32: perplexity wasm ${ow.perplexity} webgpu ${og.perplexity} rel ${rel(og.perplexity, ow.perplexity).toExponential(2)}`);
  assert.ok(rel(og.perplexity, ow.perplexity) <= 1e-4, `${og.perplexity} vs ${ow.perplexity}`);
});
