/**
 * @file Token sampling as llama2.c's run.c does it: greedy argmax at temperature 0, otherwise softmax of
 * logits/temperature then multinomial or top-p (nucleus) sampling, driven by its xorshift64* generator so
 * that a seed gives the same text.
 */
export class Sampler {
  private state: bigint;
  constructor(
    readonly vocabSize: number,
    readonly temperature: number,
    readonly topP: number,
    seed: number,
  ) {
    this.state = BigInt.asUintN(64, BigInt(Math.floor(seed)) || 1n);
  }

  /** llama2.c random_u32: xorshift64*, top 32 bits. */
  private randomU32(): number {
    let s = this.state;
    s ^= s >> 12n;
    s ^= BigInt.asUintN(64, s << 25n);
    s ^= s >> 27n;
    this.state = s;
    return Number(BigInt.asUintN(64, s * 0x2545f4914f6cdd1dn) >> 32n);
  }

  /** llama2.c random_f32: a float in [0, 1). */
  private randomF32(): number {
    return (this.randomU32() >>> 8) / 16777216.0;
  }

  sample(logits: Float32Array): number {
    const n = this.vocabSize;
    if (this.temperature === 0) {
      let best = 0;
      for (let i = 1; i < n; i++) if (logits[i] > logits[best]) best = i;
      return best;
    }
    const probs = new Float64Array(n);
    let max = -Infinity;
    for (let i = 0; i < n; i++) max = Math.max(max, logits[i] / this.temperature);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += probs[i] = Math.exp(logits[i] / this.temperature - max);
    for (let i = 0; i < n; i++) probs[i] /= sum;
    const coin = this.randomF32();
    if (this.topP <= 0 || this.topP >= 1) {
      let cdf = 0;
      for (let i = 0; i < n; i++) {
        cdf += probs[i];
        if (coin < cdf) return i;
      }
      return n - 1;
    }
    // top-p: candidates above (1 - topp)/(n - 1) sorted by probability, truncated where the mass exceeds topp
    const cutoff = (1 - this.topP) / (n - 1);
    const idx: number[] = [];
    for (let i = 0; i < n; i++) if (probs[i] >= cutoff) idx.push(i);
    idx.sort((a, b) => probs[b] - probs[a] || a - b);
    let mass = 0;
    let last = idx.length - 1;
    for (let i = 0; i < idx.length; i++) {
      mass += probs[idx[i]];
      if (mass > this.topP) {
        last = i;
        break;
      }
    }
    const r = coin * mass;
    let cdf = 0;
    for (let i = 0; i <= last; i++) {
      cdf += probs[idx[i]];
      if (r < cdf) return idx[i];
    }
    return idx[last];
  }
}
