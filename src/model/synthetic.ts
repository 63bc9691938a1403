/**
 * @file Random-weight models of real shapes, for measuring time and memory at scale (tests, benchmarks,
 * `wasprune synth`). Their perplexity means nothing: quality is measured on stories260K only.
 *
 * A model is a Hugging Face directory (config.json, model.safetensors or shards + index, README.md, optionally
 * a tokenizer) written by the sharded writer, each tensor generated in chunks of CHUNK_ELEMENTS, so a 7B model
 * needs tens of MB of memory. Every value is a pure function of (seed, tensor name, element index): tensor
 * elements come in blocks of BLOCK; block b of tensor `name` is drawn from the streams
 * seedFrom(seedFrom(seed, name), b) and seedFrom(seedFrom(seed, name), b, 1) (src/util/rng.ts fillFromTable) by
 * inverse transform from a 65536-entry N(0, std²) table in the stored dtype. So the first N layers (or V
 * vocabulary rows) of a model are the same whatever the depth, vocabulary, sharding or chunking.
 *
 * Scales follow `randomLlama` (src/model/builtin.ts), so activations stay O(1) through many layers: linear
 * weights N(0, 1/fan_in), o_proj and down_proj scaled by 1/sqrt(2·L) with L the *shape's* depth (not --layers,
 * so that fewer layers are the first layers of the full model), norms 1, embedding rows std 2/sqrt(dim),
 * q/k/v biases std 0.02. A value that would round to zero in F16/BF16 is stored as the smallest subnormal of its
 * sign instead, so a generated model has no exact zeros (a zero weight means "pruned").
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, UsageError, outputExists } from "../errors.js";
import { DEFAULT_MAX_SHARD_SIZE, INDEX_FILE, ShardedWriter, planShards } from "../io/sharded-writer.js";
import { f32ToBf16Bits, f32ToF16Bits, numel, widen16 } from "../io/dtype.js";
import { loadTokenizer } from "../tokenizer/load.js";
import { fillFromTable, normalTable, seedFrom } from "../util/rng.js";
import { parseHFConfig, toHFConfig } from "./config.js";
import { hfTensorSpecs, type HFTensorSpec } from "./specs.js";
import { stateDictOrder } from "./names.js";
import { atomicDir, tokenizerFilesOf } from "./save.js";
import { DTYPES, type DType, type ModelConfig } from "./types.js";

/** Elements per seeded block (even; chunks are whole blocks). */
export const BLOCK = 1 << 16;
/** Elements generated at a time (64 blocks; 16 MiB of f32). */
export const CHUNK_ELEMENTS = 1 << 22;

/**
 * Named shapes: the config.json fields of the real Hugging Face models that wasprune's config parser reads
 * (src/model/config.ts). Llama 3.1-style `rope_scaling` is not supported by the engine, so no shape has it.
 */
export const SYNTHETIC_SHAPES: Readonly<Record<string, { source: string; config: Readonly<Record<string, unknown>> }>> = Object.freeze({
  "smol-135m": {
    source: "HuggingFaceTB/SmolLM-135M",
    config: {
      architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 576, intermediate_size: 1536,
      num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, vocab_size: 49152,
      max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000.0, hidden_act: "silu",
      tie_word_embeddings: true, bos_token_id: 0, eos_token_id: 0, attention_bias: false, mlp_bias: false,
    },
  },
  "tinyllama-1.1b": {
    source: "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    config: {
      architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 2048, intermediate_size: 5632,
      num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, vocab_size: 32000,
      max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000.0, hidden_act: "silu",
      tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, attention_bias: false,
    },
  },
  "llama-2-7b": {
    source: "meta-llama/Llama-2-7b-hf",
    config: {
      architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 4096, intermediate_size: 11008,
      num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, vocab_size: 32000,
      max_position_embeddings: 4096, rms_norm_eps: 1e-5, rope_theta: 10000.0, hidden_act: "silu",
      tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
    },
  },
  "llama-2-13b": {
    source: "meta-llama/Llama-2-13b-hf",
    config: {
      architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 5120, intermediate_size: 13824,
      num_hidden_layers: 40, num_attention_heads: 40, num_key_value_heads: 40, vocab_size: 32000,
      max_position_embeddings: 4096, rms_norm_eps: 1e-5, rope_theta: 10000.0, hidden_act: "silu",
      tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
    },
  },
  "llama-2-70b": {
    source: "meta-llama/Llama-2-70b-hf",
    config: {
      architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 8192, intermediate_size: 28672,
      num_hidden_layers: 80, num_attention_heads: 64, num_key_value_heads: 8, vocab_size: 32000,
      max_position_embeddings: 4096, rms_norm_eps: 1e-5, rope_theta: 10000.0, hidden_act: "silu",
      tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
    },
  },
  "llama-3-8b": {
    source: "meta-llama/Meta-Llama-3-8B",
    config: {
      architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: 4096, intermediate_size: 14336,
      num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256,
      max_position_embeddings: 8192, rms_norm_eps: 1e-5, rope_theta: 500000.0, hidden_act: "silu",
      tie_word_embeddings: false, bos_token_id: 128000, eos_token_id: 128001, attention_bias: false, mlp_bias: false,
    },
  },
  "qwen2.5-0.5b": {
    source: "Qwen/Qwen2.5-0.5B",
    config: {
      architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", hidden_size: 896, intermediate_size: 4864,
      num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936,
      max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1000000.0, hidden_act: "silu",
      tie_word_embeddings: true, bos_token_id: 151643, eos_token_id: 151643,
    },
  },
});

