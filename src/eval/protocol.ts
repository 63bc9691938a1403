/**
 * @file Perplexity protocols: how an evaluation text becomes the token sequences perplexity is taken on, and
 * from which position of each sequence the predictions count (`countFrom`: the index of the first token whose
 * prediction is scored; the tokens before it are context only).
 *
 * - `paragraphs` (./text.ts, the project's own; every perplexity quoted before issue 17 uses it): blank-line
 *   paragraphs, each encoded with BOS and truncated at ctx; every token after the BOS counts (countFrom 1).
 * - `windows`: the papers' WikiText-2 protocol (SparseGPT `datautils.get_wikitext2` + `llama_eval`, copied by
 *   Wanda's `eval_ppl_wikitext` and FISTAPruner). The test split joined by "\n\n" is tokenized once: our text
 *   files already are that joined text (the ../shared copy of wikitext-2-raw-test is exactly "\n\n".join of
 *   the dataset's rows, with CRLF line ends, which are read as LF here as the dataset has them). The LLaMA
 *   tokenizer puts one BOS at the very start of the text, none at later windows. Window i is tokens
 *   [i·ctx, (i+1)·ctx), for i < floor(N/ctx): the tail shorter than ctx is dropped. Within each window the
 *   first token is context only, so each window scores ctx−1 predictions (SparseGPT's
 *   exp(Σ_i loss_i·ctx / (n·ctx)), loss_i the mean over a window's ctx−1 shifted labels, is this same mean).
 * - `windows` with `stride` S: Hugging Face's sliding window ("Perplexity of fixed-length models"): windows
 *   begin at 0, S, 2S, … and end at min(begin+ctx, N); only the last trg_len = end − (previous end) labels of a
 *   window count (and a window's first token never: the model shifts labels by one), and the window that
 *   reaches N is the last, so the tail is kept. With S < ctx every token but the text's first is predicted
 *   exactly once; S = ctx is the windows protocol with the tail kept. (The page weights each window's mean loss
 *   by trg_len − 1, one fewer than the labels it averaged after the first window; we sum per-token NLLs, the
 *   per-token average the page intends.)
 *
 * `maxWindows` keeps the first N windows (a quick look at a long text, and fast tests).
 */
import { UsageError } from "../errors.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { paragraphSequences } from "./text.js";

export const PROTOCOLS = ["paragraphs", "windows"] as const;
export type ProtocolName = (typeof PROTOCOLS)[number];

export type EvalProtocol =
  | { protocol: "paragraphs"; ctx: number; paragraphs?: number }
  | { protocol: "windows"; ctx: number; stride?: number; maxWindows?: number };

/** The sequences of a protocol and, per sequence, the index of the first token whose prediction counts. */
export interface EvalSequences {
  sequences: number[][];
  countFrom: number[];
  /** the protocol as applied (ctx clamped to the model's context), for reports */
  protocol: EvalProtocol;
  /** windows: tokens of the whole text (BOS included) */
  textTokens?: number;
}

/** One window of a tokenized text: tokens [start, end), predictions counted from index `countFrom` of the window. */
export interface WindowSpan {
  start: number;
  end: number;
  countFrom: number;
}

/**
 * The windows over a text of `n` tokens: non-overlapping ctx windows without the tail when `stride` is
 * undefined, else Hugging Face's strided windows (1 ≤ stride ≤ ctx); at most `maxWindows` of them.
 */
export function windowSpans(n: number, ctx: number, stride?: number, maxWindows?: number): WindowSpan[] {
  const spans: WindowSpan[] = [];
  const cap = maxWindows ?? Infinity;
  if (stride === undefined) {
    for (let s = 0; s + ctx <= n && spans.length < cap; s += ctx) spans.push({ start: s, end: s + ctx, countFrom: 1 });
    return spans;
  }
  let prevEnd = 0;
  for (let s = 0; s < n && spans.length < cap; s += stride) {
    const end = Math.min(s + ctx, n);
    const trgLen = end - prevEnd;
    spans.push({ start: s, end, countFrom: Math.max(1, end - s - trgLen) });
    prevEnd = end;
    if (end === n) break;
  }
  return spans;
}

/** Check a protocol's numbers (flag names as the command spells them, e.g. prefix "eval-" for prune). */
export function checkProtocol(p: EvalProtocol, prefix = ""): void {
  const flag = (name: string) => `--${prefix}${name}`;
  const posInt = (v: number | undefined, name: string) => {
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw new UsageError(`${flag(name)} must be a positive integer, got ${v}`);
  };
  if (!(Number.isInteger(p.ctx) && p.ctx >= 2)) throw new UsageError(`--ctx must be an integer of at least 2, got ${p.ctx}`);
  if (p.protocol === "paragraphs") return posInt(p.paragraphs, "paragraphs");
  posInt(p.stride, "stride");
  posInt(p.maxWindows, "max-windows");
  if (p.stride !== undefined && p.stride > p.ctx) throw new UsageError(`${flag("stride")} ${p.stride} is larger than --ctx ${p.ctx}: tokens between windows would never be scored`);
}

