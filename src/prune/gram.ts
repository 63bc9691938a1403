/**
 * @file Calibration statistics of one linear operator, with SparseGPT's `add_batch` lifecycle:
 * `new GramCollector(exec, cols, { cross })` → `addBatches` per chunk of calibration samples → `finish()`
 * → (prune) → `free()`. Memory O(cols²): H (and with `cross`, C = X_dᵀX_p and H_d = X_dᵀX_d), never the
 * activations.
 *
 * Sums are float32, accumulated by the SIMD kernel (assembly/f32-gram.ts) in a fixed order: H gets only its
 * upper triangle per batch (a symmetric rank-T update), `finish` mirrors it and divides by n.
 */
import type { Executor } from "../exec/executor.js";
import type { Wasm } from "../wasm/runtime.js";
import { UsageError } from "../errors.js";
import { gramBatches } from "../kernels/products.js";
import { kernels } from "../kernels/index.js";

export interface GramStats {
  cols: number;
  /** tokens seen */
  n: number;
  /** (cols, cols) X_pᵀX_p / n */
  H: number;
  /** with error correction: (cols, cols) C = X_dᵀX_p / n and H_d = X_dᵀX_d / n */
  cross?: { C: number; Hd: number };
}

/**
 * The running sums whose value is their upper triangle (j ≥ i): the kernel also writes some elements just below
 * the diagonal (tiles that straddle it), which `finish` overwrites with the mirror, so nothing reads them.
 */
export const UPPER_SUMS: readonly string[] = ["H", "Hd"];

/** The upper triangle (j ≥ i) of a row-major n×n matrix, row by row: n(n+1)/2 floats. */
export function packUpper(a: Float32Array, n: number): Float32Array {
  const out = new Float32Array((n * (n + 1)) / 2);
  for (let i = 0, o = 0; i < n; o += n - i, i++) out.set(a.subarray(i * n + i, (i + 1) * n), o);
  return out;
}

/** `packUpper`'s inverse: the n×n matrix with the packed upper triangle and zeros below the diagonal. */
export function unpackUpper(p: Float32Array, n: number): Float32Array {
  if (p.length !== (n * (n + 1)) / 2) throw new UsageError(`an upper triangle of ${n}×${n} has ${(n * (n + 1)) / 2} floats, got ${p.length}`);
  const out = new Float32Array(n * n);
  for (let i = 0, o = 0; i < n; o += n - i, i++) out.set(p.subarray(o, o + n - i), i * n + i);
  return out;
}

export class GramCollector {
  readonly cols: number;
  private readonly exec: Executor;
  private readonly wasm: Wasm;
  private readonly mark: number;
  private readonly H: number;
  private readonly C: number;
  private readonly Hd: number;
  private n = 0;
  private state: "collecting" | "finished" | "freed" = "collecting";

  /** Takes its blocks from the arena now; `free()` gives them back (LIFO: also frees what came after). */
  constructor(exec: Executor, cols: number, opts: { cross?: boolean } = {}) {
    if (!Number.isInteger(cols) || cols < 1) throw new UsageError(`GramCollector: cols must be a positive integer, got ${cols}`);
    const wasm = exec.wasm;
    this.exec = exec;
    this.wasm = wasm;
    this.cols = cols;
    this.mark = wasm.arena.mark();
    this.H = wasm.arena.zeros(cols * cols);
    this.C = opts.cross ? wasm.arena.zeros(cols * cols) : 0;
    this.Hd = opts.cross ? wasm.arena.zeros(cols * cols) : 0;
  }

  get tokens(): number {
    return this.n;
  }

  /**
   * Add batches (X_p, X_d [T, cols] in the arena: the operator's inputs in the pruned and in the dense model;
   * the same pointer twice without a cross term) in order, each one a symmetric rank-T update of H (and C, H_d),
   * with the rows of the sums split over the executor's slots (every element is the same sum for any split).
   */
  async addBatches(batches: Array<{ xp: number; xd: number; T: number }>, what = "Gram"): Promise<void> {
    if (this.state !== "collecting") throw new UsageError(`GramCollector: addBatch after ${this.state === "finished" ? "finish()" : "free()"}`);
    const live = batches.filter((b) => b.T > 0);
    if (!this.C) for (const b of live) if (b.xd !== b.xp) throw new UsageError("GramCollector: X_d ≠ X_p needs { cross: true }");
    await gramBatches(this.exec, live, this.H, this.C, this.Hd, this.cols, what);
    for (const b of live) this.n += b.T;
  }

  /**
   * The running sums as they are (H and H_d: upper triangles; not yet scaled), viewed in the arena: what a shard
   * of the calibration samples contributes (src/prune/stats.ts RawStats).
   */
  raw(): Record<string, Float32Array> {
    const a = this.wasm.arena;
    const nn = this.cols * this.cols;
    return { H: a.f32(this.H, nn), ...(this.C ? { C: a.f32(this.C, nn), Hd: a.f32(this.Hd, nn) } : {}) };
  }

  /** Add another collector's running sums (`raw()`, over `tokens` tokens) element by element, in float32. */
  addRaw(raw: Record<string, Float32Array>, tokens: number): void {
    if (this.state !== "collecting") throw new UsageError(`GramCollector: addRaw after ${this.state === "finished" ? "finish()" : "free()"}`);
    for (const [k, v] of Object.entries(this.raw())) {
      const src = raw[k];
      if (!src || src.length !== v.length) throw new UsageError(`GramCollector: partial statistics lack ${k} of ${v.length} floats`);
      for (let i = 0; i < v.length; i++) v[i] += src[i]!;
    }
    this.n += tokens;
  }

  /** H/n (and C/n, H_d/n), symmetric; the blocks stay owned by the collector until `free()`. */
  finish(): GramStats {
    if (this.state !== "collecting") throw new UsageError(`GramCollector: finish() called twice or after free()`);
    this.state = "finished";
    const k = kernels(this.wasm);
    const a = this.wasm.arena;
    const nn = this.cols * this.cols;
    const scale = (p: number) => {
      if (this.n === 0) return;
      const v = a.f32(p, nn);
      const s = 1 / this.n;
      for (let i = 0; i < nn; i++) v[i] *= s;
    };
    k.f32_sym_mirror(this.H, this.cols);
    scale(this.H);
    if (this.C) {
      k.f32_sym_mirror(this.Hd, this.cols);
      scale(this.C);
      scale(this.Hd);
    }
    return { cols: this.cols, n: this.n, H: this.H, cross: this.C ? { C: this.C, Hd: this.Hd } : undefined };
  }

  /** Gives the blocks back to the arena (and everything allocated after them). */
  free(): void {
    if (this.state === "freed") return;
    this.state = "freed";
    this.wasm.arena.release(this.mark);
  }
}
