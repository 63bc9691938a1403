/**
 * @file The score-driven BPE of llama2.c's run.c (`encode` / `decode`), shared by tokenizer.bin and
 * SentencePiece tokenizer.model.
 *
 * encode: a dummy-prefix " " token when the text is non-empty; each UTF-8 code point looked up as a piece,
 * else its bytes as byte-fallback tokens (<0xNN>, ids 3+byte in Llama vocabularies); then, repeatedly, the
 * adjacent pair whose concatenation is a piece with the highest score is merged (leftmost on ties, scores
 * must beat -1e10 as in run.c). Pieces are compared as bytes (kept as latin1 strings here, one char per
 * byte), exactly like run.c's strcmp.
 *
 * run.c rescans all pairs after every merge (quadratic: a 1.3 MB text would take ~15 minutes); here the pairs
 * sit in a max-heap keyed (score, position) over a linked list of tokens, and a merge pushes only the two
 * pairs it forms (stale entries are skipped when popped), so encoding is O(n log n) and the whole of a test
 * split can be tokenized once. The merge order is run.c's: best score first, leftmost among equal scores.
 */
import { UsageError } from "../errors.js";
import type { Tokenizer } from "./types.js";
import { concatBytes, latin1, utf8Bytes, utf8Text } from "./bytes.js";

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>/;
const NO_MERGE = -1e10;

export interface BpeOptions {
  bosId: number;
  eosId: number;
  files: string[];
  /** prepend " " to non-empty text (SentencePiece add_dummy_prefix; llama2.c always does) */
  addDummyPrefix?: boolean;
  /** ids that text can never produce by lookup or merge (SentencePiece control/unknown/byte pieces) */
  unmatchable?: ReadonlySet<number>;
}

