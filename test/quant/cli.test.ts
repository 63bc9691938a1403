/**
 * @file Quantized models through the CLI as a user runs them, on the real stories260K: `prune --quantize` (SparseGPT
 * 2:4 + int4 in one sweep) writes a compressed-tensors pack-quantized directory (no dense `weight` for any linear
 * operator; quantization_config; pruning.json's quantization block) that loads and evaluates to the perplexity the
 * prune reported, keeps 2:4, and `decompress` writes back dense with the same perplexity; `quantize` of a dense
 * model by RTN (no calibration) stays within 0.5% at int8 and gives the same model from the llama2.c .bin (q/k rows
 * in its RoPE layout) as from the HF copy; a quantized model is refused where dense weights are edited; a
 * corrupt quantized tensor fails with one line naming it.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { openCheckpoint, writeSafetensors, type TensorToWrite } from "../../src/io/safetensors.js";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, type StoredDType } from "../../src/io/dtype.js";
import { STORIES_BIN, STORIES_HF, TINY_TRAIN, TINY_VALID } from "../helpers/shared.js";
import { okCli, pruneKilledAfter, runCli } from "../helpers/cli.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-quant-cli-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

const run = runCli;
const ok = okCli;

/** Rewrite `dir`'s model.safetensors with tensor `victim` (a name, or every name it accepts) replaced by `edit` of it (the others as stored). */
function rewriteTensor(dir: string, victim: string | ((name: string) => boolean), edit: (t: TensorToWrite) => TensorToWrite): void {
  const ck = openCheckpoint(dir)!;
  const hit = typeof victim === "string" ? (n: string) => n === victim : victim;
  const tensors: TensorToWrite[] = [...ck.tensors.entries()].map(([name, { entry }]) => {
    const t = { name, dtype: entry.dtype as StoredDType, shape: entry.shape, data: ck.readRaw(name) };
    return hit(name) ? edit(t) : t;
  });
  ck.close();
  writeSafetensors(path.join(dir, "model.safetensors"), tensors, { format: "pt" });
}

const EVAL = ["--text", TINY_VALID, "--paragraphs", "50", "--threads", "1", "--json"];
const ppl = async (dir: string, extra: string[] = []): Promise<number> => (JSON.parse(await ok(["eval", dir, ...EVAL, ...extra])) as { perplexity: number }).perplexity;

