/**
 * @file safetensors reading and writing for compressed checkpoints, which hold integer tensors (U8 bitmasks,
 * I64 shapes and row offsets) that src/io/safetensors.ts (a float-only model reader) rejects by design. Same
 * file layout (u64 header length, JSON header, data section); header checks as strict as the float reader's.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "../errors.js";
import { narrow16, widen16 } from "../io/dtype.js";
import { MAX_HEADER_BYTES, numel } from "../io/safetensors.js";

export const RAW_DTYPES = Object.freeze({ F32: 4, F16: 2, BF16: 2, U8: 1, I64: 8 } as const);
export type RawDType = keyof typeof RAW_DTYPES;

export interface RawTensor {
  name: string;
  dtype: RawDType;
  shape: number[];
  /** the stored bytes (little endian) */
  bytes: Uint8Array;
}

export interface RawEntry {
  dtype: RawDType;
  shape: number[];
  begin: number;
  end: number;
}

/** Float32 values as stored bytes of `dtype` (F32 is a view; F16/BF16 are narrowed, exact for widened values). */
export function floatBytes(data: Float32Array, dtype: "F32" | "F16" | "BF16"): Uint8Array {
  if (dtype === "F32") return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.length * 2);
  narrow16(dtype, data, out);
  return out;
}

export function i64Bytes(values: ArrayLike<number>): Uint8Array {
  const out = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = BigInt(values[i]!);
  return new Uint8Array(out.buffer);
}

/** Write tensors (sorted by name) and metadata to `file` (the caller makes the directory atomic). */
export function writeRawSafetensors(file: string, tensors: readonly RawTensor[], metadata?: Record<string, string>): void {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  for (const t of sorted) {
    const want = numel(t.shape) * RAW_DTYPES[t.dtype];
    if (t.bytes.length !== want) throw new RangeError(`${path.basename(file)}: "${t.name}" has ${t.bytes.length} bytes, shape [${t.shape}] ${t.dtype} needs ${want}`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + want] };
    off += want;
  }
  let json = Buffer.from(JSON.stringify(header), "utf8");
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const fd = fs.openSync(file, "w");
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeSync(fd, len);
    fs.writeSync(fd, json);
    for (const t of sorted) {
      for (let done = 0; done < t.bytes.length; ) done += fs.writeSync(fd, t.bytes, done, Math.min(t.bytes.length - done, 1 << 30));
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export interface RawSafetensors {
  file: string;
  header: Map<string, RawEntry>;
  metadata: Record<string, string>;
  bytes(name: string): Uint8Array;
  /** A float tensor widened to f32. */
  f32(name: string): Float32Array;
  /** An I64 tensor as numbers (must be safe integers). */
  i64(name: string): number[];
  close(): void;
}

export function openRawSafetensors(filePath: string): RawSafetensors {
  const file = path.basename(filePath);
  const fd = fs.openSync(filePath, "r");
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) throw new FormatError(file, `file is ${size} bytes, too short for the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const n = Number(lenBuf.readBigUInt64LE());
    if (n > MAX_HEADER_BYTES || n > size - 8) throw new FormatError(file, `header length ${n} exceeds the file or the ${MAX_HEADER_BYTES}-byte limit`);
    const hbuf = Buffer.alloc(n);
    fs.readSync(fd, hbuf, 0, n, 8);
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(hbuf.toString("utf8")) as Record<string, unknown>;
    } catch (e) {
      throw new FormatError(file, `header is not valid JSON (${(e as Error).message})`);
    }
    const dataStart = 8 + n;
    const dataSize = size - dataStart;
    const header = new Map<string, RawEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(json)) {
      if (name === "__metadata__") {
        metadata = (raw ?? {}) as Record<string, string>;
        continue;
      }
      const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof e?.dtype !== "string" || !(e.dtype in RAW_DTYPES)) throw new FormatError(file, `tensor "${name}" has dtype ${JSON.stringify(e?.dtype)}, expected one of ${Object.keys(RAW_DTYPES).join(", ")}`);
      const shape = e.shape;
      const offs = e.data_offsets;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new FormatError(file, `tensor "${name}" has an invalid "shape"`);
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) throw new FormatError(file, `tensor "${name}" has invalid "data_offsets"`);
      const [begin, end] = offs as [number, number];
      const dtype = e.dtype as RawDType;
      const want = numel(shape as number[]) * RAW_DTYPES[dtype];
      if (end - begin !== want || end > dataSize) throw new FormatError(file, `tensor "${name}" has bytes [${begin},${end}) but shape [${shape}] ${dtype} needs ${want} within ${dataSize}`);
      header.set(name, { dtype, shape: shape as number[], begin, end });
    }
    const entry = (name: string): RawEntry => {
      const e = header.get(name);
      if (!e) throw new FormatError(file, `no tensor "${name}"`);
      return e;
    };
    const bytes = (name: string): Uint8Array => {
      const e = entry(name);
      const out = new Uint8Array(e.end - e.begin);
      for (let done = 0; done < out.length; ) {
        const r = fs.readSync(fd, out, done, out.length - done, dataStart + e.begin + done);
        if (r <= 0) throw new FormatError(file, `unexpected end of file reading "${name}"`);
        done += r;
      }
      return out;
    };
    return {
      file,
      header,
      metadata,
      bytes,
      f32(name) {
        const e = entry(name);
        const b = bytes(name);
        if (e.dtype === "F32") return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
        if (e.dtype !== "F16" && e.dtype !== "BF16") throw new FormatError(file, `"${name}" is ${e.dtype}, expected a float dtype`);
        const out = new Float32Array(b.length / 2);
        widen16(e.dtype, b, out, out.length);
        return out;
      },
      i64(name) {
        const e = entry(name);
        if (e.dtype !== "I64") throw new FormatError(file, `"${name}" is ${e.dtype}, expected I64`);
        const b = bytes(name);
        return Array.from(new BigInt64Array(b.buffer, b.byteOffset, b.length / 8), (v) => {
          const n = Number(v);
          if (!Number.isSafeInteger(n) || n < 0) throw new FormatError(file, `"${name}" holds ${v}, expected a non-negative integer`);
          return n;
        });
      },
      close() {
        fs.closeSync(fd);
      },
    };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}
