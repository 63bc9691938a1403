import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { OutputExistsError, UsageError } from "../../src/errors.js";
import { openCheckpoint } from "../../src/io/safetensors.js";
import { loadModel } from "../../src/model/load.js";
import { hfTensorSpecs } from "../../src/model/specs.js";
import { namedTensors, stateDictOrder } from "../../src/model/names.js";
import { SYNTHETIC_SHAPES, synthConfig, synthTensorValues, synthesize } from "../../src/model/synthetic.js";
import type { Model } from "../../src/model/types.js";
import { CLI, SHARED } from "../helpers/shared.js";
import { denseLinear, denseWeight } from "../../src/model/linear.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-synth-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));
const TOK512 = path.join(SHARED, "models/stories260K/tok512.model");

/** A small custom shape: GQA, untied, odd sizes (so blocks and pairs are cut mid-way). */
const SMALL = {
  architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 64, intermediate_size: 1500,
  num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 1111,
  max_position_embeddings: 128, rms_norm_eps: 1e-5, tie_word_embeddings: false,
};

/** Every tensor's float32 values, by HF name. */
function values(m: Model): Map<string, Float32Array> {
  return new Map(namedTensors(m).map((t) => [t.name, denseWeight(m.wasm, t.tensor).slice()]));
}
const bitsEqual = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

test("a custom shape, single and sharded, loads through loadModel with the generator's values; fewer layers / a smaller vocab are a prefix", async () => {
  const single = path.join(tmp, "single");
  const sharded = path.join(tmp, "sharded");
  const short = path.join(tmp, "short");
  const r1 = synthesize(single, { shape: SMALL, seed: 7 });
  const r2 = synthesize(sharded, { shape: SMALL, seed: 7, maxShardBytes: 200_000 });
  synthesize(short, { shape: SMALL, seed: 7, layers: 2, vocab: 1000, maxShardBytes: 150_000 });
  assert.deepEqual(r1.files.map((f) => f.name), ["README.md", "config.json", "model.safetensors"]);
  assert.ok(r2.files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f.name)).length >= 3, JSON.stringify(r2.files));
  assert.ok(r2.files.some((f) => f.name === "model.safetensors.index.json"), "a sharded model has its index");
  assert.equal(r1.dtype, "BF16");
  assert.match(fs.readFileSync(path.join(single, "README.md"), "utf8"), /weights are random.*perplexity.*mean nothing/s);

  const [a, b, c] = await Promise.all([single, sharded, short].map((d) => loadModel(d, { requireTokenizer: false })));
  assert.equal(a!.source.dtype, "BF16");
  assert.equal(c!.config.nLayers, 2);
  assert.equal(c!.config.vocabSize, 1000);
  const va = values(a!);
  const vb = values(b!);
  const vc = values(c!);
  const { config, depth } = synthConfig(SMALL);
  assert.equal(depth, 3);
  for (const spec of hfTensorSpecs(config)) {
    const want = synthTensorValues(config, depth, 7, "BF16", spec);
    assert.ok(bitsEqual(va.get(spec.name)!, want), `${spec.name}: single file = generator`);
    assert.ok(bitsEqual(vb.get(spec.name)!, want), `${spec.name}: sharded = single`);
    if (!vc.has(spec.name)) {
      assert.match(spec.name, /layers\.2\./);
      continue;
    }
    const got = vc.get(spec.name)!;
    assert.ok(bitsEqual(got, want.subarray(0, got.length)), `${spec.name}: 2 layers / vocab 1000 = the prefix of the full model`);
  }
  // distributions: norms 1, linear weights N(0, 1/fan_in) with o/down scaled by 1/sqrt(2 * depth), no exact zeros
  const std = (v: Float32Array): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
  const w = a!.weights;
  assert.ok(w.layers[0]!.attnNorm.data.every((x) => x === 1), "norms are 1");
  const wq = denseLinear(w.layers[0]!.wq, "wq").data;
  const wd = denseLinear(w.layers[1]!.wDown, "wDown").data;
  assert.ok(Math.abs(std(wq) * Math.sqrt(64) - 1) < 0.02, `wq std ${std(wq)}`);
  assert.ok(Math.abs(std(wd) * Math.sqrt(1500 * 6) - 1) < 0.02, `down std ${std(wd)}`);
  assert.ok(Math.abs(std(w.embed.data) * Math.sqrt(64) / 2 - 1) < 0.02, `embed std ${std(w.embed.data)}`);
  for (const [name, v] of va) assert.ok(!v.includes(0), `${name} has an exact zero`);
  // a different seed gives different weights
  const q0 = hfTensorSpecs(config).find((s) => s.name === "model.layers.0.self_attn.q_proj.weight")!;
  assert.ok(!bitsEqual(synthTensorValues(config, depth, 8, "BF16", q0), va.get(q0.name)!), "seed 8 differs from seed 7");
});

