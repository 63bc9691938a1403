/**
 * @file compress / load / decompress round trip on the real stories260K-hf, pruned here without the pruning
 * engine: magnitude 2:4 (the 2 smallest |w| of every 4 zeroed) on every linear operator, except layer 0's
 * down_proj (unstructured 70% magnitude) and o_proj (left dense), so all three storage paths are covered.
 * The compressed model must generate the same greedy text and the same perplexity as the dense run of the
 * same weights, and decompress must restore every tensor bit-exactly.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loadModel } from "../../src/model/load.js";
import { generate } from "../../src/generate/generate.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { paragraphSequences } from "../../src/eval/text.js";
import { hfTensorSpecs } from "../../src/model/specs.js";
import { OutputExistsError, UsageError } from "../../src/errors.js";
import { compressModel, decompressModel, isCompressedDir, refuseCompressed } from "../../src/model/compressed.js";
import { denseWeight } from "../../src/model/linear.js";
import { inspectModel } from "../../src/model/inspect.js";
import { LINEAR_OPS, type Model, type Tensor } from "../../src/model/types.js";
import { STORIES_HF, TINY_VALID } from "../helpers/shared.js";
import { openExecutor } from "../../src/workers/index.js";
import { denseLinear } from "../../src/model/linear.js";
import { residentStore } from "../../src/model/residency.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-compress-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

function magnitude24(w: Float32Array): void {
  for (let o = 0; o < w.length; o += 4) {
    const order = [0, 1, 2, 3].sort((a, b) => Math.abs(w[o + a]!) - Math.abs(w[o + b]!) || a - b);
    w[o + order[0]!] = 0;
    w[o + order[1]!] = 0;
  }
}

function magnitudeUnstructured(w: Float32Array, sparsity: number): void {
  const sorted = Float32Array.from(w, Math.abs).sort();
  const cut = sorted[Math.floor(sparsity * w.length)]!;
  for (let i = 0; i < w.length; i++) if (Math.abs(w[i]!) < cut) w[i] = 0;
}

function tensors(m: Model): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const s of hfTensorSpecs(m.config)) {
    out.set(s.name, s.layer === undefined ? (m.weights as unknown as Record<string, Tensor>)[s.key]! : (m.weights.layers[s.layer] as unknown as Record<string, Tensor>)[s.key]!);
  }
  return out;
}

const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

test("compressed stories260K: same greedy text and perplexity as the dense run; decompress is bit-exact", async () => {
  const pruned = await loadModel(STORIES_HF);
  pruned.weights.layers.forEach((lw, l) => {
    for (const op of LINEAR_OPS) {
      if (l === 0 && op === "wo") continue;
      if (l === 0 && op === "wDown") magnitudeUnstructured(denseLinear(lw[op], op).data, 0.7);
      else magnitude24(denseLinear(lw[op], op).data);
    }
  });
  const dir = path.join(tmp, "c");
  const report = compressModel(pruned, dir);
  assert.ok(isCompressedDir(dir));
  const fmt = new Map(report.operators.map((o) => [o.name, o.format]));
  assert.equal(fmt.get("model.layers.0.self_attn.o_proj"), "dense");
  assert.equal(fmt.get("model.layers.0.mlp.down_proj"), "sparse-bitmask");
  assert.equal(fmt.get("model.layers.1.mlp.up_proj"), "sparse-24-bitmask");
  assert.ok(report.fileBytes < report.denseFileBytes, `compressed ${report.fileBytes} B vs dense ${report.denseFileBytes} B`);
  assert.throws(() => compressModel(pruned, dir), OutputExistsError);

  const c = await loadModel(dir);
  assert.equal(c.weights.layers[1]!.wUp.format, "2:4");
  assert.equal(c.weights.layers[0]!.wDown.format, "csr");
  assert.equal(c.weights.layers[0]!.wo.format, "dense");
  // compressed operators are held only in their sparse form: no dense copy, less arena than the dense model
  assert.equal("data" in c.weights.layers[1]!.wUp, false);
  assert.equal("data" in c.weights.layers[0]!.wDown, false);
  assert.equal(denseLinear(c.weights.layers[0]!.wo, "wo").data.length, 64 * 64);
  assert.ok(c.wasm.arena.used < pruned.wasm.arena.used, `arena ${c.wasm.arena.used} B compressed vs ${pruned.wasm.arena.used} B dense`);
  const want = tensors(pruned);
  for (const [name, t] of tensors(c)) assert.deepEqual(bits(denseWeight(c.wasm, t)), bits(want.get(name)!.data), `loaded ${name}`);
  assert.throws(() => refuseCompressed(dir, "prune"), (e: unknown) => e instanceof UsageError && /is a compressed model .* prune needs dense weights: run `wasprune decompress/.test(e.message));
  refuseCompressed(STORIES_HF, "prune");

  const g = { prompt: "Once upon a time", steps: 120, temperature: 0, topP: 1, seed: 1 };
  const dense = generate(pruned, g);
  const sparse = generate(c, g);
  assert.equal(sparse.text, dense.text);

  const text = fs.readFileSync(TINY_VALID, "utf8");
  const seqs = paragraphSequences(pruned.tokenizer!, text, 12, 256);
  const pd = (await perplexity(pruned, seqs, openExecutor(pruned.wasm, 1))).perplexity;
  const ps = (await perplexity(c, seqs, openExecutor(c.wasm, 1))).perplexity;
  assert.ok(Math.abs(ps - pd) / pd < 1e-4, `perplexity compressed ${ps} vs dense ${pd}`);

  const r = inspectModel(residentStore(c));
  assert.ok(r.compression && r.compression.bytes < r.compression.denseBytes);
  assert.equal(r.tensors.find((t) => t.name === "model.layers.1.mlp.up_proj.weight")?.format, "2:4");

  const out = path.join(tmp, "d");
  decompressModel(c, out);
  assert.ok(!isCompressedDir(out));
  const d = await loadModel(out);
  for (const [name, t] of tensors(d)) assert.deepEqual(bits(t.data), bits(want.get(name)!.data), `decompressed ${name}`);
  assert.equal(generate(d, g).text, dense.text);
});
