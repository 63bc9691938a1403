/** @file What every tokenizer (llama2.c tokenizer.bin, SentencePiece tokenizer.model, HF tokenizer.json) offers. */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Where it was loaded from (for messages and for copying it next to a written model). */
  readonly files: string[];
  /** Token ids of `text`, with BOS first when `bos` (and EOS last when `eos`). */
  encode(text: string, opts?: { bos?: boolean; eos?: boolean }): number[];
  /**
   * UTF-8 bytes of `id` when it follows `prev` (llama2.c's decode: drops the leading space of a piece that
   * follows BOS, maps <0xNN> to the raw byte). Bytes, not a string, because a character may span several
   * byte-fallback tokens: stream them through a TextDecoder({stream: true}).
   */
  decodeBytes(prev: number, id: number): Uint8Array;
  /** Text of a sequence of ids (special tokens dropped). */
  decode(ids: number[]): string;
}
