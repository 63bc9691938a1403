import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FormatError, MissingFileError, UsageError } from "../../src/errors.js";
import { loadTokenizer } from "../../src/tokenizer/load.js";
import { encodeLlama2cTokenizer } from "../../src/tokenizer/llama2c.js";
import { loadLlama2cTokenizer, loadSentencePiece } from "../../src/tokenizer/load.js";
import { BpeTokenizer } from "../../src/tokenizer/bpe.js";

const DIR = "/work/shared/models/stories260K";
const TOK_BIN = path.join(DIR, "tok512.bin");
const TOK_MODEL = path.join(DIR, "tok512.model");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-tok-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

const paragraphs = fs
  .readFileSync("/work/shared/data/tinystories-valid-head/tinystories_valid_head.txt", "utf8")
  .split(/\n\s*\n/)
  .map((p) => p.trim())
  .filter((p) => p.length > 0)
  .slice(0, 50);

const TRICKY = [
  "",
  " ",
  "   leading spaces",
  "trailing  ",
  "Once upon a time",
  "line one\nline two\n\n",
  "tab\there",
  "héllo wörld — “quotes” ünïcödé 日本語",
  "emoji 🎉🐶 and ZWJ 👩‍👩‍👧",
  "\u0000nul",
  "ab".repeat(300),
];

const bin = loadLlama2cTokenizer(TOK_BIN);
const spm = loadSentencePiece(TOK_MODEL);

/** A plain, slow transcription of run.c's encode (no pair-score cache): the reference for the fast one. */
function runcEncode(t: BpeTokenizer, text: string, bos: boolean): number[] {
  const lookup = new Map<string, number>();
  t.pieces.forEach((p, i) => lookup.has(p) || lookup.set(p, i));
  const toks: number[] = bos ? [1] : [];
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length) toks.push(lookup.get(" ")!);
  for (let i = 0; i < bytes.length; ) {
    let j = i + 1;
    while (j < bytes.length && (bytes[j]! & 0xc0) === 0x80 && j - i < 4) j++;
    const id = lookup.get(bytes.toString("latin1", i, j));
    if (id !== undefined) toks.push(id);
    else for (let k = i; k < j; k++) toks.push(bytes[k]! + 3);
    i = j;
  }
  for (;;) {
    let best = -1e10, bestId = -1, bestIdx = -1;
    for (let i = 0; i < toks.length - 1; i++) {
      const id = lookup.get(t.pieces[toks[i]!]! + t.pieces[toks[i + 1]!]!);
      if (id !== undefined && t.scores[id]! > best) [best, bestId, bestIdx] = [t.scores[id]!, id, i];
    }
    if (bestIdx === -1) break;
    toks.splice(bestIdx, 2, bestId);
  }
  return toks;
}

test("tok512.bin: vocabulary as exported by llama2.c", () => {
  assert.equal(bin.vocabSize, 512);
  assert.deepEqual(bin.pieces.slice(0, 4), ["<unk>", "\n<s>\n", "\n</s>\n", "<0x00>"]);
  assert.equal(bin.pieces[258], "<0xFF>");
  assert.deepEqual([bin.bosId, bin.eosId], [1, 2]);
});

test('"Once upon a time": known ids, verified against the pieces', () => {
  const ids = bin.encode("Once upon a time", { bos: true });
  assert.deepEqual(ids, [1, 403, 407, 261, 378]);
  assert.deepEqual(ids.slice(1).map((i) => bin.pieces[i]), [" Once", " upon", " a", " time"]);
  // every merge that builds " Once" exists and " Once" is the best-scoring way to cover those bytes
  assert.ok(bin.scores[403]! < bin.scores[261]!, "longer merges have lower scores (later merges)");
  assert.deepEqual(bin.encode("Once upon a time", { bos: true, eos: true }), [1, 403, 407, 261, 378, 2]);
  assert.deepEqual(bin.encode("a"), [bin.pieces.indexOf(" a")]);
  // "\n" has no piece: byte fallback 0x0A + 3
  assert.deepEqual(bin.encode("\n").slice(1), [0x0a + 3]);
});

test("fast encoder = run.c's quadratic algorithm", () => {
  for (const s of [...TRICKY, ...paragraphs.slice(0, 15)]) {
    assert.deepEqual(bin.encode(s, { bos: true }), runcEncode(bin, s, true), JSON.stringify(s.slice(0, 40)));
  }
});