/**
 * The protocol from a command's options, with conflicting ones refused: `--paragraphs` belongs to the
 * paragraph protocol, `--stride` and `--max-windows` to windows. `prefix` is "" for eval, "eval-" for prune
 * and bench methods (`--eval-protocol`, `--eval-paragraphs`, `--eval-stride`, `--eval-max-windows`).
 */
export function protocolFromOptions(
  o: { protocol?: string; paragraphs?: number; stride?: number; maxWindows?: number; ctx: number },
  prefix = "",
): EvalProtocol {
  const name = o.protocol ?? "paragraphs";
  if (!(PROTOCOLS as readonly string[]).includes(name)) throw new UsageError(`--${prefix}protocol ${name}: expected one of ${PROTOCOLS.join(", ")}`);
  let p: EvalProtocol;
  if (name === "paragraphs") {
    for (const [v, f] of [[o.stride, "stride"], [o.maxWindows, "max-windows"]] as const) {
      if (v !== undefined) throw new UsageError(`--${prefix}${f} applies to --${prefix}protocol windows (the protocol is paragraphs)`);
    }
    p = { protocol: "paragraphs", ctx: o.ctx, paragraphs: o.paragraphs };
  } else {
    if (o.paragraphs !== undefined) throw new UsageError(`--${prefix}paragraphs applies to --${prefix}protocol paragraphs; with windows, cap them with --${prefix}max-windows`);
    p = { protocol: "windows", ctx: o.ctx, stride: o.stride, maxWindows: o.maxWindows };
  }
  checkProtocol(p, prefix);
  return p;
}

/** The options of a command whose `--eval FILE` names a text (prune, bench methods), with the prefixed protocol flags. */
export interface EvalFlagOptions {
  eval?: string;
  evalProtocol?: string;
  evalParagraphs?: number;
  evalStride?: number;
  evalMaxWindows?: number;
  ctx: number;
}

/** The protocol of `--eval` (undefined without it; its protocol flags alone are refused). */
export function evalFlagProtocol(o: EvalFlagOptions): EvalProtocol | undefined {
  if (!o.eval) {
    for (const [v, f] of [[o.evalParagraphs, "paragraphs"], [o.evalStride, "stride"], [o.evalMaxWindows, "max-windows"]] as const) {
      if (v !== undefined) throw new UsageError(`--eval-${f} needs --eval FILE`);
    }
    return undefined;
  }
  return protocolFromOptions({ protocol: o.evalProtocol, paragraphs: o.evalParagraphs, stride: o.evalStride, maxWindows: o.evalMaxWindows, ctx: o.ctx }, "eval-");
}

/** `text` as sequences of `p` for `tok`, ctx clamped to the model's `maxSeqLen`. */
export function evalSequences(tok: Tokenizer, text: string, p: EvalProtocol, maxSeqLen: number, prefix = ""): EvalSequences {
  checkProtocol(p, prefix);
  const ctx = Math.min(p.ctx, maxSeqLen);
  if (p.protocol === "paragraphs") {
    const sequences = paragraphSequences(tok, text, p.paragraphs, ctx);
    return { sequences, countFrom: sequences.map(() => 1), protocol: { ...p, ctx } };
  }
  const stride = p.stride === undefined ? undefined : Math.min(p.stride, ctx);
  const ids = tok.encode(text.replace(/\r\n/g, "\n"), { bos: true });
  const spans = windowSpans(ids.length, ctx, stride, p.maxWindows);
  if (spans.length === 0) throw new UsageError(`the text has ${ids.length} tokens, fewer than one window of --ctx ${ctx} (use a smaller --ctx, or --${prefix}stride)`);
  return {
    sequences: spans.map((s) => ids.slice(s.start, s.end)),
    countFrom: spans.map((s) => s.countFrom),
    protocol: { ...p, ctx, stride },
    textTokens: ids.length,
  };
}

/** The protocol as applied, as JSON fields of a report (paragraph reports keep their `paragraphs` and `ctx` keys). */
export type ProtocolReport =
  | { protocol: "paragraphs"; paragraphs: number | null; ctx: number }
  | { protocol: "windows"; ctx: number; stride: number | null; maxWindows: number | null; windows: number; textTokens: number };

export function describeProtocol(e: EvalSequences): ProtocolReport {
  const p = e.protocol;
  return p.protocol === "paragraphs"
    ? { protocol: p.protocol, paragraphs: p.paragraphs ?? null, ctx: p.ctx }
    : { protocol: p.protocol, ctx: p.ctx, stride: p.stride ?? null, maxWindows: p.maxWindows ?? null, windows: e.sequences.length, textTokens: e.textTokens ?? 0 };
}

/** An evaluation text for a job (prune, structured prune): the text, its file name, and the protocol. */
export interface EvalText {
  text: string;
  file: string;
  protocol: EvalProtocol;
}

/** "300 paragraphs" / "1591 windows of 512 (stride 256)": what the sequences are, for one-line reports. */
export function protocolLabel(e: EvalSequences): string {
  const p = e.protocol;
  return p.protocol === "paragraphs"
    ? `${e.sequences.length} paragraphs`
    : `${e.sequences.length} windows of ${p.ctx}${p.stride !== undefined ? ` (stride ${p.stride})` : ""}`;
}
