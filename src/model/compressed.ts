/**
 * @file Compressed model directories: `compressModel` writes one, `decompressModel` writes the dense model back
 * (the HF loader, ./load-hf.ts, reads them: a compressed operator goes straight into its kernel layout).
 *
 * Layout: a Hugging Face directory whose model.safetensors stores each linear operator in one of three ways,
 * following llm-compressor's compressed-tensors (https://github.com/vllm-project/compressed-tensors,
 * compressors/sparse_compressors/sparse_24_bitmask.py and sparse_bitmask.py) so the files are recognisable:
 *   2:4 ("sparse-24-bitmask"):  <op>.compressed [N, K/2] (values, the source dtype), <op>.bitmask U8 [N, ceil(K/8)]
 *                               (numpy packbits, bitorder little; exactly 2 bits per group of 4), <op>.shape I64 [2, 1]
 *   unstructured ("sparse-bitmask"): <op>.compressed [nnz], <op>.bitmask U8 [N, ceil(K/8)], <op>.shape I64 [2],
 *                               <op>.row_offsets I64 [N]
 *   dense:                      <op>.weight as usual
 * where <op> is e.g. "model.layers.0.mlp.down_proj". Every other tensor is stored as in a dense checkpoint.
 * config.json gets `quantization_config` as compressed-tensors 0.14 writes it (`compressionConfig`, the key
 * transformers and vLLM read); its sparsity format is the format of most compressed operators, and since
 * compressed-tensors has one format per model, the per-operator formats are also listed in the wasprune
 * extension `wasprune_sparse_formats` (the tensor names alone already tell the loader which is which).
 * 2:4 operators go to sparse-24-bitmask; other operators with ≥ 50% zeros to sparse-bitmask; the rest stay
 * dense. A zero is ±0.0 (src/sparse/zero.ts) and is stored as +0.0; other values are copied as bits, so
 * decompression is bit-exact (for a pruned model, whose zeros are +0.0, exactly).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError, UsageError, outputExists } from "../errors.js";
import { openCheckpoint, writeSafetensors, type TensorToWrite } from "../io/safetensors.js";
import { encodeFloats, encodeI64 } from "../io/dtype.js";
import { HF_LM_HEAD, hfTensorSpecs } from "./specs.js";
import { isCompressedConfig } from "./load-hf.js";
import { isQuantizedConfig } from "../quant/compressed-tensors.js";
import { atomicDir, saveHF } from "./save.js";
import { LINEAR_OPS, type DType, type Model } from "./types.js";
import { is2of4, pack2of4, toFile2of4 } from "../sparse/nm.js";
import { packCsr, toFileBitmask } from "../sparse/bcsr.js";
import { countNonzeros } from "../sparse/zero.js";

export const FORMAT_24 = "sparse-24-bitmask";
export const FORMAT_BITMASK = "sparse-bitmask";
export const FORMATS_FIELD = "wasprune_sparse_formats";
/** Operators at least this sparse (exact zeros) and not 2:4 are stored unstructured. */
export const UNSTRUCTURED_MIN_SPARSITY = 0.5;

export type OperatorFormat = typeof FORMAT_24 | typeof FORMAT_BITMASK | "dense";

export interface CompressReport {
  dir: string;
  operators: { name: string; format: OperatorFormat; sparsity: number; denseBytes: number; bytes: number }[];
  /** model.safetensors of the dense save, and of the compressed one */
  denseFileBytes: number;
  fileBytes: number;
}

/** `test` of `dir/config.json`'s object; false when there is none or it is not JSON. */
function configSays(dir: string, test: (c: Record<string, unknown>) => boolean): boolean {
  const file = path.join(dir, "config.json");
  if (!fs.existsSync(file)) return false;
  try {
    return test(JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>);
  } catch {
    return false;
  }
}

/** True when `dir/config.json` marks a compressed-tensors sparse checkpoint. */
export function isCompressedDir(dir: string): boolean {
  return configSays(dir, isCompressedConfig);
}

/** True when `dir/config.json` marks a compressed-tensors quantized checkpoint (config_groups). */
export function isQuantizedDir(dir: string): boolean {
  return configSays(dir, isQuantizedConfig);
}

/**
 * The compressed-tensors release whose file layout and config these files follow. compressed-tensors 0.15 marked
 * sparse-bitmask and sparse-24-bitmask legacy and removed their compressors ("Sparse24 … not longer supported as
 * of compressed-tensors>0.14.0", ModelCompressor.from_compression_config), so only ≤ 0.14 reads them upstream.
 */
