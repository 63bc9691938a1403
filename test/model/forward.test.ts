import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { loadModel } from "../../src/model/load.ts";
import { builtinModel } from "../../src/model/builtin.ts";
import { createRunState, forward } from "../../src/model/forward.ts";
import { generate } from "../../src/generate/generate.ts";
import { perplexity } from "../../src/eval/perplexity.ts";
import { paragraphSequences } from "../../src/eval/text.ts";
import { GREEDY_200, STORIES_BIN, STORIES_HF, TINY_VALID } from "../helpers/shared.ts";
import { openExecutor } from "../../src/workers/index.ts";

test("llama2.c .bin: greedy 200 steps reproduce run.c's text exactly", async () => {
  const model = await loadModel(STORIES_BIN);
  const r = generate(model, { prompt: "Once upon a time", steps: 200, temperature: 0, topP: 0.9, seed: 1 });
  assert.equal(r.text, GREEDY_200);
  assert.equal(r.tokens.length, 201); // BOS + 200 positions, as run.c
});

test("HF safetensors copy: the same greedy text", async () => {
  const model = await loadModel(STORIES_HF);
  assert.equal(model.config.ropeLayout, "half");
  const r = generate(model, { prompt: "Once upon a time", steps: 200, temperature: 0, topP: 0.9, seed: 1 });
  assert.equal(r.text, GREEDY_200);
});

test("eval protocol on tinystories-valid-head (300 paragraphs): .bin and HF agree, matching the reference numbers", async () => {
  const text = readFileSync(TINY_VALID, "utf8");
  const bin = await loadModel(STORIES_BIN);
  const hf = await loadModel(STORIES_HF);
  const a = await perplexity(bin, paragraphSequences(bin.tokenizer!, text, 300, 512), openExecutor(bin.wasm, 1));
  const b = await perplexity(hf, paragraphSequences(hf.tokenizer!, text, 300, 512), openExecutor(hf.wasm, 1));
  // README of stories260K: 29,256 predicted tokens, mean NLL 1.4353 nats, PPL 4.20 (independent numpy forward)
  assert.equal(a.tokens, 29256);
  assert.equal(b.tokens, 29256);
  assert.ok(Math.abs(a.meanNll - 1.4353) < 5e-4, `mean NLL ${a.meanNll}`);
  assert.ok(Math.abs(a.perplexity - b.perplexity) / a.perplexity < 1e-4, `${a.perplexity} vs ${b.perplexity}`);
});

test("batched prefill (GEMM) and token-by-token decoding (GEMV + KV cache) give the same logits", () => {
  const model = builtinModel();
  const tokens = model.tokenizer!.encode("The quick brown fox jumps over the lazy dog.", { bos: true });
  const V = model.config.vocabSize;
  const st = createRunState(model, tokens.length);
  const all = forward(model, st, tokens, 0, true).slice();
  const st1 = createRunState(model, 1);
  for (let t = 0; t < tokens.length; t++) {
    const row = forward(model, st1, [tokens[t]], t);
    for (let i = 0; i < V; i++) {
      const want = all[t * V + i];
      assert.ok(Math.abs(row[i] - want) <= 1e-4 * (1 + Math.abs(want)), `position ${t} logit ${i}: ${row[i]} vs ${want}`);
    }
  }
});

test("temperature sampling is deterministic for a seed and differs across seeds", async () => {
  const model = await loadModel(STORIES_BIN);
  const g = (seed: number) => generate(model, { prompt: "Once upon a time", steps: 60, temperature: 0.9, topP: 0.9, seed }).text;
  assert.equal(g(7), g(7));
  assert.notEqual(g(7), g(8));
});
