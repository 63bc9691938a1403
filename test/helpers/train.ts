/** @file Shared pieces of the training tests: the tiny LLaMA shape and a data source of seeded random sequences. */
import type { ModelConfig } from "../../src/model/types.ts";
import type { DataSource } from "../../src/train/data.ts";
import { mulberry32 } from "./random.ts";

/** 2 layers, GQA (4 query heads on 2 k/v heads), tied embeddings: every operator of the backward pass, small. */
export const TINY: ModelConfig = {
  architecture: "llama", dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 4, vocabSize: 19,
  maxSeqLen: 32, normEps: 1e-5, ropeTheta: 10000, ropeLayout: "half", tiedEmbeddings: true, qkvBias: false, bosId: 1, eosId: 2,
};

/** A data source of fixed random sequences (sample i is a function of seed and i). */
export class RandomSource implements DataSource {
  constructor(readonly V: number, readonly L: number, readonly seed: number) {}
  describe() { return { kind: "random" }; }
  sample(i: number): Int32Array {
    const r = mulberry32(this.seed * 7919 + i);
    return Int32Array.from({ length: this.L + 1 }, () => Math.floor(r() * this.V));
  }
}
