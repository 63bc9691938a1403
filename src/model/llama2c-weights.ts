/**
 * @file llama2.c legacy checkpoint (.bin, export.py `legacy_export`, "version 0"). The only code that knows
 * its byte layout (the writer in save-llama2c.ts mirrors it through the same LLAMA2C_LAYOUT):
 *
 *   int32 × 7   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 *               (vocab_size < 0: the classifier is not tied and is stored last)
 *   f32 tensors token_embedding (vocab, dim)
 *               rms_att (L, dim), wq (L, dim, dim), wk (L, kvDim, dim), wv (L, kvDim, dim), wo (L, dim, dim)
 *               rms_ffn (L, dim), w1 (L, hidden, dim), w2 (L, dim, hidden), w3 (L, hidden, dim)
 *               rms_final (dim), freq_cis_real (seq_len, head/2), freq_cis_imag (seq_len, head/2)
 *               [wcls (vocab, dim) when untied]
 *
 * Every size is checked against the file size before anything is read (64-bit-safe arithmetic: JS numbers
 * are exact to 2^53). A tensor's bytes are read when it is asked for, straight into their destination.
 * Platform-free: the bytes come through a positioned `readAt` (./load-llama2c.ts: a file in Node; src/web/:
 * fetched or picked bytes).
 */
import { FormatError } from "../errors.js";
import { baseName } from "../util/base-name.js";
import type { LayerWeights, ModelConfig } from "./types.js";
import { hfTensorSpecs } from "./specs.js";
import type { StoredTensor, WeightFile } from "./weight-file.js";

export const LLAMA2C_HEADER_BYTES = 28;
/** "ak42": export.py version ≥ 1 files start with this magic; only the legacy (version 0) layout is read. */
const MAGIC_AK42 = 0x616b3432;

/** Per-layer tensors of the file, in file order, with their LayerWeights field and shape. */
export function llama2cLayerBlocks(c: ModelConfig): { key: keyof LayerWeights; shape: number[] }[] {
  const kv = c.nKvHeads * c.headDim;
  const q = c.nHeads * c.headDim;
  return [
    { key: "attnNorm", shape: [c.dim] },
    { key: "wq", shape: [q, c.dim] },
    { key: "wk", shape: [kv, c.dim] },
    { key: "wv", shape: [kv, c.dim] },
    { key: "wo", shape: [c.dim, q] },
    { key: "ffnNorm", shape: [c.dim] },
    { key: "wGate", shape: [c.hiddenDim, c.dim] }, // w1
    { key: "wDown", shape: [c.dim, c.hiddenDim] }, // w2
    { key: "wUp", shape: [c.hiddenDim, c.dim] }, // w3
  ];
}

/** Bytes a legacy file with this config has. */
export function llama2cFileBytes(c: ModelConfig): number {
  const numel = (s: number[]): number => s.reduce((a, b) => a * b, 1);
  let n = c.vocabSize * c.dim;
  for (const b of llama2cLayerBlocks(c)) n += c.nLayers * numel(b.shape);
  n += c.dim + c.maxSeqLen * c.headDim; // rms_final, freq_cis real+imag (2 × seq_len × head/2)
  if (!c.tiedEmbeddings) n += c.vocabSize * c.dim;
  return LLAMA2C_HEADER_BYTES + 4 * n;
}