test("dtypes: F32 and F16 files hold the same values narrowed, and F16 keeps tiny weights non-zero", () => {
  // a wide down_proj in a deep shape: std 1/sqrt(2*32)/sqrt(11008) ≈ 0.0012, whose smallest table entries fall
  // below F16's smallest subnormal and are stored as ±2^-24 instead of 0
  const wide = { ...SMALL, intermediate_size: 11008, num_hidden_layers: 32, vocab_size: 300 };
  const f32 = path.join(tmp, "f32");
  const f16 = path.join(tmp, "f16");
  synthesize(f32, { shape: wide, layers: 1, dtype: "F32", seed: 3 });
  synthesize(f16, { shape: wide, layers: 1, dtype: "F16", seed: 3, maxShardBytes: 1_000_000 });
  const c32 = openCheckpoint(f32)!;
  const c16 = openCheckpoint(f16)!;
  try {
    const name = "model.layers.0.mlp.down_proj.weight";
    assert.equal(c32.tensors.get(name)!.entry.dtype, "F32");
    assert.equal(c16.tensors.get(name)!.entry.dtype, "F16");
    const x32 = new Float32Array(64 * 11008);
    const x16 = new Float32Array(64 * 11008);
    c32.readF32Into(name, x32);
    c16.readF32Into(name, x16);
    assert.ok(!x16.includes(0), "no exact zeros in F16");
    const tiny = x16.filter((x) => Math.abs(x) === 2 ** -24).length;
    assert.ok(tiny > 0, "some values were kept at the smallest subnormal");
    let close = 0;
    for (let i = 0; i < x32.length; i++) if (Math.abs(x32[i]! - x16[i]!) <= Math.max(2 ** -24, Math.abs(x32[i]!) * 2 ** -11)) close++;
    assert.equal(close, x32.length, "F16 = F32 rounded");
  } finally {
    c32.close();
    c16.close();
  }
});

