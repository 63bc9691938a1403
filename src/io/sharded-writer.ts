/**
 * @file Streaming, sharded safetensors output in Hugging Face's layout, written without ever holding a file
 * in memory: the plan (which tensor goes in which file, at which offset) and every header are computed up front
 * from names, dtypes and shapes; tensors are then written with positioned writes as they are produced.
 *
 * Layout (`planShards`), as transformers' `save_pretrained` via huggingface_hub's `split_state_dict_into_shards`:
 *  - tensors are taken in the caller's order (the model's state_dict order); a tensor goes into the current
 *    shard unless that would take it past `maxShardBytes`, which starts a new shard; a tensor larger than the
 *    limit gets a shard of its own (appended at once, so it comes before the shard still being filled);
 *  - one shard: `model.safetensors` and no index; n > 1: `model-0000k-of-0000n.safetensors` and
 *    `model.safetensors.index.json` = {"metadata": {"total_parameters", "total_size"}, "weight_map"}, keys sorted,
 *    indent 2 (total_size = the sum of tensor bytes, headers excluded);
 *  - within a file, tensors are laid out as the safetensors writer does: by descending dtype (its enum order,
 *    so every tensor is aligned to its element size), then by name; `__metadata__` first ({"format": "pt"} by
 *    default, as save_pretrained), compact JSON, padded with spaces to a multiple of 8 bytes.
 *
 * Writing (`ShardedWriter`): `create` makes every file of the plan under `dir/.wasprune-partial/` (its header
 * written, its size set), after checking the free space. `write`/`writeRange` put tensor bytes at their planned
 * offsets (float32 narrowed to F16/BF16 in 4 MiB chunks). `sync` fsyncs and records, in
 * `.wasprune-partial/progress.json`, the tensors whose every byte is on disk; `resume` reopens the temporaries
 * after a crash (headers checked against the plan) and knows those tensors. `finish` fsyncs, moves the files
 * into `dir` (replacing any earlier `model*.safetensors` and index there) and writes the index last, so nothing
 * that looks finished exists before the last byte is on disk. ENOSPC/EDQUOT becomes one DiskFullError (file,
 * bytes needed, bytes free) and the temporaries are kept, so a rerun with space can resume.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { DiskFullError, FormatError, MissingFileError, OutputExistsError, UsageError, outputExists } from "../errors.js";
import { DTYPE_SIZE, STORED_DTYPES, isFloatDType, isStoredDType, narrow16, numel, type StoredDType } from "./dtype.js";

import { INDEX_FILE, SINGLE_FILE } from "./safetensors-format.js";

export { INDEX_FILE, SINGLE_FILE };
/** save_pretrained's default max_shard_size, "5GB" */
export const DEFAULT_MAX_SHARD_SIZE = 5_000_000_000;
/** The folder inside the output directory that holds the files being written. */
export const PARTIAL_DIR = ".wasprune-partial";
const PROGRESS_FILE = "progress.json";
/** Bytes per narrowing chunk. */
const CHUNK = 1 << 22;

/** safetensors' Dtype enum order; its writer lays tensors out by descending rank, then name. */
const DTYPE_RANK: Readonly<Record<StoredDType, number>> = Object.freeze({
  BOOL: 0, U8: 1, I8: 2, I16: 5, U16: 6, F16: 7, BF16: 8, I32: 9, U32: 10, F32: 11, F64: 12, I64: 13, U64: 14,
});

export interface TensorSpec {
  name: string;
  dtype: StoredDType;
  shape: number[];
}

export interface PlannedTensor extends TensorSpec {
  elements: number;
  bytes: number;
  /** the file it is in (a name inside the output directory) */
  file: string;
  /** [begin, end) relative to the file's data section, as in its header */
  dataOffsets: [number, number];
  /** absolute byte offset of its first byte in the file */
  offset: number;
}

export interface PlannedFile {
  name: string;
  /** tensor names in file order */
  tensors: string[];
  /** the bytes before the data section: u64 LE header length, JSON header, space padding */
  header: Uint8Array;
  /** total file size in bytes */
  size: number;
}

