/**
 * @file safetensors reader and writer, and sharded checkpoints (model.safetensors.index.json).
 *
 * Layout (https://github.com/huggingface/safetensors):
 *   u64 LE  N            header length
 *   N bytes              UTF-8 JSON: { "__metadata__"?: {string: string},
 *                                      "<name>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, ... }
 *   rest                 data section; offsets are relative to its start (byte 8 + N)
 *
 * The reader trusts nothing: every header field is checked (types, bounds, sizes, overlaps) before any tensor
 * is read, and every error is a FormatError naming the file. Tensor bytes go straight from the file into the
 * destination (the WASM arena) with positioned reads; F16/BF16 are widened to f32 in bounded chunks.
 *
 * Dtypes: the float ones (F32, F16, BF16) are read as float32 (`readF32Into`); the raw ones of DTYPE_SIZE
 * (U8, I8, I16, I32, I64, F64, …; e.g. a compressed checkpoint's bitmasks and shapes, src/sparse) are
 * validated the same way and read as their bytes (`readRaw`). Sub-byte and 8-bit float dtypes are refused
 * as unsupported. Whether a tensor may be a model *weight* is the loader's call (src/model/load-hf.ts).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError, UsageError } from "../errors.js";
import { DTYPE_SIZE, SAFETENSORS_DTYPES, STORED_DTYPES, isFloatDType, isStoredDType, numel, widen16, type StoredDType } from "./dtype.js";
import { INDEX_FILE, SINGLE_FILE, ShardedWriter, planFile } from "./sharded-writer.js";

/** Upper bound on the JSON header (the reference implementation uses the same 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Bytes per positioned read; also the f16/bf16 widening chunk. */
const CHUNK = 1 << 22;

export interface TensorEntry {
  dtype: StoredDType;
  shape: number[];
  /** byte offsets into the data section, [begin, end) */
  begin: number;
  end: number;
}

export interface SafetensorsFile {
  path: string;
  header: Map<string, TensorEntry>;
  metadata: Record<string, string>;
  /** absolute file offset of the data section */
  dataStart: number;
  /** Read float tensor `name` (F32/F16/BF16) as float32 into `dst` (length = number of elements). */
  readF32Into(name: string, dst: Float32Array): void;
  /** Read elements [first, first + dst.length) of float tensor `name` as float32 into `dst` (e.g. some rows). */
  readF32Range(name: string, first: number, dst: Float32Array): void;
  /** The stored bytes of tensor `name` (any dtype; little endian). */
  readRaw(name: string): Uint8Array;
  close(): void;
}

const base = (p: string): string => path.basename(p);

function entry(file: string, header: Map<string, TensorEntry>, name: string): TensorEntry {
  const e = header.get(name);
  if (!e) throw new FormatError(file, `no tensor "${name}"`);
  return e;
}

export { numel };

/** Validate a parsed header against a data section of `dataSize` bytes. `file` is used in messages. */
export function parseHeader(
  file: string,
  json: unknown,
  dataSize: number,
): { header: Map<string, TensorEntry>; metadata: Record<string, string> } {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new FormatError(file, "header is not a JSON object");
  }
  const header = new Map<string, TensorEntry>();
  const metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (raw === null) continue;
      if (typeof raw !== "object" || Array.isArray(raw)) throw new FormatError(file, `"__metadata__" is not an object`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") throw new FormatError(file, `"__metadata__"."${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const t = `tensor "${name}"`;
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new FormatError(file, `${t} is not an object`);
    const { dtype, shape, data_offsets: offs } = raw as Record<string, unknown>;
    if (typeof dtype !== "string") throw new FormatError(file, `${t} has no "dtype" string`);
    if (!isStoredDType(dtype)) {
      throw new FormatError(
        file,
        SAFETENSORS_DTYPES.has(dtype)
          ? `${t} has unsupported dtype ${dtype} (supported: ${STORED_DTYPES.join(", ")})`
          : `${t} has unknown dtype ${JSON.stringify(dtype).slice(0, 40)} (supported: ${STORED_DTYPES.join(", ")})`,
      );
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new FormatError(file, `${t} has an invalid "shape" (want an array of non-negative integers)`);
    }
    const n = numel(shape as number[]);
    if (!Number.isSafeInteger(n * DTYPE_SIZE[dtype])) throw new FormatError(file, `${t} shape [${shape.join(",")}] is too large`);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new FormatError(file, `${t} has invalid "data_offsets" (want [begin, end] non-negative integers)`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) throw new FormatError(file, `${t} has data_offsets [${begin},${end}) with begin > end`);
    if (end > dataSize) {
      throw new FormatError(file, `${t} claims bytes [${begin},${end}) but the data section has only ${dataSize} bytes`);
    }
    const want = n * DTYPE_SIZE[dtype];
    if (end - begin !== want) {
      throw new FormatError(
        file,
        `${t} has ${end - begin} bytes [${begin},${end}) but shape [${shape.join(",")}] of ${dtype} needs ${want}`,
      );
    }
    header.set(name, { dtype, shape: [...(shape as number[])], begin, end });
  }
  const spans = [...header].filter(([, e]) => e.end > e.begin).sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < spans.length; i++) {
    const [pn, p] = spans[i - 1]!;
    const [cn, c] = spans[i]!;
    if (c.begin < p.end) {
      throw new FormatError(file, `tensors "${pn}" [${p.begin},${p.end}) and "${cn}" [${c.begin},${c.end}) overlap`);
    }
  }
  return { header, metadata };
}

