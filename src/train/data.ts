/**
 * @file Training samples: windows of L+1 tokens (L inputs, L next-token targets), addressed by a global sample
 * index so that a step's data is a pure function of (seed, step) — a resumed run reads exactly what an
 * uninterrupted one would, with no data position or RNG state to carry besides the step count.
 *
 *  - TextSource: the paragraphs of a text file (the eval protocol's split: blank lines, trimmed, BOS each),
 *    concatenated into one stream; a window starts at a paragraph start and runs on into the following ones
 *    (wrapping at the end). Epoch e visits every paragraph start once in a seeded permutation of (seed, e).
 *  - TeacherSource: text sampled from the dense teacher (temperature 1, pure sampling), from BOS, with a
 *    generator seeded by (seed, sample index); streamed, nothing stored, never the evaluation text.
 */
import { UsageError } from "../errors.js";
import { mix, mulberry32 } from "../util/rng.js";
import { createRunState, forward, type RunState } from "../model/forward.js";
import type { Model } from "../model/types.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { splitParagraphs } from "../eval/text.js";

export interface DataSource {
  /** what it is, for the log */
  describe(): Record<string, unknown>;
  /** sample `index` (≥ 0): L+1 token ids */
  sample(index: number): Int32Array;
}

export class TextSource implements DataSource {
  readonly stream: Int32Array;
  readonly starts: number[];
  private epoch = -1;
  private perm: number[] = [];

  constructor(tok: Tokenizer, text: string, readonly file: string, readonly L: number, readonly seed: number) {
    const ids: number[] = [];
    const starts: number[] = [];
    for (const p of splitParagraphs(text)) {
      starts.push(ids.length);
      for (const id of tok.encode(p, { bos: true })) ids.push(id);
    }
    if (ids.length < L + 1) {
      throw new UsageError(`${file}: ${ids.length} tokens of training text, fewer than --seqlen + 1 = ${L + 1}`);
    }
    this.stream = Int32Array.from(ids);
    this.starts = starts;
  }

  describe(): Record<string, unknown> {
    return { kind: "text", file: this.file, paragraphs: this.starts.length, tokens: this.stream.length };
  }

  sample(index: number): Int32Array {
    const n = this.starts.length;
    const epoch = Math.floor(index / n);
    if (epoch !== this.epoch) {
      // Fisher–Yates with a generator seeded by (seed, epoch)
      const rand = mulberry32(mix(this.seed, epoch));
      this.perm = Array.from({ length: n }, (_, i) => i);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [this.perm[i], this.perm[j]] = [this.perm[j], this.perm[i]];
      }
      this.epoch = epoch;
    }
    const s = this.starts[this.perm[index % n]];
    const out = new Int32Array(this.L + 1);
    for (let i = 0; i <= this.L; i++) out[i] = this.stream[(s + i) % this.stream.length];
    return out;
  }
}

export class TeacherSource implements DataSource {
  private readonly st: RunState;

  constructor(readonly teacher: Model, readonly L: number, readonly seed: number) {
    this.st = createRunState(teacher, 1, L + 1);
  }

  describe(): Record<string, unknown> {
    return { kind: "teacher", model: this.teacher.source.path, temperature: 1, seed: this.seed };
  }

  sample(index: number): Int32Array {
    const m = this.teacher;
    const V = m.config.vocabSize;
    const rand = mulberry32(mix(this.seed ^ 0x5eed, index));
    const out = new Int32Array(this.L + 1);
    out[0] = m.config.bosId;
    const p = new Float64Array(V);
    for (let pos = 0; pos < this.L; pos++) {
      const logits = forward(m, this.st, [out[pos]], pos);
      let max = -Infinity;
      for (let i = 0; i < V; i++) if (logits[i] > max) max = logits[i];
      let sum = 0;
      for (let i = 0; i < V; i++) sum += p[i] = Math.exp(logits[i] - max);
      let r = rand() * sum;
      let next = V - 1;
      for (let i = 0; i < V; i++) {
        r -= p[i];
        if (r < 0) {
          next = i;
          break;
        }
      }
      out[pos + 1] = next;
    }
    return out;
  }
}