export interface ShardIndex {
  metadata: { total_parameters: number; total_size: number };
  weight_map: Record<string, string>;
}

export interface ShardPlan {
  files: PlannedFile[];
  tensors: ReadonlyMap<string, PlannedTensor>;
  /** model.safetensors.index.json's content when there is more than one file */
  index?: ShardIndex;
  /** sum of tensor bytes (the index's metadata.total_size) */
  totalSize: number;
  /** sum of tensor elements */
  totalParameters: number;
  /** sum of file sizes: what goes on disk */
  fileBytes: number;
  /** files of this prefix (`<prefix>.safetensors`, `<prefix>-*-of-*.safetensors`, its index) are replaced on finish */
  prefix?: string;
}

export interface PlanOptions {
  /** every file's `__metadata__` (default {"format": "pt"}, as save_pretrained); {} for none */
  metadata?: Record<string, string>;
  /** file name prefix (default "model") */
  prefix?: string;
}

/** Validate specs; returns each one's byte size. `where` prefixes messages. */
function checkSpecs(where: string, tensors: readonly TensorSpec[]): number[] {
  const seen = new Set<string>();
  return tensors.map((t) => {
    if (typeof t.name !== "string" || t.name === "" || t.name === "__metadata__" || seen.has(t.name)) {
      throw new UsageError(`${where}tensor name "${t.name}" is empty, reserved or duplicated`);
    }
    seen.add(t.name);
    if (!isStoredDType(t.dtype)) throw new UsageError(`${where}"${t.name}" has unknown dtype ${t.dtype} (supported: ${STORED_DTYPES.join(", ")})`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new UsageError(`${where}"${t.name}" has an invalid shape ${JSON.stringify(t.shape)} (want non-negative integers)`);
    }
    const bytes = numel(t.shape) * DTYPE_SIZE[t.dtype];
    if (!Number.isSafeInteger(bytes)) throw new UsageError(`${where}"${t.name}" shape [${t.shape.join(",")}] is too large`);
    return bytes;
  });
}

function checkMetadata(metadata: Record<string, string>): void {
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") throw new UsageError(`safetensors metadata "${k}" must be a string, got ${JSON.stringify(v)}`);
  }
}

