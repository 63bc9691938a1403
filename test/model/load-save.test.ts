import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ConfigError, OutputExistsError } from "../../src/errors.js";
import { createWasm } from "../../src/wasm/runtime.js";
import { loadModel } from "../../src/model/load.js";
import { saveHF, saveLlama2c } from "../../src/model/save.js";
import { interleavedToHalf, halfToInterleaved } from "../../src/model/save-rope.js";
import { hfTensorSpecs } from "../../src/model/specs.js";
import { openSafetensors } from "../../src/io/safetensors.js";
import { f16BitsToF32, f32ToF16Bits } from "../../src/io/dtype.js";
import type { Model, Tensor } from "../../src/model/types.js";
import { denseLinear } from "../../src/model/linear.js";

const BIN = "/work/shared/models/stories260K/stories260K.bin";
const HF = "/work/shared/models/stories260K-hf";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-save-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));
const wasm = createWasm();

/** Every tensor by HF name, as stored in the model (no layout change). */
function tensors(m: Model): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const s of hfTensorSpecs(m.config)) {
    const t = s.layer === undefined ? (m.weights as unknown as Record<string, Tensor>)[s.key]! : (m.weights.layers[s.layer] as unknown as Record<string, Tensor>)[s.key]!;
    out.set(s.name, t);
  }
  return out;
}

function assertSameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}[${i}]: ${a[i]} != ${b[i]}`);
}

/** `m` (any layout) has exactly the weights of stories260K-hf. */
function assertEqualsHF(m: Model, hf: Model): void {
  const ta = tensors(m);
  const tb = tensors(hf);
  assert.deepEqual([...ta.keys()], [...tb.keys()]);
  for (const [name, t] of ta) {
    let data = t.data;
    if (m.config.ropeLayout === "interleaved" && /\.(q|k)_proj\.weight$/.test(name)) {
      data = interleavedToHalf(data, name.includes("q_proj") ? m.config.nHeads : m.config.nKvHeads, m.config.headDim, m.config.dim);
    }
    assert.deepEqual(t.shape, tb.get(name)!.shape, name);
    assertSameBits(data, tb.get(name)!.data, name);
  }
}

test("stories260K.bin and stories260K-hf hold the same weights (q/k permuted)", async () => {
  const bin = await loadModel(BIN, { wasm });
  const hf = await loadModel(HF, { wasm });
  assert.equal(bin.source.format, "llama2c");
  assert.equal(bin.config.ropeLayout, "interleaved");
  assert.equal(hf.config.ropeLayout, "half");
  assert.equal(hf.source.dtype, "F32");
  assert.equal(denseLinear(hf.weights.lmHead, "lm_head").data, hf.weights.embed.data);
  assert.equal(denseLinear(bin.weights.lmHead, "lm_head").data, bin.weights.embed.data);
  assert.equal((hf.source.hfConfig as { model_type: string }).model_type, "llama");
  assert.deepEqual({ ...bin.config, ropeLayout: "half" }, hf.config);
  assert.equal(path.basename(bin.tokenizer!.files[0]!), "tok512.bin");
  assert.equal(path.basename(hf.tokenizer!.files[0]!), "tokenizer.model");
  assert.deepEqual(bin.tokenizer!.encode("Once upon a time", { bos: true }), hf.tokenizer!.encode("Once upon a time", { bos: true }));
  assertEqualsHF(bin, hf);
  // weights live in the arena
  const t = denseLinear(bin.weights.layers[2]!.wDown, "wDown");
  assert.ok(t.data.buffer instanceof SharedArrayBuffer);
  assert.equal(t.ptr % 64, 0);
  assert.deepEqual(t.data, wasm.arena.f32(t.ptr, t.data.length));
});

test("rope permutations are inverse", () => {
  const w = Float32Array.from({ length: 8 * 8 * 3 }, (_, i) => i);
  assertSameBits(halfToInterleaved(interleavedToHalf(w, 8, 8, 3), 8, 8, 3), w, "w");
  // head 0, half layout row 1 (i=1, j=0) comes from interleaved row 2
  assert.deepEqual(Array.from(interleavedToHalf(w, 8, 8, 3).subarray(3, 6)), [6, 7, 8]);
});

test(".bin -> saveHF -> loadModel equals stories260K-hf bit for bit", async () => {
  const bin = await loadModel(BIN, { wasm });
  const out = path.join(tmp, "hf-from-bin");
  saveHF(bin, out);
  assert.deepEqual(fs.readdirSync(out).sort(), ["config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"]);
  assert.ok(!fs.readdirSync(tmp).some((f) => f.includes(".tmp-")));
  const back = await loadModel(out, { wasm });
  const hf = await loadModel(HF, { wasm });
  assertEqualsHF(back, hf);
  assert.deepEqual(back.config, hf.config);
  const cfg = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8")) as Record<string, unknown>;
  assert.deepEqual(cfg.architectures, ["LlamaForCausalLM"]);
  assert.equal(cfg.tie_word_embeddings, true);
  assert.equal(cfg.torch_dtype, "float32");
  // the generated tokenizer.model tokenizes like tok512.bin
  assert.equal(path.basename(back.tokenizer!.files[0]!), "tokenizer.model");
  for (const s of ["Once upon a time", "  x\ny 🎉", ""]) {
    assert.deepEqual(back.tokenizer!.encode(s, { bos: true }), bin.tokenizer!.encode(s, { bos: true }));
  }
  // no lm_head when tied
  const st = openSafetensors(path.join(out, "model.safetensors"));
  assert.ok(!st.header.has("lm_head.weight"));
  st.close();
});

test(".bin -> saveLlama2c is byte-identical; HF -> saveLlama2c matches but for freq_cis rounding", async () => {
  const bin = await loadModel(BIN, { wasm });
  const out = path.join(tmp, "again.bin");
  saveLlama2c(bin, out);
  assert.ok(fs.readFileSync(out).equals(fs.readFileSync(BIN)));

  const hf = await loadModel(HF, { wasm });
  const out2 = path.join(tmp, "from-hf.bin");
  saveLlama2c(hf, out2);
  const a = fs.readFileSync(out2);
  const b = fs.readFileSync(BIN);
  assert.equal(a.length, b.length);
  const freqBytes = 2 * 512 * 4 * 4;
  assert.ok(a.subarray(0, a.length - freqBytes).equals(b.subarray(0, b.length - freqBytes)), "header and weights identical");
  const fa = new Float32Array(a.buffer.slice(a.byteOffset + a.length - freqBytes, a.byteOffset + a.length));
  const fb = new Float32Array(b.buffer.slice(b.byteOffset + b.length - freqBytes, b.byteOffset + b.length));
  for (let i = 0; i < fa.length; i++) assert.ok(Math.abs(fa[i]! - fb[i]!) <= 1.2e-7, `freq_cis[${i}] ${fa[i]} vs ${fb[i]}`);
});

test("HF -> saveHF keeps config.json and writes F16/BF16; refuses to overwrite without force", async () => {
  const hf = await loadModel(HF, { wasm });
  const out = path.join(tmp, "hf-copy");
  saveHF(hf, out);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8")), JSON.parse(fs.readFileSync(path.join(HF, "config.json"), "utf8")));
  assert.ok(fs.readFileSync(path.join(out, "tokenizer.model")).equals(fs.readFileSync(path.join(HF, "tokenizer.model"))));
  assert.ok(fs.readFileSync(path.join(out, "tokenizer_config.json")).equals(fs.readFileSync(path.join(HF, "tokenizer_config.json"))));

  assert.throws(() => saveHF(hf, out), (e: unknown) => e instanceof OutputExistsError && e.message.includes(out));
  saveHF(hf, out, { force: true, dtype: "F16", extraFiles: { "README.md": "pruned\n" } });
  assert.equal(fs.readFileSync(path.join(out, "README.md"), "utf8"), "pruned\n");
  const cfg = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8")) as Record<string, unknown>;
  assert.equal(cfg.torch_dtype, "float16");
  const f16 = await loadModel(out, { wasm });
  assert.equal(f16.source.dtype, "F16");
  const a = denseLinear(f16.weights.layers[1]!.wq, "wq").data;
  const b = denseLinear(hf.weights.layers[1]!.wq, "wq").data;
  for (let i = 0; i < a.length; i++) assert.equal(a[i], f16BitsToF32(f32ToF16Bits(b[i]!)));

  saveHF(hf, out, { force: true, dtype: "BF16" });
  const bf = await loadModel(out, { wasm });
  assert.equal(bf.source.dtype, "BF16");
  assert.ok(Math.abs(bf.weights.norm.data[0]! - hf.weights.norm.data[0]!) <= Math.abs(hf.weights.norm.data[0]!) * 2 ** -8);

  assert.throws(() => saveLlama2c(hf, path.join(out, "config.json")), OutputExistsError);
  const q = await loadModel(HF, { wasm });
  q.config.ropeTheta = 1e6;
  assert.throws(() => saveLlama2c(q, path.join(tmp, "x.bin")), (e: unknown) =>
    e instanceof ConfigError && e.message === "cannot write x.bin as llama2.c: rope_theta is 1000000; run.c uses 10000");
});
