/**
 * @file Activation streams outside the WebAssembly memory: the float32 rows of a set of sequences (the calibration
 * stream of the pruning driver, the hidden states of layer-major evaluation), sequence i holding `lengths[i]`
 * rows of `width` floats. Rows live in host memory (Node buffers, not the 4 GiB wasm32 arena) up to a byte
 * budget; sequences beyond it are kept in a temporary file (positioned reads and writes), which is removed on
 * `close`. A caller moves whole sequences in and out (`read` into / `write` from any Float32Array, e.g. an arena
 * view), so what is computed never depends on where the rows were kept.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DiskFullError, UsageError } from "../errors.js";

export interface RowStoreOptions {
  /** host-memory bytes for rows before spilling to the file (default: everything in memory) */
  budget?: number;
  /** folder of the spill file (default: the OS temporary folder) */
  spillDir?: string;
}

export class RowStore implements Rows {
  readonly width: number;
  readonly lengths: readonly number[];
  /** row offset of each sequence */
  readonly offsets: readonly number[];
  readonly rows: number;
  /** sequences [0, inMemory) are in host memory, the rest in the spill file */
  readonly inMemory: number;
  /** bytes in host memory and in the spill file */
  readonly memoryBytes: number;
  readonly spillBytes: number;
  private readonly mem: Float32Array[];
  private fd?: number;
  private readonly file?: string;
  /** bytes moved through the spill file */
  spilledReads = 0;
  spilledWrites = 0;

  constructor(lengths: readonly number[], width: number, opts: RowStoreOptions = {}) {
    this.width = width;
    this.lengths = lengths;
    const offsets: number[] = [];
    let rows = 0;
    for (const n of lengths) {
      offsets.push(rows);
      rows += n;
    }
    this.offsets = offsets;
    this.rows = rows;
    const budget = opts.budget ?? Infinity;
    let bytes = 0;
    let k = 0;
    while (k < lengths.length && bytes + 4 * lengths[k]! * width <= budget) bytes += 4 * lengths[k++]! * width;
    this.inMemory = k;
    this.memoryBytes = bytes;
    this.spillBytes = 4 * (rows - (offsets[k] ?? rows)) * width;
    this.mem = lengths.slice(0, k).map((n) => new Float32Array(n * width));
    if (k < lengths.length) {
      const dir = fs.mkdtempSync(path.join(opts.spillDir ?? os.tmpdir(), "wasprune-rows-"));
      this.file = path.join(dir, "rows.f32");
      this.fd = fs.openSync(this.file, "w+");
    }
  }

  /** Floats of sequence i. */
  size(i: number): number {
    return this.lengths[i]! * this.width;
  }

  /** Copy sequence i's rows into dst (at least size(i) floats). */
  read(i: number, dst: Float32Array): void {
    const n = this.size(i);
    if (dst.length < n) throw new UsageError(`RowStore.read: sequence ${i} has ${n} floats, destination ${dst.length}`);
    if (i < this.inMemory) {
      dst.set(this.mem[i]!);
      return;
    }
    const bytes = new Uint8Array(dst.buffer, dst.byteOffset, 4 * n);
    const pos = this.filePos(i);
    let done = 0;
    while (done < bytes.length) {
      const r = fs.readSync(this.fd!, bytes, done, bytes.length - done, pos + done);
      if (r <= 0) throw new UsageError(`${this.file}: sequence ${i} was never written`);
      done += r;
    }
    this.spilledReads += bytes.length;
  }

  /** Replace sequence i's rows with the first size(i) floats of src. */
  write(i: number, src: Float32Array): void {
    const n = this.size(i);
    if (src.length < n) throw new UsageError(`RowStore.write: sequence ${i} has ${n} floats, source ${src.length}`);
    if (i < this.inMemory) {
      this.mem[i]!.set(src.subarray(0, n));
      return;
    }
    const bytes = new Uint8Array(src.buffer, src.byteOffset, 4 * n);
    const pos = this.filePos(i);
    try {
      for (let done = 0; done < bytes.length; ) done += fs.writeSync(this.fd!, bytes, done, bytes.length - done, pos + done);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOSPC" || code === "EDQUOT") {
        const s = fs.statfsSync(path.dirname(this.file!));
        throw new DiskFullError(this.file!, this.spillBytes, s.bavail * s.bsize, "the activation stream could not be spilled to disk");
      }
      throw e;
    }
    this.spilledWrites += bytes.length;
  }

  private filePos(i: number): number {
    return 4 * (this.offsets[i]! - (this.offsets[this.inMemory] ?? 0)) * this.width;
  }

  /** Remove the spill file (idempotent). */
  close(): void {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
      fs.rmSync(path.dirname(this.file!), { recursive: true, force: true });
    }
  }
}

/** What the driver reads its calibration stream through: a RowStore, or rows already in one Float32Array. */
export interface Rows {
  readonly width: number;
  readonly lengths: readonly number[];
  readonly offsets: readonly number[];
  size(i: number): number;
  read(i: number, dst: Float32Array): void;
  write(i: number, src: Float32Array): void;
}

/** Rows of sequences in one Float32Array (e.g. a region of the arena a layer job owns). */
export class MemoryRows implements Rows {
  readonly offsets: readonly number[];
  constructor(
    readonly data: Float32Array,
    readonly lengths: readonly number[],
    readonly width: number,
  ) {
    const offsets: number[] = [];
    let rows = 0;
    for (const n of lengths) {
      offsets.push(rows);
      rows += n;
    }
    if (rows * width > data.length) throw new UsageError(`MemoryRows: ${rows} rows of ${width} need ${rows * width} floats, have ${data.length}`);
    this.offsets = offsets;
  }
  size(i: number): number {
    return this.lengths[i]! * this.width;
  }
  read(i: number, dst: Float32Array): void {
    const o = this.offsets[i]! * this.width;
    dst.set(this.data.subarray(o, o + this.size(i)));
  }
  write(i: number, src: Float32Array): void {
    const o = this.offsets[i]! * this.width;
    this.data.set(src.subarray(0, this.size(i)), o);
  }
}
