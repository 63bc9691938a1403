/** @file Open a tokenizer file of any supported kind, by its name (Node: the file read here, parsed by ./from-bytes.ts). */
import * as fs from "node:fs";
import * as path from "node:path";
import { MissingFileError, UsageError } from "../errors.js";
import type { Tokenizer } from "./types.js";
import { tokenizerFromBytes, type TokenizerOptions } from "./from-bytes.js";
import type { BpeTokenizer } from "./bpe.js";
import type { HFJsonTokenizer } from "./hf.js";
import { parseLlama2cTokenizer } from "./llama2c.js";
import { parseSentencePiece } from "./sentencepiece.js";

export type { TokenizerOptions };

/** `*.json` -> HF tokenizer.json (+ tokenizer_config.json beside it), `*.model` -> SentencePiece, `*.bin` -> llama2.c tokenizer.bin. */
export function loadTokenizer(file: string, opts: TokenizerOptions = {}): Tokenizer {
  if (!fs.existsSync(file)) throw new MissingFileError(`tokenizer ${file} does not exist`);
  if (fs.statSync(file).isDirectory()) throw new UsageError(`tokenizer ${file} is a directory; name the tokenizer file`);
  const cfgPath = path.join(path.dirname(file), "tokenizer_config.json");
  const config = path.extname(file).toLowerCase() === ".json" && fs.existsSync(cfgPath) ? { file: cfgPath, bytes: fs.readFileSync(cfgPath) } : undefined;
  return tokenizerFromBytes(file, fs.readFileSync(file), opts, config);
}

/** A llama2.c tokenizer.bin file. */
export function loadLlama2cTokenizer(file: string, opts: TokenizerOptions = {}): BpeTokenizer {
  return parseLlama2cTokenizer(path.basename(file), fs.readFileSync(file), opts, [file]);
}

/** A SentencePiece tokenizer.model file. */
export function loadSentencePiece(file: string): BpeTokenizer {
  return parseSentencePiece(path.basename(file), fs.readFileSync(file), [file]);
}

/** A Hugging Face tokenizer.json file (and tokenizer_config.json beside it). */
export function loadHFTokenizer(file: string, opts: { bosId?: number; eosId?: number } = {}): HFJsonTokenizer {
  return loadTokenizer(file, opts) as HFJsonTokenizer;
}
