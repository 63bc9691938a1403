/**
 * @file Loading a model in a browser: its files (./files.ts) read into memory, opened through the same
 * WeightFiles as in Node (src/model/hf-weights.ts over in-memory safetensors, src/model/llama2c-weights.ts over
 * the .bin's bytes: every header check is the same), read resident into the kernels' memory, with the tokenizer
 * beside it (tokenizer.json + tokenizer_config.json or tokenizer.model for a directory; tokenizer.bin or the
 * first tok*.bin for a .bin) unless one is named.
 */
import { MissingFileError, notFound } from "../errors.js";
import { assembleCheckpoint, parseIndex, safetensorsFromBytes, INDEX_FILE, SINGLE_FILE, type SafetensorsFile } from "../io/safetensors-format.js";
import { hfWeights, parseConfigJson } from "../model/hf-weights.js";
import { llama2cWeights } from "../model/llama2c-weights.js";
import { readResident } from "../model/residency.js";
import type { Model } from "../model/types.js";
import type { WeightFile, WeightsOption } from "../model/weight-file.js";
import type { IntActivationBits } from "../model/linear.js";
import { checkTokenizerFits, modelTokenizerOptions, tokenizerFromBytes } from "../tokenizer/from-bytes.js";
import { utf8Text } from "../tokenizer/bytes.js";
import type { Wasm } from "../wasm/memory.js";
import { createBrowserWasm, type BrowserKernels } from "./kernels.js";
import { modelFiles, type BrowserModelSource, type FilesOptions, type ModelFiles } from "./files.js";

export interface BrowserLoadOptions extends FilesOptions {
  /** the tokenizer's file name among the model's files (default: found beside the weights) */
  tokenizer?: string;
  /**
   * the kernels (./kernels.ts): "auto" (default: the relaxed-SIMD build where the browser supports it, else the
   * baseline), "baseline" | "relaxed", or a module of either build by URL or compiled
   */
  kernels?: BrowserKernels;
  /** the instance to read the weights into (default: a new one) */
  wasm?: Wasm;
  /**
   * how the linear weights are held (as the Node library's `weights`): "stored" each tensor in its stored
   * precision packed for the inference kernels, quantized operators (pack- / int-quantized) on the integer
   * kernels — a W4A8 model takes ~1/8 of its f32 bytes; "f32" | "bf16" | "f16" packed in that dtype; "device"
   * what WebGPU reads (row-major f32, quantized operators in their integer layouts); absent: row-major f32
   */
  weights?: WeightsOption;
  /** 8 / 16: int8 / int4 operators on int8 / int16 activations; absent: as the checkpoint declares */
  intActivations?: IntActivationBits;
}

const isTokenizerBin = (n: string): boolean => n === "tokenizer.bin" || /^tok.*\.bin$/i.test(n);

async function need(files: ModelFiles, name: string, what: string): Promise<Uint8Array> {
  const b = await files.read(name);
  if (!b) throw new MissingFileError(`${files.label}: ${name} not found (${what})`);
  return b;
}

/** The llama2.c checkpoint among the files (a .bin that is no tokenizer), when there is no config.json. */
function llama2cMain(files: ModelFiles): string | undefined {
  const main = files.main ?? files.names?.find((n) => /\.bin$/i.test(n) && !isTokenizerBin(n));
  return main && /\.bin$/i.test(main) && !(files.names ?? []).includes("config.json") ? main : undefined;
}

/** The WeightFile of a model's files (read into memory). */
export async function openBrowserWeights(files: ModelFiles): Promise<WeightFile> {
  const main = llama2cMain(files);
  if (main) {
    const bytes = await need(files, main, "the llama2.c checkpoint");
    return llama2cWeights(main, bytes.length, (dst, pos) => dst.set(bytes.subarray(pos, pos + dst.length)), () => {});
  }
  const config = await files.read("config.json");
  if (!config) throw new MissingFileError(`${files.label}: config.json not found (a Hugging Face model directory needs config.json; a llama2.c model is its .bin file)`);
  const hfConfig = parseConfigJson(utf8Text(config));
  // read the weights before the WeightFile checks them: an in-memory checkpoint
  const single = await files.read(SINGLE_FILE);
  let shards: SafetensorsFile[];
  let weightMap: Map<string, string> | undefined;
  if (single) shards = [safetensorsFromBytes(SINGLE_FILE, single)];
  else {
    const index = await files.read(INDEX_FILE);
    if (!index) throw notFound("model weights", [`${files.label} ${SINGLE_FILE}`, `${files.label} ${INDEX_FILE}`]);
    weightMap = parseIndex(utf8Text(index));
    shards = [];
    for (const s of [...new Set(weightMap.values())].sort()) shards.push(safetensorsFromBytes(s, await need(files, s, `a shard ${INDEX_FILE} lists`)));
  }
  return hfWeights(files.label, hfConfig, () => assembleCheckpoint(shards, weightMap, (p) => p));
}

/** The tokenizer file of a model's files: named, or found beside the weights. */
async function readTokenizer(files: ModelFiles, named?: string): Promise<{ name: string; bytes: Uint8Array; config?: { file: string; bytes: Uint8Array } }> {
  let looked: string[];
  if (named) looked = [named];
  else if (!llama2cMain(files)) looked = ["tokenizer.json", "tokenizer.model"];
  else looked = ["tokenizer.bin", ...(files.names ?? []).filter((n) => /^tok.*\.bin$/i.test(n)).sort()];
  for (const name of looked) {
    const bytes = await files.read(name);
    if (!bytes) continue;
    const cfg = name.endsWith(".json") ? await files.read("tokenizer_config.json") : undefined;
    return { name, bytes, config: cfg && { file: "tokenizer_config.json", bytes: cfg } };
  }
  throw notFound("tokenizer", looked.map((n) => `${files.label} ${n}`), files.names ? "" : "name it: { tokenizer: FILE }");
}

/** A model from `source` (see ./files.ts), every weight in the kernels' memory, with its tokenizer. */
export async function loadBrowserModel(source: BrowserModelSource, opts: BrowserLoadOptions = {}): Promise<Model> {
  const files = await modelFiles(source, opts);
  const tok = await readTokenizer(files, opts.tokenizer); // small, and a missing one fails before the weights are read
  const weights = await openBrowserWeights(files);
  try {
    const model = readResident(weights, opts.wasm ?? (await createBrowserWasm(opts.kernels)), opts.weights, false, opts.intActivations);
    const c = model.config;
    model.tokenizer = checkTokenizerFits(tok.name, tokenizerFromBytes(tok.name, tok.bytes, modelTokenizerOptions(tok.name, c), tok.config), c.vocabSize);
    return model;
  } finally {
    weights.close();
  }
}
