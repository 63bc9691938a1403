/**
 * @file `wasprune compress` of a quantized model directory (pack-quantized, as `prune --quantize` and `quantize`
 * write it): every int4 operator rewritten in the compact 2:4 layout (FORMAT_PACK_24, src/quant/compressed-tensors.ts:
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
import { FORMAT_PACK, FORMAT_PACK_24, decodeOperator, encodeKept24, fits2of4Layout, gridForShape, gridsFromConfig, type TensorSource } from "../quant/compressed-tensors.js";
import { zeroPointAt, type QuantizedWeight } from "../quant/codes.js";
import type { Grid } from "../quant/scheme.js";

export interface CompactReport {
  dir: string;
  operators: { name: string; format: typeof FORMAT_PACK | typeof FORMAT_PACK_24; sparsity: number; f32Bytes: number; inputBytes: number; bytes: number }[];
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
  const gridOf = gridsFromConfig(config, configFile);
  const ck = openCheckpoint(dir);
  if (!ck) throw new FormatError(dir, `no ${SINGLE_FILE} or ${INDEX_FILE}`);
  try {
    const src: TensorSource = { has: (n) => ck.tensors.has(n), header: (n) => ck.tensors.get(n)?.entry, bytes: (n) => ck.readRaw(n) };
    const fileOf = (n: string) => ck.tensors.get(n)!.file.path;
    const ops = [...ck.tensors.keys()].filter((n) => n.endsWith(".weight_packed")).map((n) => n.slice(0, -".weight_packed".length));
    // an operator's grid and shape from the config and weight_shape (headers and 16 bytes: no codes read yet)
    const shapeOf = (op: string): { grid: Grid; N: number; K: number } => {
      const g = gridOf(op);
      if (!g) throw new FormatError(configFile, `"${op}" is stored quantized but no quantization_config group targets it`);
      const shapeName = `${op}.weight_shape`;
      const dims = src.has(shapeName) ? decodeI64(ck.readRaw(shapeName)) : undefined;
      if (!dims || dims.length !== 2) throw new FormatError(fileOf(`${op}.weight_packed`), `"${shapeName}" is missing or not [N, K]`);
      const [N, K] = dims as [number, number];
      return { grid: gridForShape(g, K, configFile, op), N, K };
    };
    const decode = (op: string): QuantizedWeight => {
      const { grid, N, K } = shapeOf(op);
      return decodeOperator(src, fileOf(`${op}.weight_packed`), op, N, K, grid);
    };
    // every int4 operator takes the compact layout; each is checked to be 2:4 when it is written (the output is
    // atomic, so one that is not leaves nothing behind)
    const compact = new Map<string, { N: number; K: number }>();
    for (const op of ops) {
      if (src.has(`${op}.bitmask`)) throw new UsageError(`${dir} is already compact (${op} has a bitmask); nothing to compress`);
      const { grid, N, K } = shapeOf(op);
      if (grid.bits === 4) compact.set(op, { N, K });
    }
    if (compact.size === 0) throw new UsageError(`${dir} has no int4 operator: the compact 2:4 layout holds int4 codes (int8 models stay pack-quantized)`);
    // the plan: the compact operators' tensors in place of their weight_packed, the rest as stored
    const specs: TensorSpec[] = [];
    for (const [name, { entry }] of ck.tensors) {
      const op = name.endsWith(".weight_packed") ? name.slice(0, -".weight_packed".length) : undefined;
      const c = op ? compact.get(op) : undefined;
      if (c) {
        specs.push({ name, dtype: "I32", shape: [c.N, Math.ceil(c.K / 16)] });
        specs.push({ name: `${op}.bitmask`, dtype: "U8", shape: [c.N, Math.ceil(c.K / 8)] });
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
          const op = name.endsWith(".weight_packed") ? name.slice(0, -".weight_packed".length) : undefined;
          if (!op) {
            // an operator's scales, zero points and shape go with its weight_packed (below)
            const owner = name.replace(/\.(weight_scale|weight_zero_point|weight_shape)$/, "");
            if (owner === name || !ck.tensors.has(`${owner}.weight_packed`)) w.write(name, ck.readRaw(name));
            continue;
          }
          const q = decode(op);
          const names = ["weight_packed", "weight_scale", "weight_zero_point", "weight_shape"].map((n) => `${op}.${n}`).filter((n) => ck.tensors.has(n));
          const inputBytes = names.reduce((a, n) => a + bytesOfEntry(ck, n), 0);
          let zeros = 0;
          for (let r = 0; r < q.N; r++) {
            for (let j = 0; j < q.K; j++) if (q.codes[r * q.K + j] === zeroPointAt(q, r, j)) zeros++;
          }
          let bytes = inputBytes;
          if (compact.has(op)) {
            if (!fits2of4Layout(q)) throw new UsageError(`${op} is not 2:4-sparse (a group of 4 inputs holds more than 2 nonzero weights${q.K % 4 ? `, or its ${q.K} inputs are not a multiple of 4` : ""}): only 2:4-pruned int4 models are compressed further`);
            // the kept codes and the mask are new; scales, zero points and shape go as stored (their dtype kept)
            const own = encodeKept24(op, q);
            const params = names.filter((n) => n !== `${op}.weight_packed`);
            for (const t of own) w.write(t.name, t.data);
            for (const n of params) w.write(n, ck.readRaw(n));
            bytes = own[0].data.length + own[1].data.length + params.reduce((a, n) => a + bytesOfEntry(ck, n), 0);
          } else {
            for (const n of names) w.write(n, ck.readRaw(n));
          }
          report.operators.push({ name: op, format: compact.has(op) ? FORMAT_PACK_24 : FORMAT_PACK, sparsity: zeros / (q.N * q.K), f32Bytes: 4 * q.N * q.K, inputBytes, bytes });
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