test("heap encoder = run.c's algorithm on long joined texts (the windows protocol tokenizes a whole file once)", () => {
  const wiki = fs.readFileSync("/work/shared/data/wikitext-2-raw-test/wikitext-2-raw-test.txt", "utf8").replace(/\r\n/g, "\n");
  const texts = [paragraphs.slice(0, 6).join("\n\n"), wiki.slice(0, 3000), "aaaa".repeat(400), "ab ".repeat(500)];
  for (const s of texts) assert.deepEqual(bin.encode(s, { bos: true }), runcEncode(bin, s, true), JSON.stringify(s.slice(0, 40)));
});

test("tok512.bin and tok512.model give identical ids; decode(encode(x)) == x", () => {
  for (const s of [...TRICKY, ...paragraphs]) {
    const a = bin.encode(s, { bos: true });
    assert.deepEqual(spm.encode(s, { bos: true }), a, JSON.stringify(s.slice(0, 40)));
    assert.equal(bin.decode(a), s);
    assert.equal(spm.decode(a), s);
    assert.equal(bin.decode(bin.encode(s)), s); // without BOS too
  }
});

test("decodeBytes streams like run.c (space dropped after BOS, byte pieces raw)", () => {
  const ids = bin.encode("Once 🎉", { bos: true });
  const dec = new TextDecoder();
  let out = "";
  for (let i = 1; i < ids.length; i++) out += dec.decode(bin.decodeBytes(ids[i - 1]!, ids[i]!), { stream: true });
  assert.equal(out + dec.decode(), "Once 🎉");
  assert.equal(Buffer.from(bin.decodeBytes(403, 403)).toString(), " Once");
  assert.equal(Buffer.from(bin.decodeBytes(1, 403)).toString(), "Once");
  assert.deepEqual(Array.from(bin.decodeBytes(1, 0x20 + 3)), [0x20]); // <0x20> keeps its space
  assert.throws(() => bin.decodeBytes(1, 512), /tok512\.bin: token id 512 is outside the vocabulary \[0, 512\)/);
});

test("a vocabulary without byte pieces names the character it cannot encode", () => {
  const pieces = ["<unk>", "\n<s>\n", "\n</s>\n", " ", "a", "b", " a"];
  const f = path.join(tmp, "nobytes.bin");
  fs.writeFileSync(f, encodeLlama2cTokenizer(pieces, [0, 0, 0, -1, -2, -3, -0.5]));
  const t = loadLlama2cTokenizer(f);
  assert.deepEqual(t.encode("ab"), [6, 5]); // " " + "a" merged into " a", then "b"
  assert.throws(() => t.encode("a☃"), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /^nobytes\.bin cannot encode "☃" \(U\+2603\): not in the vocabulary, and the vocabulary has no byte-fallback piece <0xE2>$/);
    return true;
  });
});

test("bad tokenizer files", () => {
  const w = (name: string, data: Uint8Array | string): string => {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, data);
    return p;
  };
  const good = fs.readFileSync(TOK_BIN);
  assert.throws(() => loadLlama2cTokenizer(w("cut.bin", good.subarray(0, good.length - 3))), (e: unknown) =>
    e instanceof FormatError && /^cut\.bin: token 511 needs bytes \[\d+,\d+\) but the file has 6224$/.test(e.message));
  assert.throws(() => loadLlama2cTokenizer(TOK_BIN, { vocabSize: 32000 }), /tok512\.bin: has 512 tokens, the model's vocab_size is 32000/);
  assert.throws(() => loadLlama2cTokenizer(w("neg.bin", Buffer.from([0xff, 0xff, 0xff, 0xff]))), /neg\.bin: max_token_length is -1/);
  // a unigram SentencePiece model: pieces {piece "a"}, trainer_spec {model_type UNIGRAM}
  const unigram = w("uni.model", Uint8Array.of(0x0a, 0x03, 0x0a, 0x01, 0x61, 0x12, 0x02, 0x18, 0x01));
  assert.throws(() => loadSentencePiece(unigram), (e: unknown) =>
    e instanceof FormatError && e.message === "uni.model: SentencePiece model type unigram is unsupported (only BPE is)");
  assert.throws(() => loadSentencePiece(w("junk.model", Uint8Array.of(0xff, 0xff, 0xff))), /^FormatError|junk\.model: not a SentencePiece model protobuf/);
  assert.throws(() => loadTokenizer(path.join(tmp, "nope.model")), MissingFileError);
  assert.throws(() => loadTokenizer(w("x.txt", "hi")), /unknown kind "\.txt"/);
});

