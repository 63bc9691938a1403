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
 * are exact to 2^53). Each layer's slice is read straight into its own 64-byte-aligned arena block.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "../errors.js";
import type { LayerWeights, ModelConfig, ModelWeights, Tensor } from "./types.js";
import type { Wasm } from "../wasm/runtime.js";

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
  const name = path.basename(file);
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

/** Read a legacy llama2.c checkpoint into the arena. */
export function loadLlama2cWeights(file: string, wasm: Wasm): { config: ModelConfig; weights: ModelWeights } {
  const name = path.basename(file);
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const hb = new Int32Array(7);
    if (size >= LLAMA2C_HEADER_BYTES) fs.readSync(fd, new Uint8Array(hb.buffer), 0, LLAMA2C_HEADER_BYTES, 0);
    const config = parseLlama2cHeader(file, hb, size);
    const c = config;
    let pos = LLAMA2C_HEADER_BYTES;
    const read = (shape: number[], at: number): Tensor => {
      const n = shape.reduce((a, b) => a * b, 1);
      const ptr = wasm.arena.alloc(n);
      const data = wasm.arena.f32(ptr, n);
      const bytes = new Uint8Array(data.buffer, data.byteOffset, n * 4);
      let done = 0;
      while (done < bytes.length) {
        const r = fs.readSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30), at + done);
        if (r <= 0) throw new FormatError(name, `unexpected end of file at byte ${at + done}`);
        done += r;
      }
      return { ptr, shape, data };
    };
    const embed = read([c.vocabSize, c.dim], pos);
    pos += c.vocabSize * c.dim * 4;
    const layers: Partial<LayerWeights>[] = Array.from({ length: c.nLayers }, () => ({}));
    for (const b of llama2cLayerBlocks(c)) {
      const bytes = b.shape.reduce((x, y) => x * y, 1) * 4;
      for (let l = 0; l < c.nLayers; l++) {
        layers[l]![b.key] = read(b.shape, pos);
        pos += bytes;
      }
    }
    const norm = read([c.dim], pos);
    pos += c.dim * 4 + c.maxSeqLen * c.headDim * 4; // skip freq_cis_real, freq_cis_imag
    const lmHead = c.tiedEmbeddings ? embed : read([c.vocabSize, c.dim], pos);
    return { config, weights: { embed, layers: layers as LayerWeights[], norm, lmHead } };
  } finally {
    fs.closeSync(fd);
  }
}
