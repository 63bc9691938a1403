/**
 * @file Quantized linear weights in compressed-tensors' `pack-quantized` format, read from its source
 * (neuralmagic/compressed-tensors 0.12.2, compressors/quantized_compressors/pack_quantized.py, quantization/
 * quant_args.py, quant_scheme.py, quant_config.py, compressors/model_compressors/model_compressor.py):
 *   <op>.weight_packed      I32 [N, ceil(K/pf)]       pf = 32/bits codes per word: code c of a row (shifted to
 *                                                     unsigned by 2^(bits−1)) in bits [bits·(c mod pf), …) of
 *                                                     word c / pf (pack_to_int32, packed_dim 1)
 *   <op>.weight_scale       F32 [N, ng]               ng = K/group_size (group) or 1 (channel); BF16 / F16
 *                                                     read too (upstream stores the model's dtype)
 *   <op>.weight_zero_point  I32 [ceil(N/pf), ng]      asymmetric only: the zero points packed the same way
 *                                                     along the rows (pack_to_int32, packed_dim 0)
 *   <op>.weight_shape       I64 [2]                   [N, K] (torch.tensor(weight.shape), int64)
 * W8A16 is pack-quantized too (bits 8, four codes per word): upstream's format inference
 * (config/format.py `_get_quant_compression_format`) packs weight-only int4 and int8 alike.
 *
 * With quantized input activations (W8A8, W4A8) upstream infers `int-quantized` instead
 * (compressors/quantized_compressors/naive_quantized.py; `naive-quantized` names the same compressor):
 *   <op>.weight             I8  [N, K]                the signed codes q = round(w/s) + z, clamped to the
 *                                                     scheme's range (int4: −8..7, in an int8 each)
 *   <op>.weight_scale       F32 [N, ng]               as above (BF16 / F16 read too)
 *   <op>.weight_zero_point  I8  [N, ng]               asymmetric only, unpacked (lifecycle/initialize.py:
 *                                                     zp_dtype = pytorch_dtype(), int8; I32 read too)
 * and no weight_shape (the weight's own shape says it).
 *
 * Either format may add `<op>.weight_g_idx` I32 [K] (GPTQ act-order "group", alias "dynamic"): the scale group of
 * each input, which is then not j / group_size (readGroupIndex).
 * wasprune writes scales as F32 whatever the model's dtype, so the values the quantizer produced are read back
 * bit for bit. Upstream keeps them in the weight's dtype (lifecycle/initialize.py: `scale_dtype =
 * module.weight.dtype`), so a bf16 model's W4A16 checkpoint has BF16 scales: read as well, widened exactly.
 * `quantizationConfig` is config.json's `quantization_config` as ModelCompressor.update_config writes it.
 *
 * A 2:4-sparse int4 operator can also be stored in wasprune's own compact layout (format FORMAT_PACK_24, written
 * by `wasprune compress` of a quantized model): compressed-tensors has no CPU layout for 2:4 + int4 (its
 * `marlin-24` is the Marlin GPU kernel's tile permutation, fp16 scales, group 128 or channel, symmetric only,
 * and upstream cannot decompress it), so the layout stacks its two sparse-24-bitmask and pack-quantized parts:
 *   <op>.weight_packed      I32 [N, ceil(K/16)]       the kept codes (2 of every 4 inputs, in input order) of
 *                                                     each row, packed as pack_to_int32 packs a row of K/2 codes
 *   <op>.bitmask            U8  [N, ceil(K/8)]        sparse-24-bitmask's: bit j%8 of byte j/8 set where input j
 *                                                     is kept, exactly 2 bits in every group of 4
 *   <op>.weight_scale, <op>.weight_zero_point, <op>.weight_shape   as pack-quantized
 * (2 + 1 bits a weight against pack-quantized's 4). A group with fewer than 2 nonzero weights keeps zero weights
 * (code = zero point) at its lowest free inputs, so the mask always has 2 bits a group.
 */
import { FormatError } from "../errors.js";
import { DTYPE_SIZE, decodeI64, encodeI64, widen16, type StoredDType } from "../io/dtype.js";
import { qrange, type Grid, type QuantScheme } from "./scheme.js";
import { KEPT_PAIR, is2of4Codes, nonzeroMask4, type QuantizedWeight } from "./codes.js";

export const FORMAT_PACK = "pack-quantized";
/** wasprune's compact layout of 2:4-sparse int4 operators (the file comment); upstream readers refuse the name */
export const FORMAT_PACK_24 = "wasprune-2of4-pack-quantized";
/** the codes unpacked, one int8 a weight (the file comment): upstream's format for int weights with quantized activations */
export const FORMAT_INT = "int-quantized";
/** the same tensors as int-quantized (upstream's NaiveQuantizationCompressor, of which IntQuantizationCompressor is an alias) */
export const FORMAT_NAIVE = "naive-quantized";
export type QuantFormat = typeof FORMAT_PACK | typeof FORMAT_PACK_24 | typeof FORMAT_INT | typeof FORMAT_NAIVE;
const FORMATS: readonly string[] = [FORMAT_PACK, FORMAT_PACK_24, FORMAT_INT, FORMAT_NAIVE];

/** int-quantized and naive-quantized: the codes as an I8 `weight`, not packed into words. */
export const isUnpackedFormat = (f: QuantFormat): boolean => f === FORMAT_INT || f === FORMAT_NAIVE;

