/**
 * @file Compressed model directories: `compressModel` writes one, `loadCompressedWeights` reads one (called by
 * src/model/load.ts when config.json carries the marker below), `decompressModel` writes the dense model back.
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
 * config.json gets `quantization_config: { quant_method: "compressed-tensors", sparsity_config: {...} }` (the
 * key transformers and vLLM read); its `format` is the format of most compressed operators, and since
 * compressed-tensors has one format per model, the per-operator formats are also listed in the wasprune
 * extension `wasprune_sparse_formats` (the tensor names alone already tell the loader which is which).
 * 2:4 operators go to sparse-24-bitmask; other operators with ≥ 50% exact zeros to sparse-bitmask; the rest
 * stay dense. Zero means +0.0 bits; values are copied as bits, so decompression is bit-exact.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError, UsageError, outputExists } from "../errors.js";
import { openCheckpoint } from "../io/safetensors.js";
import { parseHFConfig } from "../model/config.js";
import { HF_EMBED, HF_LM_HEAD, hfTensorSpecs, readHFConfigFile, type HFLoaded } from "../model/load-hf.js";
import { atomicDir, saveHF } from "../model/save.js";
import { LINEAR_OPS, type DType, type LayerWeights, type Model, type ModelWeights, type Tensor } from "../model/types.js";
import type { Wasm } from "../wasm/runtime.js";
import { is2of4, pack2of4, toFile2of4, fromFile2of4, unpack2of4 } from "./nm.js";
import { countNonzeros, packCsr, toFileBitmask, fromFileBitmask, unpackCsr } from "./bcsr.js";
import { place2of4, placeCsr } from "./linear.js";
import { floatBytes, i64Bytes, openRawSafetensors, writeRawSafetensors, type RawTensor } from "./st.js";

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

/** True when `dir/config.json` marks a compressed-tensors sparse checkpoint. */
export function isCompressedDir(dir: string): boolean {
  const file = path.join(dir, "config.json");
  if (!fs.existsSync(file)) return false;
  try {
    const c = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    const q = (c.quantization_config ?? c.compression_config) as Record<string, unknown> | undefined;
    return !!q && q.quant_method === "compressed-tensors" && typeof q.sparsity_config === "object" && q.sparsity_config !== null;
  } catch {
    return false;
  }
}