/** Read exactly dst.length bytes at `pos`, or throw FormatError (the file shrank under us). */
function readFully(fd: number, file: string, dst: Uint8Array, pos: number): void {
  let done = 0;
  while (done < dst.length) {
    const n = fs.readSync(fd, dst, done, Math.min(dst.length - done, 1 << 30), pos + done);
    if (n <= 0) throw new FormatError(file, `unexpected end of file at byte ${pos + done}`);
    done += n;
  }
}

/** Open and validate a .safetensors file. Nothing but the header is read until a tensor is asked for. */
export function openSafetensors(filePath: string): SafetensorsFile {
  const file = base(filePath);
  let fd: number;
  try {
    fd = fs.openSync(filePath, "r");
  } catch (e) {
    throw new FormatError(file, `cannot open: ${(e as Error).message}`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) throw new FormatError(file, `file is ${size} bytes, too short for the 8-byte header length`);
    const lenBuf = new Uint8Array(8);
    readFully(fd, file, lenBuf, 0);
    const n64 = new DataView(lenBuf.buffer).getBigUint64(0, true);
    if (n64 > BigInt(MAX_HEADER_BYTES)) throw new FormatError(file, `header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    const n = Number(n64);
    if (n > size - 8) throw new FormatError(file, `header length ${n} exceeds the ${size - 8} bytes after the length field`);
    const hbuf = new Uint8Array(n);
    readFully(fd, file, hbuf, 8);
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(hbuf);
    } catch {
      throw new FormatError(file, "header is not valid UTF-8");
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new FormatError(file, `header is not valid JSON (${(e as Error).message})`);
    }
    const dataStart = 8 + n;
    const { header, metadata } = parseHeader(file, json, size - dataStart);
    return makeReader(filePath, fd, header, metadata, dataStart);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

function makeReader(
  filePath: string,
  fd: number,
  header: Map<string, TensorEntry>,
  metadata: Record<string, string>,
  dataStart: number,
): SafetensorsFile {
  const file = base(filePath);
  let open = true;
  const check = (): void => {
    if (!open) throw new UsageError(`${file}: read after close()`);
  };
  const readRange = (name: string, first: number, dst: Float32Array): void => {
    check();
    const e = entry(file, header, name);
    const n = dst.length;
    if (!(Number.isSafeInteger(first) && first >= 0 && first + n <= numel(e.shape))) {
      throw new UsageError(`${file}: "${name}" has ${numel(e.shape)} elements, asked for [${first}, ${first + n})`);
    }
    if (!isFloatDType(e.dtype)) throw new FormatError(file, `tensor "${name}" is ${e.dtype}, not a float dtype (F32, F16, BF16)`);
    const pos = dataStart + e.begin + first * DTYPE_SIZE[e.dtype];
    if (e.dtype === "F32") {
      readFully(fd, file, new Uint8Array(dst.buffer, dst.byteOffset, n * 4), pos);
      return;
    }
    const scratch = new Uint8Array(Math.min(CHUNK, n * 2));
    for (let i = 0; i < n; ) {
      const m = Math.min(n - i, scratch.length >> 1);
      const bytes = scratch.subarray(0, m * 2);
      readFully(fd, file, bytes, pos + i * 2);
      widen16(e.dtype as "F16" | "BF16", bytes, dst.subarray(i, i + m), m);
      i += m;
    }
  };
  return {
    path: filePath,
    header,
    metadata,
    dataStart,
    readF32Into(name, dst) {
      const n = numel(entry(file, header, name).shape);
      if (dst.length !== n) throw new UsageError(`${file}: "${name}" has ${n} elements, destination has ${dst.length}`);
      readRange(name, 0, dst);
    },
    readF32Range: (name, first, dst) => readRange(name, first, dst),
    readRaw(name) {
      check();
      const e = entry(file, header, name);
      const out = new Uint8Array(e.end - e.begin);
      readFully(fd, file, out, dataStart + e.begin);
      return out;
    },
    close() {
      if (open) fs.closeSync(fd);
      open = false;
    },
  };
}

// ---- Sharded checkpoints -----------------------------------------------------------------------------

export { INDEX_FILE, SINGLE_FILE };

/** Every tensor of a (possibly sharded) checkpoint directory, through one interface. */
export interface Checkpoint {
  /** the files opened (one, or the shards) */
  files: SafetensorsFile[];
  /** tensor name -> its file and header entry */
  tensors: Map<string, { file: SafetensorsFile; entry: TensorEntry }>;
  readF32Into(name: string, dst: Float32Array): void;
  readF32Range(name: string, first: number, dst: Float32Array): void;
  readRaw(name: string): Uint8Array;
  close(): void;
}

/**
 * Open `dir/model.safetensors`, or the shards listed by `dir/model.safetensors.index.json` (whose weight_map is
 * validated: every shard exists, every listed tensor is in the shard named for it, no tensor is in two shards).
 * Returns undefined when neither file exists.
 */
export function openCheckpoint(dir: string): Checkpoint | undefined {
  const single = path.join(dir, SINGLE_FILE);
  const index = path.join(dir, INDEX_FILE);
  let files: SafetensorsFile[];
  let weightMap: Map<string, string> | undefined;
  const tensors = new Map<string, { file: SafetensorsFile; entry: TensorEntry }>();
  if (fs.existsSync(single)) {
    files = [openSafetensors(single)];
  } else if (fs.existsSync(index)) {
    weightMap = readIndex(index);
    const shards = [...new Set(weightMap.values())].sort();
    for (const s of shards) {
      if (!fs.existsSync(path.join(dir, s))) throw new FormatError(INDEX_FILE, `lists shard "${s}" which does not exist in ${dir}`);
    }
    files = [];
    try {
      for (const s of shards) files.push(openSafetensors(path.join(dir, s)));
    } catch (e) {
      for (const f of files) f.close();
      throw e;
    }
  } else {
    return undefined;
  }
  for (const f of files) {
    for (const [name, entry] of f.header) {
      const prev = tensors.get(name);
      if (prev) {
        for (const g of files) g.close();
        throw new FormatError(base(f.path), `tensor "${name}" is also in ${base(prev.file.path)}`);
      }
      tensors.set(name, { file: f, entry });
    }
  }
  if (weightMap) {
    for (const [name, shard] of weightMap) {
      const t = tensors.get(name);
      if (!t || base(t.file.path) !== shard) {
        for (const g of files) g.close();
        throw new FormatError(INDEX_FILE, `maps tensor "${name}" to ${shard}, which does not contain it`);
      }
    }
  }
  const fileOf = (name: string): SafetensorsFile => {
    const t = tensors.get(name);
    if (!t) throw new FormatError(files.length === 1 ? base(files[0]!.path) : INDEX_FILE, `no tensor "${name}"`);
    return t.file;
  };
  return {
    files,
    tensors,
    readF32Into(name, dst) {
      fileOf(name).readF32Into(name, dst);
    },
    readF32Range(name, first, dst) {
      fileOf(name).readF32Range(name, first, dst);
    },
    readRaw(name) {
      return fileOf(name).readRaw(name);
    },
    close() {
      for (const f of files) f.close();
    },
  };
}

function readIndex(index: string): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(index, "utf8"));
  } catch (e) {
    throw new FormatError(INDEX_FILE, `is not valid JSON (${(e as Error).message})`);
  }
  const wm = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== "object" || wm === null || Array.isArray(wm)) throw new FormatError(INDEX_FILE, `has no "weight_map" object`);
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof v !== "string" || v.includes("/") || v.includes("\\") || v === "." || v === "..") {
      throw new FormatError(INDEX_FILE, `weight_map["${k}"] is not a file name`);
    }
    out.set(k, v);
  }
  return out;
}

// ---- Writer ------------------------------------------------------------------------------------------

export interface TensorToWrite {
  name: string;
  /**
   * the stored dtype; Float32Array data is narrowed to it (float dtypes only), Uint8Array data is taken as
   * already encoded (any dtype, little endian)
   */
  dtype: StoredDType;
  shape: number[];
  data: Float32Array | Uint8Array;
}

/**
 * Write one .safetensors file of tensors held in memory, atomically (built in a temporary folder beside it,
 * then renamed; an existing file of that name is replaced). The layout is the sharded writer's
 * (src/io/sharded-writer.ts): safetensors' tensor order, header padded with spaces to a multiple of 8 bytes.
 */
export function writeSafetensors(filePath: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): void {
  const file = base(filePath);
  const plan = planFile(file, tensors.map(({ name, dtype, shape }) => ({ name, dtype, shape })), metadata ?? {});
  const w = ShardedWriter.create(path.dirname(filePath), plan, { force: true, partialDir: `.${file}.tmp-${process.pid}`, keepOnDiskFull: false });
  try {
    for (const t of tensors) w.write(t.name, t.data);
    w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
}
