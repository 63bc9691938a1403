/**
 * @file The built-in demo model: a small LLaMA (GQA, SwiGLU, tied embeddings) with weights drawn from a fixed
 * seed, and a byte-level tokenizer (ids 0..2 = <unk>, <s>, </s>; 3 + b = byte b). It lets `npm start` and the
 * tests run the whole engine with no model file; its numbers say nothing about language modelling.
 */
import { createWasm, type Wasm } from "../wasm/runtime.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { gaussian, mulberry32 } from "../util/rng.js";
import { dense, type LayerWeights, type Model, type ModelConfig, type Tensor } from "./types.js";

export const BUILTIN_NAME = "builtin";

export const BUILTIN_CONFIG: Readonly<ModelConfig> = Object.freeze({
  architecture: "llama",
  dim: 128,
  hiddenDim: 352,
  nLayers: 4,
  nHeads: 8,
  nKvHeads: 4,
  headDim: 16,
  vocabSize: 259,
  maxSeqLen: 256,
  normEps: 1e-5,
  ropeTheta: 10000,
  ropeLayout: "half",
  tiedEmbeddings: true,
  qkvBias: false,
  bosId: 1,
  eosId: 2,
});

/** Byte-level tokenizer of the built-in model. */
export class ByteTokenizer implements Tokenizer {
  readonly vocabSize = 259;
  readonly bosId = 1;
  readonly eosId = 2;
  readonly files: string[] = [];
  encode(text: string, opts: { bos?: boolean; eos?: boolean } = {}): number[] {
    const ids = opts.bos ? [this.bosId] : [];
    for (const b of new TextEncoder().encode(text)) ids.push(3 + b);
    if (opts.eos) ids.push(this.eosId);
    return ids;
  }
  decodeBytes(_prev: number, id: number): Uint8Array {
    return id >= 3 && id < 259 ? Uint8Array.of(id - 3) : new Uint8Array(0);
  }
  decode(ids: number[]): string {
    return new TextDecoder().decode(Uint8Array.from(ids.filter((i) => i >= 3 && i < 259).map((i) => i - 3)));
  }
}

/**
 * A LLaMA of the given config with seeded random weights: linear weights N(0, 1/fan_in) scaled so the residual
 * stream stays O(1); norms 1; embeddings N(0, 4/dim). Layers draw in a fixed order, so a seed fixes every weight.
 */
export function randomLlama(config: ModelConfig, seed: number, wasm: Wasm = createWasm()): Model {
  const a = wasm.arena;
  const g = gaussian(mulberry32(seed));
  const c = config;
  const tensor = (shape: number[], std: number, constant?: number): Tensor => {
    const n = shape.reduce((x, y) => x * y, 1);
    const ptr = a.alloc(n);
    const data = a.f32(ptr, n);
    for (let i = 0; i < n; i++) data[i] = constant ?? g() * std;
    return { ptr, shape, data };
  };
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  // logits = rmsnorm(x)·E: rows of std 2/sqrt(dim) give logits of std ~2, a peaked but not degenerate softmax
  const embed = tensor([c.vocabSize, c.dim], 2 / Math.sqrt(c.dim));
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const out = 1 / Math.sqrt(2 * c.nLayers);
    layers.push({
      attnNorm: tensor([c.dim], 0, 1),
      wq: dense(tensor([qDim, c.dim], 1 / Math.sqrt(c.dim))),
      wk: dense(tensor([kvDim, c.dim], 1 / Math.sqrt(c.dim))),
      wv: dense(tensor([kvDim, c.dim], 1 / Math.sqrt(c.dim))),
      wo: dense(tensor([c.dim, qDim], out / Math.sqrt(qDim))),
      ffnNorm: tensor([c.dim], 0, 1),
      wGate: dense(tensor([c.hiddenDim, c.dim], 1 / Math.sqrt(c.dim))),
      wUp: dense(tensor([c.hiddenDim, c.dim], 1 / Math.sqrt(c.dim))),
      wDown: dense(tensor([c.dim, c.hiddenDim], out / Math.sqrt(c.hiddenDim))),
      ...(c.qkvBias
        ? { bq: tensor([qDim], 0.02), bk: tensor([kvDim], 0.02), bv: tensor([kvDim], 0.02) }
        : {}),
    });
  }
  const norm = tensor([c.dim], 0, 1);
  const lmHead = dense(c.tiedEmbeddings ? embed : tensor([c.vocabSize, c.dim], 1 / Math.sqrt(c.dim)));
  return {
    config: { ...c },
    weights: { embed, layers, norm, lmHead },
    wasm,
    source: { path: BUILTIN_NAME, format: "builtin", dtype: "F32" },
    tokenizer: c.vocabSize === 259 ? new ByteTokenizer() : undefined,
  };
}

export function builtinModel(wasm?: Wasm): Model {
  return randomLlama(BUILTIN_CONFIG, 20240229, wasm);
}
