/**
 * @file A Hugging Face checkpoint (config.json + model.safetensors, or shards) as a WeightFile
 * (./weight-file.ts), on any platform: the checks and the tensor readers over an opened Checkpoint. Opening
 * reads and checks every header once: every tensor the config implies must be present with exactly the shape it
 * implies, in a float dtype; nothing else is read until a tensor is asked for (F32/F16/BF16 widened to f32 on
 * the way). ./load-hf.ts opens the files in Node; src/web/ opens fetched or picked bytes.
 *
 * A compressed directory (compressed-tensors layout, ./compressed.ts) stores a linear operator `<op>` either as
 * `<op>.weight` (dense) or as `<op>.compressed` + `<op>.bitmask` + `<op>.shape` [+ `<op>.row_offsets`]: read here
 * straight into the kernel layout (2:4 or panel CSR, no dense copy), every count checked against the shape.
 *
 * A quantized directory (compressed-tensors, src/quant/compressed-tensors.ts) stores an operator pack-quantized as
 * `<op>.weight_packed` + `weight_scale` [+ `weight_zero_point`] + `weight_shape`, or int-quantized (W8A8, W4A8) as
 * an I8 `<op>.weight` + `weight_scale` [+ `weight_zero_point`], on the grid and in the format its
 * `quantization_config` group gives: checked against the shape when opened, placed for the integer kernels when
 * read resident, dequantized to f32 rows when read for anything else (exactly the values the quantizer produced).
 */
import { ConfigError, FormatError, missingTensor, notFloatWeight, shapeMismatch } from "../errors.js";
import { INDEX_FILE, type Checkpoint } from "../io/safetensors-format.js";
import { DTYPE_SIZE, decodeI64, isFloatDType, numel, type DType } from "../io/dtype.js";
import { parseHFConfig } from "./config.js";
import { HF_EMBED, HF_LM_HEAD, hfTensorSpecs, type HFTensorSpec } from "./specs.js";
import { LINEAR_OPS } from "./types.js";
import type { StoredTensor, WeightFile } from "./weight-file.js";
import { fromFile2of4, bytes2of4 } from "../sparse/nm.js";
import { bytesCsr, fromFileBitmask } from "../sparse/bcsr.js";
import { intBytes, intKernelBlock, place2of4, placeCsr, placeInt, placeInt2of4Kept, type IntActivationBits } from "./linear.js";
import type { Wasm } from "../wasm/runtime.js";
import { baseName } from "../util/base-name.js";
import { FORMAT_PACK_24, bitmaskError, checkOperator, decodeOperator, expandParts, hasGroupIndex, gridForShape, isQuantizedConfig, isUnpackedFormat, operatorNames, readOperatorParts, schemesFromConfig, type OperatorScheme } from "../quant/compressed-tensors.js";
import { dequantize, type QuantizedWeight } from "../quant/codes.js";

/** config.json's text as an object, or a ConfigError. */
export function parseConfigJson(text: string): Record<string, unknown> {
  try {
    const raw = JSON.parse(text) as unknown;
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error("not an object");
    return raw as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(`config.json: is not a valid JSON object (${(e as Error).message})`);
  }
}

const opPrefix = (weightName: string): string => weightName.replace(/\.weight$/, "");

/**
 * True when a config.json object marks a compressed-tensors sparse checkpoint (`quantization_config` with
 * `quant_method: "compressed-tensors"` and a sparsity format; compressed-tensors ≥ 0.15 writes an empty
 * `sparsity_config` for quantized-only models, which is not sparse).
 */
export function isCompressedConfig(hfConfig: Record<string, unknown>): boolean {
  const q = (hfConfig.quantization_config ?? hfConfig.compression_config) as Record<string, unknown> | undefined;
  const sc = q?.sparsity_config as Record<string, unknown> | null | undefined;
  return !!q && q.quant_method === "compressed-tensors" && typeof sc === "object" && sc !== null && typeof sc.format === "string";
}

/**
 * `hfConfig` (config.json's object) and the checkpoint of directory `dir` (opened by `openCk` once the config
 * is known good) as a WeightFile: every tensor the config implies checked (shape, float dtype; compressed
 * operators' counts); nothing read yet.
 */
