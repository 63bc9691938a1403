/**
 * @file `wasprune compress` of a quantized model directory (pack-quantized, or int-quantized with int8 activations,
 * as `prune --quantize` and `quantize` write them, or upstream): every int4 operator rewritten in the compact 2:4 layout (FORMAT_PACK_24, src/quant/compressed-tensors.ts:
 * the kept codes and sparse-24-bitmask's mask, 3 bits a weight instead of 4), every other tensor copied as its
 * bytes. File to file, one pass, one operator in memory at a time, sharded like save_pretrained (the output's plan is
 * computed from the headers before a byte is written), atomic: the directory appears only when complete. A model whose int4
 * operators are not all 2:4 is refused naming the first that is not (compressing part of it would leave the
 * config's formats per group wrong).
 */
import fs from "node:fs";
import path from "node:path";
import { FormatError, UsageError, outputExists } from "../errors.js";
import { openCheckpoint, type Checkpoint } from "../io/safetensors.js";
import { DEFAULT_MAX_SHARD_SIZE, INDEX_FILE, SINGLE_FILE, ShardedWriter, planShards, type TensorSpec } from "../io/sharded-writer.js";
import { decodeI64, type StoredDType } from "../io/dtype.js";
import { atomicDir } from "./save.js";
import { FORMAT_PACK_24, decodeOperator, encodeKept24, encodeParams, fits2of4Layout, gridForShape, hasGroupIndex, isUnpackedFormat, operatorSpecs, schemesFromConfig, type QuantFormat, type TensorSource } from "../quant/compressed-tensors.js";
import { zeroPointAt, type QuantizedWeight } from "../quant/codes.js";
import type { Grid } from "../quant/scheme.js";

export interface CompactReport {
  dir: string;
  operators: { name: string; format: QuantFormat; sparsity: number; f32Bytes: number; inputBytes: number; bytes: number }[];
  /** the linear operators' f32 dense bytes, stored bytes in the input and in the output */
  linear: { f32Bytes: number; inputBytes: number; bytes: number };
  /** all weight files, input and output */
  inputFileBytes: number;
  fileBytes: number;
}

const bytesOfEntry = (ck: Checkpoint, name: string): number => {
  const e = ck.tensors.get(name)?.entry;
  return e ? e.end - e.begin : 0;
};

