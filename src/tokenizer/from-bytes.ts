/**
 * @file A tokenizer from its file's bytes, of any supported kind, by the file's name — on any platform (./load.ts
 * reads files in Node; src/web/ fetched or picked bytes). `*.json` → HF tokenizer.json (with the text of
 * tokenizer_config.json beside it, when there is one), `*.model` → SentencePiece, `*.bin` → llama2.c.
 */
import { ConfigError, UsageError } from "../errors.js";
import { baseName } from "../util/base-name.js";
import type { Tokenizer } from "./types.js";
import { parseLlama2cTokenizer } from "./llama2c.js";
import { parseSentencePiece } from "./sentencepiece.js";
import { HFJsonTokenizer } from "./hf.js";
import { utf8Text } from "./bytes.js";

export interface TokenizerOptions {
  /** the model's vocabulary size, checked against the tokenizer where the format allows */
  vocabSize?: number;
  bosId?: number;
  eosId?: number;
}

/** The kind of tokenizer a file name is (by extension), or undefined. */
export function tokenizerKind(name: string): "json" | "model" | "bin" | undefined {
  const m = /\.(json|model|bin)$/i.exec(name);
  return m ? (m[1]!.toLowerCase() as "json" | "model" | "bin") : undefined;
}

/**
 * `file` (its name decides the kind) holding `bytes`; `config` is tokenizer_config.json beside a tokenizer.json
 * (its path and bytes), when there is one.
 */
export function tokenizerFromBytes(file: string, bytes: Uint8Array, opts: TokenizerOptions = {}, config?: { file: string; bytes: Uint8Array }): Tokenizer {
  const name = baseName(file);
  switch (tokenizerKind(file)) {
    case "json":
      return new HFJsonTokenizer(utf8Text(bytes), config && utf8Text(config.bytes), config ? [file, config.file] : [file], opts);
    case "model":
      return parseSentencePiece(name, bytes, [file]);
    case "bin":
      return parseLlama2cTokenizer(name, bytes, opts, [file]);
    default:
      throw new UsageError(`tokenizer ${file}: unknown kind "${/\.[^./\\]*$/.exec(name)?.[0] ?? ""}" (expected tokenizer.json, *.model or *.bin)`);
  }
}

/**
 * The options a model's tokenizer is opened with (its BOS/EOS; a tokenizer.bin read to the model's vocabulary),
 * and the check that it fits the model: what both the Node loader and the browser's use.
 */
export function modelTokenizerOptions(file: string, c: { bosId: number; eosId: number; vocabSize: number }): TokenizerOptions {
  return { bosId: c.bosId, eosId: c.eosId, ...(tokenizerKind(file) === "bin" ? { vocabSize: c.vocabSize } : {}) };
}

export function checkTokenizerFits(file: string, tok: Tokenizer, vocabSize: number): Tokenizer {
  if (tok.vocabSize > vocabSize) {
    throw new ConfigError(`${baseName(file)} has ${tok.vocabSize} tokens, more than the model's vocab_size ${vocabSize}`);
  }
  return tok;
}
