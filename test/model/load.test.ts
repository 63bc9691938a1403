import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ConfigError, FormatError, MissingFileError, WaspruneError } from "../../src/errors.js";
import { createWasm } from "../../src/wasm/runtime.js";
import { loadModel } from "../../src/model/load.js";
import { parseHFConfig, toHFConfig } from "../../src/model/config.js";
import { openSafetensors, writeSafetensors } from "../../src/io/safetensors.js";
import { denseLinear } from "../../src/model/linear.js";

const BIN_DIR = "/work/shared/models/stories260K";
const HF = "/work/shared/models/stories260K-hf";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-load-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));
const wasm = createWasm();
const baseConfig = JSON.parse(fs.readFileSync(path.join(HF, "config.json"), "utf8")) as Record<string, unknown>;

/** An HF dir: the real model.safetensors (symlinked) or `weights`, with config.json edited by `edit`. */
function hfDir(name: string, edit: Record<string, unknown> = {}, opts: { weights?: string; tokenizer?: boolean } = {}): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...baseConfig, ...edit }));
  if (opts.weights) fs.copyFileSync(opts.weights, path.join(dir, "model.safetensors"));
  else fs.symlinkSync(path.join(HF, "model.safetensors"), path.join(dir, "model.safetensors"));
  if (opts.tokenizer ?? true) fs.symlinkSync(path.join(HF, "tokenizer.model"), path.join(dir, "tokenizer.model"));
  return dir;
}

