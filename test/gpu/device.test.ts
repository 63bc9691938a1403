/**
 * @file `--device` on the command line: `auto` falls back to WASM with one line when there is no adapter
 * (simulated by VK_ICD_FILENAMES pointing at no driver, which hides lavapipe), `webgpu` then is a clear error,
 * and with an adapter a command that used the device exits by itself (the device is destroyed).
 * Dawn and the Vulkan loader print their own "Warning: …" lines on stderr; wasprune's are counted apart.
 * The test process itself never loads Dawn (the adapter is probed in a child too).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { CLI, STORIES_HF, TINY_VALID } from "../helpers/shared.js";
import { gpuInChildOrSkip } from "./helpers.js";

const evalArgs = ["eval", STORIES_HF, "--text", TINY_VALID, "--paragraphs", "5"];
const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000, env: { ...process.env, ...env } });
/** stderr lines that are wasprune's (not Dawn's / the Vulkan loader's warnings and their source locations) */
const ours = (stderr: string) => stderr.split("\n").filter((l) => l.trim() && !/^Warning: /.test(l) && !/^\s+at /.test(l));
const HIDDEN = { VK_ICD_FILENAMES: "/nonexistent/wasprune-no-driver.json" };

test("--device auto without an adapter: WASM, and exactly one line saying so", () => {
  const r = run([...evalArgs, "--device", "auto"], HIDDEN);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^perplexity \d/);
  assert.deepEqual(ours(r.stderr), ["device: no WebGPU adapter; using WASM"]);
});

test("--device webgpu without an adapter: a clear error", () => {
  const r = run([...evalArgs, "--device", "webgpu"], HIDDEN);
  assert.equal(r.status, 1);
  assert.deepEqual(ours(r.stderr), ["error: --device webgpu: no WebGPU adapter"]);
});

test("--device with a bad value is refused by the option parser", () => {
  const r = run([...evalArgs, "--device", "cuda"]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--device <d>' argument 'cuda' is invalid/);
});

test("--device webgpu / auto with an adapter: one line, the same perplexity, and the process exits", async (t) => {
  // probed in a child: every GPU use of this file is in CLI children, so this process never loads Dawn (its
  // teardown at exit once took the file down with every subtest passed)
  if (!gpuInChildOrSkip(t)) return;
  const w = run(evalArgs);
  const g = run([...evalArgs, "--device", "webgpu"]);
  assert.equal(g.status, 0, g.stderr);
  assert.equal(g.stdout.split(" (")[0], w.stdout.split(" (")[0]);
  const lines = ours(g.stderr);
  assert.equal(lines.length, 1, g.stderr);
  assert.match(lines[0], /^device: .*: 36 of 36 linear layers on WebGPU$/);
  // auto: the one-time measurement per shape decides (on lavapipe, stories260K's layers never win)
  const a = run([...evalArgs, "--device", "auto"]);
  assert.equal(a.status, 0, a.stderr);
  assert.equal(a.stdout.split(" (")[0], w.stdout.split(" (")[0]);
  const al = ours(a.stderr);
  assert.equal(al.length, 1, a.stderr);
  assert.match(al[0], /^device: .*: (WebGPU does not pay .* they stay on WASM|\d+ of 36 linear layers on WebGPU.*)$/);
});