test("named shapes: the table parses, qwen2.5 has q/k/v biases, bad arguments are clear errors", async () => {
  for (const [name, s] of Object.entries(SYNTHETIC_SHAPES)) {
    const { config } = synthConfig({ ...s.config });
    assert.ok(config.nLayers >= 22 && config.vocabSize >= 32000, name);
  }
  const tl = synthConfig({ ...SYNTHETIC_SHAPES["tinyllama-1.1b"]!.config }).config;
  assert.deepEqual([tl.dim, tl.hiddenDim, tl.nLayers, tl.nHeads, tl.nKvHeads, tl.vocabSize, tl.tiedEmbeddings], [2048, 5632, 22, 32, 4, 32000, false]);
  const l3 = synthConfig({ ...SYNTHETIC_SHAPES["llama-3-8b"]!.config }).config;
  assert.deepEqual([l3.hiddenDim, l3.nKvHeads, l3.vocabSize, l3.ropeTheta], [14336, 8, 128256, 500000]);

  // transformers' state_dict order (what save_pretrained shards by)
  const qc = synthConfig({ ...SYNTHETIC_SHAPES["qwen2.5-0.5b"]!.config }, 1).config;
  const p = "model.layers.0.";
  assert.deepEqual(stateDictOrder(hfTensorSpecs({ ...qc, tiedEmbeddings: false })).map((x) => x.name), [
    "model.embed_tokens.weight",
    ...["q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias", "v_proj.weight", "v_proj.bias", "o_proj.weight"].map((n) => `${p}self_attn.${n}`),
    ...["gate_proj", "up_proj", "down_proj"].map((n) => `${p}mlp.${n}.weight`),
    `${p}input_layernorm.weight`, `${p}post_attention_layernorm.weight`, "model.norm.weight", "lm_head.weight",
  ]);

  // one layer of qwen2.5-0.5b with the stories260K tokenizer (whose BOS/EOS replace Qwen's ids)
  const q = path.join(tmp, "qwen");
  const r = synthesize(q, { shape: "qwen2.5-0.5b", layers: 1, vocab: 512, tokenizer: TOK512, seed: 1 });
  assert.ok(r.files.some((f) => f.name === "tokenizer.model"), "the tokenizer is copied");
  const m = await loadModel(q);
  assert.equal(m.config.architecture, "qwen2");
  assert.ok(m.config.qkvBias && m.config.tiedEmbeddings, "qwen2: q/k/v bias, tied embeddings");
  assert.deepEqual([m.config.bosId, m.config.eosId, m.tokenizer!.vocabSize], [1, 2, 512]);
  assert.equal(m.weights.layers[0]!.bq!.data.length, 896);
  const hf = JSON.parse(fs.readFileSync(path.join(q, "config.json"), "utf8"));
  assert.equal(hf.torch_dtype, "bfloat16");
  assert.equal(hf.wasprune_synthetic.depth, 24);

  assert.throws(() => synthesize(path.join(tmp, "x"), { shape: "tinyllama" }), (e: unknown) =>
    e instanceof UsageError && /unknown shape "tinyllama"; known shapes: smol-135m, tinyllama-1\.1b, llama-2-7b, llama-2-13b, llama-2-70b, llama-3-8b, qwen2\.5-0\.5b/.test(e.message));
  assert.throws(() => synthesize(path.join(tmp, "x"), { shape: "tinyllama-1.1b", layers: 23 }), /--layers must be an integer in \[1, 22\], got 23/);
  assert.throws(() => synthesize(path.join(tmp, "x"), { shape: "qwen2.5-0.5b", vocab: 512 }), /vocab size 512 does not contain the shape's bos_token_id 151643/);
  assert.throws(() => synthesize(path.join(tmp, "x"), { shape: "smol-135m", vocab: 100, tokenizer: TOK512 }), /tok512\.model has 512 tokens, more than the model's vocab_size 100/);
  assert.throws(() => synthesize(q, { shape: SMALL }), (e: unknown) => e instanceof OutputExistsError);
  assert.ok(!fs.existsSync(path.join(tmp, "x")), "no output is left by a refused call");
});

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test("CLI: wasprune synth writes, reports, refuses an existing output without --force, and names unknown shapes", () => {
  const out = path.join(tmp, "cli");
  let r = cli(["synth", "smol-135m", "--layers", "1", "--vocab", "512", "--max-shard-size", "1MB", "--tokenizer", TOK512, "--out", out]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /wrote .*cli: random weights of shape smol-135m \(HuggingFaceTB\/SmolLM-135M\), BF16, seed 0 \(not a model to evaluate/);
  assert.match(r.out, /model-00001-of-0000\d\.safetensors/);
  assert.match(r.out, / in [\d.]+ s \(/);
  assert.ok(fs.existsSync(path.join(out, "model.safetensors.index.json")) && fs.existsSync(path.join(out, "tokenizer.model")), "index and tokenizer written");
  r = cli(["synth", "smol-135m", "--layers", "1", "--vocab", "512", "--out", out]);
  assert.equal(r.code, 1);
  assert.match(r.err, /^error: .*cli already exists; pass force \(--force\) to overwrite it\n$/);
  r = cli(["synth", "smol-135m", "--layers", "1", "--vocab", "512", "--dtype", "f32", "--seed", "5", "--out", out, "--force", "--json"]);
  assert.equal(r.code, 0, r.err);
  const rep = JSON.parse(r.out);
  assert.equal(rep.dtype, "F32");
  assert.equal(rep.seed, 5);
  assert.deepEqual(rep.files.map((f: { name: string }) => f.name), ["README.md", "config.json", "model.safetensors"]);
  assert.equal(rep.bytes, rep.files.reduce((s: number, f: { bytes: number }) => s + f.bytes, 0));
  assert.ok(!fs.existsSync(path.join(out, "tokenizer.model")), "--force replaced the whole directory");
  // a config.json file is a custom shape
  const cfg = path.join(tmp, "small-config.json");
  fs.writeFileSync(cfg, JSON.stringify(SMALL));
  r = cli(["synth", cfg, "--out", path.join(tmp, "cli-custom"), "--json"]);
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out).config.hiddenDim, 1500);
  r = cli(["synth", "llama-7b", "--out", path.join(tmp, "nope")]);
  assert.equal(r.code, 1);
  assert.equal(r.err, `error: unknown shape "llama-7b"; known shapes: ${Object.keys(SYNTHETIC_SHAPES).join(", ")} (or a config.json file)\n`);
  r = cli(["synth", "smol-135m", "--max-shard-size", "5XB", "--out", path.join(tmp, "nope")]);
  assert.equal(r.code, 1);
  assert.match(r.err, /--max-shard-size: "5XB" is not a size/);
  assert.ok(!fs.existsSync(path.join(tmp, "nope")), "no output is left by a refused call");
});

test("hostEmbedding (generate): an untied embedding table stays out of the WebAssembly memory, and the logits are the same bits", async () => {
  const { createRunState, forward } = await import("../../src/model/forward.js");
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-hostemb-")), "m");
  synthesize(dir, { shape: SMALL, seed: 5 });
  const logits = (m: Model) => m.wasm.arena.scoped(() => {
    const st = createRunState(m, 1, 8);
    const out: number[] = [];
    for (const [p, tok] of [1, 7, 42, 3].entries()) out.push(...forward(m, st, [tok], p));
    return Float32Array.from(out);
  });
  const inArena = await loadModel(dir, { weights: "stored", requireTokenizer: false });
  const mark = inArena.wasm.arena.mark();
  const host = await loadModel(dir, { weights: "stored", requireTokenizer: false, hostEmbedding: true });
  assert.notEqual(inArena.weights.embed.ptr, -1);
  assert.equal(host.weights.embed.ptr, -1, "the table is not in the arena");
  assert.ok(host.wasm.arena.mark() <= mark - 4 * host.weights.embed.data.length, "the arena holds less by the table's bytes");
  assert.deepEqual(logits(host), logits(inArena));
});
