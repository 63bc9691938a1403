/**
 * @file What each pruning method needs from calibration, and its collector (SparseGPT's `add_batch` lifecycle,
 * statistics as big as the method needs — llm-compressor's habit):
 *  - "none": nothing (magnitude: its mask ignores the data);
 *  - "norms": the column norms ‖x_j‖²/n of the operator's input (Wanda) — O(cols) memory, O(T·cols) work;
 *  - "gram": H = XᵀX/n (SparseGPT, FISTA) — O(cols²) memory, O(T·cols²) work;
 *  - "cross": H, and with intra-layer error correction the cross term C = X_dᵀX_p/n and H_d = X_dᵀX_d/n.
 * The norms are the Gram diagonal bit for bit (assembly/f32-gram.ts f32_col_sumsq), so a method reads the same
 * numbers whichever statistics were collected. Batches are taken per calibration sample in sample order, so
 * the sums do not depend on how samples are chunked or on the thread count.
 */
import type { Executor } from "../exec/executor.js";
import { GramCollector, UPPER_SUMS, type GramStats } from "./gram.js";
import { kernels } from "../kernels/index.js";
import { UsageError } from "../errors.js";

export type StatsKind = "none" | "norms" | "gram" | "cross";

/** The statistics of one operator group after calibration. */
export interface CalibStats {
  kind: StatsKind;
  cols: number;
  /** tokens seen */
  n: number;
  /** H_jj = ‖x_j‖²/n (f32 [cols]); every kind but "none" */
  diag?: Float32Array;
  /** the Gram statistics ("gram", "cross") */
  gram?: GramStats;
}

/** The running sums of a collector before `finish` (a shard's contribution): arrays by name, and the tokens. */
export interface RawStats {
  n: number;
  arrays: Record<string, Float32Array>;
  /** the arrays (cols × cols) whose sums are their upper triangle (H, H_d): `finish` mirrors it, below is never read */
  upper?: readonly string[];
}

/** Collects one operator group's statistics of `kind` (its blocks from the arena, given back by `free`). */
export class StatsCollector {
  private readonly gram?: GramCollector;
  private readonly norms?: number;
  private readonly mark: number;
  private n = 0;

  constructor(
    private readonly exec: Executor,
    readonly cols: number,
    readonly kind: StatsKind,
  ) {
    this.mark = exec.wasm.arena.mark();
    if (kind === "gram" || kind === "cross") this.gram = new GramCollector(exec, cols, { cross: kind === "cross" });
    else if (kind === "norms") this.norms = exec.wasm.arena.zeros(cols);
  }

  /** Whether the batches' inputs are needed at all. */
  get needsData(): boolean {
    return this.kind !== "none";
  }

  /** Batches (X_p, X_d [T, cols]; the same pointer twice without a cross term) in sample order. */
  async add(batches: Array<{ xp: number; xd: number; T: number }>, what: string): Promise<void> {
    if (this.gram) await this.gram.addBatches(batches, what);
    else if (this.norms !== undefined) {
      const k = kernels(this.exec.wasm);
      for (const b of batches) if (b.T > 0) k.f32_col_sumsq(b.xp, this.norms, b.T, this.cols);
    }
    for (const b of batches) this.n += b.T;
  }

  /** The running sums so far (views of the collector's blocks). */
  raw(): RawStats {
    if (this.gram) {
      const arrays = this.gram.raw();
      return { n: this.n, arrays, upper: UPPER_SUMS.filter((k) => k in arrays) };
    }
    if (this.norms !== undefined) return { n: this.n, arrays: { norms: this.exec.wasm.arena.f32(this.norms, this.cols) } };
    return { n: this.n, arrays: {} };
  }

  /**
   * Add a shard's running sums, element by element in float32: the statistics of consecutive shards of samples
   * are their partial sums added in shard order (each shard's sum starting from zero), on one machine or many.
   */
  addRaw(r: RawStats): void {
    if (this.gram) this.gram.addRaw(r.arrays, r.n);
    else if (this.norms !== undefined) {
      const v = this.exec.wasm.arena.f32(this.norms, this.cols);
      const src = r.arrays.norms;
      if (!src || src.length !== v.length) throw new UsageError(`partial statistics lack the ${v.length} column norms`);
      for (let j = 0; j < v.length; j++) v[j] += src[j]!;
    }
    this.n += r.n;
  }

  finish(): CalibStats {
    const a = this.exec.wasm.arena;
    if (this.gram) {
      const gram = this.gram.finish();
      const h = a.f32(gram.H, this.cols * this.cols);
      const diag = new Float32Array(this.cols);
      for (let j = 0; j < this.cols; j++) diag[j] = h[j * this.cols + j]!;
      return { kind: this.kind, cols: this.cols, n: this.n, diag, gram };
    }
    if (this.norms !== undefined) {
      // as GramCollector.finish scales H: v *= 1/n in float32
      const diag = Float32Array.from(a.f32(this.norms, this.cols));
      if (this.n > 0) {
        const s = 1 / this.n;
        for (let j = 0; j < this.cols; j++) diag[j] *= s;
      }
      return { kind: this.kind, cols: this.cols, n: this.n, diag };
    }
    return { kind: this.kind, cols: this.cols, n: this.n };
  }

  /** Gives the blocks back to the arena (and everything allocated after them). */
  free(): void {
    if (this.gram) this.gram.free();
    else this.exec.wasm.arena.release(this.mark);
  }
}
