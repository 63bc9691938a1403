/**
 * @file Calibration data from `--calib`, by `--calib-protocol`:
 *  - `paragraphs` (default): the eval paragraph protocol (src/eval/text.ts), first `--nsamples` paragraphs, each
 *    with BOS, truncated at `--seqlen`;
 *  - `windows`: SparseGPT's / Wanda's sampling (`datautils.get_wikitext2`, `get_c4`): the text tokenized once
 *    (one BOS at its start), then `--nsamples` windows of exactly `--seqlen` tokens at seeded random starts
 *    i = randint(0, N − seqlen − 1) (mulberry32 of `--calib-seed`, not Python's random: the same kind of sample,
 *    not the same tokens), so every sample has the papers' length.
 */
import { createHash } from "node:crypto";
import { UsageError } from "../errors.js";
import { paragraphSequences } from "../eval/text.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { mulberry32 } from "../util/rng.js";

export interface CalibrationSet {
  /** token ids of each sample (BOS first) */
  samples: number[][];
  /** start row of each sample in a [totalTokens, dim] stream */
  offsets: number[];
  totalTokens: number;
  /** describes the source for the report and the resume manifest */
  source: { file: string; sha256: string; nsamples: number; seqlen: number; paragraphsUsed: number; protocol: CalibProtocol; seed?: number };
}

export const CALIB_PROTOCOLS = ["paragraphs", "windows"] as const;
export type CalibProtocol = (typeof CALIB_PROTOCOLS)[number];

export function calibrationSet(
  tok: Tokenizer, text: string, file: string, nsamples: number, seqlen: number, protocol: CalibProtocol = "paragraphs", seed = 0,
): CalibrationSet {
  if (!(Number.isInteger(nsamples) && nsamples >= 1)) throw new UsageError(`--nsamples must be a positive integer, got ${nsamples}`);
  if (!(Number.isInteger(seqlen) && seqlen >= 2)) throw new UsageError(`--seqlen must be an integer ≥ 2, got ${seqlen}`);
  if (!(CALIB_PROTOCOLS as readonly string[]).includes(protocol)) throw new UsageError(`--calib-protocol ${protocol}: expected one of ${CALIB_PROTOCOLS.join(", ")}`);
  const samples = protocol === "paragraphs" ? paragraphSequences(tok, text, nsamples, seqlen) : randomWindows(tok, text, file, nsamples, seqlen, seed);
  if (samples.length === 0) throw new UsageError(`${file}: calibration text has no paragraphs`);
  const offsets: number[] = [];
  let total = 0;
  for (const s of samples) {
    offsets.push(total);
    total += s.length;
  }
  return {
    samples,
    offsets,
    totalTokens: total,
    source: {
      file,
      sha256: createHash("sha256").update(text).digest("hex"),
      nsamples,
      seqlen,
      paragraphsUsed: protocol === "paragraphs" ? samples.length : 0,
      protocol,
      ...(protocol === "windows" ? { seed } : {}),
    },
  };
}

/** `nsamples` windows of `seqlen` tokens at seeded random starts of the tokenized text. */
function randomWindows(tok: Tokenizer, text: string, file: string, nsamples: number, seqlen: number, seed: number): number[][] {
  const ids = tok.encode(text.replace(/\r\n/g, "\n"), { bos: true });
  if (ids.length < seqlen + 1) throw new UsageError(`${file}: calibration text has ${ids.length} tokens, fewer than one window of --seqlen ${seqlen} + 1`);
  const rand = mulberry32(seed);
  return Array.from({ length: nsamples }, () => {
    const i = Math.floor(rand() * (ids.length - seqlen)); // randint(0, N − seqlen − 1)
    return ids.slice(i, i + seqlen);
  });
}
