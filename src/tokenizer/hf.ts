/**
 * @file Hugging Face tokenizer.json (+ tokenizer_config.json beside it, when present) through
 * @huggingface/tokenizers. BOS/EOS are added here, not by the tokenizer's post-processor, so that
 * `encode(text, {bos})` means the same for every tokenizer kind. Platform-free: built from the files' text
 * (./load.ts reads them).
 */
import { Tokenizer as HFTokenizer } from "@huggingface/tokenizers";
import { FormatError, UsageError } from "../errors.js";
import type { Tokenizer } from "./types.js";
import { utf8Bytes } from "./bytes.js";
import { baseName } from "../util/base-name.js";

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

/** GPT-2's byte -> printable char map, inverted: the pieces of a ByteLevel tokenizer are spelled with it. */
function byteLevelDecoder(): Map<string, number> {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return new Map(bs.map((b, i) => [String.fromCodePoint(cs[i]!), b]));
}

function mentionsType(node: unknown, type: string): boolean {
  if (Array.isArray(node)) return node.some((x) => mentionsType(x, type));
  if (typeof node !== "object" || node === null) return false;
  const o = node as Record<string, unknown>;
  return o.type === type || Object.values(o).some((v) => mentionsType(v, type));
}

function tokenContent(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "object" && v !== null && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return undefined;
}

export class HFJsonTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly files: string[];
  private readonly tok: HFTokenizer;
  private readonly byteLevel: Map<string, number> | undefined;
  private readonly unkId: number | undefined;

  /**
   * tokenizer.json's text and tokenizer_config.json's (undefined when there is none beside it); `files` names
   * where they came from (the first is tokenizer.json).
   */
  constructor(text: string, configText: string | undefined, files: string[], opts: { bosId?: number; eosId?: number } = {}) {
    const name = baseName(files[0]!);
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new FormatError(name, `is not valid JSON (${(e as Error).message})`);
    }
    let cfg: Record<string, unknown> = {};
    if (configText !== undefined) {
      try {
        cfg = JSON.parse(configText) as Record<string, unknown>;
      } catch (e) {
        throw new FormatError("tokenizer_config.json", `is not valid JSON (${(e as Error).message})`);
      }
    }
    try {
      this.tok = new HFTokenizer(json, cfg);
    } catch (e) {
      throw new FormatError(name, `unsupported or malformed tokenizer (${(e as Error).message})`);
    }
    this.files = files;
    let max = -1;
    for (const id of this.tok.get_vocab(true).values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
    const idOf = (k: string, dflt: string): number | undefined => {
      const c = tokenContent(cfg[k]) ?? dflt;
      return this.tok.token_to_id(c);
    };
    this.bosId = opts.bosId ?? idOf("bos_token", "<s>") ?? -1;
    this.eosId = opts.eosId ?? idOf("eos_token", "</s>") ?? -1;
    this.byteLevel = mentionsType(json.decoder, "ByteLevel") ? byteLevelDecoder() : undefined;
    const unk = (json.model as { unk_token?: unknown } | undefined)?.unk_token;
    this.unkId = typeof unk === "string" ? this.tok.token_to_id(unk) : undefined;
  }

  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const ids = text.length ? this.tok.encode(text, { add_special_tokens: false }).ids : [];
    if (this.unkId !== undefined && ids.includes(this.unkId)) this.explainUnknown(text);
    if (opts.bos) ids.unshift(this.bosId);
    if (opts.eos) ids.push(this.eosId);
    return ids;
  }

  /** The text maps to <unk>: name the first character the vocabulary cannot spell. */
  private explainUnknown(text: string): void {
    const unkText = this.tok.id_to_token(this.unkId!);
    if (unkText && text.includes(unkText)) return; // the text spells the unk token itself
    for (const ch of text) {
      if (this.tok.encode(ch, { add_special_tokens: false }).ids.includes(this.unkId!)) {
        throw new UsageError(
          `${baseName(this.files[0]!)} cannot encode ${JSON.stringify(ch)} (U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}): ` +
            "not in the vocabulary and no byte fallback",
        );
      }
    }
  }

  decodeBytes(prev: number, id: number): Uint8Array {
    const piece = this.tok.id_to_token(id);
    if (piece === undefined) throw new UsageError(`${baseName(this.files[0]!)}: token id ${id} is outside the vocabulary`);
    const m = BYTE_PIECE.exec(piece);
    if (m) return Uint8Array.of(parseInt(m[1]!, 16));
    if (this.byteLevel) {
      const bl = this.byteLevel;
      return Uint8Array.from([...piece].map((ch) => bl.get(ch) ?? 0x3f));
    }
    let s = piece.replaceAll("\u2581", " ");
    if (prev === this.bosId && s.startsWith(" ")) s = s.slice(1);
    return utf8Bytes(s);
  }

  decode(ids: number[]): string {
    return this.tok.decode(ids, { skip_special_tokens: true });
  }
}