/** One file's layout: tensors in safetensors' order, header bytes, offsets. */
function layoutFile(name: string, specs: readonly TensorSpec[], metadata: Record<string, string>): { file: PlannedFile; tensors: PlannedTensor[] } {
  const sorted = [...specs].sort((a, b) => DTYPE_RANK[b.dtype] - DTYPE_RANK[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const parts: string[] = [];
  if (Object.keys(metadata).length) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let off = 0;
  const placed = sorted.map((t) => {
    const elements = numel(t.shape);
    const bytes = elements * DTYPE_SIZE[t.dtype];
    const dataOffsets: [number, number] = [off, off + bytes];
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":${JSON.stringify(t.shape)},"data_offsets":[${off},${off + bytes}]}`);
    off += bytes;
    return { name: t.name, dtype: t.dtype, shape: [...t.shape], elements, bytes, file: name, dataOffsets, offset: 0 };
  });
  const json = Buffer.from(`{${parts.join(",")}}`, "utf8");
  const padded = Math.ceil(json.length / 8) * 8;
  const header = Buffer.alloc(8 + padded, 0x20);
  header.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(header, 8);
  for (const t of placed) t.offset = header.length + t.dataOffsets[0];
  return { file: { name, tensors: placed.map((t) => t.name), header, size: header.length + off }, tensors: placed };
}

function assemble(groups: { name: string; specs: TensorSpec[] }[], metadata: Record<string, string>, sharded: boolean, prefix?: string): ShardPlan {
  checkMetadata(metadata);
  const files: PlannedFile[] = [];
  const tensors = new Map<string, PlannedTensor>();
  let totalSize = 0;
  let totalParameters = 0;
  for (const g of groups) {
    const { file, tensors: placed } = layoutFile(g.name, g.specs, metadata);
    files.push(file);
    for (const t of placed) {
      tensors.set(t.name, t);
      totalSize += t.bytes;
      totalParameters += t.elements;
    }
  }
  const plan: ShardPlan = { files, tensors, totalSize, totalParameters, fileBytes: files.reduce((s, f) => s + f.size, 0), ...(prefix ? { prefix } : {}) };
  if (sharded) {
    const weight_map: Record<string, string> = {};
    for (const name of [...tensors.keys()].sort()) weight_map[name] = tensors.get(name)!.file;
    plan.index = { metadata: { total_parameters: totalParameters, total_size: totalSize }, weight_map };
  }
  return plan;
}

/**
 * Hugging Face's sharding of `tensors` (in the given order, the model's state_dict order) into files of at most
 * `maxShardBytes` tensor bytes each (see the file header).
 */
export function planShards(tensors: readonly TensorSpec[], maxShardBytes: number = DEFAULT_MAX_SHARD_SIZE, opts: PlanOptions = {}): ShardPlan {
  if (!(maxShardBytes > 0)) throw new UsageError(`max shard size must be a positive number of bytes, got ${maxShardBytes}`);
  const prefix = opts.prefix ?? "model";
  const sizes = checkSpecs("", tensors);
  const shards: TensorSpec[][] = [];
  let current: TensorSpec[] = [];
  let currentSize = 0;
  tensors.forEach((t, i) => {
    const size = sizes[i]!;
    if (size > maxShardBytes) {
      shards.push([t]);
      return;
    }
    if (currentSize + size > maxShardBytes) {
      shards.push(current);
      current = [];
      currentSize = 0;
    }
    current.push(t);
    currentSize += size;
  });
  if (current.length) shards.push(current);
  const metadata = opts.metadata ?? { format: "pt" };
  if (shards.length <= 1) return assemble([{ name: `${prefix}.safetensors`, specs: [...tensors] }], metadata, false, prefix);
  const n = shards.length;
  const pad = (k: number): string => String(k).padStart(5, "0");
  return assemble(shards.map((specs, k) => ({ name: `${prefix}-${pad(k + 1)}-of-${pad(n)}.safetensors`, specs })), metadata, true, prefix);
}

/** One safetensors file named `fileName` holding every tensor (no index); for single files of any name. */
export function planFile(fileName: string, tensors: readonly TensorSpec[], metadata: Record<string, string> = {}): ShardPlan {
  checkSpecs(`${fileName}: `, tensors);
  return assemble([{ name: fileName, specs: [...tensors] }], metadata, false);
}

const SIZE_UNITS: Readonly<Record<string, number>> = Object.freeze({
  "": 1, B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40,
});

/**
 * A size as transformers' `convert_file_size_to_int` reads it: a number of bytes, or digits with a unit,
 * KB/MB/GB/TB = 10³ⁿ bytes and KiB/MiB/GiB/TiB = 2¹⁰ⁿ (case-insensitive), except that a decimal unit ending
 * in a lower-case "b" counts bits ("5Gb" = 625 MB). Fractions are allowed ("0.5GB") and rounded down.
 */
export function parseSize(size: string | number, what = "size"): number {
  const bad = (): UsageError => new UsageError(`${what}: ${JSON.stringify(size)} is not a size (e.g. 5GB, 500MB, 2GiB, or a number of bytes)`);
  if (typeof size === "number") {
    if (!Number.isSafeInteger(size) || size <= 0) throw bad();
    return size;
  }
  const m = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$/.exec(size);
  if (!m) throw bad();
  const unit = m[2]!.toUpperCase();
  const mult = SIZE_UNITS[unit];
  if (mult === undefined) throw bad();
  const bits = unit.length === 2 && unit !== "B" && m[2]!.endsWith("b");
  const n = Math.floor((Number(m[1]) * mult) / (bits ? 8 : 1));
  if (!Number.isSafeInteger(n) || n <= 0 || (unit === "" && !/^\s*\d+\s*$/.test(size))) throw bad();
  return n;
}

export interface WriterOptions {
  /** create: replace finished outputs of the plan's name in the directory and discard an earlier partial write */
  force?: boolean;
  /** the temporary folder's name inside the directory (default PARTIAL_DIR) */
  partialDir?: string;
  /** on a full disk keep the temporaries for a resume (default true); false removes them */
  keepOnDiskFull?: boolean;
  /**
   * Test hook: called before every positioned write; throwing an Error whose `code` is "ENOSPC" stands for a
   * full disk where a small filesystem cannot be mounted.
   */
  beforeWrite?: (file: string, position: number, bytes: number) => void;
}

const isDiskFull = (e: unknown): boolean => {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
};

function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Files in `dir` that finishing `plan` would replace (its own names, its index, other weight files of its prefix). */
function replacedOutputs(dir: string, plan: ShardPlan): string[] {
  const names = new Set(plan.files.map((f) => f.name));
  if (!fs.existsSync(dir)) return [];
  const esc = plan.prefix?.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const ours = esc ? new RegExp(`^${esc}(-\\d{5}-of-\\d{5})?\\.safetensors$|^${esc}\\.safetensors\\.index\\.json$`) : undefined;
  return fs.readdirSync(dir).filter((f) => names.has(f) || (ours?.test(f) ?? false)).sort();
}

export class ShardedWriter {
  /** bytes written by this writer (headers and tensor data; not counting an earlier run's) */
  bytesWritten = 0;
  readonly dir: string;
  /** the folder holding the files while they are written */
  readonly partial: string;
  private readonly fds = new Map<string, number>();
  private readonly dirty = new Set<string>();
  /** element ranges written so far, per tensor not yet complete */
  private readonly ranges = new Map<string, [number, number][]>();
  private readonly complete = new Set<string>();
  private syncedNames = new Set<string>();
  private scratch?: Uint8Array;
  private state: "open" | "finished" | "aborted" | "closed" = "open";

  private constructor(dir: string, readonly plan: ShardPlan, private readonly opts: WriterOptions) {
    this.dir = path.resolve(dir);
    this.partial = path.join(this.dir, opts.partialDir ?? PARTIAL_DIR);
    for (const t of plan.tensors.values()) if (t.elements === 0) this.complete.add(t.name);
  }

  /**
   * Start writing `plan` into `dir` (created if needed): refuses when finished outputs of the plan's name exist
   * there or a partial write does (unless `force`), or when the free space is less than the plan's bytes
   * (DiskFullError); then creates every file under the temporary folder with its header and full size.
   */
  static create(dir: string, plan: ShardPlan, opts: WriterOptions = {}): ShardedWriter {
    const w = new ShardedWriter(dir, plan, opts);
    fs.mkdirSync(w.dir, { recursive: true });
    const existing = replacedOutputs(w.dir, plan);
    if (existing.length && !opts.force) throw outputExists(path.join(dir, existing[0]!));
    if (fs.existsSync(w.partial)) {
      if (!opts.force) throw new OutputExistsError(`${w.partial} holds a partial write; resume it or pass force (--force) to start over`);
      fs.rmSync(w.partial, { recursive: true, force: true });
    }
    const free = freeBytes(w.dir);
    if (plan.fileBytes > free) throw new DiskFullError(w.dir, plan.fileBytes, free, "nothing was written");
    fs.mkdirSync(w.partial);
    try {
      for (const f of plan.files) w.makeFile(f);
    } catch (e) {
      if (e instanceof DiskFullError) w.closeAll(); // the temporaries stay for a resume, unless keepOnDiskFull is false
      else w.abort();
      throw e;
    }
    return w;
  }

  /**
   * Reopen the temporaries of an interrupted write of the same plan: every file must be there with the
   * plan's size and header bytes (else a FormatError naming the file). Tensors recorded by the last `sync`
   * count as written (`synced`); everything else must be written again.
   */
  static resume(dir: string, plan: ShardPlan, opts: WriterOptions = {}): ShardedWriter {
    const w = new ShardedWriter(dir, plan, opts);
    if (!fs.existsSync(w.partial)) throw new MissingFileError(`${w.partial}: no partial write to resume`);
    const names = new Set(plan.files.map((f) => f.name));
    const foreign = fs.readdirSync(w.partial).filter((f) => !names.has(f) && f !== PROGRESS_FILE && !f.endsWith(".tmp"));
    if (foreign.length) {
      throw new FormatError(path.join(w.partial, foreign[0]!), `is not a file of this plan; the partial write in ${w.partial} is of another plan (start over with force / --force)`);
    }
    try {
      for (const f of plan.files) {
        const p = path.join(w.partial, f.name);
        if (!fs.existsSync(p)) {
          w.makeFile(f); // create was interrupted (e.g. by a full disk) before making this file
          continue;
        }
        const fd = fs.openSync(p, "r+");
        w.fds.set(f.name, fd);
        const size = fs.fstatSync(fd).size;
        if (size !== f.size) throw new FormatError(p, `is ${size} bytes, the plan's file ${f.size}; the partial write is of another plan (start over with force / --force)`);
        const head = Buffer.alloc(f.header.length);
        fs.readSync(fd, head, 0, head.length, 0);
        if (!head.equals(f.header)) {
          throw new FormatError(p, `header differs from the plan's (another model, dtype or shard size); start over with force / --force`);
        }
      }
    } catch (e) {
      w.closeAll();
      throw e;
    }
    const prog = path.join(w.partial, PROGRESS_FILE);
    if (fs.existsSync(prog)) {
      let listed: unknown;
      try {
        listed = (JSON.parse(fs.readFileSync(prog, "utf8")) as { complete?: unknown }).complete;
      } catch (e) {
        w.closeAll();
        throw new FormatError(prog, `is not valid JSON (${(e as Error).message})`);
      }
      if (!Array.isArray(listed)) {
        w.closeAll();
        throw new FormatError(prog, `has no "complete" list`);
      }
      for (const n of listed) if (typeof n === "string" && plan.tensors.has(n)) w.complete.add(n);
    }
    w.syncedNames = new Set(w.complete);
    const need = w.unallocated();
    const free = freeBytes(w.dir);
    if (need > free) {
      w.closeAll();
      throw new DiskFullError(w.partial, need, free, `the partial files are kept in ${w.partial}: free some space and rerun to resume`);
    }
    return w;
  }

  /** Tensors whose every byte was on disk at the last `sync` (of this run, or of the run resumed). */
  get synced(): ReadonlySet<string> {
    return this.syncedNames;
  }

  /** Whether every element of `name` has been written (this run) or was synced (the run resumed). */
  isWritten(name: string): boolean {
    this.tensor(name);
    return this.complete.has(name);
  }

  /** Names of the tensors not (completely) written yet, in plan order. */
  missing(): string[] {
    return [...this.plan.tensors.keys()].filter((n) => !this.complete.has(n));
  }

  /**
   * Write tensor `name` whole: float32 values (narrowed to the planned F16/BF16; float dtypes only) or its
   * encoded bytes (any dtype, little endian).
   */
  write(name: string, data: Float32Array | Uint8Array): void {
    const t = this.tensor(name);
    this.checkKind(t, data);
    const have = data instanceof Float32Array ? data.length * DTYPE_SIZE[t.dtype] : data.length;
    if (have !== t.bytes) throw new UsageError(`${t.file}: "${name}" data has ${have} bytes, shape [${t.shape.join(",")}] ${t.dtype} needs ${t.bytes}`);
    this.writeRange(name, 0, data);
  }

  /** Write elements [firstElement, firstElement + n) of tensor `name` (n from `data`, as in `write`). */
  writeRange(name: string, firstElement: number, data: Float32Array | Uint8Array): void {
    this.checkOpen();
    const t = this.tensor(name);
    this.checkKind(t, data);
    const es = DTYPE_SIZE[t.dtype];
    if (data instanceof Uint8Array && data.length % es !== 0) {
      throw new UsageError(`${t.file}: "${name}": ${data.length} bytes is not a whole number of ${t.dtype} elements`);
    }
    const n = data instanceof Float32Array ? data.length : data.length / es;
    if (!Number.isSafeInteger(firstElement) || firstElement < 0 || firstElement + n > t.elements) {
      throw new UsageError(`${t.file}: "${name}": elements [${firstElement}, ${firstElement + n}) are outside its ${t.elements}`);
    }
    const fd = this.fds.get(t.file)!;
    const pos = t.offset + firstElement * es;
    this.guard(path.join(this.partial, t.file), () => {
      if (data instanceof Uint8Array) this.put(t.file, fd, data, pos);
      else if (t.dtype === "F32") this.put(t.file, fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), pos);
      else {
        const scratch = (this.scratch ??= new Uint8Array(CHUNK));
        const step = CHUNK >> 1;
        for (let i = 0; i < n; i += step) {
          const src = data.subarray(i, Math.min(n, i + step));
          const dst = scratch.subarray(0, src.length * 2);
          narrow16(t.dtype as "F16" | "BF16", src, dst);
          this.put(t.file, fd, dst, pos + i * 2);
        }
      }
    });
    this.dirty.add(t.file);
    if (n > 0) this.cover(name, firstElement, firstElement + n, t.elements);
  }

  /** fsync what was written, then record the tensors complete so far (`synced`; what `resume` trusts). */
  sync(): void {
    this.checkOpen();
    this.guard(this.partial, () => {
      this.flush();
      const prog = path.join(this.partial, PROGRESS_FILE);
      const tmp = `${prog}.tmp`;
      const names = [...this.complete].sort();
      const fd = fs.openSync(tmp, "w");
      try {
        const buf = Buffer.from(JSON.stringify({ complete: names }) + "\n");
        this.put(PROGRESS_FILE, fd, buf, 0);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, prog);
      fsyncDir(this.partial);
      this.syncedNames = new Set(names);
    });
  }

  /**
   * Every tensor must be written (else a UsageError naming the missing ones; nothing is moved). fsyncs, then
   * moves the files into the directory, replacing earlier weight files and index of the same prefix, and
   * writes the index last; removes the temporary folder.
   */
  finish(): void {
    this.checkOpen();
    const missing = this.missing();
    if (missing.length) {
      const shown = missing.slice(0, 3).map((n) => `"${n}"`).join(", ");
      throw new UsageError(`${missing.length} of ${this.plan.tensors.size} tensors not written (${shown}${missing.length > 3 ? ", …" : ""}); nothing was finished`);
    }
    this.guard(this.partial, () => {
      this.flush();
      let indexTmp: string | undefined;
      if (this.plan.index) {
        indexTmp = path.join(this.partial, `${INDEX_FILE}.tmp`);
        const fd = fs.openSync(indexTmp, "w");
        try {
          this.put(INDEX_FILE, fd, Buffer.from(JSON.stringify(this.plan.index, null, 2) + "\n"), 0);
          fs.fsyncSync(fd);
        } finally {
          fs.closeSync(fd);
        }
      }
      this.closeAll();
      const ours = new Set(this.plan.files.map((f) => f.name));
      for (const f of replacedOutputs(this.dir, this.plan)) if (!ours.has(f)) fs.rmSync(path.join(this.dir, f), { force: true });
      for (const f of this.plan.files) fs.renameSync(path.join(this.partial, f.name), path.join(this.dir, f.name));
      if (indexTmp) fs.renameSync(indexTmp, path.join(this.dir, INDEX_FILE));
      fsyncDir(this.dir);
    });
    fs.rmSync(this.partial, { recursive: true, force: true });
    this.state = "finished";
  }

  /** Close the files and keep the temporaries (e.g. after a DiskFullError), for a later `resume`. */
  close(): void {
    if (this.state !== "open") return;
    this.closeAll();
    this.state = "closed";
  }

  /** Close and remove the temporaries (nothing in the directory itself is touched). */
  abort(): void {
    if (this.state !== "open") return;
    this.closeAll();
    fs.rmSync(this.partial, { recursive: true, force: true });
    this.state = "aborted";
  }

  // ---- internals ---------------------------------------------------------------------------------

  /** Create file `f` under the temporary folder: its header written, its full size set (sparse). */
  private makeFile(f: PlannedFile): void {
    const p = path.join(this.partial, f.name);
    this.guard(p, () => {
      const fd = fs.openSync(p, "w+");
      try {
        this.put(f.name, fd, f.header, 0);
        fs.ftruncateSync(fd, f.size);
      } catch (e) {
        fs.closeSync(fd);
        fs.rmSync(p, { force: true }); // a file without its header is no temporary to resume: resume makes it again
        throw e;
      }
      this.fds.set(f.name, fd);
    });
    this.dirty.add(f.name);
  }

  private tensor(name: string): PlannedTensor {
    const t = this.plan.tensors.get(name);
    if (!t) throw new UsageError(`tensor "${name}" is not in the plan`);
    return t;
  }

  private checkKind(t: PlannedTensor, data: Float32Array | Uint8Array): void {
    if (data instanceof Float32Array && !isFloatDType(t.dtype)) {
      throw new UsageError(`${t.file}: "${t.name}" is ${t.dtype}; float32 data can only be stored as F32, F16 or BF16 (pass the encoded bytes)`);
    }
    if (!(data instanceof Float32Array) && !(data instanceof Uint8Array)) throw new UsageError(`"${t.name}": data must be a Float32Array or Uint8Array`);
  }

  private checkOpen(): void {
    if (this.state !== "open") throw new UsageError(`the writer of ${this.dir} is ${this.state}`);
  }

  private put(file: string, fd: number, buf: Uint8Array, pos: number): void {
    this.opts.beforeWrite?.(file, pos, buf.length);
    let done = 0;
    while (done < buf.length) {
      const n = fs.writeSync(fd, buf, done, Math.min(buf.length - done, 1 << 30), pos + done);
      done += n;
      this.bytesWritten += n;
    }
  }

  private flush(): void {
    for (const f of this.dirty) fs.fsyncSync(this.fds.get(f)!);
    this.dirty.clear();
  }

  /** Record elements [a, b) of `name` as written; complete when [0, n) is covered. */
  private cover(name: string, a: number, b: number, n: number): void {
    if (this.complete.has(name)) return;
    const rs = this.ranges.get(name) ?? [];
    rs.push([a, b]);
    rs.sort((x, y) => x[0] - y[0]);
    const merged: [number, number][] = [];
    for (const r of rs) {
      const last = merged[merged.length - 1];
      if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
      else merged.push([r[0], r[1]]);
    }
    if (merged.length === 1 && merged[0]![0] === 0 && merged[0]![1] === n) {
      this.ranges.delete(name);
      this.complete.add(name);
    } else this.ranges.set(name, merged);
  }

  /** Bytes of the plan's files not yet allocated on disk (files are created sparse). */
  private unallocated(): number {
    let need = 0;
    for (const f of this.plan.files) {
      const fd = this.fds.get(f.name);
      const st = fd !== undefined ? fs.fstatSync(fd) : undefined;
      need += Math.max(0, f.size - (st ? st.blocks * 512 : 0));
    }
    return need;
  }

  /** Run `fn`; a full disk becomes one DiskFullError naming `file` (temporaries kept unless keepOnDiskFull is false). */
  private guard(file: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (!isDiskFull(e)) throw e;
      let need = 0;
      let free = 0;
      try {
        need = this.unallocated();
        free = freeBytes(this.dir);
      } catch {
        // the numbers are best effort; the error is the disk being full
      }
      const keep = this.opts.keepOnDiskFull ?? true;
      if (!keep) this.abort();
      throw new DiskFullError(
        file, need, free,
        keep ? `the partial files are kept in ${this.partial}: free some space and rerun to resume` : "the partial files were removed",
      );
    }
  }

  private closeAll(): void {
    for (const fd of this.fds.values()) {
      try {
        fs.closeSync(fd);
      } catch {
        // already closed
      }
    }
    this.fds.clear();
  }
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