/**
 * The format upstream gives a scheme of int weights (config/format.py `_get_quant_compression_format`):
 * weight-only (W4A16, W8A16) → pack-quantized; with quantized input activations (W4A8, W8A8) → int-quantized.
 */
export const formatFor = (activations: "int8" | undefined): QuantFormat => (activations ? FORMAT_INT : FORMAT_PACK);
/** the compressed-tensors release whose source the layout and config follow */
export const QUANT_CT_VERSION = "0.12.2";
export const QUANT_PARAM_NAMES = Object.freeze(["weight_packed", "weight_scale", "weight_zero_point", "weight_shape"] as const);

export interface RawTensor {
  name: string;
  dtype: StoredDType;
  shape: number[];
  data: Uint8Array;
}

const wordsPerRow = (K: number, bits: number): number => Math.ceil(K / (32 / bits));

/** pack_to_int32 along the rows (packed_dim 1): codes [rows, cols] → [rows, ceil(cols/pf)]. */
export function packRows(codes: Int8Array, rows: number, cols: number, bits: number): Int32Array {
  const pf = 32 / bits;
  const wpr = wordsPerRow(cols, bits);
  const out = new Int32Array(rows * wpr);
  const off = 1 << (bits - 1);
  const mask = (1 << bits) - 1;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * wpr + Math.floor(c / pf)]! |= ((codes[r * cols + c]! + off) & mask) << (bits * (c % pf));
  }
  return out;
}

/** unpack_from_int32 (packed_dim 1): [rows, ceil(cols/pf)] → codes [rows, cols]. */
export function unpackRows(words: Int32Array, rows: number, cols: number, bits: number): Int8Array {
  const pf = 32 / bits;
  const wpr = wordsPerRow(cols, bits);
  const out = new Int8Array(rows * cols);
  const off = 1 << (bits - 1);
  const mask = (1 << bits) - 1;
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let j = 0; j < wpr; j++) {
      let w = words[r * wpr + j]!;
      const c1 = Math.min(cols, (j + 1) * pf);
      for (let c = j * pf; c < c1; c++, w >>>= bits) out[o + c] = (w & mask) - off;
    }
  }
  return out;
}

/** packed_dim 0: zero points [N, ng] → [ceil(N/pf), ng] (row r in bits bits·(r mod pf) of word row r / pf). */
export function packCols(z: Int8Array, N: number, ng: number, bits: number): Int32Array {
  const pf = 32 / bits;
  const out = new Int32Array(Math.ceil(N / pf) * ng);
  const off = 1 << (bits - 1);
  const mask = (1 << bits) - 1;
  for (let r = 0; r < N; r++) for (let g = 0; g < ng; g++) out[Math.floor(r / pf) * ng + g]! |= ((z[r * ng + g]! + off) & mask) << (bits * (r % pf));
  return out;
}

export function unpackCols(words: Int32Array, N: number, ng: number, bits: number): Int8Array {
  const pf = 32 / bits;
  const out = new Int8Array(N * ng);
  const off = 1 << (bits - 1);
  const mask = (1 << bits) - 1;
  for (let r = 0; r < N; r++) for (let g = 0; g < ng; g++) out[r * ng + g] = ((words[Math.floor(r / pf) * ng + g]! >>> (bits * (r % pf))) & mask) - off;
  return out;
}

