/** @file Open a tokenizer file of any supported kind, by its name. */
import * as fs from "node:fs";
import * as path from "node:path";
import { MissingFileError, UsageError } from "../errors.js";
import type { Tokenizer } from "./types.js";
import { loadLlama2cTokenizer } from "./llama2c.js";
import { loadSentencePiece } from "./sentencepiece.js";
import { loadHFTokenizer } from "./hf.js";

export interface TokenizerOptions {
  /** the model's vocabulary size, checked against the tokenizer where the format allows */
  vocabSize?: number;
  bosId?: number;
  eosId?: number;
}

/** `*.json` -> HF tokenizer.json, `*.model` -> SentencePiece, `*.bin` -> llama2.c tokenizer.bin. */
export function loadTokenizer(file: string, opts: TokenizerOptions = {}): Tokenizer {
  if (!fs.existsSync(file)) throw new MissingFileError(`tokenizer ${file} does not exist`);
  if (fs.statSync(file).isDirectory()) throw new UsageError(`tokenizer ${file} is a directory; name the tokenizer file`);
  const ext = path.extname(file).toLowerCase();
  switch (ext) {
    case ".json":
      return loadHFTokenizer(file, opts);
    case ".model":
      return loadSentencePiece(file);
    case ".bin":
      return loadLlama2cTokenizer(file, opts);
    default:
      throw new UsageError(`tokenizer ${file}: unknown kind "${ext}" (expected tokenizer.json, *.model or *.bin)`);
  }
}