/** The config.json extension field marking a generated model (ignored by the loader). */
export const SYNTHETIC_FIELD = "wasprune_synthetic";

export interface SynthOptions {
  /** a SYNTHETIC_SHAPES name, or a config.json object of any shape the engine supports */
  shape: string | Record<string, unknown>;
  /** keep the first N layers (default: the shape's depth) */
  layers?: number;
  /** vocabulary size (default: the shape's); a smaller one keeps the first rows */
  vocab?: number;
  /** stored dtype (default BF16) */
  dtype?: DType;
  seed?: number;
  /** max tensor bytes per shard (default 5 GB, as save_pretrained) */
  maxShardBytes?: number;
  /** tokenizer file to put in the directory (checked to fit the vocabulary) */
  tokenizer?: string;
  /** replace an existing output directory */
  force?: boolean;
  /** called after each chunk with bytes of tensor data written so far and in all */
  onProgress?(done: number, total: number): void;
}

export interface SynthReport {
  dir: string;
  shape: string;
  source?: string;
  seed: number;
  dtype: DType;
  config: ModelConfig;
  /** tensor elements */
  parameters: number;
  files: { name: string; bytes: number }[];
  /** bytes of all files written */
  bytes: number;
  seconds: number;
}

/** The shape `opts.shape` names (or is), parsed; errors name the known shapes. */
export function resolveShape(shape: SynthOptions["shape"]): { name: string; source?: string; raw: Record<string, unknown> } {
  if (typeof shape !== "string") return { name: "custom", raw: { ...shape } };
  const s = SYNTHETIC_SHAPES[shape];
  if (!s) throw new UsageError(`unknown shape "${shape}"; known shapes: ${Object.keys(SYNTHETIC_SHAPES).join(", ")} (or a config.json file)`);
  return { name: shape, source: s.source, raw: { ...s.config } };
}

/** The generated model's config: the shape's, with `layers`/`vocab` applied; and the depth that scales o/down. */
export function synthConfig(raw: Record<string, unknown>, layers?: number, vocab?: number, file = "config.json"): { config: ModelConfig; depth: number } {
  const full = parseHFConfig(raw, file);
  if (full.layerSizes) throw new ConfigError(`${file}: per-layer sizes (wasprune_layer_sizes) are not supported by synth`);
  const check = (what: string, v: number | undefined, max?: number): void => {
    if (v === undefined) return;
    if (!Number.isSafeInteger(v) || v < 1 || (max !== undefined && v > max)) {
      throw new UsageError(`${what} must be an integer in [1, ${max ?? "∞"}], got ${v}`);
    }
  };
  check("--layers", layers, full.nLayers);
  check("--vocab", vocab);
  return { config: { ...full, nLayers: layers ?? full.nLayers, vocabSize: vocab ?? full.vocabSize }, depth: full.nLayers };
}

/** The distribution of one tensor: N(0, std²), or the constant `value`. */
export function tensorStd(c: ModelConfig, depth: number, s: HFTensorSpec): { std: number } | { value: number } {
  const out = 1 / Math.sqrt(2 * depth);
  switch (s.key) {
    case "embed":
      return { std: 2 / Math.sqrt(c.dim) };
    case "norm":
    case "attnNorm":
    case "ffnNorm":
      return { value: 1 };
    case "wo":
    case "wDown":
      return { std: out / Math.sqrt(s.shape[1]!) };
    case "bq":
    case "bk":
    case "bv":
      return { std: 0.02 };
    default: // wq wk wv wGate wUp lmHead: N(0, 1/fan_in)
      return { std: 1 / Math.sqrt(s.shape[1]!) };
  }
}