const bytesOf = (a: Int32Array | Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * The codes [N, K] as pack_to_int32 packs them (packRows), with no padding word when K is a multiple of the codes
 * per word (every 7B-class operator): int8, each byte XOR 0x80 (code + 128 in its own byte of the little-endian
 * word); int4, eight nibbles code + 8 a word. A 4096 x 11008 operator packs in tens of milliseconds this way.
 */
function packedWords(codes: Int8Array, N: number, K: number, bits: number): Int32Array {
  const pf = 32 / bits;
  if (K % pf !== 0) return packRows(codes, N, K, bits);
  const out = new Int32Array((N * K) / pf);
  const c = codes;
  if (bits === 8) {
    const o = new Uint8Array(out.buffer);
    const u = new Uint8Array(c.buffer, c.byteOffset, c.length);
    for (let i = 0; i < u.length; i++) o[i] = u[i]! ^ 0x80;
    return out;
  }
  for (let w = 0, i = 0; w < out.length; w++, i += 8) {
    out[w] = ((c[i]! + 8) & 15) | (((c[i + 1]! + 8) & 15) << 4) | (((c[i + 2]! + 8) & 15) << 8) | (((c[i + 3]! + 8) & 15) << 12) |
      (((c[i + 4]! + 8) & 15) << 16) | (((c[i + 5]! + 8) & 15) << 20) | (((c[i + 6]! + 8) & 15) << 24) | (((c[i + 7]! + 8) & 15) << 28);
  }
  return out;
}

/** The tensors of one quantized operator `op` (e.g. "model.layers.0.mlp.down_proj") in `format` (pack- or int-quantized). */
export function encodeOperator(op: string, q: QuantizedWeight, format: QuantFormat = FORMAT_PACK): RawTensor[] {
  const { N, K, grid } = q;
  if (isUnpackedFormat(format)) {
    const out: RawTensor[] = [
      { name: `${op}.weight`, dtype: "I8", shape: [N, K], data: new Uint8Array(q.codes.buffer, q.codes.byteOffset, q.codes.length) },
      { name: `${op}.weight_scale`, dtype: "F32", shape: [N, grid.ng], data: bytesOf(q.scale) },
    ];
    if (!grid.symmetric) out.push({ name: `${op}.weight_zero_point`, dtype: "I8", shape: [N, grid.ng], data: new Uint8Array(q.zero!.buffer, q.zero!.byteOffset, q.zero!.length) });
    return out;
  }
  if (format !== FORMAT_PACK) throw new RangeError(`encodeOperator: ${op}: format ${format} (the compact layout is encodeOperator24's)`);
  return [
    { name: `${op}.weight_packed`, dtype: "I32", shape: [N, wordsPerRow(K, grid.bits)], data: bytesOf(packedWords(q.codes, N, K, grid.bits)) },
    ...encodeParams(op, q),
  ];
}

/** An operator's scales, zero points (asymmetric, packed along the rows) and shape: the tensors pack-quantized and the compact layout store after the codes. */
export function encodeParams(op: string, q: QuantizedWeight): RawTensor[] {
  const { N, K, grid } = q;
  const out: RawTensor[] = [{ name: `${op}.weight_scale`, dtype: "F32", shape: [N, grid.ng], data: bytesOf(q.scale) }];
  if (!grid.symmetric) out.push({ name: `${op}.weight_zero_point`, dtype: "I32", shape: [Math.ceil(N / (32 / grid.bits)), grid.ng], data: bytesOf(packCols(q.zero!, N, grid.ng, grid.bits)) });
  out.push({ name: `${op}.weight_shape`, dtype: "I64", shape: [2], data: encodeI64([N, K]) });
  return out;
}

/** Whether `q` can be stored in the compact 2:4 layout: int4, K a multiple of 4, at most 2 nonzero weights in every group of 4. */
export function fits2of4Layout(q: QuantizedWeight): boolean {
  return q.grid.bits === 4 && q.K % 4 === 0 && is2of4Codes(q);
}

/** The tensors of a 2:4-sparse int4 operator in the compact layout (FORMAT_PACK_24; `fits2of4Layout(q)`). */
export function encodeOperator24(op: string, q: QuantizedWeight): RawTensor[] {
  return [...encodeKept24(op, q), ...encodeParams(op, q)];
}

/**
 * The compact layout's own tensors of `q` (its kept codes as weight_packed, and the bitmask); the scales, zero
 * points and shape are pack-quantized's (encodeOperator24 adds them).
 */
export function encodeKept24(op: string, q: QuantizedWeight): [RawTensor, RawTensor] {
  const { N, K } = q;
  if (!fits2of4Layout(q)) throw new RangeError(`encodeKept24: ${op} is not 2:4-sparse int4 with K a multiple of 4`);
  const kept = new Int8Array(N * (K / 2));
  const mb = Math.ceil(K / 8);
  const bitmask = new Uint8Array(N * mb);
  for (let r = 0; r < N; r++) {
    let o = r * (K / 2);
    for (let j = 0; j < K; j += 4) {
      const pair = KEPT_PAIR[nonzeroMask4(q, r, j)]!;
      for (const i of [pair & 3, pair >> 2]) {
        kept[o++] = q.codes[r * K + j + i]!;
        bitmask[r * mb + ((j + i) >> 3)]! |= 1 << ((j + i) & 7);
      }
    }
  }
  return [
    { name: `${op}.weight_packed`, dtype: "I32", shape: [N, wordsPerRow(K / 2, 4)], data: bytesOf(packRows(kept, N, K / 2, 4)) },
    { name: `${op}.bitmask`, dtype: "U8", shape: [N, mb], data: bitmask },
  ];
}

/** Bytes of an [N, K] operator on `grid` stored in `format` (its tensors' data, f32 scales). */
export function operatorBytes(N: number, K: number, grid: Grid, format: QuantFormat): number {
  return operatorSpecs("op", N, K, grid, format).reduce((a, t) => a + DTYPE_SIZE[t.dtype] * t.shape.reduce((x, y) => x * y, 1), 0);
}

/**
 * The specs (name, dtype, shape) an [N, K] operator on `grid` is stored under in `format` (encodeOperator's, or
 * encodeOperator24's for the compact layout; for output plans and sizes).
 */
export function operatorSpecs(op: string, N: number, K: number, grid: Grid, format: QuantFormat = FORMAT_PACK): Omit<RawTensor, "data">[] {
  const pf = 32 / grid.bits;
  if (isUnpackedFormat(format)) {
    return [
      { name: `${op}.weight`, dtype: "I8", shape: [N, K] },
      { name: `${op}.weight_scale`, dtype: "F32", shape: [N, grid.ng] },
      ...(grid.symmetric ? [] : [{ name: `${op}.weight_zero_point`, dtype: "I8" as const, shape: [N, grid.ng] }]),
    ];
  }
  const compact = format === FORMAT_PACK_24;
  return [
    { name: `${op}.weight_packed`, dtype: "I32", shape: compact ? [N, wordsPerRow(K / 2, 4)] : [N, wordsPerRow(K, grid.bits)] },
    ...(compact ? [{ name: `${op}.bitmask`, dtype: "U8" as const, shape: [N, Math.ceil(K / 8)] }] : []),
    { name: `${op}.weight_scale`, dtype: "F32", shape: [N, grid.ng] },
    ...(grid.symmetric ? [] : [{ name: `${op}.weight_zero_point`, dtype: "I32" as const, shape: [Math.ceil(N / pf), grid.ng] }]),
    { name: `${op}.weight_shape`, dtype: "I64", shape: [2] },
  ];
}

/** How a stored operator's tensors are looked up: header (dtype, shape) and bytes by full name. */
export interface TensorSource {
  has(name: string): boolean;
  header(name: string): { dtype: string; shape: number[] } | undefined;
  bytes(name: string): Uint8Array;
}

/** The dtypes of weight_g_idx (upstream: torch.int; I64 read too) */
const G_IDX_DTYPES = ["I32", "I64"] as const;

/** The dtypes a stored weight_scale may have (F32: what wasprune writes; BF16 / F16: upstream's half models). */
const SCALE_DTYPES = ["F32", "BF16", "F16"] as const;

/** Operator `op`'s scales as f32 (half-precision ones widened exactly; the header checked by checkOperator). */
function readScales(src: TensorSource, op: string, n: number): Float32Array {
  const name = `${op}.weight_scale`;
  const bytes = src.bytes(name).slice();
  const dtype = src.header(name)!.dtype;
  if (dtype === "F32") return new Float32Array(bytes.buffer);
  const out = new Float32Array(n);
  widen16(dtype as "BF16" | "F16", bytes, out, n);
  return out;
}

function expectHeader(src: TensorSource, file: string, name: string, dtypes: readonly string[], shape: number[], format: QuantFormat = FORMAT_PACK): void {
  const h = src.header(name);
  if (!h) throw new FormatError(file, `"${name}" is missing (${isUnpackedFormat(format) ? "an int-quantized" : "a pack-quantized"} operator needs it)`);
  if (!dtypes.includes(h.dtype)) throw new FormatError(file, `"${name}" is ${h.dtype}, expected ${dtypes.join(" or ")}`);
  if (h.shape.length !== shape.length || h.shape.some((d, i) => d !== shape[i])) {
    throw new FormatError(file, `"${name}" has shape [${h.shape}], expected [${shape}] for the operator's shape and group size`);
  }
}

/** The names operator `op` is stored under in `format` (the compact layout: with its bitmask). */
export function operatorNames(op: string, grid: Grid, format: QuantFormat): string[] {
  return operatorSpecs(op, 0, 4, grid, format).map((t) => t.name);
}

/**
 * Check operator `op` of shape [N, K] stored on `grid` in `format` from its headers (and weight_shape): the packed
 * length (or the int8 codes' shape), scale and zero-point counts against the shape and the group size; one
 * FormatError naming the tensor.
 */
export function checkOperator(src: TensorSource, file: string, op: string, N: number, K: number, grid: Grid, format: QuantFormat = FORMAT_PACK): void {
  if (grid.strategy === "group" && K % grid.group !== 0) throw new FormatError(file, `"${op}": group size ${grid.group} does not divide its ${K} inputs`);
  if (hasGroupIndex(src, op)) expectHeader(src, file, `${op}.weight_g_idx`, G_IDX_DTYPES, [K], format);
  if (isUnpackedFormat(format)) {
    expectHeader(src, file, `${op}.weight`, ["I8"], [N, K], format);
    expectHeader(src, file, `${op}.weight_scale`, SCALE_DTYPES, [N, grid.ng], format);
    if (!grid.symmetric) expectHeader(src, file, `${op}.weight_zero_point`, ["I8", "I32"], [N, grid.ng], format);
    return;
  }
  const shapeName = `${op}.weight_shape`;
  const sh = src.header(shapeName);
  if (!sh) throw new FormatError(file, `"${shapeName}" is missing (a pack-quantized operator needs it)`);
  if (sh.dtype !== "I64" && sh.dtype !== "I32") throw new FormatError(file, `"${shapeName}" is ${sh.dtype}, expected I64 or I32`);
  const sb = src.bytes(shapeName);
  const dims = sh.dtype === "I64" ? decodeI64(sb) : Array.from(new Int32Array(sb.slice().buffer));
  if (!dims || dims.length !== 2 || dims[0] !== N || dims[1] !== K) throw new FormatError(file, `"${shapeName}" is [${dims}], expected [${N}, ${K}]`);
  const pf = 32 / grid.bits;
  if (src.has(`${op}.bitmask`)) {
    // the compact 2:4 layout (FORMAT_PACK_24)
    if (grid.bits !== 4) throw new FormatError(file, `"${op}.bitmask": the compact 2:4 layout holds int4 codes, the operator's scheme is int${grid.bits}`);
    if (K % 4 !== 0) throw new FormatError(file, `"${op}.bitmask": the compact 2:4 layout needs the inputs (${K}) to be a multiple of 4`);
    expectHeader(src, file, `${op}.weight_packed`, ["I32"], [N, wordsPerRow(K / 2, 4)]);
    expectHeader(src, file, `${op}.bitmask`, ["U8"], [N, Math.ceil(K / 8)]);
  } else {
    expectHeader(src, file, `${op}.weight_packed`, ["I32"], [N, wordsPerRow(K, grid.bits)]);
  }
  expectHeader(src, file, `${op}.weight_scale`, SCALE_DTYPES, [N, grid.ng]);
  if (!grid.symmetric) expectHeader(src, file, `${op}.weight_zero_point`, ["I32"], [Math.ceil(N / pf), grid.ng]);
}

/**
 * The stored parts of a pack-quantized operator: codes as weight_packed's words, scales, zero points (unpacked);
 * in the compact 2:4 layout also the bitmask, and `packed` then holds only the kept codes (expandParts: every code).
 */
export interface OperatorParts {
  packed: Int32Array;
  scale: Float32Array;
  zero?: Int8Array;
  bitmask?: Uint8Array;
}

/**
 * The codes of an unpacked (int-quantized) operator, every one checked to lie in the scheme's range; `own`: a
 * copy of the bytes (kept by the caller), else a view of what the source returned (read at once).
 */
function readUnpackedCodes(src: TensorSource, file: string, op: string, N: number, K: number, grid: Grid, own: boolean): Int8Array {
  const b = src.bytes(`${op}.weight`);
  const codes = own ? new Int8Array(b.slice().buffer) : new Int8Array(b.buffer, b.byteOffset, b.length);
  if (grid.bits < 8) {
    const [qmin, qmax] = qrange(grid.bits);
    for (let i = 0; i < codes.length; i++) {
      const v = codes[i]!;
      if (v < qmin || v > qmax) throw new FormatError(file, `"${op}.weight" [${Math.floor(i / K)}, ${i % K}] is ${v}, outside int${grid.bits}'s range ${qmin}..${qmax}`);
    }
  }
  return codes;
}

/** An unpacked operator's zero points (I8 or I32 [N, ng]), every one checked to lie in the scheme's range. */
function readUnpackedZeros(src: TensorSource, file: string, op: string, n: number, grid: Grid): Int8Array {
  const name = `${op}.weight_zero_point`;
  const b = src.bytes(name).slice().buffer;
  const vals = src.header(name)!.dtype === "I8" ? new Int8Array(b) : new Int32Array(b);
  const [qmin, qmax] = qrange(grid.bits);
  const out = new Int8Array(n);
  for (let i = 0; i < n; i++) {
    const v = vals[i]!;
    if (v < qmin || v > qmax) throw new FormatError(file, `"${name}" [${Math.floor(i / grid.ng)}, ${i % grid.ng}] is ${v}, outside int${grid.bits}'s range ${qmin}..${qmax}`);
    out[i] = v;
  }
  return out;
}

/** Read operator `op`'s parts in `format` (checkOperator, then its data: positive finite scales, codes and zero points in range). */
export function readOperatorParts(src: TensorSource, file: string, op: string, N: number, K: number, grid: Grid, format: QuantFormat = FORMAT_PACK): OperatorParts {
  // the parts are what the integer kernels place, groups in input order: act-order groups are decodeOperator's
  if (hasGroupIndex(src, op)) throw new FormatError(file, `"${op}.weight_g_idx": act-order groups do not go on the integer kernels (decode the operator instead)`);
  if (isUnpackedFormat(format)) {
    const { codes, scale, zero } = readUnpacked(src, file, op, N, K, grid, false);
    return { packed: packedWords(codes, N, K, grid.bits), scale, ...(zero ? { zero } : {}) };
  }
  return readPackedParts(src, file, op, N, K, grid, format);
}

/** A pack-quantized (or compact) operator's parts, checked. */
function readPackedParts(src: TensorSource, file: string, op: string, N: number, K: number, grid: Grid, format: QuantFormat): OperatorParts {
  checkOperator(src, file, op, N, K, grid, format);
  const pf = 32 / grid.bits;
  let packed: Int32Array = new Int32Array(src.bytes(`${op}.weight_packed`).slice().buffer);
  const scale = readScales(src, op, N * grid.ng);
  checkScales(scale, file, op, grid);
  let zero: Int8Array | undefined;
  const zName = `${op}.weight_zero_point`;
  if (!grid.symmetric) {
    const words = new Int32Array(src.bytes(zName).slice().buffer);
    // packed zero points are always in range; the padding rows past N must be zero
    for (let r = N; r < Math.ceil(N / pf) * pf; r++) {
      for (let g = 0; g < grid.ng; g++) {
        if (((words[Math.floor(r / pf) * grid.ng + g]! >>> (grid.bits * (r % pf))) & ((1 << grid.bits) - 1)) !== 0) {
          throw new FormatError(file, `"${zName}" has a non-zero padding entry past row ${N}`);
        }
      }
    }
    zero = unpackCols(words, N, grid.ng, grid.bits);
  } else {
    checkSymmetricZeros(src, file, zName, grid);
  }
  const bitmask = src.has(`${op}.bitmask`) ? src.bytes(`${op}.bitmask`) : undefined;
  return { packed, scale, ...(zero ? { zero } : {}), ...(bitmask ? { bitmask } : {}) };
}

function checkScales(scale: Float32Array, file: string, op: string, grid: Grid): void {
  for (let i = 0; i < scale.length; i++) {
    if (!(scale[i]! > 0) || !Number.isFinite(scale[i]!)) throw new FormatError(file, `"${op}.weight_scale" [${Math.floor(i / grid.ng)}, ${i % grid.ng}] is ${scale[i]}, expected a positive finite scale`);
  }
}

/** A symmetric scheme's stored zero points (upstream omits them; some writers keep zeros): all 0. */
function checkSymmetricZeros(src: TensorSource, file: string, zName: string, grid: Grid): void {
  if (src.has(zName)) {
    const h = src.header(zName)!;
    if (h.dtype !== "I8" && h.dtype !== "I32" && h.dtype !== "F32") throw new FormatError(file, `"${zName}" is ${h.dtype}, expected zeros of a symmetric scheme`);
    const b = src.bytes(zName);
    const vals = h.dtype === "I8" ? Array.from(new Int8Array(b.slice().buffer)) : h.dtype === "I32" ? Array.from(new Int32Array(b.slice().buffer)) : Array.from(new Float32Array(b.slice().buffer));
    const [qmin, qmax] = qrange(grid.bits);
    const bad = vals.findIndex((v) => v !== 0);
    if (bad >= 0) throw new FormatError(file, `"${zName}" [${bad}] is ${vals[bad]}: a symmetric scheme's zero point is 0 (range of int${grid.bits}: ${qmin}..${qmax})`);
  }
}

/** The parts with every code in `packed` (the compact layout expanded: a dropped code is the zero point). */
export function expandParts(p: OperatorParts, file: string, op: string, N: number, K: number, grid: Grid): OperatorParts {
  if (!p.bitmask) return p;
  return { packed: expand2of4(p.packed, p.bitmask, N, K, grid, p.zero, file, op), scale: p.scale, ...(p.zero ? { zero: p.zero } : {}) };
}

/**
 * The error for a compact operator's bitmask whose group `badGroup` (row·(Kp/4) + g, as the placement kernel
 * reports it) does not keep exactly 2 of its 4 inputs, or (N·(Kp/4) + row) whose row has a bit set past K.
 */
export function bitmaskError(file: string, op: string, bitmask: Uint8Array, N: number, K: number, Kp: number, badGroup: number): FormatError {
  const G = Kp / 4;
  if (badGroup >= N * G) return new FormatError(file, `"${op}.bitmask" row ${badGroup - N * G} has a bit set past its ${K} inputs`);
  const r = Math.floor(badGroup / G);
  const j = 4 * (badGroup % G);
  const mb = Math.ceil(K / 8);
  let n = 0;
  for (let i = j; i < j + 4; i++) n += (bitmask[r * mb + (i >> 3)]! >> (i & 7)) & 1;
  return new FormatError(file, `"${op}.bitmask" row ${r} keeps ${n} of inputs ${j}..${j + 3}, expected exactly 2 (2:4)`);
}

/** The compact 2:4 layout's kept codes and mask as pack-quantized words of every code (a dropped one: the zero point). */
function expand2of4(kept: Int32Array, bitmask: Uint8Array, N: number, K: number, grid: Grid, zero: Int8Array | undefined, file: string, op: string): Int32Array {
  const codesKept = unpackRows(kept, N, K / 2, 4);
  const mb = Math.ceil(K / 8);
  const codes = new Int8Array(N * K);
  for (let r = 0; r < N; r++) {
    let o = r * (K / 2);
    for (let j = 0; j < K; j += 4) {
      let n = 0;
      for (let i = j; i < j + 4; i++) {
        if ((bitmask[r * mb + (i >> 3)]! >> (i & 7)) & 1) {
          codes[r * K + i] = codesKept[o++]!;
          n++;
        } else {
          codes[r * K + i] = zero ? zero[r * grid.ng + Math.floor(i / grid.group)]! : 0;
        }
      }
      if (n !== 2) throw bitmaskError(file, op, bitmask, N, K, K, r * (K / 4) + j / 4);
    }
    for (let i = K; i < mb * 8; i++) {
      if ((bitmask[r * mb + (i >> 3)]! >> (i & 7)) & 1) throw bitmaskError(file, op, bitmask, N, K, K, N * (K / 4) + r);
    }
  }
  return packRows(codes, N, K, 4);
}

/** An int-quantized operator, checked (headers, scales, codes and zero points in range); `own` as readUnpackedCodes. */
function readUnpacked(src: TensorSource, file: string, op: string, N: number, K: number, grid: Grid, own: boolean): QuantizedWeight {
  checkOperator(src, file, op, N, K, grid, FORMAT_INT);
  const scale = readScales(src, op, N * grid.ng);
  checkScales(scale, file, op, grid);
  const codes = readUnpackedCodes(src, file, op, N, K, grid, own);
  let zero: Int8Array | undefined;
  if (!grid.symmetric) zero = readUnpackedZeros(src, file, op, N * grid.ng, grid);
  else checkSymmetricZeros(src, file, `${op}.weight_zero_point`, grid);
  return { N, K, grid, codes, scale, ...(zero ? { zero } : {}) };
}

/**
 * Read operator `op` stored in `format` as a QuantizedWeight (checked as readOperatorParts checks it; the codes
 * unpacked), with its act-order groups when it stores them (`weight_g_idx`, see readGroupIndex).
 */
export function decodeOperator(src: TensorSource, file: string, op: string, N: number, K: number, grid: Grid, format: QuantFormat = FORMAT_PACK): QuantizedWeight {
  const gIdx = readGroupIndex(src, file, op, K, grid);
  if (isUnpackedFormat(format)) return { ...readUnpacked(src, file, op, N, K, grid, true), ...(gIdx ? { gIdx } : {}) };
  const { packed, scale, zero } = expandParts(readPackedParts(src, file, op, N, K, grid, format), file, op, N, K, grid);
  return { N, K, grid, codes: unpackRows(packed, N, K, grid.bits), scale, ...(zero ? { zero } : {}), ...(gIdx ? { gIdx } : {}) };
}

/** Whether operator `op` stores act-order groups (`weight_g_idx`: its inputs' scale groups are not in input order). */
export const hasGroupIndex = (src: Pick<TensorSource, "has">, op: string): boolean => src.has(`${op}.weight_g_idx`);

/**
 * GPTQ act-order "group" (alias "dynamic"): upstream keeps the codes in input order and stores `<op>.weight_g_idx`
 * I32 [K], the scale group of every input (quantization/lifecycle/initialize.py; dequantize's g_idx), which
 * is then not j / group_size. Read and checked (each in 0..ng−1) when stored, else undefined. The integer kernels
 * need groups in input order, so such operators run dequantized (src/model/hf-weights.ts).
 */
function readGroupIndex(src: TensorSource, file: string, op: string, K: number, grid: Grid): Int32Array | undefined {
  const name = `${op}.weight_g_idx`;
  if (!src.has(name)) return undefined;
  expectHeader(src, file, name, G_IDX_DTYPES, [K]);
  const b = src.bytes(name).slice().buffer;
  const raw = src.header(name)!.dtype === "I32" ? new Int32Array(b) : new BigInt64Array(b);
  const out = new Int32Array(K);
  for (let j = 0; j < K; j++) {
    const v = Number(raw[j]!);
    if (!(v >= 0 && v < grid.ng)) throw new FormatError(file, `"${name}" [${j}] is ${raw[j]}, expected a scale group 0..${grid.ng - 1}`);
    out[j] = v;
  }
  return out;
}

/**
 * One config group of `quantization_config` (QuantizationScheme.model_dump of an int scheme): weight-only, or with
 * the dynamic per-token int8 input activations of the W4A8 / W8A8 presets (`activations`).
 */
function configGroup(targets: string[], grid: Grid, actOrder: boolean, activations: boolean): Record<string, unknown> {
  return {
    format: formatFor(activations ? "int8" : undefined),
    input_activations: activations
      ? { actorder: null, block_structure: null, dynamic: true, group_size: null, num_bits: 8, observer: null, observer_kwargs: {}, strategy: "token", symmetric: true, type: "int" }
      : null,
    output_activations: null,
    targets,
    weights: {
      actorder: actOrder && grid.strategy === "group" ? "weight" : null,
      block_structure: null,
      dynamic: false,
      group_size: grid.strategy === "group" ? grid.group : null,
      num_bits: grid.bits,
      observer: "minmax",
      observer_kwargs: {},
      strategy: grid.strategy,
      symmetric: grid.symmetric,
      type: "int",
    },
  };
}

export interface QuantConfigInput {
  /** the grid of each quantized operator, by operator name (e.g. model.layers.0.mlp.down_proj) */
  grids: Map<string, Grid>;
  /** modules left unquantized (lm_head) */
  ignore: string[];
  /** GPTQ ran in act-order with static groups: actorder "weight" on the group-strategy config groups */
  actOrder?: boolean;
  /** declare dynamic int8 input activations (W4A8 / W8A8) in every config group */
  activations?: "int8";
  /** a sparse model: its pattern for sparsity_config (the values stay dense-shaped: format "dense") */
  sparsity?: { structure: "2:4" | "unstructured"; globalSparsity: number; targets: string[] };
}

/**
 * `quantization_config` as compressed-tensors writes it (update_config: version, quant_method, sparsity_config,
 * transform_config, then QuantizationConfig.model_dump without quant_method; json.dump with sort_keys). One
 * config group per distinct grid; its targets are the layer types as regexes on the module names
 * (`re:.*mlp\.down_proj$`), or ["Linear"] when a single grid covers every operator.
 */
export function quantizationConfig(c: QuantConfigInput): Record<string, unknown> {
  const byGrid = new Map<string, { grid: Grid; suffixes: Set<string> }>();
  for (const [op, grid] of c.grids) {
    const key = `${grid.strategy}/${grid.group}/${grid.bits}/${grid.symmetric}`;
    const suffix = op.replace(/^.*\.layers\.\d+\./, "");
    if (!byGrid.has(key)) byGrid.set(key, { grid, suffixes: new Set() });
    byGrid.get(key)!.suffixes.add(suffix);
  }
  const groups = [...byGrid.values()];
  const config_groups: Record<string, unknown> = {};
  groups.forEach((g, i) => {
    const targets = groups.length === 1 ? ["Linear"] : [...g.suffixes].sort().map((s) => `re:.*${s.replace(/\./g, "\\.")}$`);
    config_groups[`group_${i}`] = configGroup(targets, g.grid, !!c.actOrder, c.activations === "int8");
  });
  const sc = c.sparsity
    ? { format: "dense", global_sparsity: c.sparsity.globalSparsity, ignore: c.ignore, registry_requires_subclass: false, sparsity_structure: c.sparsity.structure, targets: c.sparsity.targets }
    : {};
  return {
    config_groups,
    format: formatFor(c.activations),
    global_compression_ratio: null,
    ignore: c.ignore,
    kv_cache_scheme: null,
    quant_method: "compressed-tensors",
    quantization_status: "compressed",
    sparsity_config: sc,
    transform_config: {},
    version: QUANT_CT_VERSION,
  };
}

/** True when a config.json object describes a pack-quantized compressed-tensors checkpoint. */
export function isQuantizedConfig(hfConfig: Record<string, unknown>): boolean {
  const q = hfConfig.quantization_config as Record<string, unknown> | undefined;
  return !!q && q.quant_method === "compressed-tensors" && typeof q.config_groups === "object" && q.config_groups !== null;
}

/** One config group as wasprune runs it: its targets, the weights' grid, how its activations are rounded. */
interface ConfigGroup {
  targets: string[];
  strategy: string;
  gs: number | null;
  bits: 4 | 8;
  symmetric: boolean;
  /** 8: dynamic int8 input activations (W4A8, W8A8); 16: weight-only */
  activationBits: 8 | 16;
  format: QuantFormat;
}

/**
 * The activations a config group declares: none (weight-only, 16) or dynamic symmetric int8 (upstream's W4A8 and
 * W8A8 presets, per token; 8: wasprune rounds them per block of the weight group, finer). Static scales, float
 * or asymmetric activations are refused naming the group.
 */
function activationBitsOf(a: Record<string, unknown> | null | undefined, at: string, file: string): 8 | 16 {
  if (!a) return 16;
  const what = `${a.dynamic === true ? "dynamic" : "static"} ${a.symmetric === false ? "asymmetric " : ""}${a.type} ${a.num_bits}-bit per ${a.strategy}`;
  const ok = a.type === "int" && a.num_bits === 8 && a.dynamic === true && a.symmetric !== false && ["token", "tensor", "group"].includes(a.strategy as string);
  if (!ok) throw new FormatError(file, `${at}.input_activations: ${what} is not supported (wasprune runs weight-only schemes and dynamic symmetric int8 activations: W4A8, W8A8)`);
  return 8;
}

/** The config group of every operator (undefined: not quantized); unknown formats, types, bit widths and activations refused naming the group. */
function configGroupsOf(hfConfig: Record<string, unknown>, file: string): (op: string) => ConfigGroup | undefined {
  const q = hfConfig.quantization_config as Record<string, unknown>;
  const groups = Object.entries(q.config_groups as Record<string, Record<string, unknown>>);
  const ignore = (Array.isArray(q.ignore) ? q.ignore : []) as string[];
  const parsed = groups.map(([name, g]): ConfigGroup => {
    const fmt = (g.format as string | null | undefined) ?? (q.format as string | undefined);
    if (!FORMATS.includes(fmt as string)) throw new FormatError(file, `quantization_config.config_groups.${name}: format "${fmt}" is not supported (wasprune reads ${FORMAT_PACK}, ${FORMAT_INT}, ${FORMAT_NAIVE} and its own ${FORMAT_PACK_24})`);
    const w = g.weights as Record<string, unknown> | null;
    if (!w) throw new FormatError(file, `quantization_config.config_groups.${name}: no weights scheme`);
    if (w.type !== "int" || (w.num_bits !== 4 && w.num_bits !== 8)) throw new FormatError(file, `quantization_config.config_groups.${name}.weights: ${w.type} ${w.num_bits}-bit is not supported (int, 4 or 8 bits)`);
    const activationBits = activationBitsOf(g.input_activations as Record<string, unknown> | null | undefined, `quantization_config.config_groups.${name}`, file);
    const strategy = w.strategy as string;
    if (strategy !== "group" && strategy !== "channel") throw new FormatError(file, `quantization_config.config_groups.${name}.weights.strategy "${strategy}": expected group or channel`);
    const gs = w.group_size as number | null;
    if (strategy === "group" && !(Number.isInteger(gs) && gs! > 0)) throw new FormatError(file, `quantization_config.config_groups.${name}.weights.group_size ${gs}: expected a positive integer`);
    const targets = (g.targets ?? []) as string[];
    return { targets, strategy, gs, bits: w.num_bits as 4 | 8, symmetric: w.symmetric !== false, activationBits, format: fmt as QuantFormat };
  });
  const matches = (t: string, op: string) => (t === "Linear" ? true : t.startsWith("re:") ? new RegExp(t.slice(3)).test(op) : t === op);
  return (op) => {
    if (ignore.some((t) => (t.startsWith("re:") ? new RegExp(t.slice(3)).test(op) : t === op))) return undefined;
    return parsed.find((p) => p.targets.some((t) => t !== "Linear" && matches(t, op))) ?? parsed.find((p) => p.targets.includes("Linear"));
  };
}

/** How a quantized operator is stored and run: its weights' grid (ng 0: set by gridForShape), its activations, its format. */
export interface OperatorScheme {
  grid: Grid;
  /** 8: dynamic int8 input activations declared (W4A8, W8A8); 16: weight-only */
  activationBits: 8 | 16;
  format: QuantFormat;
}

/**
 * The scheme of every operator of a quantized checkpoint, from its `quantization_config`: the config group whose
 * targets match the module name ("Linear" matches any linear operator not in `ignore`; "re:" a regex).
 * Unknown formats, types, bit widths or activations are refused naming the group.
 */
export function schemesFromConfig(hfConfig: Record<string, unknown>, file: string): (op: string) => OperatorScheme | undefined {
  const groupOf = configGroupsOf(hfConfig, file);
  return (op) => {
    const g = groupOf(op);
    if (!g) return undefined;
    const grid: Grid = { strategy: g.strategy as "group" | "channel", group: g.strategy === "group" ? g.gs! : 0, ng: 0, bits: g.bits, symmetric: g.symmetric };
    return { grid, activationBits: g.activationBits, format: g.format };
  };
}

/** The grid of every operator of a quantized checkpoint (schemesFromConfig without the activations). */
export function gridsFromConfig(hfConfig: Record<string, unknown>, file: string): (op: string) => Grid | undefined {
  const schemeOf = schemesFromConfig(hfConfig, file);
  return (op) => schemeOf(op)?.grid;
}

/** `grid` completed for an [N, K] operator (ng, the channel group width), or an error naming the operator. */
export function gridForShape(g: Grid, K: number, file: string, op: string): Grid {
  if (g.strategy === "channel") return { ...g, group: Math.max(K, 1), ng: 1 };
  if (K % g.group !== 0) throw new FormatError(file, `"${op}": group size ${g.group} does not divide its ${K} inputs`);
  return { ...g, ng: K / g.group };
}
