/**
 * @file Calibration data: the eval paragraph protocol (src/eval/text.ts) applied to `--calib`, first
 * `--nsamples` paragraphs, each with BOS, truncated at `--seqlen`. The token streams of a decoder layer's input
 * for all samples live in one arena block [totalTokens, dim] — one layer's activations, never the model's.
 */
import { createHash } from "node:crypto";
import { UsageError } from "../errors.js";
import { paragraphSequences } from "../eval/text.js";
import type { Tokenizer } from "../tokenizer/types.js";

export interface CalibrationSet {
  /** token ids of each sample (BOS first) */
  samples: number[][];
  /** start row of each sample in a [totalTokens, dim] stream */
  offsets: number[];
  totalTokens: number;
  /** describes the source for the report and the resume manifest */
  source: { file: string; sha256: string; nsamples: number; seqlen: number; paragraphsUsed: number };
}

export function calibrationSet(tok: Tokenizer, text: string, file: string, nsamples: number, seqlen: number): CalibrationSet {
  if (!(Number.isInteger(nsamples) && nsamples >= 1)) throw new UsageError(`--nsamples must be a positive integer, got ${nsamples}`);
  if (!(Number.isInteger(seqlen) && seqlen >= 2)) throw new UsageError(`--seqlen must be an integer ≥ 2, got ${seqlen}`);
  const samples = paragraphSequences(tok, text, nsamples, seqlen);
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
      paragraphsUsed: samples.length,
    },
  };
}