const tables = new Map<string, Float32Array | Uint16Array>();
/**
 * The 65536-entry sample table of N(0, std²) in `dtype`: float32 values for F32, else 16-bit patterns, an exact
 * zero replaced by the smallest subnormal of its sign. Cached per (std, dtype).
 */
function sampleTable(std: number, dtype: DType): Float32Array | Uint16Array {
  const key = `${dtype}:${std}`;
  let t = tables.get(key);
  if (t) return t;
  const q = normalTable();
  const f = new Float32Array(65536);
  for (let k = 0; k < 65536; k++) f[k] = q[k]! * std;
  if (dtype === "F32") t = f;
  else {
    const narrow = dtype === "F16" ? f32ToF16Bits : f32ToBf16Bits;
    const h = new Uint16Array(65536);
    for (let k = 0; k < 65536; k++) {
      const bits = narrow(f[k]!);
      h[k] = bits & 0x7fff ? bits : bits | 1;
    }
    t = h;
  }
  if (tables.size > 64) tables.clear();
  tables.set(key, t);
  return t;
}

/**
 * Elements [first, first + out.length) of tensor `name` drawn from `table` (see the file header);
 * `first` must be a multiple of BLOCK.
 */
export function fillTensorChunk(out: Float32Array | Uint16Array, seed: number, name: string, first: number, table: Float32Array | Uint16Array): void {
  if (first % BLOCK !== 0) throw new UsageError(`fillTensorChunk: first element ${first} is not a multiple of ${BLOCK}`);
  const base = seedFrom(seed, name);
  for (let o = 0; o < out.length; o += BLOCK) {
    const b = (first + o) / BLOCK;
    fillFromTable(out, o, Math.min(out.length, o + BLOCK), seedFrom(base, b), seedFrom(base, b, 1), table);
  }
}

/** The values of tensor `name` of a generated model as float32 (for tests: what the file must hold). */
export function synthTensorValues(c: ModelConfig, depth: number, seed: number, dtype: DType, spec: HFTensorSpec): Float32Array {
  const n = numel(spec.shape);
  const dist = tensorStd(c, depth, spec);
  if ("value" in dist) return new Float32Array(n).fill(dist.value);
  const table = sampleTable(dist.std, dtype);
  if (table instanceof Float32Array) {
    const out = new Float32Array(n);
    fillTensorChunk(out, seed, spec.name, 0, table);
    return out;
  }
  const bits = new Uint16Array(n);
  fillTensorChunk(bits, seed, spec.name, 0, table);
  const out = new Float32Array(n);
  widen16(dtype as "F16" | "BF16", new Uint8Array(bits.buffer), out, n);
  return out;
}

