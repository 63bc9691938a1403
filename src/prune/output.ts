/**
 * @file Where the driver's pruned layers go (PruneSink, ./driver.ts):
 *  - `ShardedOutput`: a Hugging Face directory written as it is produced, in the sharded layout of
 *    `save_pretrained` (src/io/sharded-writer.ts: model-0000k-of-0000n.safetensors + index, or one
 *    model.safetensors), headers computed up front, the input's dtype unless another is asked for. The tensors
 *    that are not pruned (embedding, norms, biases, LM head) are copied from the input store in row blocks; each
 *    pruned layer is written at its planned offsets, synced, then recorded as done (with its reports) in
 *    `.wasprune-checkpoint/layer-<l>.json`. A run killed at any point resumes: the done layers are read back from
 *    the partial files (the next layers are calibrated on them, so the result is byte-identical), the rest is
 *    pruned. The files become the finished model only at `finish` (the writer renames them; the index last).
 *    A quantizing prune (`quantize`) writes each linear operator in compressed-tensors' pack-quantized layout
 *    (src/quant/compressed-tensors.ts: weight_packed, weight_scale, weight_zero_point, weight_shape) in place of
 *    its `weight`, or with int8 activations declared (W4A8, W8A8) int-quantized as upstream does (an I8 `weight`,
 *    weight_scale, weight_zero_point), and config.json's `quantization_config` (`finish`); a resumed layer is
 *    decoded back from them.
 *  - `MemorySink`: into the linear weights of a model in memory (comparisons, llama2.c outputs), optionally
 *    checkpointed per layer (f32 safetensors) for a resumable .bin output.
 */
import fs from "node:fs";
import path from "node:path";
import { UsageError } from "../errors.js";
import { openSafetensors } from "../io/safetensors.js";
import { ShardedWriter, planShards, DEFAULT_MAX_SHARD_SIZE, PARTIAL_DIR, type ShardPlan } from "../io/sharded-writer.js";
import { isFloatDType, type DType } from "../io/dtype.js";
import type { ModelStore } from "../model/residency.js";
import { LINEAR_OPS, type DenseLinear, type LinearOp, type Model, type Tensor } from "../model/types.js";
import { hfTensorSpecs, type HFTensorSpec } from "../model/specs.js";
import { stateDictOrder } from "../model/names.js";
import { denseLayer, denseWeight, type DenseLayer } from "../model/linear.js";
import { halfToInterleaved, interleavedToHalf } from "../model/save-rope.js";
import { toHFConfig } from "../model/config.js";
import { sideFiles } from "../model/save.js";
import { writeFileAtomic } from "./checkpoint.js";
import type { OperatorReport, PruneSink } from "./driver.js";
import { gridOf, type Grid, type QuantScheme } from "../quant/scheme.js";
import { decodeOperator, encodeOperator, formatFor, operatorSpecs, quantizationConfig, type QuantConfigInput, type QuantFormat } from "../quant/compressed-tensors.js";
import { dequantize, reorderRows, type QuantizedWeight } from "../quant/codes.js";

export interface ShardedOutputOptions {
  /** stored dtype (default: the input's) */
  dtype?: DType;
  /** the largest shard (default 5 GB, as save_pretrained) */
  maxShardBytes?: number;
  /** the folder of the per-layer records (must hold the settings manifest already) */
  checkpointDir: string;
  /** write the linear operators quantized in this scheme (pack-quantized) */
  quantize?: QuantScheme;
  /** GPTQ ran in act-order (quantization_config's actorder "weight") */
  actOrder?: boolean;
  /** declare dynamic int8 input activations in the config groups (W4A8 / W8A8) */
  activations?: "int8";
}

export class ShardedOutput implements PruneSink {
  readonly dir: string;
  readonly dtype: DType;
  readonly plan: ShardPlan;
  private readonly writer: ShardedWriter;
  private readonly specs: HFTensorSpec[];
  private readonly ckDir: string;
  /** bytes read back from the partial files on resume */
  bytesReadBack = 0;
  /** the grid of each quantized operator (by operator name), when quantizing */
  readonly grids = new Map<string, Grid>();
  private readonly actOrder: boolean;
  private readonly activations: "int8" | undefined;
  /** how the quantized operators are stored: pack-quantized, or int-quantized with int8 activations (as upstream infers) */
  readonly format: QuantFormat;