/** Parse and check the 7-int header; `fileSize` must match exactly what it implies. */
export function parseLlama2cHeader(file: string, header: Int32Array, fileSize: number): ModelConfig {
  const name = baseName(file);
  if (fileSize < LLAMA2C_HEADER_BYTES) {
    throw new FormatError(name, `file is ${fileSize} bytes, too short for the 28-byte llama2.c header`);
  }
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = Array.from(header) as number[] as [number, number, number, number, number, number, number];
  if (dim === MAGIC_AK42) {
    throw new FormatError(name, `is a llama2.c version ≥1 export (magic "ak42"); only the legacy (version 0) .bin is supported`);
  }
  const fields: [string, number][] = [["dim", dim], ["hidden_dim", hiddenDim], ["n_layers", nLayers], ["n_heads", nHeads], ["n_kv_heads", nKvHeads], ["seq_len", seqLen]];
  for (const [k, v] of fields) if (v <= 0) throw new FormatError(name, `header ${k} is ${v}, expected > 0 (not a llama2.c checkpoint?)`);
  if (vocab === 0) throw new FormatError(name, "header vocab_size is 0");
  if (dim % nHeads !== 0) throw new FormatError(name, `header n_heads ${nHeads} does not divide dim ${dim}`);
  if (nKvHeads > nHeads || nHeads % nKvHeads !== 0) throw new FormatError(name, `header n_kv_heads ${nKvHeads} does not divide n_heads ${nHeads}`);
  const headDim = dim / nHeads;
  if (headDim % 2 !== 0) throw new FormatError(name, `head size ${headDim} (dim/n_heads) is odd; RoPE needs it even`);
  const config: ModelConfig = {
    architecture: "llama",
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    headDim,
    vocabSize: Math.abs(vocab),
    maxSeqLen: seqLen,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeLayout: "interleaved",
    tiedEmbeddings: vocab > 0,
    qkvBias: false,
    bosId: 1,
    eosId: 2,
  };
  const want = llama2cFileBytes(config);
  if (want !== fileSize) {
    throw new FormatError(
      name,
      `file is ${fileSize} bytes but its header (dim=${dim}, hidden_dim=${hiddenDim}, n_layers=${nLayers}, n_heads=${nHeads}, ` +
        `n_kv_heads=${nKvHeads}, vocab_size=${vocab}, seq_len=${seqLen}) implies ${want} bytes`,
    );
  }
  return config;
}

/** Open a legacy llama2.c checkpoint as a WeightFile (header checked against the file size; tensors read on demand). */
/** Reads `dst.length` bytes at absolute offset `pos` into `dst` (or throws a FormatError naming the file). */
export type ReadAt = (dst: Uint8Array, pos: number) => void;

/**
 * A legacy llama2.c checkpoint of `size` bytes as a WeightFile (header checked against the size; tensors read
 * on demand through `readAt`; `closeSource` releases the bytes' source).
 */
export function llama2cWeights(file: string, size: number, readAt: ReadAt, closeSource: () => void): WeightFile {
  const name = baseName(file);
  const hb = new Int32Array(7);
  if (size >= LLAMA2C_HEADER_BYTES) readAt(new Uint8Array(hb.buffer), 0);
  const config = parseLlama2cHeader(file, hb, size);
  const c = config;
  // byte offset of every tensor, by the HF spec name of the same tensor
  const at = new Map<string, number>();
  const specs = hfTensorSpecs(c);
  const named = (key: string, l?: number) => specs.find((s) => s.key === key && s.layer === l)!.name;
  let pos = LLAMA2C_HEADER_BYTES;
  at.set(named("embed"), pos);
  pos += c.vocabSize * c.dim * 4;
  for (const b of llama2cLayerBlocks(c)) {
    const bytes = b.shape.reduce((x, y) => x * y, 1) * 4;
    for (let l = 0; l < c.nLayers; l++) {
      at.set(named(b.key, l), pos);
      pos += bytes;
    }
  }
  at.set(named("norm"), pos);
  pos += c.dim * 4 + c.maxSeqLen * c.headDim * 4; // skip freq_cis_real, freq_cis_imag
  if (!c.tiedEmbeddings) at.set(named("lmHead"), pos);
  let bytesRead = 0;
  let open = true;
  const stored = new Map<string, StoredTensor>();
  for (const s of specs) {
    const offset = at.get(s.name)!;
    const n = s.shape.reduce((x, y) => x * y, 1);
    stored.set(s.name, {
      name: s.name, shape: s.shape, dtype: "F32", fileBytes: 4 * n, arenaBytes: 4 * n,
      readRange(first, dst) {
        if (!open) throw new FormatError(name, "read after close()");
        if (first < 0 || first + dst.length > n) throw new RangeError(`${s.name}: elements [${first}, ${first + dst.length}) of ${n}`);
        const bytes = new Uint8Array(dst.buffer, dst.byteOffset, dst.length * 4);
        readAt(bytes, offset + 4 * first);
        bytesRead += bytes.length;
      },
    });
  }
  return {
    path: file,
    format: "llama2c",
    config,
    dtype: "F32",
    tensor: (spec) => stored.get(spec.key === "lmHead" && c.tiedEmbeddings ? named("embed") : spec.name)!,
    get bytesRead() {
      return bytesRead;
    },
    close() {
      if (open) closeSource();
      open = false;
    },
  };
}