export class BpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly files: string[];
  /** piece bytes as latin1 strings */
  readonly pieces: readonly string[];
  readonly scores: Float32Array;
  private readonly lookup = new Map<string, number>();
  /** id of <0xNN> for each byte, -1 when the vocabulary has no such piece */
  private readonly byteIds = new Int32Array(256).fill(-1);
  /** decoded bytes of each piece (byte pieces resolved) */
  private readonly pieceBytes: Uint8Array[];
  private readonly addDummyPrefix: boolean;
  private readonly spaceId: number;

  constructor(pieces: readonly string[], scores: ArrayLike<number>, opts: BpeOptions) {
    this.vocabSize = pieces.length;
    this.pieces = pieces;
    this.scores = Float32Array.from(scores);
    this.bosId = opts.bosId;
    this.eosId = opts.eosId;
    this.files = opts.files;
    this.addDummyPrefix = opts.addDummyPrefix ?? true;
    this.pieceBytes = pieces.map((p) => {
      const m = BYTE_PIECE.exec(p);
      return m ? Uint8Array.of(parseInt(m[1]!, 16)) : Uint8Array.from(p, (ch) => ch.charCodeAt(0));
    });
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(p);
      if (m) {
        const b = parseInt(m[1]!, 16);
        if (this.byteIds[b] === -1) this.byteIds[b] = i;
      }
      if (!opts.unmatchable?.has(i) && !this.lookup.has(p)) this.lookup.set(p, i);
    }
    this.spaceId = this.lookup.get(" ") ?? -1;
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const out: number[] = [];
    if (opts.bos) out.push(this.bosId);
    const bytes = utf8Bytes(text);
    if (bytes.length > 0 && this.addDummyPrefix) {
      if (this.spaceId < 0) throw new UsageError(`${this.name()}: the vocabulary has no " " piece for the dummy prefix`);
      out.push(this.spaceId);
    }
    // code points
    for (let i = 0; i < bytes.length; ) {
      let j = i + 1;
      while (j < bytes.length && (bytes[j]! & 0xc0) === 0x80 && j - i < 4) j++;
      const cp = latin1(bytes, i, j);
      const id = this.lookup.get(cp);
      if (id !== undefined) out.push(id);
      else {
        for (let k = i; k < j; k++) {
          const b = this.byteIds[bytes[k]!]!;
          if (b < 0) {
            const ch = utf8Text(bytes.subarray(i, j));
            throw new UsageError(
              `${this.name()} cannot encode ${JSON.stringify(ch)} (U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}): ` +
                `not in the vocabulary, and the vocabulary has no byte-fallback piece <0x${bytes[k]!.toString(16).toUpperCase().padStart(2, "0")}>`,
            );
          }
          out.push(b);
        }
      }
      i = j;
    }
    // merges; run.c includes a leading BOS in the pair scan, so do we (its pairs never match in practice)
    const toks = mergePairs(out, (a, b) => {
      const id = this.lookup.get(this.pieces[a]! + this.pieces[b]!);
      return id === undefined ? -1 : id;
    }, this.scores);
    if (opts.eos) toks.push(this.eosId);
    return toks;
  }

  decodeBytes(prev: number, id: number): Uint8Array {
    const b = this.pieceBytes[id];
    if (!b) throw new UsageError(`${this.name()}: token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    return prev === this.bosId && b[0] === 0x20 && !BYTE_PIECE.test(this.pieces[id]!) ? b.subarray(1) : b;
  }

  decode(ids: number[]): string {
    const parts: Uint8Array[] = [];
    let prev = this.bosId; // the text starts as if after BOS: its dummy-prefix space is dropped
    for (const id of ids) {
      if (id !== this.bosId && id !== this.eosId) parts.push(this.decodeBytes(prev, id));
      prev = id;
    }
    return utf8Text(concatBytes(parts));
  }

  private name(): string {
    return this.files[0]?.split(/[\\/]/).pop() ?? "tokenizer";
  }
}

/**
 * run.c's merge loop on `toks` (in place, returned): while some adjacent pair (a, b) has `pairId(a, b) >= 0`
 * with score above -1e10, merge the best-scoring pair, the leftmost among equals. Pairs live in a binary
 * max-heap ordered by (score desc, left position asc); positions never reorder (a merge keeps the left
 * token and unlinks the right one), so "leftmost" is the smallest left position. `ver[i]` counts changes of
 * the pair starting at position i; an entry pushed under an older version (or whose right token is gone) is
 * stale and skipped.
 */
function mergePairs(toks: number[], pairId: (a: number, b: number) => number, scores: Float32Array): number[] {
  const n = toks.length;
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  const ver = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  // heap entries: [score, left, right, ver[left] at push, merged id]
  const heap: [number, number, number, number, number][] = [];
  const before = (x: (typeof heap)[number], y: (typeof heap)[number]) => x[0] > y[0] || (x[0] === y[0] && x[1] < y[1]);
  const push = (left: number) => {
    const right = next[left]!;
    if (right < 0) return;
    const id = pairId(toks[left]!, toks[right]!);
    if (id < 0 || !(scores[id]! > NO_MERGE)) return;
    const e: (typeof heap)[number] = [scores[id]!, left, right, ver[left]!, id];
    let i = heap.push(e) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(e, heap[p]!)) break;
      heap[i] = heap[p]!;
      i = p;
    }
    heap[i] = e;
  };
  const pop = () => {
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= heap.length) break;
        const c = l + 1 < heap.length && before(heap[l + 1]!, heap[l]!) ? l + 1 : l;
        if (!before(heap[c]!, last)) break;
        heap[i] = heap[c]!;
        i = c;
      }
      heap[i] = last;
    }
    return top;
  };
  for (let i = 0; i + 1 < n; i++) push(i);
  const gone = new Uint8Array(n);
  while (heap.length > 0) {
    const [, left, right, v, id] = pop();
    if (gone[left] || gone[right] || ver[left] !== v || next[left] !== right) continue;
    toks[left] = id;
    ver[left]!++;
    gone[right] = 1;
    const after = next[right]!;
    next[left] = after;
    if (after >= 0) prev[after] = left;
    if (prev[left]! >= 0) {
      ver[prev[left]!]!++; // its right token changed
      push(prev[left]!);
    }
    push(left);
  }
  const out: number[] = [];
  for (let i = 0; i >= 0 && i < n; i = next[i]!) out.push(toks[i]!);
  return out;
}