  constructor(dir: string, private readonly store: ModelStore, opts: ShardedOutputOptions) {
    this.dir = dir;
    this.ckDir = opts.checkpointDir;
    this.actOrder = !!opts.actOrder;
    this.activations = opts.activations;
    this.format = formatFor(opts.activations);
    const c = store.config;
    this.dtype = opts.dtype ?? store.source.dtype;
    if (!isFloatDType(this.dtype)) throw new UsageError(`--dtype ${this.dtype}: expected F32, F16 or BF16`);
    this.specs = stateDictOrder(hfTensorSpecs(c));
    const q = opts.quantize;
    if (q) for (const s of this.specs) if (isLinear(s)) this.grids.set(opPrefix(s.name), gridOf(q, s.shape[1]!));
    const planned = this.specs.flatMap((s) => {
      const grid = isLinear(s) ? this.grids.get(opPrefix(s.name)) : undefined;
      return grid ? operatorSpecs(opPrefix(s.name), s.shape[0]!, s.shape[1]!, grid, this.format) : [{ name: s.name, dtype: this.dtype, shape: s.shape }];
    });
    this.plan = planShards(planned, opts.maxShardBytes ?? DEFAULT_MAX_SHARD_SIZE);
    const resuming = fs.existsSync(path.join(dir, PARTIAL_DIR));
    this.writer = resuming ? ShardedWriter.resume(dir, this.plan) : ShardedWriter.create(dir, this.plan, { force: true });
    // the tensors outside the decoder layers, copied once (a resumed writer already has them)
    for (const s of this.specs) if (s.layer === undefined && !this.writer.isWritten(s.name)) this.copyTop(s);
    this.writer.sync();
  }

  /** bytes written by this run */
  get bytesWritten(): number {
    return this.writer.bytesWritten;
  }

  /** embed, norm, lm_head from the input store, in row blocks (never a whole table in memory at once). */
  private copyTop(s: HFTensorSpec): void {
    const { store } = this;
    const c = store.config;
    if (s.key === "norm") return this.writer.write(s.name, store.norm.data);
    const step = Math.max(1, Math.min(c.vocabSize, store.headBlockRows, Math.floor((32 << 20) / (4 * c.dim))));
    const buf = new Float32Array(step * c.dim);
    for (let r0 = 0; r0 < c.vocabSize; r0 += step) {
      const r1 = Math.min(c.vocabSize, r0 + step);
      const rows = buf.subarray(0, (r1 - r0) * c.dim);
      if (s.key === "embed") store.embedRows(Array.from({ length: r1 - r0 }, (_, i) => r0 + i), rows);
      else rows.set(denseWeight(store.wasm, store.headRows(r0, r1)));
      this.writer.writeRange(s.name, r0 * c.dim, rows);
    }
  }

  /** The tensor data of a layer's spec as stored in HF layout (q/k rows permuted from llama2.c's RoPE layout). */
  private hfData(key: string, t: Tensor | DenseLinear, toHF: boolean): Float32Array {
    const c = this.store.config;
    if (c.ropeLayout === "interleaved" && (key === "wq" || key === "wk")) {
      const heads = t.shape[0]! / c.headDim;
      return toHF ? interleavedToHalf(t.data, heads, c.headDim, c.dim) : halfToInterleaved(t.data, heads, c.headDim, c.dim);
    }
    return t.data;
  }

  resumed(l: number): { weights: Record<LinearOp, Float32Array>; reports: OperatorReport[] } | undefined {
    const record = path.join(this.ckDir, `layer-${l}.json`);
    if (!fs.existsSync(record)) return undefined;
    const specs = this.specs.filter((s) => s.layer === l);
    if (!specs.every((s) => this.storedNames(s).every((n) => this.writer.synced.has(n)))) return undefined; // recorded, but not all on disk: redo
    const reports = JSON.parse(fs.readFileSync(record, "utf8")) as OperatorReport[];
    const weights = {} as Record<LinearOp, Float32Array>;
    const byFile = new Map<string, ReturnType<typeof openSafetensors>>();
    try {
      for (const s of specs) {
        if (!isLinear(s)) continue;
        const op = opPrefix(s.name);
        const grid = this.grids.get(op);
        const first = grid ? operatorSpecs(op, s.shape[0]!, s.shape[1]!, grid, this.format)[0]!.name : s.name;
        const file = this.plan.tensors.get(first)!.file;
        if (!byFile.has(file)) byFile.set(file, openSafetensors(path.join(this.writer.partial, file)));
        const f = byFile.get(file)!;
        let data: Float32Array = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
        if (grid) {
          const src = { has: (n: string) => f.header.has(n), header: (n: string) => f.header.get(n), bytes: (n: string) => f.readRaw(n) };
          data = dequantize(decodeOperator(src, path.join(this.writer.partial, file), op, s.shape[0]!, s.shape[1]!, grid, this.format));
          for (const t of operatorSpecs(op, s.shape[0]!, s.shape[1]!, grid, this.format)) this.bytesReadBack += this.plan.tensors.get(t.name)!.bytes;
        } else {
          f.readF32Into(s.name, data);
          this.bytesReadBack += this.plan.tensors.get(s.name)!.bytes;
        }
        weights[s.key as LinearOp] = this.hfData(s.key, { ptr: 0, shape: s.shape, data }, false);
      }
    } finally {
      for (const f of byFile.values()) f.close();
    }
    return { weights, reports };
  }