// ---- HF tokenizer.json ------------------------------------------------------------------------------

/** tok512 as a Llama-style HF tokenizer.json: BPE with byte_fallback, merges derived from the scores. */
function tok512Json(): object {
  const raw = spmPieces();
  const vocab: Record<string, number> = {};
  raw.forEach((p, i) => (vocab[p] = i));
  const merges: [string, string, number][] = [];
  raw.forEach((p, id) => {
    if (id < 259) return; // specials and bytes
    const cps = [...p];
    for (let k = 1; k < cps.length; k++) {
      const a = cps.slice(0, k).join(""), b = cps.slice(k).join("");
      if (vocab[a] !== undefined && vocab[b] !== undefined) merges.push([a, b, id]);
    }
  });
  merges.sort((x, y) => x[2] - y[2] || vocab[x[0]]! - vocab[y[0]]!);
  return {
    version: "1.0",
    added_tokens: ["<unk>", "<s>", "</s>"].map((content, id) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: { type: "BPE", dropout: null, unk_token: "<unk>", fuse_unk: true, byte_fallback: true, vocab, merges: merges.map(([a, b]) => [a, b]) },
  };
}

/** The raw SentencePiece pieces of tok512.model (with U+2581), from the loaded tokenizer. */
function spmPieces(): string[] {
  return spm.pieces.map((p, i) => (i === 1 ? "<s>" : i === 2 ? "</s>" : Buffer.from(p, "latin1").toString("utf8").replaceAll(" ", "▁")));
}

test("HF tokenizer.json (tok512 rebuilt as BPE + byte_fallback) encodes and decodes", () => {
  const dir = fs.mkdtempSync(path.join(tmp, "hf-"));
  const f = path.join(dir, "tokenizer.json");
  fs.writeFileSync(f, JSON.stringify(tok512Json()));
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ bos_token: "<s>", eos_token: "</s>" }));
  const hf = loadTokenizer(f);
  assert.equal(hf.vocabSize, 512);
  assert.deepEqual([hf.bosId, hf.eosId], [1, 2]);
  assert.deepEqual(hf.encode("Once upon a time", { bos: true }), [1, 403, 407, 261, 378]);
  assert.deepEqual(hf.encode("", { bos: true }), [1]);
  const cases = [...TRICKY.filter((s) => !s.includes("\u0000")), ...paragraphs.slice(0, 20)];
  let same = 0;
  for (const s of cases) {
    const ids = hf.encode(s, { bos: true });
    assert.equal(hf.decode(ids), s, JSON.stringify(s.slice(0, 40)));
    if (ids.join() === bin.encode(s, { bos: true }).join()) same++;
  }
  // rank-ordered BPE (merges sorted by the merged piece's score) and run.c's score-greedy BPE agree here
  assert.equal(same, cases.length, `${same}/${cases.length} identical to tok512.bin`);
  const ids = hf.encode("Hi 🎉", { bos: true });
  const dec = new TextDecoder();
  let out = "";
  for (let i = 1; i < ids.length; i++) out += dec.decode(hf.decodeBytes(ids[i - 1]!, ids[i]!), { stream: true });
  assert.equal(out, "Hi 🎉");
});

test("HF tokenizer.json without byte fallback names the character it cannot encode", () => {
  const dir = fs.mkdtempSync(path.join(tmp, "hf2-"));
  const f = path.join(dir, "tokenizer.json");
  const vocab = { "<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3, h: 4, i: 5, "▁h": 6 };
  fs.writeFileSync(f, JSON.stringify({
    ...tok512Json(),
    added_tokens: [],
    model: { type: "BPE", unk_token: "<unk>", byte_fallback: false, vocab, merges: [["▁", "h"]] },
  }));
  const t = loadTokenizer(f);
  assert.deepEqual(t.encode("hi"), [6, 5]);
  assert.throws(() => t.encode("hi☃"), /^UsageError|tokenizer\.json cannot encode "☃" \(U\+2603\): not in the vocabulary and no byte fallback/);
});
