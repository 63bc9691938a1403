/**
 * @file Write a llama2.c legacy .bin (the layout of load-llama2c.ts, which documents it), atomically.
 * HF (rotate_half) q/k rows are permuted back to interleaved pairs. The freq_cis tables run.c ignores are
 * written as export.py computes them (float32 cos/sin of t·θ^(-2i/hd)); when the model was read from a
 * llama2.c file that is still there, its own tables are copied instead, because torch's float32 cos/sin
 * differ from correctly rounded ones in the last bit for ~5% of entries, and a round trip should be
 * byte-identical.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ConfigError, outputExists } from "../errors.js";
import { LLAMA2C_HEADER_BYTES, llama2cFileBytes, llama2cLayerBlocks } from "./load-llama2c.js";
import { halfToInterleaved } from "./save-rope.js";
import type { LinearWeight, Model, ModelConfig, Tensor } from "./types.js";
import { denseWeight } from "../model/linear.js";

export interface SaveLlama2cOptions {
  force?: boolean;
}

/** Why `c` cannot be expressed as a llama2.c legacy .bin (run.c hard-codes these), or undefined. */
function unsupported(c: ModelConfig): string | undefined {
  if (c.layerSizes) return "per-layer sizes (a non-uniformly pruned model) have no place in the format";
  if (c.qkvBias) return `${c.architecture} q/k/v biases have no place in the format`;
  if (c.headDim * c.nHeads !== c.dim) return `head_dim ${c.headDim} × n_heads ${c.nHeads} ≠ dim ${c.dim}`;
  if (c.ropeTheta !== 10000) return `rope_theta is ${c.ropeTheta}; run.c uses 10000`;
  if (Math.fround(c.normEps) !== Math.fround(1e-5)) return `rms_norm_eps is ${c.normEps}; run.c uses 1e-5`;
  if (c.vocabSize >= 2 ** 31 || c.dim >= 2 ** 31) return "sizes exceed int32";
  return undefined;
}

export function saveLlama2c(model: Model, file: string, opts: SaveLlama2cOptions = {}): void {
  const c = model.config;
  const why = unsupported(c);
  if (why) throw new ConfigError(`cannot write ${path.basename(file)} as llama2.c: ${why}`);
  if (fs.existsSync(file) && !opts.force) throw outputExists(file);
  const w = model.weights;
  const tmp = `${path.resolve(file)}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, "w");
  try {
    const put = (a: Float32Array): void => {
      const b = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      for (let done = 0; done < b.length; ) done += fs.writeSync(fd, b, done, Math.min(b.length - done, 1 << 30));
    };
    put(new Float32Array(Int32Array.of(c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.tiedEmbeddings ? c.vocabSize : -c.vocabSize, c.maxSeqLen).buffer));
    put(w.embed.data);
    for (const b of llama2cLayerBlocks(c)) {
      for (const layer of w.layers) {
        let data = denseWeight(model.wasm, layer[b.key] as Tensor | LinearWeight); // rebuilt per tensor when compressed
        if (c.ropeLayout === "half" && (b.key === "wq" || b.key === "wk")) {
          data = halfToInterleaved(data, b.key === "wq" ? c.nHeads : c.nKvHeads, c.headDim, c.dim);
        }
        put(data);
      }
    }
    put(w.norm.data);
    put(freqCis(model));
    if (!c.tiedEmbeddings) put(denseWeight(model.wasm, w.lmHead));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.closeSync(fd);
    } catch {
      /* already closed */
    }
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** freq_cis_real then freq_cis_imag, (seq_len, head_dim/2) each. */
function freqCis(model: Model): Float32Array {
  const c = model.config;
  const half = c.headDim / 2;
  const n = c.maxSeqLen * half;
  const src = model.source;
  if (src.format === "llama2c" && fs.existsSync(src.path)) {
    const size = fs.statSync(src.path).size;
    const hdr = new Int32Array(7);
    const fd = fs.openSync(src.path, "r");
    try {
      fs.readSync(fd, new Uint8Array(hdr.buffer), 0, LLAMA2C_HEADER_BYTES, 0);
      const same = [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.maxSeqLen].every((v, i) => hdr[i < 5 ? i : 6] === v);
      if (same && size === llama2cFileBytes({ ...c, tiedEmbeddings: hdr[5]! > 0, vocabSize: Math.abs(hdr[5]!) })) {
        const out = new Float32Array(2 * n);
        const tail = hdr[5]! > 0 ? 0 : Math.abs(hdr[5]!) * c.dim * 4;
        fs.readSync(fd, new Uint8Array(out.buffer), 0, out.byteLength, size - tail - out.byteLength);
        return out;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  const out = new Float32Array(2 * n);
  const f = Math.fround;
  for (let i = 0; i < half; i++) {
    const freq = f(1 / f(Math.pow(c.ropeTheta, f(f(2 * i) / c.headDim))));
    for (let t = 0; t < c.maxSeqLen; t++) {
      const a = f(t * freq);
      out[t * half + i] = Math.cos(a);
      out[n + t * half + i] = Math.sin(a);
    }
  }
  return out;
}
