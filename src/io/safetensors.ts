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
 *
 * This file is the Node side (files and file descriptors); the checks, the reader and the checkpoint assembly
 * are platform-free in ./safetensors-format.ts, which the browser build uses on fetched bytes.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError, UsageError } from "../errors.js";
import { numel, type StoredDType } from "./dtype.js";
import { ShardedWriter, planFile } from "./sharded-writer.js";
import {
  INDEX_FILE, MAX_HEADER_BYTES, SINGLE_FILE, assembleCheckpoint, makeReader, parseHeader, parseIndex, parseSafetensorsHeader,
  type Checkpoint, type ReadAt, type SafetensorsFile, type TensorEntry,
} from "./safetensors-format.js";

const base = (p: string): string => path.basename(p);

export { numel, parseHeader, MAX_HEADER_BYTES, type TensorEntry, type SafetensorsFile, type Checkpoint };

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
    const readAt: ReadAt = (dst, pos) => readFully(fd, file, dst, pos);
    const { header, metadata, dataStart } = parseSafetensorsHeader(file, size, readAt);
    return makeReader(filePath, file, header, metadata, dataStart, readAt, () => fs.closeSync(fd));
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

// ---- Sharded checkpoints -----------------------------------------------------------------------------

export { INDEX_FILE, SINGLE_FILE };

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
  return assembleCheckpoint(files, weightMap, base);
}

function readIndex(index: string): Map<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(index, "utf8");
  } catch (e) {
    throw new FormatError(INDEX_FILE, `cannot be read (${(e as Error).message})`);
  }
  return parseIndex(text);
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
