/**
 * @file Plain scalar TypeScript references of every kernel in ./api.ts, on Float32Arrays instead of pointers.
 * They define what the WASM kernels compute (tests compare against them) and are the scalar baseline of
 * `wasprune bench kernels`. Arithmetic is float32 (Math.fround after every operation) in the simplest
 * order; rmsnorm, softmax and silu follow llama2.c's run.c operation for operation.
 */
const f = Math.fround;

/** Y[M,N] = X[M,K]·W[N,K]ᵀ (+ Y when accumulate). */
export function gemmNT(x: Float32Array, w: Float32Array, y: Float32Array, M: number, N: number, K: number, accumulate: boolean): void {
  for (let i = 0; i < M; i++) {
    const xi = i * K;
    for (let n = 0; n < N; n++) {
      const wn = n * K;
      let s = 0;
      for (let k = 0; k < K; k++) s = f(s + f(x[xi + k] * w[wn + k]));
      y[i * N + n] = accumulate ? f(y[i * N + n] + s) : s;
    }
  }
}

/** y[N] = W[N,K]·x[K] (+ y when accumulate). */
export function gemv(w: Float32Array, x: Float32Array, y: Float32Array, N: number, K: number, accumulate: boolean): void {
  gemmNT(x, w, y, 1, N, K, accumulate);
}

/** out[r,:] = g * (x[r,:] / sqrt(mean(x[r,:]²) + eps)), llama2.c's rmsnorm per row; out may be x. */
export function rmsnorm(x: Float32Array, g: Float32Array, out: Float32Array, rows: number, n: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let ss = 0;
    for (let j = 0; j < n; j++) ss = f(ss + f(x[o + j] * x[o + j]));
    ss = f(ss / n);
    ss = f(ss + f(eps));
    ss = f(1 / f(Math.sqrt(ss)));
    for (let j = 0; j < n; j++) out[o + j] = f(g[j] * f(ss * x[o + j]));
  }
}

/** x[0..n) = softmax(x) in place, max-subtracted (llama2.c). */
export function softmax(x: Float32Array, n = x.length): void {
  if (n === 0) return;
  let max = x[0];
  for (let i = 1; i < n; i++) if (x[i] > max) max = x[i];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    x[i] = f(Math.exp(f(x[i] - max)));
    sum = f(sum + x[i]);
  }
  for (let i = 0; i < n; i++) x[i] = f(x[i] / sum);
}

/** out[i] = silu(gate[i]) * up[i], silu(v) = v * (1 / (1 + exp(-v))). */
export function siluMul(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const v = gate[i];
    out[i] = f(f(v * f(1 / f(1 + f(Math.exp(-v))))) * up[i]);
  }
}

/** out[i] = a[i] + b[i]. */
export function add(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = f(a[i] + b[i]);
}

/** y[r,:] += b[:] for `rows` rows of n. */
export function addBiasRows(y: Float32Array, b: Float32Array, rows: number, n: number): void {
  for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) y[r * n + j] = f(y[r * n + j] + b[j]);
}

/** x[i] *= s. */
export function scale(x: Float32Array, s: number, n: number): void {
  const sf = f(s);
  for (let i = 0; i < n; i++) x[i] = f(x[i] * sf);
}

/** RoPE, interleaved pairs (2i, 2i+1) of each head rotated by (cos[i], sin[i]). */
export function ropeInterleaved(x: Float32Array, cos: Float32Array, sin: Float32Array, nHeads: number, headDim: number): void {
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < headDim / 2; i++) {
      const p = h * headDim + 2 * i;
      const x0 = x[p], x1 = x[p + 1], c = cos[i], s = sin[i];
      x[p] = f(f(x0 * c) - f(x1 * s));
      x[p + 1] = f(f(x0 * s) + f(x1 * c));
    }
  }
}

/** RoPE, rotate_half: (x[i], x[i + headDim/2]) of each head rotated by (cos[i], sin[i]). */
export function ropeHalf(x: Float32Array, cos: Float32Array, sin: Float32Array, nHeads: number, headDim: number): void {
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      const p = h * headDim + i;
      const x0 = x[p], x1 = x[p + half], c = cos[i], s = sin[i];
      x[p] = f(f(x0 * c) - f(x1 * s));
      x[p + half] = f(f(x0 * s) + f(x1 * c));
    }
  }
}

/**
 * One query against T cached positions. q, out: [nHeads*headDim]; row t of kv head h at t*kvStride + h*headDim
 * in k and v. Query head i uses kv head i / (nHeads/nKvHeads); scores scaled by 1/sqrt(headDim).
 */
export function attention(
  q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array,
  nHeads: number, nKvHeads: number, headDim: number, T: number, kvStride: number,
): void {
  const group = nHeads / nKvHeads;
  const sqrtHd = f(Math.sqrt(headDim));
  const scores = new Float32Array(T);
  for (let h = 0; h < nHeads; h++) {
    const kvOff = Math.floor(h / group) * headDim;
    for (let t = 0; t < T; t++) {
      let s = 0;
      for (let i = 0; i < headDim; i++) s = f(s + f(q[h * headDim + i] * k[t * kvStride + kvOff + i]));
      scores[t] = f(s / sqrtHd);
    }
    softmax(scores, T);
    for (let i = 0; i < headDim; i++) out[h * headDim + i] = 0;
    for (let t = 0; t < T; t++) {
      const a = scores[t];
      for (let i = 0; i < headDim; i++) {
        out[h * headDim + i] = f(out[h * headDim + i] + f(a * v[t * kvStride + kvOff + i]));
      }
    }
  }
}