/** Write the quantized model at `dir` to `out` with its int4 operators in the compact 2:4 layout. */
export function compactQuantizedDir(dir: string, out: string, opts: { force?: boolean } = {}): CompactReport {
  if (fs.existsSync(out) && !opts.force) throw outputExists(out);
  const configFile = path.join(dir, "config.json");
  const config = JSON.parse(fs.readFileSync(configFile, "utf8")) as Record<string, unknown>;
  const schemeOf = schemesFromConfig(config, configFile);
  const ck = openCheckpoint(dir);
  if (!ck) throw new FormatError(dir, `no ${SINGLE_FILE} or ${INDEX_FILE}`);
  try {
    const src: TensorSource = { has: (n) => ck.tensors.has(n), header: (n) => ck.tensors.get(n)?.entry, bytes: (n) => ck.readRaw(n) };
    const fileOf = (n: string) => ck.tensors.get(n)!.file.path;
    // the quantized operators: by their packed codes, or int-quantized ones by their I8 weight; each by its first tensor
    const firstOf = new Map<string, string>();
    for (const [n, { entry }] of ck.tensors) {
      if (n.endsWith(".weight_packed")) firstOf.set(n.slice(0, -".weight_packed".length), n);
      else if (n.endsWith(".weight") && entry.dtype === "I8") firstOf.set(n.slice(0, -".weight".length), n);
    }
    const ops = [...firstOf.keys()];
    /** The quantized operator whose tensor `name` is (its codes, scales, zero points, shape), if any. */
    const ownerOf = (name: string): string | undefined => {
      const owner = name.replace(/\.(weight_packed|weight_scale|weight_zero_point|weight_shape|weight)$/, "");
      return owner !== name && firstOf.has(owner) ? owner : undefined;
    };
    // an operator's grid, format and shape from the config and weight_shape or the I8 weight's header (no codes read yet)
    const shapeOf = (op: string): { grid: Grid; format: QuantFormat; N: number; K: number } => {
      const sc = schemeOf(op);
      if (!sc) throw new FormatError(configFile, `"${op}" is stored quantized but no quantization_config group targets it`);
      const first = firstOf.get(op)!;
      if (isUnpackedFormat(sc.format) !== first.endsWith(".weight")) throw new FormatError(fileOf(first), `"${first}" is stored but ${op}'s quantization_config group says format "${sc.format}"`);
      const shapeName = `${op}.weight_shape`;
      const dims = isUnpackedFormat(sc.format) ? ck.tensors.get(first)!.entry.shape : src.has(shapeName) ? decodeI64(ck.readRaw(shapeName)) : undefined;
      if (!dims || dims.length !== 2) throw new FormatError(fileOf(first), `"${shapeName}" is missing or not [N, K]`);
      const [N, K] = dims as [number, number];
      return { grid: gridForShape(sc.grid, K, configFile, op), format: sc.format, N, K };
    };
    const decode = (op: string): QuantizedWeight => {
      const { grid, format, N, K } = shapeOf(op);
      return decodeOperator(src, fileOf(firstOf.get(op)!), op, N, K, grid, format);
    };
    // every int4 operator takes the compact layout; each is checked to be 2:4 when it is written (the output is
    // atomic, so one that is not leaves nothing behind)
    const compact = new Map<string, { N: number; K: number }>();
    for (const op of ops) {
      if (src.has(`${op}.bitmask`)) throw new UsageError(`${dir} is already compact (${op} has a bitmask); nothing to compress`);
      if (hasGroupIndex(src, op)) throw new UsageError(`${op} has act-order groups (weight_g_idx): the compact 2:4 layout keeps scale groups in input order, so such a model is not compressed further`);
      const { grid, N, K } = shapeOf(op);
      if (grid.bits === 4) compact.set(op, { N, K });
    }
    if (compact.size === 0) throw new UsageError(`${dir} has no int4 operator: the compact 2:4 layout holds int4 codes (int8 models stay as they are)`);
    // the plan: a compact operator's tensors in place of its stored ones (its scales in their stored dtype), the rest as stored
    const specs: TensorSpec[] = [];
    for (const [name, { entry }] of ck.tensors) {
      const op = ownerOf(name);
      if (op && compact.has(op)) {
        if (name !== firstOf.get(op)) continue;
        const { grid, N, K } = shapeOf(op);
        const scaleDtype = ck.tensors.get(`${op}.weight_scale`)?.entry.dtype as StoredDType | undefined;
        for (const t of operatorSpecs(op, N, K, grid, FORMAT_PACK_24)) specs.push(t.name.endsWith(".weight_scale") && scaleDtype ? { ...t, dtype: scaleDtype } : t);
      } else {
        specs.push({ name, dtype: entry.dtype as StoredDType, shape: entry.shape });
      }
    }
    const plan = planShards(specs, DEFAULT_MAX_SHARD_SIZE);
    const report: CompactReport = { dir: out, operators: [], linear: { f32Bytes: 0, inputBytes: 0, bytes: 0 }, inputFileBytes: 0, fileBytes: 0 };
    atomicDir(out, !!opts.force, (tmp) => {
      const w = ShardedWriter.create(tmp, plan, { force: true });
      try {
        for (const [name] of ck.tensors) {
          const op = ownerOf(name);
          if (!op) {
            w.write(name, ck.readRaw(name));
            continue;
          }
          // an operator's scales, zero points and shape go with its codes
          if (name !== firstOf.get(op)) continue;
          const q = decode(op);
          const names = [firstOf.get(op)!, ...["weight_scale", "weight_zero_point", "weight_shape"].map((n) => `${op}.${n}`)].filter((n) => ck.tensors.has(n));
          const inputBytes = names.reduce((a, n) => a + bytesOfEntry(ck, n), 0);
          let zeros = 0;
          for (let r = 0; r < q.N; r++) {
            for (let j = 0; j < q.K; j++) if (q.codes[r * q.K + j] === zeroPointAt(q, r, j)) zeros++;
          }
          let bytes = inputBytes;
          if (compact.has(op)) {
            if (!fits2of4Layout(q)) throw new UsageError(`${op} is not 2:4-sparse (a group of 4 inputs holds more than 2 nonzero weights${q.K % 4 ? `, or its ${q.K} inputs are not a multiple of 4` : ""}): only 2:4-pruned int4 models are compressed further`);
            // the kept codes and the mask are new, and the zero points (packed along the rows) and the shape as the
            // layout stores them; the scales go as stored (their dtype kept)
            const own = [...encodeKept24(op, q), ...encodeParams(op, q).filter((t) => !t.name.endsWith(".weight_scale"))];
            const scaleName = `${op}.weight_scale`;
            for (const t of own) w.write(t.name, t.data);
            w.write(scaleName, ck.readRaw(scaleName));
            bytes = own.reduce((a, t) => a + t.data.length, 0) + bytesOfEntry(ck, scaleName);
          } else {
            for (const n of names) w.write(n, ck.readRaw(n));
          }
          report.operators.push({ name: op, format: compact.has(op) ? FORMAT_PACK_24 : shapeOf(op).format, sparsity: zeros / (q.N * q.K), f32Bytes: 4 * q.N * q.K, inputBytes, bytes });
          report.linear.f32Bytes += 4 * q.N * q.K;
          report.linear.inputBytes += inputBytes;
          report.linear.bytes += bytes;
        }
        w.finish();
      } catch (e) {
        w.abort();
        throw e;
      }
      // the config: int4 groups (and the model) in the compact format; the sparsity declared
      const qc = { ...(config.quantization_config as Record<string, unknown>) };
      const groups = Object.fromEntries(Object.entries(qc.config_groups as Record<string, Record<string, unknown>>).map(([k, g]) => {
        const bits = (g.weights as Record<string, unknown> | null)?.num_bits;
        return [k, bits === 4 ? { ...g, format: FORMAT_PACK_24 } : g];
      }));
      let params = 0, zeros = 0;
      for (const o of report.operators) {
        params += o.f32Bytes / 4;
        zeros += (o.sparsity * o.f32Bytes) / 4;
      }
      const sc = (qc.sparsity_config ?? {}) as Record<string, unknown>;
      qc.config_groups = groups;
      qc.format = FORMAT_PACK_24;
      qc.sparsity_config = {
        format: FORMAT_PACK_24,
        global_sparsity: typeof sc.global_sparsity === "number" ? sc.global_sparsity : params ? zeros / params : 0,
        ignore: Array.isArray(sc.ignore) ? sc.ignore : (qc.ignore ?? ["lm_head"]),
        registry_requires_subclass: false,
        sparsity_structure: "2:4",
        targets: Array.isArray(sc.targets) ? sc.targets : ["Linear"],
      };
      fs.writeFileSync(path.join(tmp, "config.json"), JSON.stringify({ ...config, quantization_config: qc }, null, 2) + "\n");
      // the other files (tokenizer, generation config, pruning.json) as they are
      for (const f of fs.readdirSync(dir)) {
        const p = path.join(dir, f);
        if (f === "config.json" || f === INDEX_FILE || /\.safetensors$/.test(f) || !fs.statSync(p).isFile()) continue;
        fs.copyFileSync(p, path.join(tmp, f));
      }
    });
    for (const f of ck.files) report.inputFileBytes += fs.statSync(f.path).size;
    for (const f of fs.readdirSync(out)) if (/\.safetensors$/.test(f)) report.fileBytes += fs.statSync(path.join(out, f)).size;
    return report;
  } finally {
    ck.close();
  }
}
