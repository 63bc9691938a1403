/**
 * @file Text generation with a KV cache, as llama2.c's `generate`: the prompt (with BOS) is prefilled in one
 * batched forward, then one token per step. As in run.c, `steps` counts forward positions (BOS included, at
 * most the model's context): position p yields token p+1, so the sequence ends at steps+1 tokens, or earlier
 * when the model emits BOS. Bytes are streamed through a UTF-8 decoder. `generateTokens` yields token by token;
 * `generate` runs it to the end.
 */
import { UsageError } from "../errors.js";
import { createRunState, forward } from "../model/forward.js";
import type { LinearWeight, Model } from "../model/types.js";
import { Sampler } from "./sampler.js";

export interface GenerateOptions {
  prompt: string;
  steps: number;
  temperature: number;
  topP: number;
  seed: number;
  /** called with each piece of text as soon as it is complete UTF-8 */
  onText?: (text: string) => void;
  /** the one-position GEMV split over threads (src/generate/gemv.ts `gemvHelper`; same tokens) */
  gemv?: (w: LinearWeight, x: number, y: number, scratch: number, scratchBytes: number) => boolean;
}

/**
 * The sampling options of the library's `generate`, in Node (src/api GenerateOptions) and in a browser
 * (src/web BrowserGenerateOptions): each optional, its default in `withSamplingDefaults`.
 */
export interface SamplingOptions {
  /** default "" (BOS only) */
  prompt?: string;
  /** positions, BOS and prompt included, as llama2.c's -n (default 256, at most the model's context) */
  steps?: number;
  /** 0 = greedy (default 1) */
  temperature?: number;
  /** nucleus mass, 1 = off (default 0.9) */
  topP?: number;
  /** default 42 */
  seed?: number;
  /** stops the generation between two tokens */
  signal?: AbortSignal;
}

/** The sampling options with their defaults filled in (the signal is left out). */
export function withSamplingDefaults(o: SamplingOptions): Pick<GenerateOptions, "prompt" | "steps" | "temperature" | "topP" | "seed"> {
  return { prompt: o.prompt ?? "", steps: o.steps ?? 256, temperature: o.temperature ?? 1, topP: o.topP ?? 0.9, seed: o.seed ?? 42 };
}

export interface GenerateResult {
  text: string;
  tokens: number[];
  promptTokens: number;
  generatedTokens: number;
  seconds: number;
  tokensPerSecond: number;
}

/** One token of a generation, as it is produced: the prompt's own tokens first (run.c prints them), then new ones. */
export interface GeneratedToken {
  id: number;
  /** the text this token completes (UTF-8 streamed: "" while a character spans several byte tokens) */
  text: string;
  /** true for the prompt's tokens (after BOS), false for generated ones */
  prompt: boolean;
}

/** Check generation options (the CLI flags they come from are named in the messages). */
export function checkGenerateOptions(opts: Pick<GenerateOptions, "steps" | "temperature" | "topP">): void {
  const { steps, temperature, topP } = opts;
  if (!(Number.isInteger(steps) && steps >= 1)) throw new UsageError(`--steps must be a positive integer, got ${steps}`);
  if (!(temperature >= 0)) throw new UsageError(`--temperature must be ≥ 0, got ${temperature}`);
  if (!(topP >= 0 && topP <= 1)) throw new UsageError(`--top-p must be in [0, 1], got ${topP}`);
}

/**
 * Generation one token at a time: yields every token as soon as it is sampled (and the prompt's tokens first),
 * returns the result. The run state lives in the arena until the generator finishes or is closed (`return()`),
 * so one generation per model at a time. `generate` (below) and the library's async iterator (src/api) both
 * consume this.
 */
export function* generateTokens(model: Model, opts: GenerateOptions): Generator<GeneratedToken, GenerateResult, void> {
  const tok = model.tokenizer;
  if (!tok) throw new UsageError("generate needs a tokenizer (none was found for this model; pass --tokenizer)");
  checkGenerateOptions(opts);
  const { steps, temperature, topP } = opts;
  const maxSteps = Math.min(steps, model.config.maxSeqLen);
  const prompt = tok.encode(opts.prompt, { bos: true });
  const sampler = new Sampler(model.config.vocabSize, temperature, topP, opts.seed);
  const decoder = new TextDecoder("utf-8");
  let text = "";
  const piece = (prev: number, id: number): string => {
    const s = decoder.decode(tok.decodeBytes(prev, id), { stream: true });
    text += s;
    return s;
  };
  const arena = model.wasm.arena;
  const mark = arena.mark();
  try {
    // prefill: positions 0..P-1 of the prompt (at most maxSteps of them)
    const prefill = prompt.slice(0, Math.min(prompt.length, maxSteps));
    const st = createRunState(model, prefill.length, maxSteps);
    if (opts.gemv) st.gemv = opts.gemv;
    const tokens = [...prompt.slice(0, maxSteps + 1)];
    const t0 = performance.now();
    // the prompt's own tokens are printed, as run.c does
    for (let i = 1; i < tokens.length; i++) yield { id: tokens[i]!, text: piece(tokens[i - 1]!, tokens[i]!), prompt: true };
    let logits = forward(model, st, prefill, 0);
    let tFirst = performance.now();
    let generated = 0;
    while (tokens.length < maxSteps + 1) {
      const next = sampler.sample(logits);
      if (next === tok.bosId) break;
      const s = piece(tokens[tokens.length - 1]!, next);
      tokens.push(next);
      generated++;
      if (generated === 1) tFirst = performance.now();
      yield { id: next, text: s, prompt: false };
      if (tokens.length >= maxSteps + 1) break;
      logits = forward(model, st, [next], tokens.length - 1);
    }
    const tail = decoder.decode();
    if (tail) {
      text += tail;
      yield { id: -1, text: tail, prompt: false };
    }
    const t1 = performance.now();
    const seconds = (t1 - t0) / 1000;
    // llama2.c reports speed excluding the first step (which includes prefill)
    const steady = (t1 - tFirst) / 1000;
    const tokensPerSecond = generated > 1 ? (generated - 1) / steady : generated / seconds;
    return { text, tokens, promptTokens: prompt.length, generatedTokens: generated, seconds, tokensPerSecond };
  } finally {
    arena.release(mark);
  }
}

/** Generation to the end (`onText` sees each piece of text): what the CLI's demo and calibration sampling run. */
export function generate(model: Model, opts: GenerateOptions): GenerateResult {
  const it = generateTokens(model, opts);
  for (;;) {
    const r = it.next();
    if (r.done) return r.value;
    if (r.value.text) opts.onText?.(r.value.text);
  }
}

/** Text sampled from the model itself (seeded): calibration text when the user gives none. */
export function selfText(model: Model, paragraphs: number, steps: number, seed: number, onParagraph?: (done: number) => void): string {
  const out: string[] = [];
  for (let i = 0; i < paragraphs; i++) {
    const r = generate(model, { prompt: "", steps, temperature: 1, topP: 0.9, seed: seed + i });
    out.push(r.text.replace(/\n\s*\n/g, "\n").trim() || "?");
    onParagraph?.(i + 1);
  }
  return out.join("\n\n");
}