  put(l: number, dense: DenseLayer, pruned: Record<LinearOp, DenseLinear>, reports: OperatorReport[]): void {
    for (const s of this.specs.filter((x) => x.layer === l)) {
      const t = (isLinear(s) ? pruned[s.key as LinearOp] : (dense as unknown as Record<string, Tensor>)[s.key])!;
      const grid = this.grids.get(opPrefix(s.name));
      if (grid && isLinear(s)) {
        const q = (t as DenseLinear).quant;
        if (!q) throw new UsageError(`${s.name}: the output is quantized but the operator came without its codes`);
        for (const r of encodeOperator(opPrefix(s.name), this.hfRows(s.key, q), this.format)) this.writer.write(r.name, r.data);
      } else {
        this.writer.write(s.name, this.hfData(s.key, t, true));
      }
    }
    this.writer.sync();
    writeFileAtomic(path.join(this.ckDir, `layer-${l}.json`), JSON.stringify(reports));
  }

  /** Layers recorded as done by an earlier run. */
  doneLayers(): number[] {
    return fs.readdirSync(this.ckDir).map((f) => /^layer-(\d+)\.json$/.exec(f)).filter((m): m is RegExpExecArray => !!m).map((m) => Number(m[1])).sort((a, b) => a - b);
  }

  /** The names a spec is stored under: its own, or a quantized operator's packed tensors. */
  private storedNames(s: HFTensorSpec): string[] {
    const grid = isLinear(s) ? this.grids.get(opPrefix(s.name)) : undefined;
    return grid ? operatorSpecs(opPrefix(s.name), s.shape[0]!, s.shape[1]!, grid, this.format).map((t) => t.name) : [s.name];
  }

  /** A quantized operator's rows in HF layout (q/k permuted from llama2.c's RoPE layout, as `hfData`). */
  private hfRows(key: string, q: QuantizedWeight): QuantizedWeight {
    const c = this.store.config;
    if (c.ropeLayout !== "interleaved" || (key !== "wq" && key !== "wk")) return q;
    const order = interleavedToHalf(Float32Array.from({ length: q.N }, (_, i) => i), q.N / c.headDim, c.headDim, 1);
    return reorderRows(q, order);
  }

  /**
   * Write config.json and the tokenizer files, then move the weight files into place (the index last). A
   * quantized output's config gets `quantization_config` (with `sparsity` for a pruned model's pattern).
   */
  finish(sparsity?: QuantConfigInput["sparsity"]): void {
    const { store } = this;
    const files = sideFiles(store.source, store.tokenizer, store.config.maxSeqLen);
    const config = toHFConfig(store.config, this.dtype, store.source.hfConfig);
    if (this.grids.size) {
      config.quantization_config = quantizationConfig({ grids: this.grids, ignore: ["lm_head"], actOrder: this.actOrder, ...(this.activations ? { activations: this.activations } : {}), ...(sparsity ? { sparsity } : {}) });
    }
    files.set("config.json", JSON.stringify(config, null, 2) + "\n");
    for (const [name, data] of files) writeFileAtomic(path.join(this.dir, name), data);
    this.writer.finish();
  }

  /** Keep the partial files (a later run resumes). */
  close(): void {
    this.writer.close();
  }
}

const isLinear = (s: HFTensorSpec): boolean => (LINEAR_OPS as readonly string[]).includes(s.key);
const opPrefix = (weightName: string): string => weightName.replace(/\.weight$/, "");

/** Pruned layers into the linear weights of `target` (a dense model in memory of the same shapes). */
export class MemorySink implements PruneSink {
  constructor(
    readonly target: Model,
    private readonly checkpoints?: { load(l: number): { weights: Partial<Record<LinearOp, Float32Array>>; reports: OperatorReport[] } | undefined; save(l: number, weights: Record<LinearOp, Float32Array>, reports: OperatorReport[]): void },
  ) {}

  resumed(l: number): { weights: Record<LinearOp, Float32Array>; reports: OperatorReport[] } | undefined {
    const saved = this.checkpoints?.load(l);
    if (!saved) return undefined;
    this.install(l, saved.weights as Record<LinearOp, Float32Array>);
    return saved as { weights: Record<LinearOp, Float32Array>; reports: OperatorReport[] };
  }

  put(l: number, _dense: DenseLayer, pruned: Record<LinearOp, DenseLinear>, reports: OperatorReport[]): void {
    const weights = Object.fromEntries(LINEAR_OPS.map((op) => [op, pruned[op].data])) as Record<LinearOp, Float32Array>;
    this.install(l, weights);
    this.checkpoints?.save(l, weights, reports);
  }

  private install(l: number, weights: Record<LinearOp, Float32Array>): void {
    const lw = denseLayer(this.target.weights.layers[l]!, l);
    for (const op of LINEAR_OPS) lw[op].data.set(weights[op]);
  }
}
