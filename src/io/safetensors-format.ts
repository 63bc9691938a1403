/**
 * @file safetensors on any platform: header validation, the tensor reader over any positioned byte source, and
 * the assembly of a (sharded) checkpoint from its files. Nothing here touches a file system: ./safetensors.ts
 * reads files in Node (positioned reads of a file descriptor), src/web/ reads fetched or picked bytes; both go
 * through `parseSafetensorsHeader`, `makeReader` and `assembleCheckpoint`, so every check is the same.
 *
 * Layout (https://github.com/huggingface/safetensors):
 *   u64 LE  N            header length
 *   N bytes              UTF-8 JSON: { "__metadata__"?: {string: string},
 *                                      "<name>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, ... }
 *   rest                 data section; offsets are relative to its start (byte 8 + N)
 */
import { FormatError, UsageError } from "../errors.js";
import { DTYPE_SIZE, SAFETENSORS_DTYPES, STORED_DTYPES, isFloatDType, isStoredDType, numel, widen16, type StoredDType } from "./dtype.js";

export const INDEX_FILE = "model.safetensors.index.json";
export const SINGLE_FILE = "model.safetensors";

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

function entry(file: string, header: Map<string, TensorEntry>, name: string): TensorEntry {
  const e = header.get(name);
  if (!e) throw new FormatError(file, `no tensor "${name}"`);
  return e;
}

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

/** Reads `dst.length` bytes at absolute offset `pos` of the file into `dst`, or throws a FormatError naming it. */
export type ReadAt = (dst: Uint8Array, pos: number) => void;

/**
 * The header of a safetensors file of `size` bytes: its length field and JSON checked, every entry validated
 * against the data section (`parseHeader`). `file` names it in messages.
 */
export function parseSafetensorsHeader(file: string, size: number, readAt: ReadAt): { header: Map<string, TensorEntry>; metadata: Record<string, string>; dataStart: number } {
  if (size < 8) throw new FormatError(file, `file is ${size} bytes, too short for the 8-byte header length`);
  const lenBuf = new Uint8Array(8);
  readAt(lenBuf, 0);
  const n64 = new DataView(lenBuf.buffer).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) throw new FormatError(file, `header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const n = Number(n64);
  if (n > size - 8) throw new FormatError(file, `header length ${n} exceeds the ${size - 8} bytes after the length field`);
  const hbuf = new Uint8Array(n);
  readAt(hbuf, 8);
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
  return { ...parseHeader(file, json, size - dataStart), dataStart };
}

/** A safetensors file held in memory (fetched, picked, or given as an ArrayBuffer), headers checked. */
export function safetensorsFromBytes(name: string, bytes: Uint8Array): SafetensorsFile {
  const readAt: ReadAt = (dst, pos) => {
    if (pos + dst.length > bytes.length) throw new FormatError(name, `unexpected end of file at byte ${bytes.length}`);
    dst.set(bytes.subarray(pos, pos + dst.length));
  };
  const { header, metadata, dataStart } = parseSafetensorsHeader(name, bytes.length, readAt);
  return makeReader(name, name, header, metadata, dataStart, readAt, () => {});
}

/**
 * The reader of a validated file: float tensors widened to float32 (F16/BF16 in bounded chunks), raw bytes of
 * any dtype; `close` is the source's own.
 */
export function makeReader(
  filePath: string,
  file: string,
  header: Map<string, TensorEntry>,
  metadata: Record<string, string>,
  dataStart: number,
  readAt: ReadAt,
  closeSource: () => void,
): SafetensorsFile {
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
      readAt(new Uint8Array(dst.buffer, dst.byteOffset, n * 4), pos);
      return;
    }
    const scratch = new Uint8Array(Math.min(CHUNK, n * 2));
    for (let i = 0; i < n; ) {
      const m = Math.min(n - i, scratch.length >> 1);
      const bytes = scratch.subarray(0, m * 2);
      readAt(bytes, pos + i * 2);
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
      readAt(out, dataStart + e.begin);
      return out;
    },
    close() {
      if (open) closeSource();
      open = false;
    },
  };
}

// ---- Sharded checkpoints -----------------------------------------------------------------------------

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
 * One Checkpoint over opened files (one, or the shards an index's `weightMap` names): no tensor in two files,
 * every tensor the index lists in the shard it names. Closes the files on failure. `base` names a file in messages.
 */
export function assembleCheckpoint(files: SafetensorsFile[], weightMap: Map<string, string> | undefined, base: (p: string) => string): Checkpoint {
  const tensors = new Map<string, { file: SafetensorsFile; entry: TensorEntry }>();
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

/** The weight_map of a model.safetensors.index.json's text: tensor name -> shard file name (checked). */
export function parseIndex(text: string): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(text);
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