export const COMPRESSED_TENSORS_VERSION = "0.14.0";

/**
 * `quantization_config` of a sparse-only compressed model, key for key as compressed-tensors 0.14's
 * `ModelCompressor.update_config` writes it (json.dump with sort_keys): `version`, `quant_method`,
 * `sparsity_config` (the format's config model_dump: format, global_sparsity, ignore, registry_requires_subclass,
 * sparsity_structure, targets), `transform_config` {} — and no top-level `format`: upstream's
 * `parse_quantization_config` treats every key besides those four as a quantization config, and a lone `format`
 * fails its validation (`config_groups` is required).
 */
export function compressionConfig(s: { format: OperatorFormat; globalSparsity: number; targets: string[]; ignore: string[] }): Record<string, unknown> {
  return {
    quant_method: "compressed-tensors",
    sparsity_config: {
      format: s.format,
      global_sparsity: s.globalSparsity,
      ignore: s.ignore,
      registry_requires_subclass: false,
      sparsity_structure: s.format === FORMAT_24 ? "2:4" : "unstructured",
      targets: s.targets,
    },
    transform_config: {},
    version: COMPRESSED_TENSORS_VERSION,
  };
}

/** The format an operator's dense weight [N,K] is stored in. */
export function chooseFormat(w: Float32Array, N: number, K: number): { format: OperatorFormat; sparsity: number } {
  const zeros = w.length - countNonzeros(w);
  const sparsity = w.length ? zeros / w.length : 0;
  if (zeros > 0 && is2of4(w, N, K)) return { format: FORMAT_24, sparsity };
  // at least half zeros, up to the rounding of an odd count (a 50% prune of n weights zeroes round(n/2))
  if (zeros >= Math.floor(UNSTRUCTURED_MIN_SPARSITY * w.length) && zeros > 0) return { format: FORMAT_BITMASK, sparsity };
  return { format: "dense", sparsity };
}

const opPrefix = (weightName: string): string => weightName.replace(/\.weight$/, "");

/**
 * Write `model` compressed to `dir` (atomic; an existing `dir` is refused unless `force`). The dense directory
 * is first written by saveHF (config, tokenizer, RoPE layout), then model.safetensors is re-encoded.
 */
