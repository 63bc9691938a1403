/**
 * @file SentencePiece tokenizer.model (a ModelProto protobuf), BPE models only, mapped to llama2.c's encoder
 * the way llama2.c's tokenizer.py exports it: U+2581 -> " ", BOS -> "\n<s>\n", EOS -> "\n</s>\n".
 * Control, unknown, unused and byte pieces are never produced by lookup/merge (byte pieces only by fallback).
 * Note: SentencePiece's own normalizer (remove_extra_whitespaces, NFKC) is not applied, as in llama2.c.
 * Platform-free: parsed from bytes (./load.ts reads the file).
 */
import protobuf from "protobufjs";
import { FormatError } from "../errors.js";
import { BpeTokenizer } from "./bpe.js";
import { latin1, latin1Bytes, utf8Bytes, utf8Text } from "./bytes.js";

/** The few fields of sentencepiece_model.proto we need (field numbers as upstream). */
const PROTO = `
syntax = "proto2";
message TrainerSpec {
  enum ModelType { UNIGRAM = 1; BPE = 2; WORD = 3; CHAR = 4; }
  optional ModelType model_type = 3 [default = UNIGRAM];
  optional bool byte_fallback = 35 [default = false];
  optional int32 unk_id = 40 [default = 0];
  optional int32 bos_id = 41 [default = 1];
  optional int32 eos_id = 42 [default = 2];
  optional int32 pad_id = 43 [default = -1];
}
message NormalizerSpec {
  optional string name = 1;
  optional bool add_dummy_prefix = 3 [default = true];
  optional bool remove_extra_whitespaces = 4 [default = true];
}
message ModelProto {
  message SentencePiece {
    enum Type { NORMAL = 1; UNKNOWN = 2; CONTROL = 3; USER_DEFINED = 4; BYTE = 6; UNUSED = 5; }
    optional string piece = 1;
    optional float score = 2;
    optional Type type = 3 [default = NORMAL];
  }
  repeated SentencePiece pieces = 1;
  optional TrainerSpec trainer_spec = 2;
  optional NormalizerSpec normalizer_spec = 3;
}
`;

let modelProto: protobuf.Type | undefined;
function proto(): protobuf.Type {
  modelProto ??= protobuf.parse(PROTO, { keepCase: true }).root.lookupType("ModelProto");
  return modelProto;
}

const MODEL_TYPES: Record<number, string> = { 1: "unigram", 2: "bpe", 3: "word", 4: "char" };
const enum PieceType { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6 }

interface Decoded {
  pieces: { piece?: string; score?: number; type?: number }[];
  trainer_spec?: { model_type?: number; bos_id?: number; eos_id?: number };
  normalizer_spec?: { add_dummy_prefix?: boolean };
}

/** A tokenizer.model's bytes (`name` in messages; `files` where it came from). */
export function parseSentencePiece(name: string, bytes: Uint8Array, files: string[] = [name]): BpeTokenizer {
  let m: Decoded;
  try {
    const msg = proto().decode(bytes);
    m = proto().toObject(msg, { defaults: true, enums: Number }) as Decoded;
  } catch (e) {
    throw new FormatError(name, `not a SentencePiece model protobuf (${(e as Error).message})`);
  }
  const type = m.trainer_spec?.model_type ?? 1;
  if (type !== 2) {
    throw new FormatError(name, `SentencePiece model type ${MODEL_TYPES[type] ?? type} is unsupported (only BPE is)`);
  }
  if (!m.pieces.length) throw new FormatError(name, "has no pieces");
  const bosId = m.trainer_spec?.bos_id ?? 1;
  const eosId = m.trainer_spec?.eos_id ?? 2;
  const pieces: string[] = [];
  const scores: number[] = [];
  const unmatchable = new Set<number>();
  m.pieces.forEach((p, i) => {
    let s = p.piece ?? "";
    if (i === bosId) s = "\n<s>\n";
    else if (i === eosId) s = "\n</s>\n";
    s = s.replaceAll("\u2581", " ");
    pieces.push(latin1(utf8Bytes(s)));
    scores.push(p.score ?? 0);
    const t = p.type ?? PieceType.NORMAL;
    if (t === PieceType.CONTROL || t === PieceType.UNKNOWN || t === PieceType.UNUSED || t === PieceType.BYTE) unmatchable.add(i);
  });
  return new BpeTokenizer(pieces, scores, {
    bosId,
    eosId,
    files,
    addDummyPrefix: m.normalizer_spec?.add_dummy_prefix ?? true,
    unmatchable,
  });
}

/**
 * A SentencePiece BPE tokenizer.model for a llama2.c-style vocabulary (the inverse of the mapping above),
 * so that a model converted from llama2.c to HF keeps a tokenizer HF tools understand.
 */
export function encodeSentencePiece(tok: BpeTokenizer): Uint8Array {
  const pieces = tok.pieces.map((p, i) => {
    const text = utf8Text(latin1Bytes(p));
    const type =
      i === tok.bosId || i === tok.eosId ? PieceType.CONTROL
      : text === "<unk>" ? PieceType.UNKNOWN
      : /^<0x[0-9A-F]{2}>$/.test(text) ? PieceType.BYTE
      : PieceType.NORMAL;
    const piece = i === tok.bosId ? "<s>" : i === tok.eosId ? "</s>" : text.replaceAll(" ", "\u2581");
    return { piece, score: tok.scores[i]!, type };
  });
  const unk = pieces.findIndex((p) => p.type === PieceType.UNKNOWN);
  const msg = proto().fromObject({
    pieces,
    trainer_spec: { model_type: 2, byte_fallback: true, unk_id: Math.max(unk, 0), bos_id: tok.bosId, eos_id: tok.eosId, pad_id: -1 },
    normalizer_spec: { name: "identity", add_dummy_prefix: true, remove_extra_whitespaces: false },
  });
  return proto().encode(msg).finish();
}