export function hfWeights(dir: string, hfConfig: Record<string, unknown>, openCk: () => Checkpoint): WeightFile {
  const config = parseHFConfig(hfConfig, "config.json");
  const ck = openCk();
  try {
    const fileOf = (name: string): string => {
      const t = ck.tensors.get(name);
      return t ? baseName(t.file.path) : ck.files.length === 1 ? baseName(ck.files[0]!.path) : INDEX_FILE;
    };
    // HF ties when told to; a checkpoint with no lm_head but an embedding is tied whatever config.json says
    if (!config.tiedEmbeddings && !ck.tensors.has(HF_LM_HEAD) && ck.tensors.has(HF_EMBED)) config.tiedEmbeddings = true;
    let bytesRead = 0;
    const stored = new Map<string, StoredTensor>();
    const compressed = isCompressedConfig(hfConfig);
    const schemeOfOp = isQuantizedConfig(hfConfig) ? schemesFromConfig(hfConfig, `${dir}/config.json`) : undefined;
    const bytesByDtype: Partial<Record<DType, number>> = {};
    for (const s of hfTensorSpecs(config)) {
      const count = (n: number) => (bytesRead += n);
      const isLinear = (LINEAR_OPS as readonly string[]).includes(s.key);
      const linear = isLinear && !ck.tensors.has(s.name);
      // int-quantized: the codes are the operator's own `weight`, in I8
      const intStored = isLinear && ck.tensors.get(s.name)?.entry.dtype === "I8";
      const t = (linear && ck.tensors.has(`${opPrefix(s.name)}.weight_packed`)) || intStored
        ? quantizedTensor(ck, s, fileOf, count, schemeOfOp)
        : compressed && linear ? compressedTensor(ck, s, fileOf, count) : denseTensor(ck, s, fileOf, count);
      stored.set(s.name, t);
      bytesByDtype[t.dtype] = (bytesByDtype[t.dtype] ?? 0) + t.fileBytes;
    }
    const dtype = (Object.entries(bytesByDtype) as [DType, number][]).sort((a, b) => b[1] - a[1])[0]?.[0] ?? "F32";
    return {
      path: dir,
      format: "hf",
      config,
      dtype,
      hfConfig,
      tensor(spec) {
        const t = stored.get(spec.key === "lmHead" && config.tiedEmbeddings ? HF_EMBED : spec.name);
        if (!t) throw missingTensor(fileOf(spec.name), spec.name);
        return t;
      },
      get bytesRead() {
        return bytesRead;
      },
      close: () => ck.close(),
    };
  } catch (e) {
    ck.close();
    throw e;
  }
}

function denseTensor(ck: Checkpoint, s: HFTensorSpec, fileOf: (n: string) => string, count: (n: number) => void): StoredTensor {
  const t = ck.tensors.get(s.name);
  if (!t) throw missingTensor(fileOf(s.name), s.name);
  const e = t.entry;
  if (e.shape.length !== s.shape.length || e.shape.some((d, i) => d !== s.shape[i])) throw shapeMismatch(fileOf(s.name), s.name, e.shape, s.shape);
  if (!isFloatDType(e.dtype)) throw notFloatWeight(fileOf(s.name), s.name, e.dtype);
  const size = DTYPE_SIZE[e.dtype];
  return {
    name: s.name,
    shape: s.shape,
    dtype: e.dtype,
    fileBytes: e.end - e.begin,
    arenaBytes: 4 * numel(s.shape),
    readRange(first, dst) {
      t.file.readF32Range(s.name, first, dst);
      count(dst.length * size);
    },
  };
}

/** A linear operator stored in a compressed-tensors format (checked now; read into its kernel layout later). */
function compressedTensor(ck: Checkpoint, s: HFTensorSpec, fileOf: (n: string) => string, count: (n: number) => void): StoredTensor {
  const op = opPrefix(s.name);
  const ce = ck.tensors.get(`${op}.compressed`)?.entry;
  if (!ce) throw missingTensor(fileOf(s.name), `${s.name}" (nor "${op}.compressed`);
  const file = fileOf(`${op}.compressed`);
  if (!isFloatDType(ce.dtype)) throw notFloatWeight(file, `${op}.compressed`, ce.dtype);
  const shape = readCounts(ck, `${op}.shape`, file);
  if (shape.length !== 2 || shape[0] !== s.shape[0] || shape[1] !== s.shape[1]) {
    throw new FormatError(file, `"${op}.shape" is [${shape}], expected [${s.shape}]`);
  }
  const [N, K] = s.shape as [number, number];
  const csr = ck.tensors.has(`${op}.row_offsets`);
  const nnz = numel(ce.shape);
  const raw = (name: string) => {
    const b = ck.readRaw(name);
    count(b.length);
    return b;
  };
  const others = [`${op}.bitmask`, `${op}.shape`, ...(csr ? [`${op}.row_offsets`] : [])].reduce((a, n) => a + ((ck.tensors.get(n)?.entry.end ?? 0) - (ck.tensors.get(n)?.entry.begin ?? 0)), 0);
  return {
    name: s.name,
    shape: s.shape,
    dtype: ce.dtype,
    fileBytes: ce.end - ce.begin + others,
    arenaBytes: csr ? bytesCsr(N, K, nnz) : bytes2of4(N, K),
    compressed: csr ? "csr" : "2:4",
    readRange() {
      throw new RangeError(`${s.name} is stored compressed; read it as a linear weight`);
    },
    readLinear(arena, dtype) {
      const compressed = new Float32Array(nnz);
      ck.readF32Into(`${op}.compressed`, compressed);
      count(ce.end - ce.begin);
      const bitmask = raw(`${op}.bitmask`);
      return csr
        ? placeCsr(arena, fromFileBitmask({ compressed, bitmask, rowOffsets: readCounts(ck, `${op}.row_offsets`, file) }, N, K, file, op), dtype)
        : place2of4(arena, fromFile2of4({ compressed, bitmask }, N, K, file, op), dtype);
    },
  };
}

