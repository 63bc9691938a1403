/**
 * @file loadModel: a `.bin` file is a llama2.c checkpoint, a directory a Hugging Face one. Also finds the
 * tokenizer (an explicit path wins; else beside the model) and checks it fits the model's vocabulary.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, MissingFileError, UsageError, notFound } from "../errors.js";
import { createWasm, type Wasm } from "../wasm/runtime.js";
import { loadTokenizer } from "../tokenizer/load.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { loadLlama2cWeights } from "./load-llama2c.js";
import { loadHFWeights } from "./load-hf.js";
import { isCompressedDir, loadCompressedWeights } from "../model/compressed.js";
import type { Model, ModelConfig } from "./types.js";
import { attachSlorb } from "./slorb.js";

export interface LoadOptions {
  /** tokenizer file to use instead of the one found beside the model */
  tokenizer?: string;
  /** the WASM instance whose arena receives the weights (a new one by default) */
  wasm?: Wasm;
  /** false: load without a tokenizer when none is found (e.g. for `inspect`); default true */
  requireTokenizer?: boolean;
}

export async function loadModel(modelPath: string, opts: LoadOptions = {}): Promise<Model> {
  if (!fs.existsSync(modelPath)) throw new MissingFileError(`model ${modelPath} does not exist`);
  const isDir = fs.statSync(modelPath).isDirectory();
  if (!isDir && path.extname(modelPath).toLowerCase() !== ".bin") {
    throw new UsageError(`model ${modelPath}: expected a llama2.c .bin file or a Hugging Face model directory`);
  }
  // Resolve the tokenizer before reading weights, so a missing one fails fast.
  if (opts.tokenizer !== undefined && !fs.existsSync(opts.tokenizer)) throw new MissingFileError(`tokenizer ${opts.tokenizer} does not exist`);
  const tokFile = opts.tokenizer ?? findTokenizer(modelPath, isDir, opts.requireTokenizer ?? true);
  const wasm = opts.wasm ?? createWasm();
  let model: Model;
  if (isDir) {
    const hf = isCompressedDir(modelPath) ? loadCompressedWeights(modelPath, wasm) : loadHFWeights(modelPath, wasm);
    model = { config: hf.config, weights: hf.weights, wasm, source: { path: modelPath, format: "hf", dtype: hf.dtype, hfConfig: hf.hfConfig } };
    attachSlorb(model, modelPath); // slorb.safetensors of a model trained with --slorb
  } else {
    const { config, weights } = loadLlama2cWeights(modelPath, wasm);
    model = { config, weights, wasm, source: { path: modelPath, format: "llama2c", dtype: "F32" } };
  }
  if (tokFile) model.tokenizer = openTokenizer(tokFile, model.config);
  return model;
}

function openTokenizer(file: string, c: ModelConfig): Tokenizer {
  const tok = loadTokenizer(file, { bosId: c.bosId, eosId: c.eosId, ...(path.extname(file) === ".bin" ? { vocabSize: c.vocabSize } : {}) });
  if (tok.vocabSize > c.vocabSize) {
    throw new ConfigError(`${path.basename(file)} has ${tok.vocabSize} tokens, more than the model's vocab_size ${c.vocabSize}`);
  }
  return tok;
}

/**
 * The tokenizer beside a model: for a .bin, `tokenizer.bin`, else the first (sorted) `tok*.bin` in its
 * directory; for a directory, tokenizer.json, else tokenizer.model.
 */
export function findTokenizer(modelPath: string, isDir: boolean, required: boolean): string | undefined {
  let looked: string[];
  if (isDir) {
    looked = [path.join(modelPath, "tokenizer.json"), path.join(modelPath, "tokenizer.model")];
    const hit = looked.find((f) => fs.existsSync(f));
    if (hit) return hit;
  } else {
    const dir = path.dirname(modelPath);
    const plain = path.join(dir, "tokenizer.bin");
    if (fs.existsSync(plain)) return plain;
    const self = path.resolve(modelPath);
    const toks = fs
      .readdirSync(dir)
      .filter((f) => /^tok.*\.bin$/i.test(f) && path.resolve(dir, f) !== self)
      .sort();
    if (toks.length) return path.join(dir, toks[0]!);
    looked = [plain, path.join(dir, "tok*.bin")];
  }
  if (!required) return undefined;
  throw notFound("tokenizer", looked, "pass --tokenizer <file>");
}
