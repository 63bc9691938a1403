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
 * run.c rescans all pairs after every merge (quadratic in string concatenations); here each pair's score is
 * cached and only the two pairs next to a merge are recomputed. The merge order is the same.
 */
import { UsageError } from "../errors.js";
import type { Tokenizer } from "./types.js";

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
    const bytes = Buffer.from(text, "utf8");
    if (bytes.length > 0 && this.addDummyPrefix) {
      if (this.spaceId < 0) throw new UsageError(`${this.name()}: the vocabulary has no " " piece for the dummy prefix`);
      out.push(this.spaceId);
    }
    // code points
    for (let i = 0; i < bytes.length; ) {
      let j = i + 1;
      while (j < bytes.length && (bytes[j]! & 0xc0) === 0x80 && j - i < 4) j++;
      const cp = bytes.toString("latin1", i, j);
      const id = this.lookup.get(cp);
      if (id !== undefined) out.push(id);
      else {
        for (let k = i; k < j; k++) {
          const b = this.byteIds[bytes[k]!]!;
          if (b < 0) {
            const ch = bytes.toString("utf8", i, j);
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
    const toks = out;
    const pairScore = (i: number): [number, number] => {
      const id = this.lookup.get(this.pieces[toks[i]!]! + this.pieces[toks[i + 1]!]!);
      return id === undefined ? [NO_MERGE, -1] : [this.scores[id]!, id];
    };
    let scores: number[] = [];
    let ids: number[] = [];
    for (let i = 0; i + 1 < toks.length; i++) {
      const [s, id] = pairScore(i);
      scores.push(s);
      ids.push(id);
    }
    for (;;) {
      let best = NO_MERGE;
      let bi = -1;
      for (let i = 0; i < scores.length; i++) {
        if (ids[i]! >= 0 && scores[i]! > best) {
          best = scores[i]!;
          bi = i;
        }
      }
      if (bi < 0) break;
      toks[bi] = ids[bi]!;
      toks.splice(bi + 1, 1);
      scores.splice(bi, 1);
      ids.splice(bi, 1);
      if (bi > 0) [scores[bi - 1], ids[bi - 1]] = pairScore(bi - 1);
      if (bi < scores.length) [scores[bi], ids[bi]] = pairScore(bi);
    }
    scores = ids = [];
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
    return Buffer.concat(parts).toString("utf8");
  }

  private name(): string {
    return this.files[0]?.split(/[\\/]/).pop() ?? "tokenizer";
  }
}
