/**
 * @file Write a model as a Hugging Face directory (saveHF) or a llama2.c legacy .bin (saveLlama2c, in
 * save-llama2c.ts). Both are atomic: everything is written next to the target under a temporary name,
 * then renamed into place; an existing target is refused unless `force`. Synchronous: nothing is gained by
 * async here (the bytes come from the arena), and callers may rely on the files being there on return.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { outputExists, UsageError } from "../errors.js";
import { writeSafetensors, type TensorToWrite } from "../io/safetensors.js";
import { toHFConfig } from "./config.js";
import { hfTensorSpecs } from "./specs.js";
import { interleavedToHalf } from "./save-rope.js";
import { BpeTokenizer } from "../tokenizer/bpe.js";
import { encodeSentencePiece } from "../tokenizer/sentencepiece.js";
import { DTYPES, LINEAR_OPS, type DType, type LinearWeight, type Model, type ModelSource, type Tensor } from "./types.js";
import { SLORB_FILE } from "./slorb.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { denseWeight } from "../model/linear.js";

export { saveLlama2c } from "./save-llama2c.js";

export interface SaveHFOptions {
  /** stored dtype (default: the source's) */
  dtype?: DType;
  /** more files to write into the directory (name -> contents); they win over generated ones */
  extraFiles?: Record<string, string | Uint8Array>;
  /** replace an existing directory */
  force?: boolean;
}

/** Side files of an HF source directory carried over as they are. */
const HF_SIDE_FILES = ["tokenizer_config.json", "special_tokens_map.json", "generation_config.json"];

export function saveHF(model: Model, dir: string, opts: SaveHFOptions = {}): void {
  const dtype = opts.dtype ?? model.source.dtype;
  if (!(DTYPES as readonly string[]).includes(dtype)) throw new UsageError(`dtype ${dtype} is not one of ${DTYPES.join(", ")}`);
  if (fs.existsSync(dir) && !opts.force) throw outputExists(dir);
  const c = model.config;
  const w = model.weights;

  const files = new Map<string, string | Uint8Array>();
  files.set("config.json", JSON.stringify(toHFConfig(c, dtype, model.source.hfConfig), null, 2) + "\n");
  for (const [name, data] of tokenizerFiles(model)) files.set(name, data);
  for (const [name, data] of Object.entries(opts.extraFiles ?? {})) {
    if (name.includes("/") || name.includes("\\") || name.startsWith(".")) throw new UsageError(`extraFiles: "${name}" is not a plain file name`);
    files.set(name, data);
  }

  const tensors: TensorToWrite[] = hfTensorSpecs(c).map((s) => {
    const holder = (s.layer === undefined ? w : w.layers[s.layer]) as unknown as Record<string, Tensor | LinearWeight | undefined>;
    const t = holder[s.key];
    if (!t) throw new UsageError(`model has no ${s.layer === undefined ? s.key : `layer ${s.layer} ${s.key}`} tensor for "${s.name}"`);
    let data = denseWeight(model.wasm, t); // a compressed operator's dense values are rebuilt here, per tensor
    if (c.ropeLayout === "interleaved" && (s.key === "wq" || s.key === "wk")) {
      data = interleavedToHalf(data, t.shape[0] / c.headDim, c.headDim, c.dim); // heads of this layer
    }
    return { name: s.name, dtype, shape: s.shape, data };
  });

  // SLoRB add-ons the loader attached (src/model/slorb.ts) travel with the model (prune, compress, decompress)
  const slorbs = w.layers.flatMap((lw, l) => LINEAR_OPS.filter((op) => lw[op].slorb).map((op) => ({ l, op, sl: lw[op].slorb! })));
  atomicDir(dir, !!opts.force, (tmp) => {
    writeSafetensors(path.join(tmp, "model.safetensors"), tensors, { format: "pt" });
    if (slorbs.length) {
      writeSafetensors(
        path.join(tmp, SLORB_FILE),
        slorbs.map(({ l, op, sl }) => ({ name: `model.layers.${l}.${op}.slorb`, dtype: "F32" as const, shape: sl.s.shape, data: sl.s.data })),
        { k: String(slorbs[0].sl.k), formula: "y = W x + S (P x), (P x)[q] = sum of inputs q*k .. q*k+k-1" },
      );
    }
    for (const [name, data] of files) fs.writeFileSync(path.join(tmp, name), data);
  });
}

/** Tokenizer files for the HF directory of `model` (see sideFiles). */
function tokenizerFiles(model: Model): Map<string, string | Uint8Array> {
  return sideFiles(model.source, model.tokenizer, model.config.maxSeqLen);
}

/**
 * The side files an HF directory written from `source` holds: an HF source's tokenizer_config.json,
 * special_tokens_map.json, generation_config.json as they are, and the tokenizer's files (tokenizerFilesOf).
 */
export function sideFiles(source: ModelSource, tok: Tokenizer | undefined, maxSeqLen: number): Map<string, string | Uint8Array> {
  const out = new Map<string, string | Uint8Array>();
  if (source.format === "hf") {
    for (const f of HF_SIDE_FILES) {
      const p = path.join(source.path, f);
      if (fs.existsSync(p)) out.set(f, fs.readFileSync(p));
    }
  }
  if (tok) for (const [name, data] of tokenizerFilesOf(tok, maxSeqLen, out.has("tokenizer_config.json"))) out.set(name, data);
  return out;
}

/**
 * The files an HF model directory holds for tokenizer `tok`: tokenizer.json / tokenizer.model as they are, a
 * llama2.c tokenizer.bin converted to tokenizer.model (with a tokenizer_config.json unless `haveConfig`).
 */
export function tokenizerFilesOf(tok: Tokenizer, maxSeqLen: number, haveConfig = false): Map<string, string | Uint8Array> {
  const out = new Map<string, string | Uint8Array>();
  for (const f of tok.files) {
    const base = path.basename(f);
    if (base.endsWith(".json")) out.set(base === "tokenizer_config.json" ? base : "tokenizer.json", fs.readFileSync(f));
    else if (base.endsWith(".model")) out.set("tokenizer.model", fs.readFileSync(f));
    else if (base.endsWith(".bin") && tok instanceof BpeTokenizer) {
      out.set("tokenizer.model", encodeSentencePiece(tok));
      if (!haveConfig && !out.has("tokenizer_config.json")) {
        out.set(
          "tokenizer_config.json",
          JSON.stringify({ tokenizer_class: "LlamaTokenizer", add_bos_token: true, add_eos_token: false, bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>", legacy: true, model_max_length: maxSeqLen }, null, 2) + "\n",
        );
      }
    }
  }
  return out;
}

/** Build a directory at `<dir>.tmp-<pid>` with `fill`, then move it to `dir` (replacing it when `force`). */
export function atomicDir(dir: string, force: boolean, fill: (tmp: string) => void): void {
  const abs = path.resolve(dir);
  const tmp = `${abs}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    fill(tmp);
    if (fs.existsSync(abs)) {
      if (!force) throw outputExists(dir);
      const old = `${abs}.old-${process.pid}`;
      fs.renameSync(abs, old);
      fs.renameSync(tmp, abs);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, abs);
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
