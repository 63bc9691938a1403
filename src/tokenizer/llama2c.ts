/**
 * @file llama2.c tokenizer.bin: int32 max_token_length, then per token: float32 score, int32 length, bytes
 * (little-endian). The vocabulary size is not stored: the file is read to its end (and checked against the
 * model's vocab_size by the caller when known). Platform-free: parsed from bytes (./load.ts reads the file).
 */
import { FormatError } from "../errors.js";
import { BpeTokenizer } from "./bpe.js";
import { latin1, latin1Bytes } from "./bytes.js";

/** A tokenizer.bin's bytes (`name` in messages; `files` where it came from). */
export function parseLlama2cTokenizer(name: string, buf: Uint8Array, opts: { vocabSize?: number; bosId?: number; eosId?: number } = {}, files: string[] = [name]): BpeTokenizer {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.length < 4) throw new FormatError(name, `file is ${buf.length} bytes, too short for the max_token_length header`);
  const maxLen = view.getInt32(0, true);
  if (maxLen <= 0 || maxLen > 1 << 16) throw new FormatError(name, `max_token_length is ${maxLen}, expected 1..65536`);
  const pieces: string[] = [];
  const scores: number[] = [];
  let off = 4;
  while (off < buf.length && (opts.vocabSize === undefined || pieces.length < opts.vocabSize)) {
    if (off + 8 > buf.length) throw new FormatError(name, `token ${pieces.length}: header cut at byte ${off} of ${buf.length}`);
    const score = view.getFloat32(off, true);
    const len = view.getInt32(off + 4, true);
    off += 8;
    if (len < 0 || len > maxLen) throw new FormatError(name, `token ${pieces.length} has length ${len}, outside 0..max_token_length (${maxLen})`);
    if (off + len > buf.length) throw new FormatError(name, `token ${pieces.length} needs bytes [${off},${off + len}) but the file has ${buf.length}`);
    pieces.push(latin1(buf, off, off + len));
    scores.push(score);
    off += len;
  }
  if (opts.vocabSize !== undefined && pieces.length !== opts.vocabSize) {
    throw new FormatError(name, `has ${pieces.length} tokens, the model's vocab_size is ${opts.vocabSize}`);
  }
  if (off !== buf.length) throw new FormatError(name, `${buf.length - off} trailing bytes after ${pieces.length} tokens`);
  if (pieces.length === 0) throw new FormatError(name, "has no tokens");
  return new BpeTokenizer(pieces, scores, { bosId: opts.bosId ?? 1, eosId: opts.eosId ?? 2, files });
}

/** Serialize pieces/scores as tokenizer.bin (used by tests and by exporters). */
export function encodeLlama2cTokenizer(pieces: readonly string[], scores: ArrayLike<number>): Uint8Array {
  const bufs = pieces.map((p) => latin1Bytes(p));
  const out = new Uint8Array(4 + bufs.reduce((a, b) => a + 8 + b.length, 0));
  const view = new DataView(out.buffer);
  view.setInt32(0, Math.max(1, ...bufs.map((b) => b.length)), true);
  let off = 4;
  bufs.forEach((b, i) => {
    view.setFloat32(off, scores[i]!, true);
    view.setInt32(off + 4, b.length, true);
    out.set(b, off + 8);
    off += 8 + b.length;
  });
  return out;
}
