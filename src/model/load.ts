/**
 * @file Opening a model: a `.bin` file is a llama2.c checkpoint, a directory a Hugging Face one (dense or
 * compressed). `loadModel` reads every weight into the arena (a resident Model: generation, training,
 * structured pruning, compress); `openStore` decides by size (./residency.ts): resident when the weights fit the
 * residency budget of the WebAssembly memory, else streamed one decoder layer at a time (pruning, eval, inspect).
 * Both find the tokenizer (an explicit path wins; else beside the model) and check it fits the vocabulary.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { MissingFileError, UsageError, notFound } from "../errors.js";
import { createWasm, type Wasm } from "../wasm/runtime.js";
import { loadTokenizer } from "../tokenizer/load.js";
import { checkTokenizerFits, modelTokenizerOptions } from "../tokenizer/from-bytes.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { openLlama2cWeights } from "./load-llama2c.js";
import { openHFWeights } from "./load-hf.js";
import type { Model, ModelConfig } from "./types.js";
import { attachSlorb } from "./slorb.js";
import type { IntActivationBits } from "./linear.js";
import type { WeightFile, WeightsOption } from "./weight-file.js";
import { readResident, residentBytes, residentStore, sourceOf, streamedStore, type ModelStore } from "./residency.js";

export { WASM32_LIMIT, residentBytes } from "./residency.js";

export interface LoadOptions {
  /** tokenizer file to use instead of the one found beside the model */
  tokenizer?: string;
  /** the WASM instance whose arena receives the weights (a new one by default) */
  wasm?: Wasm;
  /** false: load without a tokenizer when none is found (e.g. for `inspect`); default true */
  requireTokenizer?: boolean;
  /**
   * inference commands: linear weights packed once for the kernels, in this dtype (./weight-file.ts
   * WeightsOption); absent: row-major f32 (pruning, training). A streamed store ignores it (layers stay f32).
   */
  weights?: WeightsOption;
  /**
   * generate: an untied embedding table is held in host memory, outside the 4 GiB WebAssembly memory (its rows
   * are only copied into the arena per token; no kernel reads it): a 7B-class model's 0.5 GB of f32 rows leave
   * the arena. Its `ptr` is -1, so such a model is never described to worker threads (eval's workers refuse it).
   */
  hostEmbedding?: boolean;
  /**
   * inference commands (`--int-activations`): how the int8 and int4 operators held in dense panels round their
   * activations. Absent: as the checkpoint's quantization_config declares (int8 where a config group has
   * dynamic int8 input_activations, upstream's W4A8 / W8A8; else int16). 8: int8 for all (W8A8 / W4A8: with
   * relaxed SIMD about 1.2x / 2x the int16 kernels' speed, each activation off by up to 2^-8 of its block's
   * largest magnitude instead of 2^-16; the baseline build gives the same results at the int16 speed); a model
   * without such operators is refused. 16: int16 for all.
   */
  intActivations?: IntActivationBits;
}


/**
 * Arena bytes of weights up to which `openStore` keeps a model resident: the rest of the 4 GiB is left for the
 * work (activations, Gram matrices, a method's scratch).
 */
export const RESIDENT_BUDGET = 2.5 * 1024 ** 3;

/** Open the model file(s) at `modelPath` (headers only) and resolve its tokenizer file. */
export function openWeights(modelPath: string, opts: Pick<LoadOptions, "tokenizer" | "requireTokenizer"> = {}): { file: WeightFile; tokFile?: string } {
  if (!fs.existsSync(modelPath)) throw new MissingFileError(`model ${modelPath} does not exist`);
  const isDir = fs.statSync(modelPath).isDirectory();
  if (!isDir && path.extname(modelPath).toLowerCase() !== ".bin") {
    throw new UsageError(`model ${modelPath}: expected a llama2.c .bin file or a Hugging Face model directory`);
  }
  // Resolve the tokenizer before reading weights, so a missing one fails fast.
  if (opts.tokenizer !== undefined && !fs.existsSync(opts.tokenizer)) throw new MissingFileError(`tokenizer ${opts.tokenizer} does not exist`);
  const tokFile = opts.tokenizer ?? findTokenizer(modelPath, isDir, opts.requireTokenizer ?? true);
  return { file: isDir ? openHFWeights(modelPath) : openLlama2cWeights(modelPath), tokFile };
}

/**
 * Read a model into the arena (resident; ./residency.ts `readResident`). A model whose weights do not fit the
 * 4 GiB WebAssembly memory is refused with its size and what would make it fit.
 */
export async function loadModel(modelPath: string, opts: LoadOptions = {}): Promise<Model> {
  const { file, tokFile } = openWeights(modelPath, opts);
  try {
    const model = readResident(file, opts.wasm ?? createWasm(), opts.weights, !!opts.hostEmbedding, opts.intActivations);
    if (file.format === "hf") attachSlorb(model, modelPath); // slorb.safetensors of a model trained with --slorb
    if (tokFile) model.tokenizer = openTokenizer(tokFile, model.config);
    return model;
  } finally {
    file.close();
  }
}

export interface StoreOptions extends LoadOptions {
  /** "auto" (default): resident when the weights fit `budget`, else streamed */
  residency?: "auto" | "resident" | "streamed";
  /** arena bytes of weights up to which "auto" keeps a model resident (default RESIDENT_BUDGET) */
  budget?: number;
}

/** Open a model resident or streamed, by size (see the file header). */
export async function openStore(modelPath: string, opts: StoreOptions = {}): Promise<ModelStore> {
  const mode = opts.residency ?? "auto";
  const { file, tokFile } = openWeights(modelPath, opts);
  let keepOpen = false;
  try {
    const resident = mode === "resident" || (mode === "auto" && residentBytes(file, opts.weights) <= (opts.budget ?? RESIDENT_BUDGET));
    if (resident) {
      file.close();
      return residentStore(await loadModel(modelPath, opts));
    }
    if (opts.intActivations === 8) {
      throw new UsageError(`${modelPath}: --int-activations 8 needs the model resident (a streamed store reads its layers as f32, not as integer codes); pass --residency resident`);
    }
    const tokenizer = tokFile ? openTokenizer(tokFile, file.config) : undefined;
    const store = streamedStore(file, opts.wasm ?? createWasm(), sourceOf(file), tokenizer);
    keepOpen = true;
    return store;
  } finally {
    if (!keepOpen) file.close();
  }
}

function openTokenizer(file: string, c: ModelConfig): Tokenizer {
  return checkTokenizerFits(file, loadTokenizer(file, modelTokenizerOptions(file, c)), c.vocabSize);
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