/**
 * A linear operator stored quantized (pack-, int- or naive-quantized, or the compact 2:4 layout): its grid and format
 * from quantization_config, every tensor checked now (shape, packed length, scale and zero-point counts, the group
 * size against the inputs); placed for the integer kernels, or read as dequantized f32 rows.
 */
function quantizedTensor(
  ck: Checkpoint, s: HFTensorSpec, fileOf: (n: string) => string, count: (n: number) => void, schemeOfOp: ((op: string) => OperatorScheme | undefined) | undefined,
): StoredTensor {
  const op = opPrefix(s.name);
  const first = ck.tensors.has(`${op}.weight_packed`) ? `${op}.weight_packed` : s.name;
  const file = fileOf(first);
  if (!schemeOfOp) throw new FormatError(file, `"${first}" is stored ${first === s.name ? "as int8 codes" : "packed"} but config.json has no compressed-tensors quantization_config with config_groups`);
  const scheme = schemeOfOp(op);
  if (!scheme) throw new FormatError(file, `"${op}" is stored quantized but no quantization_config group targets it`);
  const { format } = scheme;
  if (isUnpackedFormat(format) !== (first === s.name)) {
    throw new FormatError(file, `"${first}" is stored but ${op}'s quantization_config group says format "${format}" (${isUnpackedFormat(format) ? "an I8 weight" : "weight_packed"} expected)`);
  }
  const [N, K] = s.shape as [number, number];
  const grid = gridForShape(scheme.grid, K, file, op);
  const src = {
    has: (n: string) => ck.tensors.has(n),
    header: (n: string) => ck.tensors.get(n)?.entry,
    bytes: (n: string) => {
      const b = ck.readRaw(n);
      count(b.length);
      return b;
    },
  };
  // checked when opened (headers only; decodeOperator reads the data and checks it again when it is read)
  const actOrderGroups = hasGroupIndex(src, op);
  const names = [...operatorNames(op, grid, ck.tensors.has(`${op}.bitmask`) ? FORMAT_PACK_24 : format), ...(actOrderGroups ? [`${op}.weight_g_idx`] : [])];
  const fileBytes = names.reduce((a, n) => a + ((ck.tensors.get(n)?.entry.end ?? 0) - (ck.tensors.get(n)?.entry.begin ?? 0)), 0);
  checkOperator({ ...src, bytes: (n: string) => ck.readRaw(n) }, file, op, N, K, grid, format);
  let decoded: QuantizedWeight | undefined;
  // the integer kernels take groups in input order: act-order groups (weight_g_idx) run dequantized
  const kernel = intKernelBlock(grid) !== undefined && !actOrderGroups;
  return {
    name: s.name,
    shape: s.shape,
    dtype: "F32",
    fileBytes,
    arenaBytes: 4 * N * K,
    ...(kernel && {
      intBytes: intBytes(N, K, grid),
      readInt(wasm: Wasm, activations?: IntActivationBits) {
        const p = readOperatorParts(src, file, op, N, K, grid, format);
        // the activations asked for, else those its config group declares: dynamic int8 (W4A8, W8A8) or none
        // (weight-only: int16). On int8 activations a 2:4 int4 operator takes the dense panels too (the 2:4
        // kernel has int16 activations only): its compact codes are expanded, the dropped ones zero-point codes
        const bits = activations ?? scheme.activationBits;
        if (!p.bitmask || bits === 8) return placeInt(wasm, N, K, grid, expandParts(p, file, op, N, K, grid).packed, p.scale, p.zero, bits);
        // the compact 2:4 layout: placed from its kept codes and mask by a kernel, the mask checked as it goes
        const placed = placeInt2of4Kept(wasm, N, K, grid, p.packed, p.bitmask, p.scale, p.zero);
        if ("badGroup" in placed) throw bitmaskError(file, op, p.bitmask, N, K, placed.Kp, placed.badGroup);
        return placed;
      },
    }),
    readRange(first, dst) {
      decoded ??= decodeOperator(src, file, op, N, K, grid, format);
      const r0 = Math.floor(first / K);
      const r1 = Math.min(N, Math.ceil((first + dst.length) / K));
      const rows = dequantize(decoded, new Float32Array((r1 - r0) * K), [r0, r1]);
      dst.set(rows.subarray(first - r0 * K, first - r0 * K + dst.length));
      if (first + dst.length >= N * K) decoded = undefined;
    },
  };
}

/** An I64 tensor of non-negative integers (shapes, row offsets) as numbers. */
function readCounts(ck: Checkpoint, name: string, file: string): number[] {
  const t = ck.tensors.get(name);
  if (!t) throw missingTensor(file, name);
  if (t.entry.dtype !== "I64") throw new FormatError(file, `"${name}" is ${t.entry.dtype}, expected I64`);
  const v = decodeI64(ck.readRaw(name));
  if (!v || v.some((x) => x < 0)) throw new FormatError(file, `"${name}" holds a value that is not a non-negative integer`);
  return v;
}