describe("prune --quantize, eval, decompress", () => {
  const out = path.join(tmp, "sg24-w4g64");
  test("SparseGPT 2:4 + w4g64 joint: a pack-quantized model that evaluates to what the prune reported", async () => {
    const s = JSON.parse(await ok([
      "prune", STORIES_HF, "--method", "sparsegpt", "--sparsity", "2:4", "--quantize", "w4g64", "--calib", TINY_TRAIN, "--nsamples", "16",
      "--out", out, "--eval", TINY_VALID, "--eval-paragraphs", "50", "--threads", "1", "--json",
    ])) as { quantization: Record<string, unknown>; perplexity: { pruned: { perplexity: number }; dense: { perplexity: number } }; sparsity: number };
    assert.equal(s.quantization.scheme, "w4g64");
    assert.equal(s.quantization.joint, true);
    assert.equal(s.quantization.format, "pack-quantized");
    // stories260K: 64-wide inputs take groups of 64; down_proj's 172 inputs are per channel
    assert.deepEqual(s.quantization.grids, { "int4 g64": 30, "int4 channel": 5 });
    assert.ok(s.sparsity >= 0.5);
    const ck = openCheckpoint(out)!;
    const names = [...ck.tensors.keys()];
    ck.close();
    assert.ok(!names.some((n) => /_proj\.weight$/.test(n)), "no dense linear weight is stored");
    assert.equal(names.filter((n) => n.endsWith(".weight_packed")).length, 35);
    assert.equal(names.filter((n) => n.endsWith(".weight_zero_point")).length, 0, "symmetric: no zero points");
    const cfg = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8")) as { quantization_config: Record<string, Record<string, unknown>> };
    assert.equal(cfg.quantization_config.format as unknown, "pack-quantized");
    assert.equal(cfg.quantization_config.sparsity_config!.sparsity_structure, "2:4");
    // evaluated from the written files by the prune (dequantized, the dense kernels), and again here: with
    // --weights-dtype f32 the same number; by default on the integer kernels (int16-rounded activations), within 1e-5
    const p32 = await ppl(out, ["--weights-dtype", "f32"]);
    assert.ok(Math.abs(p32 / s.perplexity.pruned.perplexity - 1) < 1e-9, `${p32} vs ${s.perplexity.pruned.perplexity}`);
    const e = JSON.parse(await ok(["eval", out, ...EVAL])) as { perplexity: number; weights: { layouts: Record<string, number>; bytes: number } };
    assert.deepEqual(e.weights.layouts, { "int4 2:4 g64": 30, "int4 2:4 channel": 5, "dense f32": 1 }, "the operators ran on the 2:4 int4 kernel (the tied LM head is the embedding)");
    assert.ok(Math.abs(e.perplexity / p32 - 1) < 1e-5, `integer kernels ${e.perplexity} vs dequantized ${p32}`);
    assert.ok(e.perplexity > s.perplexity.dense.perplexity);
    const inspect = JSON.parse(await ok(["inspect", out, "--json"])) as { tensors: Array<{ name: string; nm?: string | null; pattern?: string }> };
    assert.ok(JSON.stringify(inspect).includes("2:4"), "inspect sees the 2:4 pattern of the dequantized weights");
  });

  test("decompress writes the dense model back: the same perplexity", async () => {
    const dense = path.join(tmp, "sg24-w4g64-dense");
    await ok(["decompress", out, "--out", dense]);
    const cfg = JSON.parse(fs.readFileSync(path.join(dense, "config.json"), "utf8")) as Record<string, unknown>;
    assert.equal(cfg.quantization_config, undefined);
    assert.equal(await ppl(dense), await ppl(out, ["--weights-dtype", "f32"]));
  });

  test("a quantized model is refused where dense weights are edited", async () => {
    const r = await run(["prune", out, "--method", "magnitude", "--out", path.join(tmp, "again")]);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /is a quantized model \(compressed-tensors pack-quantized\); prune needs its dense weights: run `wasprune decompress/);
  });

  const compact = path.join(tmp, "sg24-w4g64-compact");
  test("compress: the 2:4 int4 operators in the compact layout, ≥ 8x smaller than f32, the same model", async () => {
    const r = JSON.parse(await ok(["compress", out, "--out", compact, "--json"])) as {
      operators: Array<{ name: string; format: string; bytes: number; inputBytes: number }>; linear: { f32Bytes: number; bytes: number; inputBytes: number }; fileBytes: number; inputFileBytes: number;
    };
    assert.equal(r.operators.length, 35);
    assert.ok(r.operators.every((o) => o.format === "wasprune-2of4-pack-quantized" && o.bytes < o.inputBytes), "every operator compacted");
    assert.ok(r.linear.f32Bytes / r.linear.bytes >= 8, `linear bytes ${r.linear.bytes}: ${r.linear.f32Bytes / r.linear.bytes}x smaller than f32`);
    assert.ok(r.fileBytes < r.inputFileBytes);
    const ck = openCheckpoint(compact)!;
    const up = ck.tensors.get("model.layers.0.mlp.up_proj.weight_packed")!.entry;
    const mask = ck.tensors.get("model.layers.0.mlp.up_proj.bitmask")!.entry;
    ck.close();
    assert.deepEqual([up.dtype, up.shape], ["I32", [172, 4]], "kept codes only: 32 of 64 inputs a row, 8 a word");
    assert.deepEqual([mask.dtype, mask.shape], ["U8", [172, 8]]);
    const cfg = JSON.parse(fs.readFileSync(path.join(compact, "config.json"), "utf8")) as { quantization_config: Record<string, Record<string, unknown>> };
    assert.equal(cfg.quantization_config.format as unknown, "wasprune-2of4-pack-quantized");
    assert.equal(cfg.quantization_config.sparsity_config!.sparsity_structure, "2:4");
    // the same codes in memory: the same perplexity to the bit, on one thread and on two (the kernels' tables are
    // static data, so a worker starting does not wipe them under another thread)
    assert.equal(await ppl(compact), await ppl(out));
    assert.equal(await ppl(compact, ["--threads", "2"]), await ppl(out));
    assert.equal(await ppl(compact, ["--weights-dtype", "f32"]), await ppl(out, ["--weights-dtype", "f32"]));
    const again = await run(["compress", compact, "--out", path.join(tmp, "twice")]);
    assert.match(again.err, /^error: .* is already compact/);
  });

  test("a compact operator whose mask keeps 3 of 4 inputs: one line naming the bitmask", async () => {
    const bad = path.join(tmp, "corrupt-mask");
    fs.cpSync(compact, bad, { recursive: true });
    rewriteTensor(bad, "model.layers.2.self_attn.q_proj.bitmask", (t) => {
      const data = t.data.slice();
      data[0] = data[0]! | 0x0f; // inputs 0..3 of row 0 all kept
      return { ...t, data };
    });
    const r = await run(["eval", bad, ...EVAL]);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /^error: model\.safetensors: "model\.layers\.2\.self_attn\.q_proj\.bitmask" row 0 keeps 4 of inputs 0\.\.3, expected exactly 2 \(2:4\)/);
    assert.equal(r.err.trim().split("\n").length, 1);
  });

  test("a corrupt quantized tensor: one line naming it", async () => {
    const bad = path.join(tmp, "corrupt");
    fs.cpSync(out, bad, { recursive: true });
    rewriteTensor(bad, "model.layers.1.mlp.up_proj.weight_scale", (t) => ({ ...t, shape: [t.shape[0]!, 2], data: new Uint8Array(t.shape[0]! * 8) }));
    const r = await run(["eval", bad, ...EVAL]);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /^error: model\.safetensors: "model\.layers\.1\.mlp\.up_proj\.weight_scale" has shape \[172,2\], expected \[172,1\]/);
    assert.equal(r.err.trim().split("\n").length, 1);
  });
});

test("a quantizing prune killed mid-way resumes (layers decoded back from the packed files) to identical bytes", async () => {
  const args = (out: string) => ["prune", STORIES_HF, "--method", "fista", "--sparsity", "2:4", "--quantize", "w4g64", "--asym", "--calib", TINY_TRAIN, "--nsamples", "24", "--threads", "1", "--out", out];
  const clean = path.join(tmp, "resume-clean");
  await ok(args(clean));
  const killed = path.join(tmp, "resume-killed");
  await pruneKilledAfter(args(killed), killed);
  const s = JSON.parse(await ok([...args(killed), "--json"])) as { resumedLayers: number[] };
  assert.ok(s.resumedLayers.length >= 2, `resumed ${s.resumedLayers}`);
  assert.ok(fs.readFileSync(path.join(clean, "model.safetensors")).equals(fs.readFileSync(path.join(killed, "model.safetensors"))));
});

describe("quantize", () => {
  test("w8 RTN of the dense model: within 0.5%; the .bin (interleaved q/k rows) gives the HF copy's model", async () => {
    const hf = path.join(tmp, "w8-hf");
    const bin = path.join(tmp, "w8-bin");
    const s = JSON.parse(await ok(["quantize", STORIES_HF, "--scheme", "w8", "--method", "rtn", "--out", hf, "--threads", "1", "--json"])) as { quantization: Record<string, unknown> };
    assert.deepEqual(s.quantization.grids, { "int8 channel": 35 });
    await ok(["quantize", STORIES_BIN, "--scheme", "w8", "--method", "rtn", "--out", bin, "--threads", "1", "--json"]);
    const [dense, p8, pb] = [await ppl(STORIES_HF), await ppl(hf), await ppl(bin)];
    assert.ok(Math.abs(p8 / dense - 1) < 0.005, `w8 ${p8} vs dense ${dense}`);
    assert.equal(pb, p8);
    assert.notEqual(p8, dense, "the weights did change");
    const cfg = JSON.parse(fs.readFileSync(path.join(hf, "config.json"), "utf8")) as { quantization_config: Record<string, unknown> };
    assert.deepEqual(cfg.quantization_config.sparsity_config, {}, "a dense model declares no sparsity (upstream's empty sparsity_config)");
  });

  test("quantize of a model pruned before declares the pattern its weights have", async () => {
    const p24 = path.join(tmp, "mag24");
    const q24 = path.join(tmp, "mag24-w4g64");
    await ok(["prune", STORIES_HF, "--method", "magnitude", "--sparsity", "2:4", "--out", p24, "--threads", "1"]);
    await ok(["quantize", p24, "--scheme", "w4g64", "--method", "rtn", "--out", q24, "--threads", "1"]);
    const cfg = JSON.parse(fs.readFileSync(path.join(q24, "config.json"), "utf8")) as { quantization_config: { sparsity_config: { sparsity_structure: string; global_sparsity: number } } };
    assert.equal(cfg.quantization_config.sparsity_config.sparsity_structure, "2:4");
    assert.ok(cfg.quantization_config.sparsity_config.global_sparsity >= 0.5);
  });

  test("w4g32 asymmetric GPTQ: zero points stored, GPTQ better than RTN", async () => {
    const g = path.join(tmp, "w4g32a-gptq");
    const r = path.join(tmp, "w4g32a-rtn");
    const common = ["--scheme", "w4g32", "--asym", "--calib", TINY_TRAIN, "--nsamples", "16", "--threads", "1", "--json"];
    await ok(["quantize", STORIES_HF, ...common, "--out", g]);
    await ok(["quantize", STORIES_HF, ...common, "--method", "rtn", "--out", r]);
    const ck = openCheckpoint(g)!;
    assert.equal([...ck.tensors.keys()].filter((n) => n.endsWith(".weight_zero_point")).length, 35);
    ck.close();
    assert.ok((await ppl(g)) < (await ppl(r)));
  });

  test("an unknown scheme is refused before any work", async () => {
    const res = await run(["quantize", STORIES_HF, "--scheme", "w3", "--out", path.join(tmp, "x")]);
    assert.notEqual(res.code, 0);
    assert.match(res.err, /^error: unknown quantization scheme "w3": expected w8, w4g128, w4g64, w4g32/);
    assert.ok(!fs.existsSync(path.join(tmp, "x")));
  });
});

test("bench quant: every cell of the table and every target, as JSON", async () => {
  const b = JSON.parse(await ok([
    "bench", "quant", STORIES_HF, "--calib", TINY_TRAIN, "--nsamples", "4", "--eval", TINY_VALID, "--eval-paragraphs", "10", "--methods", "magnitude", "--threads", "1", "--json",
  ])) as { dense: number; cells: Array<{ method: string; pattern: string; column: string; perplexity: number }>; targets: Array<{ name: string; met: boolean; value: number }>; size: { ratio: number; compactRatio: number } };
  // dense row (one per column) + magnitude × {0.5, 2:4} × 7 columns
  assert.equal(b.cells.length, 21);
  assert.equal(b.cells.find((c) => c.pattern === "dense" && c.column === "f32")!.perplexity, b.dense);
  assert.ok(b.cells.every((c) => Number.isFinite(c.perplexity) && c.perplexity > 1));
  const w4 = b.cells.find((c) => c.pattern === "dense" && c.column === "w4 RTN")!.perplexity;
  assert.ok(w4 > b.dense, "int4 round-to-nearest changes the model");
  // the A8 columns run the same codes on the integer kernels with int8 activations: close, not the same
  for (const [a8, a16] of [["w8 A8", "w8"], ["w4 in prune A8", "w4 in prune"]]) {
    for (const p of ["dense", "0.5", "2:4"]) {
      const [x, y] = [a8, a16].map((c) => b.cells.find((q) => q.pattern === p && q.column === c)!.perplexity) as [number, number];
      assert.notEqual(x, y, `${p} ${a8}`);
      assert.ok(Math.abs(x / y - 1) < 0.02, `${p} ${a8} ${x} vs ${y}`);
    }
  }
  assert.equal(b.targets.length, 3 + 3 + 3 + 3 + 1);
  assert.ok(b.targets.every((t) => typeof t.met === "boolean" && Number.isFinite(t.value)));
  assert.ok(Math.abs(b.size.ratio - 906240 / 126480) < 1e-9, "stories260K w4g64 pack-quantized bytes");
  assert.ok(Math.abs(b.size.compactRatio - 906240 / 98000) < 1e-9, "stories260K w4g64 compact bytes (what compress writes, above)");
});

test("compress of an int4 model that is not 2:4 is refused naming an operator", async () => {
  const dense = path.join(tmp, "w4g64-dense");
  await ok(["quantize", STORIES_HF, "--scheme", "w4g64", "--method", "rtn", "--out", dense]);
  const r = await run(["compress", dense, "--out", path.join(tmp, "w4g64-dense-compact")]);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /^error: model\.layers\.\d+\.\S+ is not 2:4-sparse/);
  assert.ok(!fs.existsSync(path.join(tmp, "w4g64-dense-compact")), "nothing written");
});

test("--int-activations 8: int4 / int8 operators run W4A8 / W8A8 (int8 activations), the same on 1 and 2 threads, close to int16; refused where nothing would change", async () => {
  const w4 = path.join(tmp, "w4g64-a8");
  await ok(["quantize", STORIES_HF, "--scheme", "w4g64", "--method", "rtn", "--out", w4]);
  const a16 = JSON.parse(await ok(["eval", w4, ...EVAL])) as { perplexity: number; weights: { layouts: Record<string, number> } };
  const a8 = JSON.parse(await ok(["eval", w4, ...EVAL, "--int-activations", "8"])) as { perplexity: number; weights: { layouts: Record<string, number> } };
  assert.deepEqual(a8.weights.layouts, { "int4 g64 a8": 30, "int4 channel a8": 5, "dense f32": 1 });
  assert.notEqual(a8.perplexity, a16.perplexity, "int8 rounding changes the logits");
  assert.ok(Math.abs(a8.perplexity / a16.perplexity - 1) < 0.01, `W4A8 ${a8.perplexity} vs W4A16 ${a16.perplexity}`);
  assert.equal(await ppl(w4, ["--int-activations", "8", "--threads", "2"]), a8.perplexity);
  // upstream's W4A8 preset (compressed-tensors INT8_W4A8) as upstream saves it: dynamic per-token int8
  // input_activations in every config group, and so format int-quantized (config/format.py): each operator an I8
  // `weight` of its signed codes (int4: −8..7) with its weight_scale, no weight_packed / weight_shape. Made here
  // from the pack-quantized copy by unpacking its words by hand; run on int8 activations unless told otherwise.
  const withActivations = (dir: string, args: Record<string, unknown>, format?: string) => {
    const cfgPath = path.join(dir, "config.json");
    const cfg = JSON.parse(fs.readFileSync(cfgPath, "utf8")) as { quantization_config: { config_groups: Record<string, Record<string, unknown>>; format: string } };
    for (const g of Object.values(cfg.quantization_config.config_groups)) {
      g.input_activations = { actorder: null, block_structure: null, dynamic: true, group_size: null, num_bits: 8, observer: null, observer_kwargs: {}, strategy: "token", symmetric: true, type: "int", ...args };
      if (format) g.format = format;
    }
    if (format) cfg.quantization_config.format = format;
    fs.writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
  };
  const upstream = path.join(tmp, "w4g64-w4a8");
  fs.cpSync(w4, upstream, { recursive: true });
  const upck = openCheckpoint(upstream)!;
  const unpacked: TensorToWrite[] = [];
  for (const [name, { entry }] of upck.tensors) {
    if (name.endsWith(".weight_shape")) continue;
    if (!name.endsWith(".weight_packed")) {
      unpacked.push({ name, dtype: entry.dtype as StoredDType, shape: entry.shape, data: upck.readRaw(name) });
      continue;
    }
    const [N, K] = new BigInt64Array(upck.readRaw(name.replace(/_packed$/, "_shape")).slice().buffer, 0, 2);
    const words = new Uint32Array(upck.readRaw(name).slice().buffer);
    const wpr = entry.shape[1]!;
    const codes = new Int8Array(Number(N) * Number(K));
    for (let r = 0; r < Number(N); r++) for (let c = 0; c < Number(K); c++) codes[r * Number(K) + c] = ((words[r * wpr + (c >> 3)]! >>> (4 * (c & 7))) & 15) - 8;
    unpacked.push({ name: name.replace(/_packed$/, ""), dtype: "I8", shape: [Number(N), Number(K)], data: new Uint8Array(codes.buffer) });
  }
  upck.close();
  writeSafetensors(path.join(upstream, "model.safetensors"), unpacked, { format: "pt" });
  withActivations(upstream, {}, "int-quantized");
  const up = JSON.parse(await ok(["eval", upstream, ...EVAL])) as { perplexity: number; weights: { layouts: Record<string, number> } };
  assert.deepEqual(up.weights.layouts, a8.weights.layouts, "a W4A8 checkpoint runs on int8 activations by default");
  assert.equal(up.perplexity, a8.perplexity);
  assert.equal(await ppl(upstream, ["--int-activations", "16"]), a16.perplexity, "--int-activations 16 overrides the checkpoint");
  // wasprune writing the same: quantize --activations int8 (the same RTN codes as w4), int-quantized tensor by tensor
  const own = path.join(tmp, "w4g64-w4a8-own");
  const report = JSON.parse(await ok(["quantize", STORIES_HF, "--scheme", "w4g64", "--method", "rtn", "--activations", "int8", "--out", own, "--json"])) as { quantization: { activations: string | null; format: string; linearBytes: number } };
  assert.equal(report.quantization.activations, "int8");
  assert.equal(report.quantization.format, "int-quantized");
  const ownCfg = JSON.parse(fs.readFileSync(path.join(own, "config.json"), "utf8")) as { quantization_config: { config_groups: Record<string, Record<string, unknown>>; format: string } };
  const upCfg = JSON.parse(fs.readFileSync(path.join(upstream, "config.json"), "utf8")) as typeof ownCfg;
  assert.deepEqual(ownCfg.quantization_config.config_groups, upCfg.quantization_config.config_groups, "the W4A8 preset's input_activations and format, key by key");
  assert.equal(ownCfg.quantization_config.format, "int-quantized");
  const [ownCk, upCk] = [openCheckpoint(own)!, openCheckpoint(upstream)!];
  assert.deepEqual([...ownCk.tensors.keys()].sort(), [...upCk.tensors.keys()].sort());
  let linearBytes = 0;
  for (const [name, { entry }] of ownCk.tensors) {
    const u = upCk.tensors.get(name)!.entry;
    assert.deepEqual([entry.dtype, entry.shape], [u.dtype, u.shape], name);
    if (entry.dtype === "I8" || name.endsWith("weight_scale")) {
      assert.ok(Buffer.from(ownCk.readRaw(name)).equals(Buffer.from(upCk.readRaw(name))), `${name}: the same bytes`);
      linearBytes += entry.end - entry.begin;
    }
  }
  ownCk.close();
  upCk.close();
  assert.equal(report.quantization.linearBytes, linearBytes, "pruning.json counts the int-quantized bytes");
  assert.equal(await ppl(own), a8.perplexity);
  // W8A8, upstream's most used int8 scheme: int-quantized, int8 kernels on int8 activations by default
  const w8a8 = path.join(tmp, "w8-w8a8");
  await ok(["quantize", STORIES_HF, "--scheme", "w8", "--method", "rtn", "--activations", "int8", "--out", w8a8]);
  const e8 = JSON.parse(await ok(["eval", w8a8, ...EVAL])) as { perplexity: number; weights: { layouts: Record<string, number> } };
  assert.deepEqual(e8.weights.layouts, { "int8 channel a8": 35, "dense f32": 1 });
  const ck8 = openCheckpoint(w8a8)!;
  assert.equal(ck8.tensors.get("model.layers.0.mlp.down_proj.weight")?.entry.dtype, "I8");
  assert.ok(!ck8.tensors.has("model.layers.0.mlp.down_proj.weight_packed"));
  ck8.close();
  const badAct = await run(["quantize", STORIES_HF, "--scheme", "w4g64", "--method", "rtn", "--activations", "int4", "--out", path.join(tmp, "never")]);
  assert.match(badAct.err, /^error: --activations int4: expected int8/);
  const stat = path.join(tmp, "w4g64-w4a8-static");
  fs.cpSync(w4, stat, { recursive: true });
  withActivations(stat, { dynamic: false, observer: "minmax" });
  const refused = await run(["eval", stat, ...EVAL]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.err, /^error: .*config\.json: quantization_config\.config_groups\.\S+\.input_activations: static int 8-bit per token is not supported/);
  assert.equal(refused.err.trim().split("\n").length, 1);
  const w8 = path.join(tmp, "w8-a8");
  await ok(["quantize", STORIES_HF, "--scheme", "w8", "--method", "rtn", "--out", w8]);
  const b16 = JSON.parse(await ok(["eval", w8, ...EVAL])) as { perplexity: number };
  const b8 = JSON.parse(await ok(["eval", w8, ...EVAL, "--int-activations", "8"])) as { perplexity: number; weights: { layouts: Record<string, number> } };
  assert.deepEqual(b8.weights.layouts, { "int8 channel a8": 35, "dense f32": 1 });
  assert.equal(e8.perplexity, b8.perplexity, "the int-quantized W8A8 model is the pack-quantized one on int8 activations");
  assert.equal(await ppl(w8a8, ["--int-activations", "16"]), b16.perplexity, "and on int16 activations the W8A16 one");
  assert.notEqual(b8.perplexity, b16.perplexity);
  assert.ok(Math.abs(b8.perplexity / b16.perplexity - 1) < 0.01, `W8A8 ${b8.perplexity} vs W8A16 ${b16.perplexity}`);
  const g = JSON.parse(await ok(["generate", w4, "--prompt", "Once upon a time", "--temperature", "0", "--steps", "40", "--int-activations", "8", "--json"])) as { weights: { layouts: Record<string, number> }; generatedTokens: number };
  assert.equal(g.weights.layouts["int4 g64 a8"], 30);
  assert.ok(g.generatedTokens > 0);
  const r = await run(["eval", STORIES_HF, ...EVAL, "--int-activations", "8"]);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /has none \(its linear weights: 35 p8 f32, 1 dense f32\)/);
  assert.equal(r.err.trim().split("\n").length, 1);
  const streamed = await run(["eval", w4, ...EVAL, "--int-activations", "8", "--residency", "streamed"]);
  assert.match(streamed.err, /^error: .*--int-activations 8 needs the model resident/);
});

test("a group size the integer kernels do not take (16) runs dequantized on f32 panels, the per-channel operators on int8", async () => {
  const out = path.join(tmp, "w8g16");
  await ok(["quantize", STORIES_HF, "--scheme", "w8g16", "--method", "rtn", "--out", out]);
  const e = JSON.parse(await ok(["eval", out, ...EVAL])) as { perplexity: number; weights: { layouts: Record<string, number> } };
  assert.deepEqual(e.weights.layouts, { "p8 f32": 30, "int8 channel": 5, "dense f32": 1 });
  const p32 = await ppl(out, ["--weights-dtype", "f32"]);
  assert.ok(Math.abs(e.perplexity / p32 - 1) < 1e-5, `${e.perplexity} vs ${p32}`);
});

test("scales stored BF16 or F16 (upstream keeps the model's dtype) read as the same values; compress keeps their dtype", async () => {
  const base = path.join(tmp, "scales-base-mag24-w4g64");
  await ok(["prune", STORIES_HF, "--method", "magnitude", "--sparsity", "2:4", "--quantize", "w4g64", "--quantize-method", "rtn", "--out", base, "--threads", "1"]);
  const isScale = (n: string) => n.endsWith(".weight_scale");
  const half = {
    BF16: { to: f32ToBf16Bits, from: bf16BitsToF32 },
    F16: { to: f32ToF16Bits, from: f16BitsToF32 },
  } as const;
  for (const dtype of ["BF16", "F16"] as const) {
    const bits = (t: TensorToWrite) => Uint16Array.from(new Float32Array(t.data.slice().buffer), (x) => half[dtype].to(x));
    // the same scale values twice: rounded to the half dtype but stored F32, and stored in the half dtype itself
    const asF32 = path.join(tmp, `scales-${dtype}-as-f32`), stored = path.join(tmp, `scales-${dtype}`);
    fs.cpSync(base, asF32, { recursive: true });
    fs.cpSync(base, stored, { recursive: true });
    rewriteTensor(asF32, isScale, (t) => ({ ...t, data: new Uint8Array(Float32Array.from(bits(t), (b) => half[dtype].from(b)).buffer) }));
    rewriteTensor(stored, isScale, (t) => ({ ...t, dtype, data: new Uint8Array(bits(t).buffer) }));
    type Out = { perplexity: number; weights: { layouts: Record<string, number> } };
    const [a, b] = [JSON.parse(await ok(["eval", asF32, ...EVAL])) as Out, JSON.parse(await ok(["eval", stored, ...EVAL])) as Out];
    assert.deepEqual(b.weights.layouts, { "int4 2:4 g64": 30, "int4 2:4 channel": 5, "dense f32": 1 }, `${dtype}: on the 2:4 int4 kernels`);
    assert.equal(b.perplexity, a.perplexity, `${dtype} scales`);
    if (dtype === "F16") continue;
    // decompress: the same dense weights; compress: the compact copy keeps BF16 scales and the same model
    await ok(["decompress", asF32, "--out", `${asF32}-dense`]);
    await ok(["decompress", stored, "--out", `${stored}-dense`]);
    assert.ok(fs.readFileSync(path.join(`${stored}-dense`, "model.safetensors")).equals(fs.readFileSync(path.join(`${asF32}-dense`, "model.safetensors"))));
    await ok(["compress", stored, "--out", `${stored}-compact`]);
    const ck = openCheckpoint(`${stored}-compact`)!;
    const scale = ck.tensors.get("model.layers.0.mlp.up_proj.weight_scale")!.entry;
    const hasMask = ck.tensors.has("model.layers.0.mlp.up_proj.bitmask");
    ck.close();
    assert.ok(hasMask, "compact layout");
    assert.equal(scale.dtype, "BF16");
    assert.equal(await ppl(`${stored}-compact`), b.perplexity);
  }
});

test("an int-quantized 2:4 W4A8 model (prune --quantize --activations int8): the pack-quantized twin's model; decompress and compress give the same files", async () => {
  const pk = path.join(tmp, "ia-pack"), ia = path.join(tmp, "ia-int");
  const args = ["prune", STORIES_HF, "--method", "magnitude", "--sparsity", "2:4", "--quantize", "w4g64", "--quantize-method", "rtn", "--threads", "1"];
  await ok([...args, "--out", pk]);
  await ok([...args, "--activations", "int8", "--out", ia]);
  const ck = openCheckpoint(ia)!;
  assert.equal(ck.tensors.get("model.layers.0.mlp.up_proj.weight")?.entry.dtype, "I8");
  assert.ok(!ck.tensors.has("model.layers.0.mlp.up_proj.weight_packed"));
  ck.close();
  // inspect names each operator's scheme, format and activations (and the 2:4 of its dequantized weights)
  type Inspect = { quantization: Record<string, number>; tensors: Array<{ name: string; nm: string | null; quantized?: { scheme: string; format: string; activations: string | null } }> };
  const [ip, ii] = [JSON.parse(await ok(["inspect", pk, "--json"])) as Inspect, JSON.parse(await ok(["inspect", ia, "--json"])) as Inspect];
  assert.deepEqual(ip.quantization, { "int4 g64, pack-quantized": 30, "int4 channel, pack-quantized": 5 });
  assert.deepEqual(ii.quantization, { "int4 g64, int-quantized, int8 activations": 30, "int4 channel, int-quantized, int8 activations": 5 });
  const up = ii.tensors.find((t) => t.name === "model.layers.0.mlp.up_proj.weight")!;
  assert.deepEqual(up.quantized, { scheme: "int4 g64", format: "int-quantized", activations: "int8" });
  assert.equal(up.nm, "2:4");
  assert.equal(ii.tensors.find((t) => t.name === "model.embed_tokens.weight")!.quantized, undefined);
  type Out = { perplexity: number; weights: { layouts: Record<string, number> } };
  const [a, b] = [JSON.parse(await ok(["eval", pk, ...EVAL])) as Out, JSON.parse(await ok(["eval", ia, ...EVAL])) as Out];
  // weight-only: the 2:4 int4 kernel (3 bits a weight, int16 activations); W4A8: the dense int4 panels on int8
  // activations (the 2:4 kernel has no int8 path; the panels on int8 run ~2x faster), the zeros as codes
  assert.deepEqual(a.weights.layouts, { "int4 2:4 g64": 30, "int4 2:4 channel": 5, "dense f32": 1 });
  assert.deepEqual(b.weights.layouts, { "int4 g64 a8": 30, "int4 channel a8": 5, "dense f32": 1 });
  const pkA8 = JSON.parse(await ok(["eval", pk, ...EVAL, "--int-activations", "8"])) as Out;
  assert.deepEqual(pkA8.weights.layouts, b.weights.layouts, "--int-activations 8 places a 2:4 model's int4 operators the same way");
  assert.equal(pkA8.perplexity, b.perplexity);
  assert.notEqual(b.perplexity, a.perplexity);
  assert.ok(Math.abs(b.perplexity / a.perplexity - 1) < 0.01, `W4A8 ${b.perplexity} vs W4A16 ${a.perplexity}`);
  assert.equal(await ppl(ia, ["--int-activations", "16"]), a.perplexity, "on int16 activations: the pack-quantized twin's model");
  await ok(["decompress", pk, "--out", `${pk}-dense`]);
  await ok(["decompress", ia, "--out", `${ia}-dense`]);
  assert.ok(fs.readFileSync(path.join(`${ia}-dense`, "model.safetensors")).equals(fs.readFileSync(path.join(`${pk}-dense`, "model.safetensors"))), "decompress: the same dense weights");
  await ok(["compress", pk, "--out", `${pk}-compact`]);
  await ok(["compress", ia, "--out", `${ia}-compact`]);
  assert.ok(fs.readFileSync(path.join(`${ia}-compact`, "model.safetensors")).equals(fs.readFileSync(path.join(`${pk}-compact`, "model.safetensors"))), "compress: the same compact tensors");
  const cfg = JSON.parse(fs.readFileSync(path.join(`${ia}-compact`, "config.json"), "utf8")) as { quantization_config: { config_groups: Record<string, { format: string; input_activations: unknown }> } };
  for (const g of Object.values(cfg.quantization_config.config_groups)) {
    assert.equal(g.format, "wasprune-2of4-pack-quantized");
    assert.notEqual(g.input_activations, null, "the declared activations stay");
  }
  // the compact layout on int8 activations (declared): its kept codes expanded into the dense panels
  const c = JSON.parse(await ok(["eval", `${ia}-compact`, ...EVAL])) as Out;
  assert.deepEqual(c.weights.layouts, b.weights.layouts);
  assert.equal(c.perplexity, b.perplexity);
  assert.equal(await ppl(`${ia}-compact`, ["--int-activations", "16"]), a.perplexity);
});

test("GPTQ act-order groups (weight_g_idx, upstream's actorder group / dynamic): honoured, run dequantized; compress refuses them naming the operator", async () => {
  const w4 = path.join(tmp, "w4g32-ao-base");
  await ok(["quantize", STORIES_HF, "--scheme", "w4g32", "--method", "rtn", "--out", w4]);
  // the same weights with every group-quantized operator's scale groups relabelled g → ng−1−g (scales moved with
  // them) and each input's group in weight_g_idx, as upstream stores act-order groups: honoured, the same model;
  // read as j / 32 instead, the scales would be wrong
  const ao = path.join(tmp, "w4g32-ao");
  fs.cpSync(w4, ao, { recursive: true });
  const ck = openCheckpoint(ao)!;
  const tensors: TensorToWrite[] = [];
  for (const [name, { entry }] of ck.tensors) {
    const data = ck.readRaw(name);
    if (!name.endsWith(".weight_scale") || entry.shape[1] === 1) {
      tensors.push({ name, dtype: entry.dtype as StoredDType, shape: entry.shape, data });
      continue;
    }
    const [N, ng] = entry.shape as [number, number];
    const s = new Float32Array(data.slice().buffer);
    const moved = new Float32Array(s.length);
    for (let r = 0; r < N; r++) for (let g = 0; g < ng; g++) moved[r * ng + (ng - 1 - g)] = s[r * ng + g]!;
    tensors.push({ name, dtype: "F32", shape: entry.shape, data: new Uint8Array(moved.buffer) });
    const K = ng * 32;
    const gIdx = Int32Array.from({ length: K }, (_, j) => ng - 1 - Math.floor(j / 32));
    tensors.push({ name: name.replace(/_scale$/, "_g_idx"), dtype: "I32", shape: [K], data: new Uint8Array(gIdx.buffer) });
  }
  ck.close();
  writeSafetensors(path.join(ao, "model.safetensors"), tensors, { format: "pt" });
  const setActorder = (dir: string, actorder: string) => {
    const cfgPath = path.join(dir, "config.json");
    const cfg = JSON.parse(fs.readFileSync(cfgPath, "utf8")) as { quantization_config: { config_groups: Record<string, { weights: Record<string, unknown> }> } };
    for (const g of Object.values(cfg.quantization_config.config_groups)) if (g.weights.strategy === "group") g.weights.actorder = actorder;
    fs.writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
  };
  setActorder(ao, "group");
  const e = JSON.parse(await ok(["eval", ao, ...EVAL])) as { perplexity: number; weights: { layouts: Record<string, number> } };
  assert.deepEqual(e.weights.layouts, { "p8 f32": 30, "int4 channel": 5, "dense f32": 1 }, "act-order operators run dequantized, the others on the integer kernels");
  const f32 = ["--weights-dtype", "f32"];
  const base = await ppl(w4, f32);
  assert.equal(await ppl(ao, f32), base, "the same weights");
  const dyn = path.join(tmp, "w4g32-ao-dynamic");
  fs.cpSync(ao, dyn, { recursive: true });
  setActorder(dyn, "dynamic");
  assert.equal(await ppl(dyn, f32), base, "actorder dynamic (the alias of group)");
  await ok(["decompress", w4, "--out", `${w4}-dense`]);
  await ok(["decompress", ao, "--out", `${ao}-dense`]);
  assert.ok(fs.readFileSync(path.join(`${ao}-dense`, "model.safetensors")).equals(fs.readFileSync(path.join(`${w4}-dense`, "model.safetensors"))), "decompress: the same dense weights");
  const c = await run(["compress", ao, "--out", `${ao}-compact`]);
  assert.notEqual(c.code, 0);
  assert.match(c.err, /^error: model\.layers\.\d+\.\S+ has act-order groups \(weight_g_idx\)/);
  assert.equal(c.err.trim().split("\n").length, 1);
});
