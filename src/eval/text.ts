/**
 * @file The paragraph protocol shared by eval and calibration (keep it exactly: perplexities are compared
 * across issues with it): split on blank lines (a line break, optional whitespace, a line break), trim each
 * paragraph, drop empty ones, keep the first N; each is encoded with BOS and truncated at `ctx` tokens.
 */
import { readFileSync, statSync } from "node:fs";
import { MissingFileError, UsageError } from "../errors.js";
import type { Tokenizer } from "../tokenizer/types.js";

export function splitParagraphs(text: string): string[] {
  return text
    .split(/\r?\n\s*\n/)
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}

export function readTextFile(path: string, what: string): string {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UsageError(`${path}: ${what} must be a text file, found a directory`);
    size = st.size;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new MissingFileError(`${path}: ${what} not found`);
  }
  const text = readFileSync(path, "utf8");
  if (size === 0 || splitParagraphs(text).length === 0) throw new UsageError(`${path}: ${what} has no text (no non-empty paragraph)`);
  return text;
}

/** Token sequences of the first `limit` paragraphs of `text`, each with BOS, truncated at `ctx` tokens. */
export function paragraphSequences(tok: Tokenizer, text: string, limit: number | undefined, ctx: number): number[][] {
  if (!(ctx >= 2)) throw new UsageError(`--ctx must be at least 2, got ${ctx}`);
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1)) throw new UsageError(`paragraph count must be a positive integer, got ${limit}`);
  const paras = splitParagraphs(text);
  const chosen = limit === undefined ? paras : paras.slice(0, limit);
  return chosen.map((p) => tok.encode(p, { bos: true }).slice(0, ctx));
}