async function rejects(p: Promise<unknown>, cls: new (...a: never[]) => WaspruneError, message: RegExp | string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

test("config.json parsing: defaults and architectures", () => {
  const c = parseHFConfig({ ...baseConfig, num_key_value_heads: undefined, rope_theta: undefined, tie_word_embeddings: undefined });
  assert.equal(c.nKvHeads, 8);
  assert.equal(c.ropeTheta, 10000);
  assert.equal(c.tiedEmbeddings, false);
  assert.equal(c.headDim, 8);
  assert.equal(c.ropeLayout, "half");
  const q = parseHFConfig({ ...baseConfig, model_type: "qwen2", architectures: ["Qwen2ForCausalLM"], eos_token_id: [7, 8], head_dim: 16 });
  assert.deepEqual([q.architecture, q.qkvBias, q.eosId, q.headDim], ["qwen2", true, 7, 16]);
  assert.equal(parseHFConfig({ ...baseConfig, model_type: "mistral", architectures: undefined }).architecture, "mistral");
  // writing back changes only what changed
  assert.deepEqual(toHFConfig(parseHFConfig(baseConfig), "F32", baseConfig), baseConfig);
  assert.deepEqual(toHFConfig({ ...parseHFConfig(baseConfig), hiddenDim: 100 }, "BF16", baseConfig), {
    ...baseConfig,
    intermediate_size: 100,
    torch_dtype: "bfloat16",
  });
});

test("config.json errors name the file and the field", () => {
  const bad: [Record<string, unknown>, string][] = [
    [{ model_type: "gpt2", architectures: ["GPT2LMHeadModel"] }, 'config.json: "model_type" is "gpt2"; supported: llama, mistral, qwen2'],
    [{ model_type: undefined, architectures: ["FalconForCausalLM"] }, 'config.json: "architectures" is ["FalconForCausalLM"]; supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM'],
    [{ hidden_size: undefined }, 'config.json: "hidden_size" is missing'],
    [{ num_hidden_layers: "5" }, 'config.json: "num_hidden_layers" is "5", expected a positive integer'],
    [{ rope_scaling: { type: "linear", factor: 2 } }, 'config.json: "rope_scaling" is {"type":"linear","factor":2}; RoPE scaling is not supported'],
    [{ hidden_act: "gelu" }, 'config.json: "hidden_act" is "gelu"; only "silu" is supported'],
    [{ num_key_value_heads: 3 }, 'config.json: "num_key_value_heads" (3) does not divide num_attention_heads (8)'],
    [{ attention_bias: true }, 'config.json: "attention_bias" is true; attention biases are supported for qwen2 (q/k/v) only'],
  ];
  for (const [edit, msg] of bad) {
    assert.throws(() => parseHFConfig({ ...baseConfig, ...edit }), (e: unknown) => e instanceof ConfigError && e.message === msg, msg);
  }
  assert.doesNotThrow(() => parseHFConfig({ ...baseConfig, rope_scaling: null }));
});

test("HF directory: shapes contradicting config.json", async () => {
  await rejects(
    loadModel(hfDir("shape", { intermediate_size: 100 }), { wasm }),
    FormatError,
    'model.safetensors: "model.layers.0.mlp.gate_proj.weight" has shape [172,64], expected [100,64]',
  );
  await rejects(
    loadModel(hfDir("heads", { num_key_value_heads: 8 }), { wasm }),
    FormatError,
    'model.safetensors: "model.layers.0.self_attn.k_proj.weight" has shape [32,64], expected [64,64]',
  );
  await rejects(
    loadModel(hfDir("layers", { num_hidden_layers: 6 }), { wasm }),
    FormatError,
    'model.safetensors: missing tensor "model.layers.5.input_layernorm.weight"',
  );
});

test("HF directory: missing tensor, unknown dtype, truncated weights, unsupported architecture", async () => {
  const st = openSafetensors(path.join(HF, "model.safetensors"));
  const tensors = [...st.header].filter(([n]) => n !== "model.layers.3.mlp.down_proj.weight").map(([name, e]) => {
    const data = new Float32Array(e.shape.reduce((a, b) => a * b, 1));
    st.readF32Into(name, data);
    return { name, dtype: "F32" as const, shape: e.shape, data };
  });
  st.close();
  const partial = path.join(tmp, "partial.safetensors");
  writeSafetensors(partial, tensors);
  await rejects(loadModel(hfDir("missing", {}, { weights: partial }), { wasm }), FormatError, 'model.safetensors: missing tensor "model.layers.3.mlp.down_proj.weight"');

  // a header edited to declare an I32 weight (a valid file: the reader takes integer tensors, the loader not as weights)
  const whole = fs.readFileSync(path.join(HF, "model.safetensors"));
  const hlen = Number(whole.readBigUInt64LE(0));
  const editDtype = (to: string): string => {
    const header = whole.subarray(8, 8 + hlen).toString().replace('"model.norm.weight":{"dtype":"F32"', `"model.norm.weight":{"dtype":${JSON.stringify(to).padEnd(5)}`);
    const f = path.join(tmp, `${to}.safetensors`);
    fs.writeFileSync(f, Buffer.concat([whole.subarray(0, 8), Buffer.from(header), whole.subarray(8 + hlen)]));
    return f;
  };
  await rejects(loadModel(hfDir("i32", {}, { weights: editDtype("I32") }), { wasm }), FormatError, /^model\.safetensors: tensor "model\.norm\.weight" has dtype I32, but model weights must be F32, F16 or BF16$/);
  await rejects(loadModel(hfDir("q4", {}, { weights: editDtype("Q4") }), { wasm }), FormatError, /^model\.safetensors: tensor "model\.norm\.weight" has unknown dtype "Q4"/);

  const cut = path.join(tmp, "cut.safetensors");
  fs.writeFileSync(cut, whole.subarray(0, whole.length - 1000));
  await rejects(loadModel(hfDir("cut", {}, { weights: cut }), { wasm }), FormatError, /^model\.safetensors: tensor "[^"]+" claims bytes \[\d+,\d+\) but the data section has only 1039128 bytes$/);

  await rejects(loadModel(hfDir("gpt2", { model_type: "gpt2", architectures: ["GPT2LMHeadModel"] }), { wasm }), ConfigError, /^config\.json: "model_type" is "gpt2"/);
  await rejects(loadModel(hfDir("rope", { rope_scaling: { rope_type: "llama3", factor: 8 } }), { wasm }), ConfigError, /^config\.json: "rope_scaling" is .*not supported$/);
});

test("missing files: tokenizer, config.json, weights", async () => {
  const noTok = hfDir("notok", {}, { tokenizer: false });
  await rejects(
    loadModel(noTok, { wasm }),
    MissingFileError,
    `tokenizer not found; looked for ${noTok}/tokenizer.json, ${noTok}/tokenizer.model (pass --tokenizer <file>)`,
  );
  const m = await loadModel(noTok, { wasm, requireTokenizer: false });
  assert.equal(m.tokenizer, undefined);
  const withTok = await loadModel(noTok, { wasm, tokenizer: path.join(BIN_DIR, "tok512.bin") });
  assert.equal(withTok.tokenizer!.vocabSize, 512);

  const lone = path.join(tmp, "lone");
  fs.mkdirSync(lone);
  fs.copyFileSync(path.join(BIN_DIR, "stories260K.bin"), path.join(lone, "model.bin"));
  await rejects(
    loadModel(path.join(lone, "model.bin"), { wasm }),
    MissingFileError,
    `tokenizer not found; looked for ${lone}/tokenizer.bin, ${lone}/tok*.bin (pass --tokenizer <file>)`,
  );
  await rejects(loadModel(path.join(tmp, "nothing"), { wasm }), MissingFileError, `model ${path.join(tmp, "nothing")} does not exist`);

  const noCfg = path.join(tmp, "nocfg");
  fs.mkdirSync(noCfg);
  await rejects(loadModel(noCfg, { wasm, requireTokenizer: false }), MissingFileError, /nocfg\/config\.json not found/);
  const noW = path.join(tmp, "now");
  fs.mkdirSync(noW);
  fs.writeFileSync(path.join(noW, "config.json"), JSON.stringify(baseConfig));
  await rejects(loadModel(noW, { wasm, requireTokenizer: false }), MissingFileError, /^model weights not found; looked for .*now\/model\.safetensors, .*now\/model\.safetensors\.index\.json$/);
});

test("llama2.c .bin: truncated, padded, bad header", async () => {
  const whole = fs.readFileSync(path.join(BIN_DIR, "stories260K.bin"));
  const dir = path.join(tmp, "bins");
  fs.mkdirSync(dir);
  fs.symlinkSync(path.join(BIN_DIR, "tok512.bin"), path.join(dir, "tok512.bin"));
  const w = (name: string, data: Uint8Array): string => {
    fs.writeFileSync(path.join(dir, name), data);
    return path.join(dir, name);
  };
  const hdr = "(dim=64, hidden_dim=172, n_layers=5, n_heads=8, n_kv_heads=4, vocab_size=512, seq_len=512)";
  await rejects(loadModel(w("cut.bin", whole.subarray(0, whole.length - 4)), { wasm }), FormatError, `cut.bin: file is 1056536 bytes but its header ${hdr} implies 1056540 bytes`);
  await rejects(loadModel(w("pad.bin", Buffer.concat([whole, Buffer.alloc(4)])), { wasm }), FormatError, `pad.bin: file is 1056544 bytes but its header ${hdr} implies 1056540 bytes`);
  await rejects(loadModel(w("short.bin", whole.subarray(0, 10)), { wasm }), FormatError, "short.bin: file is 10 bytes, too short for the 28-byte llama2.c header");
  const neg = Buffer.from(whole);
  neg.writeInt32LE(-512, 20); // untied: a classifier should follow
  await rejects(loadModel(w("untied.bin", neg), { wasm }), FormatError, /^untied\.bin: file is 1056540 bytes but its header \(.*vocab_size=-512.*\) implies 1187612 bytes$/);
  const heads = Buffer.from(whole);
  heads.writeInt32LE(3, 16);
  await rejects(loadModel(w("heads.bin", heads), { wasm }), FormatError, "heads.bin: header n_kv_heads 3 does not divide n_heads 8");
  const v1 = Buffer.from(whole);
  v1.writeUInt32LE(0x616b3432, 0);
  await rejects(loadModel(w("v1.bin", v1), { wasm }), FormatError, /^v1\.bin: is a llama2\.c version ≥1 export \(magic "ak42"\)/);
  // an untied file with its classifier appended loads, lm_head separate
  const untied = Buffer.concat([neg, whole.subarray(28, 28 + 512 * 64 * 4)]);
  const m = await loadModel(w("untied-ok.bin", untied), { wasm });
  assert.equal(m.config.tiedEmbeddings, false);
  assert.notEqual(m.weights.lmHead, m.weights.embed);
  assert.deepEqual(denseLinear(m.weights.lmHead, "lm_head").data, m.weights.embed.data);
  assert.equal(path.basename(m.tokenizer!.files[0]!), "tok512.bin");
});

test("sharded HF checkpoint loads like the single file", async () => {
  const dir = path.join(tmp, "sharded");
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(baseConfig));
  const st = openSafetensors(path.join(HF, "model.safetensors"));
  const all = [...st.header].map(([name, e]) => ({ name, dtype: e.dtype, shape: e.shape, data: st.readRaw(name) }));
  st.close();
  const shards = [all.filter((_, i) => i % 2 === 0), all.filter((_, i) => i % 2 === 1)];
  const weightMap: Record<string, string> = {};
  shards.forEach((ts, k) => {
    const f = `model-0000${k + 1}-of-00002.safetensors`;
    writeSafetensors(path.join(dir, f), ts);
    for (const t of ts) weightMap[t.name] = f;
  });
  fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  const a = await loadModel(dir, { wasm, requireTokenizer: false });
  const b = await loadModel(HF, { wasm });
  assert.deepEqual(denseLinear(a.weights.layers[4]!.wv, "wv").data, denseLinear(b.weights.layers[4]!.wv, "wv").data);
  assert.deepEqual(a.weights.embed.data, b.weights.embed.data);
  fs.rmSync(path.join(dir, "model-00002-of-00002.safetensors"));
  await rejects(loadModel(dir, { wasm, requireTokenizer: false }), FormatError, /^model\.safetensors\.index\.json: lists shard "model-00002-of-00002\.safetensors" which does not exist/);
});
