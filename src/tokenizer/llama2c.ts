/**
 * @file llama2.c tokenizer.bin: int32 max_token_length, then per token: float32 score, int32 length, bytes
 * (little-endian). The vocabulary size is not stored: the file is read to its end (and checked against the
 * model's vocab_size by the caller when known).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "../errors.js";
import { BpeTokenizer } from "./bpe.js";

export function loadLlama2cTokenizer(file: string, opts: { vocabSize?: number; bosId?: number; eosId?: number } = {}): BpeTokenizer {
  const name = path.basename(file);
  const buf = fs.readFileSync(file);
  if (buf.length < 4) throw new FormatError(name, `file is ${buf.length} bytes, too short for the max_token_length header`);
  const maxLen = buf.readInt32LE(0);
  if (maxLen <= 0 || maxLen > 1 << 16) throw new FormatError(name, `max_token_length is ${maxLen}, expected 1..65536`);
  const pieces: string[] = [];
  const scores: number[] = [];
  let off = 4;
  while (off < buf.length && (opts.vocabSize === undefined || pieces.length < opts.vocabSize)) {
    if (off + 8 > buf.length) throw new FormatError(name, `token ${pieces.length}: header cut at byte ${off} of ${buf.length}`);
    const score = buf.readFloatLE(off);
    const len = buf.readInt32LE(off + 4);
    off += 8;
    if (len < 0 || len > maxLen) throw new FormatError(name, `token ${pieces.length} has length ${len}, outside 0..max_token_length (${maxLen})`);
    if (off + len > buf.length) throw new FormatError(name, `token ${pieces.length} needs bytes [${off},${off + len}) but the file has ${buf.length}`);
    pieces.push(buf.toString("latin1", off, off + len));
    scores.push(score);
    off += len;
  }
  if (opts.vocabSize !== undefined && pieces.length !== opts.vocabSize) {
    throw new FormatError(name, `has ${pieces.length} tokens, the model's vocab_size is ${opts.vocabSize}`);
  }
  if (off !== buf.length) throw new FormatError(name, `${buf.length - off} trailing bytes after ${pieces.length} tokens`);
  if (pieces.length === 0) throw new FormatError(name, "has no tokens");
  return new BpeTokenizer(pieces, scores, { bosId: opts.bosId ?? 1, eosId: opts.eosId ?? 2, files: [file] });
}

/** Serialize pieces/scores as tokenizer.bin (used by tests and by exporters). */
export function encodeLlama2cTokenizer(pieces: readonly string[], scores: ArrayLike<number>): Buffer {
  const bufs = pieces.map((p) => Buffer.from(p, "latin1"));
  const out = Buffer.alloc(4 + bufs.reduce((a, b) => a + 8 + b.length, 0));
  out.writeInt32LE(Math.max(1, ...bufs.map((b) => b.length)), 0);
  let off = 4;
  bufs.forEach((b, i) => {
    out.writeFloatLE(scores[i]!, off);
    out.writeInt32LE(b.length, off + 4);
    b.copy(out, off + 8);
    off += 8 + b.length;
  });
  return out;
}
