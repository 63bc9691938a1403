/**
 * @file Row permutations of q_proj/k_proj between the two RoPE layouts (see RopeLayout in types.ts).
 * llama2.c / Meta rotate interleaved pairs (2i, 2i+1) of each head; HF rotates (i, i + hd/2). HF's
 * convert_llama_weights_to_hf.py permutes rows per head:
 *   w.reshape(n_heads, hd/2, 2, dim).transpose(0, 2, 1, 3).reshape(n_heads*hd, dim)
 * i.e. new row h*hd + j*hd/2 + i  <-  old row h*hd + 2i + j   (j in {0,1}, i < hd/2).
 */

/** Rows of `w` (nHeads*hd rows of `cols`) from interleaved to half layout, into a new array. */
export function interleavedToHalf(w: Float32Array, nHeads: number, hd: number, cols: number): Float32Array {
  return permuteRows(w, nHeads, hd, cols, true);
}

/** The inverse of interleavedToHalf. */
export function halfToInterleaved(w: Float32Array, nHeads: number, hd: number, cols: number): Float32Array {
  return permuteRows(w, nHeads, hd, cols, false);
}

function permuteRows(w: Float32Array, nHeads: number, hd: number, cols: number, toHalf: boolean): Float32Array {
  const out = new Float32Array(w.length);
  const h2 = hd / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < h2; i++) {
      for (let j = 0; j < 2; j++) {
        const inter = h * hd + 2 * i + j;
        const half = h * hd + j * h2 + i;
        const [dst, src] = toHalf ? [half, inter] : [inter, half];
        out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}