/** The format an operator's dense weight [N,K] is stored in. */
export function chooseFormat(w: Float32Array, N: number, K: number): { format: OperatorFormat; sparsity: number } {
  const sparsity = w.length ? 1 - countNonzeros(w) / w.length : 0;
  if (sparsity > 0 && is2of4(w, N, K)) return { format: FORMAT_24, sparsity };
  if (sparsity >= UNSTRUCTURED_MIN_SPARSITY) return { format: FORMAT_BITMASK, sparsity };
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
    const out: RawTensor[] = [];
    const formats: Record<string, OperatorFormat> = {};
    const counts: Record<string, number> = {};
    let zeros = 0;
    let params = 0;
    try {
      for (const [name, { entry }] of ck.tensors) {
        const dtype = entry.dtype as "F32" | "F16" | "BF16";
        const shape = linear.get(name);
        if (!shape) {
          out.push({ name, dtype, shape: entry.shape, bytes: ck.files[0]!.readRaw(name) });
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
          out.push({ name: `${op}.compressed`, dtype, shape: [N, K / 2], bytes: floatBytes(f.compressed, dtype) });
          out.push({ name: `${op}.bitmask`, dtype: "U8", shape: [N, Math.ceil(K / 8)], bytes: f.bitmask });
          out.push({ name: `${op}.shape`, dtype: "I64", shape: [2, 1], bytes: i64Bytes([N, K]) });
          bytes = (N * K * elt) / 2 + f.bitmask.length + 16;
        } else if (format === FORMAT_BITMASK) {
          const f = toFileBitmask(packCsr(w, N, K));
          out.push({ name: `${op}.compressed`, dtype, shape: [f.compressed.length], bytes: floatBytes(f.compressed, dtype) });
          out.push({ name: `${op}.bitmask`, dtype: "U8", shape: [N, Math.ceil(K / 8)], bytes: f.bitmask });
          out.push({ name: `${op}.shape`, dtype: "I64", shape: [2], bytes: i64Bytes([N, K]) });
          out.push({ name: `${op}.row_offsets`, dtype: "I64", shape: [N], bytes: i64Bytes(f.rowOffsets) });
          bytes = f.compressed.length * elt + f.bitmask.length + 16 + 8 * N;
        } else {
          out.push({ name, dtype, shape: entry.shape, bytes: ck.files[0]!.readRaw(name) });
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
    config.quantization_config = {
      quant_method: "compressed-tensors",
      format: main,
      sparsity_config: {
        format: main,
        global_sparsity: params ? zeros / params : 0,
        sparsity_structure: main === FORMAT_24 ? "2:4" : "unstructured",
        targets: compressedOps,
        ignore: [HF_LM_HEAD.replace(/\.weight$/, ""), ...Object.entries(formats).filter(([, f]) => f === "dense").map(([op]) => op)],
        registry_requires_subclass: false,
      },
    };
    config[FORMATS_FIELD] = formats;
    writeRawSafetensors(path.join(tmp, "model.safetensors"), out, { format: "pt" });
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
 * Read a compressed directory into the arena: every tensor dense (so inspect, save and pruning see plain
 * weights) and, for compressed operators, also their kernel layout in `Tensor.sparse` for the forward pass.
 */
export function loadCompressedWeights(dir: string, wasm: Wasm): HFLoaded {
  const hfConfig = readHFConfigFile(dir);
  const config = parseHFConfig(hfConfig, "config.json");
  const file = path.join(dir, "model.safetensors");
  if (!fs.existsSync(file)) throw new FormatError(dir, "compressed checkpoint has no model.safetensors (sharded compressed checkpoints are not supported)");
  const st = openRawSafetensors(file);
  try {
    if (!config.tiedEmbeddings && !st.header.has(HF_LM_HEAD) && st.header.has(HF_EMBED)) config.tiedEmbeddings = true;
    const layers: Partial<LayerWeights>[] = Array.from({ length: config.nLayers }, () => ({}));
    const top: Partial<ModelWeights> = {};
    const bytesByDtype: Partial<Record<DType, number>> = {};
    for (const s of hfTensorSpecs(config)) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const ptr = wasm.arena.alloc(n);
      const tensor: Tensor = { ptr, shape: s.shape, data: wasm.arena.f32(ptr, n) };
      const op = opPrefix(s.name);
      const dense = st.header.get(s.name);
      if (dense) {
        if (dense.shape.join(",") !== s.shape.join(",")) throw new FormatError(st.file, `"${s.name}" has shape [${dense.shape}], expected [${s.shape}]`);
        tensor.data.set(st.f32(s.name));
        if (dense.dtype !== "U8" && dense.dtype !== "I64") bytesByDtype[dense.dtype] = (bytesByDtype[dense.dtype] ?? 0) + dense.end - dense.begin;
      } else if (st.header.has(`${op}.compressed`)) {
        const shape = st.i64(`${op}.shape`);
        if (shape.length !== 2 || shape[0] !== s.shape[0] || shape[1] !== s.shape[1]) {
          throw new FormatError(st.file, `"${op}.shape" is [${shape}], expected [${s.shape}]`);
        }
        const [N, K] = s.shape as [number, number];
        const compressed = st.f32(`${op}.compressed`);
        const bitmask = st.bytes(`${op}.bitmask`);
        const ce = st.header.get(`${op}.compressed`)!;
        if (ce.dtype !== "U8" && ce.dtype !== "I64") bytesByDtype[ce.dtype] = (bytesByDtype[ce.dtype] ?? 0) + ce.end - ce.begin;
        if (st.header.has(`${op}.row_offsets`)) {
          const c = fromFileBitmask({ compressed, bitmask, rowOffsets: Float64Array.from(st.i64(`${op}.row_offsets`)) }, N, K, st.file, op);
          tensor.data.set(unpackCsr(c));
          tensor.sparse = placeCsr(wasm.arena, c);
        } else {
          const p = fromFile2of4({ compressed, bitmask }, N, K, st.file, op);
          tensor.data.set(unpack2of4(p));
          tensor.sparse = place2of4(wasm.arena, p);
        }
      } else {
        throw new FormatError(st.file, `missing tensor "${s.name}" (nor "${op}.compressed")`);
      }
      if (s.layer === undefined) (top as Record<string, Tensor>)[s.key] = tensor;
      else (layers[s.layer] as Record<string, Tensor>)[s.key] = tensor;
    }
    if (config.tiedEmbeddings) top.lmHead = top.embed;
    const dtype = (Object.entries(bytesByDtype) as [DType, number][]).sort((a, b) => b[1] - a[1])[0]?.[0] ?? "F32";
    return { config, weights: { ...(top as Omit<ModelWeights, "layers">), layers: layers as LayerWeights[] }, dtype, hfConfig };
  } finally {
    st.close();
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