function readme(r: { shape: string; source?: string; seed: number; dtype: DType; config: ModelConfig; depth: number; command?: string }): string {
  const c = r.config;
  return [
    `# Random-weight model (wasprune synth)`,
    ``,
    `**The weights are random.** This model has the shape of ${r.source ? `[${r.source}](https://huggingface.co/${r.source})` : "a custom config.json"}` +
      `${c.nLayers !== r.depth ? ` (its first ${c.nLayers} of ${r.depth} layers)` : ""}, nothing else: it knows no language, and its ` +
      `perplexity, generations and pruning quality mean nothing. It exists to measure time and memory at real shapes; ` +
      `quality is measured on stories260K only.`,
    ``,
    `- shape: ${r.shape}; dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nLayers} layers, ${c.nHeads} heads / ${c.nKvHeads} kv, vocab ${c.vocabSize}, ${c.tiedEmbeddings ? "tied" : "untied"} embeddings${c.qkvBias ? ", q/k/v bias" : ""}`,
    `- dtype ${r.dtype}, seed ${r.seed}; every value is a function of (seed, tensor name, element index) (src/model/synthetic.ts)`,
    `- linear weights N(0, 1/fan_in), o_proj/down_proj × 1/sqrt(2·${r.depth}), norms 1, embedding std 2/sqrt(dim)`,
    ``,
  ].join("\n");
}

/**
 * Write a random-weight model into `dir` (refused if it exists, unless `force`): built in a temporary directory
 * beside it and renamed into place when every byte is on disk.
 */
export function synthesize(dir: string, opts: SynthOptions): SynthReport {
  const t0 = performance.now();
  const dtype = opts.dtype ?? "BF16";
  if (!(DTYPES as readonly string[]).includes(dtype)) throw new UsageError(`--dtype must be one of ${DTYPES.join(", ")}, got ${dtype}`);
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new UsageError(`--seed must be an integer, got ${seed}`);
  const shape = resolveShape(opts.shape);
  const { config, depth } = synthConfig(shape.raw, opts.layers, opts.vocab);
  if (fs.existsSync(dir) && !opts.force) throw outputExists(dir);

  const files = new Map<string, string | Uint8Array>();
  if (opts.tokenizer !== undefined) {
    const tok = loadTokenizer(opts.tokenizer, opts.tokenizer.toLowerCase().endsWith(".bin") ? { vocabSize: config.vocabSize } : {});
    if (tok.vocabSize > config.vocabSize) {
      throw new ConfigError(`${path.basename(opts.tokenizer)} has ${tok.vocabSize} tokens, more than the model's vocab_size ${config.vocabSize} (pass --vocab ${tok.vocabSize} or more)`);
    }
    // the model's BOS/EOS are the tokenizer's (a shape's own ids belong to its own tokenizer)
    if (tok.bosId >= 0) config.bosId = tok.bosId;
    if (tok.eosId >= 0) config.eosId = tok.eosId;
    for (const [name, data] of tokenizerFilesOf(tok, config.maxSeqLen)) files.set(name, data);
  }
  for (const [k, id] of [["bos_token_id", config.bosId], ["eos_token_id", config.eosId]] as const) {
    if (id >= config.vocabSize) {
      throw new UsageError(`vocab size ${config.vocabSize} does not contain the shape's ${k} ${id}; pass a larger --vocab, or a --tokenizer (whose BOS/EOS ids are used)`);
    }
  }
  const hf = toHFConfig(config, dtype, shape.raw);
  hf[SYNTHETIC_FIELD] = { shape: shape.name, ...(shape.source ? { source: shape.source } : {}), seed, depth, note: "random weights; perplexity means nothing" };
  files.set("config.json", JSON.stringify(hf, null, 2) + "\n");
  files.set("README.md", readme({ shape: shape.name, source: shape.source, seed, dtype, config, depth }));

  const specs = stateDictOrder(hfTensorSpecs(config));
  const plan = planShards(specs.map((s) => ({ name: s.name, dtype, shape: s.shape })), opts.maxShardBytes ?? DEFAULT_MAX_SHARD_SIZE);
  const byName = new Map(specs.map((s) => [s.name, s]));
  const out = path.resolve(dir);
  atomicDir(out, !!opts.force, (tmp) => {
    for (const [name, data] of files) fs.writeFileSync(path.join(tmp, name), data);
    const w = ShardedWriter.create(tmp, plan, { keepOnDiskFull: false });
    try {
      const buf = dtype === "F32" ? new Float32Array(CHUNK_ELEMENTS) : new Uint16Array(CHUNK_ELEMENTS);
      let done = 0;
      for (const f of plan.files) {
        for (const name of f.tensors) {
          const t = plan.tensors.get(name)!;
          const dist = tensorStd(config, depth, byName.get(name)!);
          const table = "std" in dist ? sampleTable(dist.std, dtype) : undefined;
          const constant = "value" in dist ? constantBits(dist.value, dtype) : 0;
          for (let first = 0; first < t.elements; first += CHUNK_ELEMENTS) {
            const chunk = buf.subarray(0, Math.min(CHUNK_ELEMENTS, t.elements - first));
            if (table) fillTensorChunk(chunk, seed, name, first, table);
            else chunk.fill(constant);
            w.writeRange(name, first, new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
            done += chunk.byteLength;
            opts.onProgress?.(done, plan.totalSize);
          }
        }
      }
      w.finish();
    } catch (e) {
      w.abort();
      throw e;
    }
  });
  const written = [...files.keys(), ...plan.files.map((f) => f.name), ...(plan.index ? [INDEX_FILE] : [])].sort();
  const sizes = written.map((name) => ({ name, bytes: fs.statSync(path.join(out, name)).size }));
  return {
    dir: out,
    shape: shape.name,
    ...(shape.source ? { source: shape.source } : {}),
    seed,
    dtype,
    config,
    parameters: plan.totalParameters,
    files: sizes,
    bytes: sizes.reduce((s, f) => s + f.bytes, 0),
    seconds: (performance.now() - t0) / 1000,
  };
}

/** A constant as the stored element (a float for F32, the 16-bit pattern otherwise). */
function constantBits(v: number, dtype: DType): number {
  return dtype === "F32" ? v : dtype === "F16" ? f32ToF16Bits(v) : f32ToBf16Bits(v);
}