export function compressModel(model: Model, dir: string, opts: { force?: boolean } = {}): CompressReport {
  if (fs.existsSync(dir) && !opts.force) throw outputExists(dir);
  const report: CompressReport = { dir, operators: [], denseFileBytes: 0, fileBytes: 0 };
  atomicDir(dir, !!opts.force, (tmp) => {
    const denseDir = path.join(tmp, ".dense");
    const hfConfig = { ...(model.source.hfConfig ?? {}) };
    delete hfConfig.quantization_config;
    delete hfConfig[FORMATS_FIELD];
    saveHF({ ...model, source: { ...model.source, hfConfig } }, denseDir);
    const ck = openCheckpoint(denseDir);
    if (!ck) throw new FormatError(denseDir, "saveHF wrote no model.safetensors");
    const linear = new Map<string, number[]>();
    for (const s of hfTensorSpecs(model.config)) if ((LINEAR_OPS as readonly string[]).includes(s.key)) linear.set(s.name, s.shape);
    const out: TensorToWrite[] = [];
    const formats: Record<string, OperatorFormat> = {};
    const counts: Record<string, number> = {};
    let zeros = 0;
    let params = 0;
    try {
      for (const [name, { entry }] of ck.tensors) {
        const dtype = entry.dtype as DType; // saveHF writes float dtypes only
        const shape = linear.get(name);
        if (!shape) {
          out.push({ name, dtype, shape: entry.shape, data: ck.readRaw(name) });
          continue;
        }
        const [N, K] = shape as [number, number];
        const w = new Float32Array(N * K);
        ck.readF32Into(name, w);
        const { format, sparsity } = chooseFormat(w, N, K);
        const op = opPrefix(name);
        const elt = dtype === "F32" ? 4 : 2;
        let bytes = N * K * elt;
        if (format === FORMAT_24) {
          const f = toFile2of4(pack2of4(w, N, K));
          out.push({ name: `${op}.compressed`, dtype, shape: [N, K / 2], data: encodeFloats(f.compressed, dtype) });
          out.push({ name: `${op}.bitmask`, dtype: "U8", shape: [N, Math.ceil(K / 8)], data: f.bitmask });
          out.push({ name: `${op}.shape`, dtype: "I64", shape: [2, 1], data: encodeI64([N, K]) });
          bytes = (N * K * elt) / 2 + f.bitmask.length + 16;
        } else if (format === FORMAT_BITMASK) {
          const f = toFileBitmask(packCsr(w, N, K));
          out.push({ name: `${op}.compressed`, dtype, shape: [f.compressed.length], data: encodeFloats(f.compressed, dtype) });
          out.push({ name: `${op}.bitmask`, dtype: "U8", shape: [N, Math.ceil(K / 8)], data: f.bitmask });
          out.push({ name: `${op}.shape`, dtype: "I64", shape: [2], data: encodeI64([N, K]) });
          out.push({ name: `${op}.row_offsets`, dtype: "I64", shape: [N], data: encodeI64(f.rowOffsets) });
          bytes = f.compressed.length * elt + f.bitmask.length + 16 + 8 * N;
        } else {
          out.push({ name, dtype, shape: entry.shape, data: ck.readRaw(name) });
        }
        formats[op] = format;
        if (format !== "dense") counts[format] = (counts[format] ?? 0) + 1;
        zeros += Math.round(sparsity * N * K);
        params += N * K;
        report.operators.push({ name: op, format, sparsity, denseBytes: N * K * elt, bytes });
      }
    } finally {
      ck.close();
    }
    report.denseFileBytes = fs.statSync(path.join(denseDir, "model.safetensors")).size;
    const main = (Object.entries(counts).sort((a, b) => b[1] - a[1])[0]?.[0] ?? "dense") as OperatorFormat;
    const compressedOps = Object.entries(formats).filter(([, f]) => f !== "dense").map(([op]) => op);
    const config = JSON.parse(fs.readFileSync(path.join(denseDir, "config.json"), "utf8")) as Record<string, unknown>;
    config.quantization_config = compressionConfig({
      format: main,
      globalSparsity: params ? zeros / params : 0,
      targets: compressedOps,
      ignore: [HF_LM_HEAD.replace(/\.weight$/, ""), ...Object.entries(formats).filter(([, f]) => f === "dense").map(([op]) => op)],
    });
    config[FORMATS_FIELD] = formats;
    writeSafetensors(path.join(tmp, "model.safetensors"), out, { format: "pt" });
    report.fileBytes = fs.statSync(path.join(tmp, "model.safetensors")).size;
    fs.writeFileSync(path.join(tmp, "config.json"), JSON.stringify(config, null, 2) + "\n");
    for (const f of fs.readdirSync(denseDir)) {
      if (f !== "model.safetensors" && f !== "config.json") fs.renameSync(path.join(denseDir, f), path.join(tmp, f));
    }
    fs.rmSync(denseDir, { recursive: true, force: true });
  });
  return report;
}

/**
 * Refuse a compressed model directory where dense weights are edited in place (pruning): its operators are
 * held only in their sparse form. `command` names the refusing command in the message.
 */
export function refuseCompressed(modelPath: string, command: string): void {
  if (isQuantizedDir(modelPath)) {
    throw new UsageError(
      `${modelPath} is a quantized model (compressed-tensors pack-quantized); ${command} needs its dense weights: ` +
        `run \`wasprune decompress ${modelPath} --out DENSE\` and ${command} DENSE`,
    );
  }
  if (isCompressedDir(modelPath)) {
    throw new UsageError(
      `${modelPath} is a compressed model (its sparse operators have no dense copy in memory); ${command} needs dense weights: ` +
        `run \`wasprune decompress ${modelPath} --out DENSE\` and ${command} DENSE`,
    );
  }
}

/** Write the dense model of a loaded compressed `model` to `dir` as a plain HF directory (no sparsity config). */
export function decompressModel(model: Model, dir: string, opts: { force?: boolean } = {}): void {
  if (!model.source.hfConfig || !("quantization_config" in model.source.hfConfig)) {
    throw new UsageError(`${model.source.path} is not a compressed model (config.json has no quantization_config)`);
  }
  const hfConfig = { ...model.source.hfConfig };
  delete hfConfig.quantization_config;
  delete hfConfig[FORMATS_FIELD];
  saveHF({ ...model, source: { ...model.source, hfConfig } }, dir, { force: opts.force });
}
