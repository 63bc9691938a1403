/**
 * The CLI as a user types it: real model files, one clear error line for bad input (no stack trace unless
 * --verbose), non-zero exit, and no partial output.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CLI, GREEDY_200, STORIES_BIN, STORIES_HF, TINY_VALID } from "../helpers/shared.ts";

function run(args: string[], opts: { input?: string } = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", input: opts.input, timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-cli-"));
}

/** Exactly one line on stderr, starting with "error: ", mentioning every `needle`; no stack trace. */
function assertCleanError(r: ReturnType<typeof run>, ...needles: string[]) {
  assert.notEqual(r.code, 0, `expected failure, got exit 0; stdout: ${r.out}`);
  const lines = r.err.trim().split("\n");
  assert.equal(lines.length, 1, `one error line expected, got:\n${r.err}`);
  assert.match(lines[0], /^error: /);
  for (const n of needles) assert.ok(lines[0].includes(n), `"${lines[0]}" should mention "${n}"`);
  assert.doesNotMatch(r.err, /\n\s+at /);
}

test("generate on the .bin prints run.c's greedy text, then tok/s on stderr", () => {
  const r = run(["generate", STORIES_BIN, "--prompt", "Once upon a time", "--temperature", "0", "--steps", "200"]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trimEnd(), GREEDY_200);
  assert.match(r.err, /achieved tok\/s: [\d.]+/);
});

test("eval --json on the HF copy reports perplexity and token count", () => {
  const r = run(["eval", STORIES_HF, "--text", TINY_VALID, "--paragraphs", "20", "--json"]);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.ok(j.perplexity > 1 && j.perplexity < 20, String(j.perplexity));
  assert.ok(j.tokens > 1000);
});

test("inspect shows architecture, parameter counts and zero fractions", () => {
  const r = run(["inspect", STORIES_BIN]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /dim 64, hidden 172, layers 5, heads 8 \(kv 4/);
  assert.match(r.out, /model\.layers\.4\.mlp\.down_proj\.weight\s+64x172/);
  const j = JSON.parse(run(["inspect", STORIES_HF, "--json"]).out);
  assert.equal(j.config.nLayers, 5);
  assert.equal(j.tensors.length, 1 + 5 * 9 + 1);
});

test("bad input: one clear error line each", () => {
  const dir = tmpdir();
  // truncated safetensors
  const trunc = path.join(dir, "trunc");
  fs.mkdirSync(trunc);
  fs.copyFileSync(path.join(STORIES_HF, "config.json"), path.join(trunc, "config.json"));
  fs.copyFileSync(path.join(STORIES_HF, "tokenizer.model"), path.join(trunc, "tokenizer.model"));
  const st = fs.readFileSync(path.join(STORIES_HF, "model.safetensors"));
  fs.writeFileSync(path.join(trunc, "model.safetensors"), st.subarray(0, st.length - 1000));
  assertCleanError(run(["eval", trunc, "--text", TINY_VALID]), "model.safetensors");
  // missing tokenizer
  const notok = path.join(dir, "notok");
  fs.mkdirSync(notok);
  fs.copyFileSync(STORIES_BIN, path.join(notok, "model.bin"));
  assertCleanError(run(["generate", path.join(notok, "model.bin"), "--prompt", "hi"]), "tokenizer");
  // unsupported architecture
  const arch = path.join(dir, "arch");
  fs.mkdirSync(arch);
  for (const f of ["model.safetensors", "tokenizer.model"]) fs.copyFileSync(path.join(STORIES_HF, f), path.join(arch, f));
  const cfg = JSON.parse(fs.readFileSync(path.join(STORIES_HF, "config.json"), "utf8"));
  fs.writeFileSync(path.join(arch, "config.json"), JSON.stringify({ ...cfg, model_type: "gpt2", architectures: ["GPT2LMHeadModel"] }));
  assertCleanError(run(["inspect", arch]), "config.json", "gpt2");
  // missing text file, a missing model
  assertCleanError(run(["eval", STORIES_BIN, "--text", path.join(dir, "nope.txt")]), "nope.txt");
  assertCleanError(run(["inspect", path.join(dir, "no-such-model")]), "no-such-model");
  // --verbose shows the stack
  const v = run(["inspect", arch, "--verbose"]);
  assert.notEqual(v.code, 0);
  assert.match(v.err, /\n\s+at /);
});

test("the built-in model runs without any file", () => {
  const r = run(["generate", "builtin", "--prompt", "abc", "--steps", "20", "--temperature", "0", "--json"]);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.tokens.length, 21);
});
