/**
 * @file A model's weights on disk, read tensor by tensor: the one interface the checkpoint formats implement
 * (Hugging Face safetensors, dense or compressed — ./load-hf.ts; llama2.c .bin — ./load-llama2c.ts; only those
 * files know their byte layout). Opening one reads and checks headers only (every tensor the config implies,
 * with its shape and dtype); bytes are read when a tensor is asked for, widened to float32 on the way
 * (F16/BF16 → F32), into the arena (`readTensor`) or into any Float32Array (`readRows`, e.g. embedding rows).
 * Residency (./residency.ts) decides what is read when.
 */
import type { Arena } from "../wasm/runtime.js";
import type { DType } from "../io/dtype.js";
import { dense, LINEAR_OPS, type LayerWeights, type LinearWeight, type ModelConfig, type Tensor } from "./types.js";
import { hfTensorSpecs, type HFTensorSpec } from "./specs.js";

/** How to read one stored tensor of a WeightFile. */
export interface StoredTensor {
  /** the tensor's name in messages (the HF name; llama2.c files use the same names) */
  name: string;
  shape: number[];
  /** stored dtype (F32, F16, BF16; a compressed operator: its values' dtype) */
  dtype: DType;
  /** bytes stored on disk */
  fileBytes: number;
  /** bytes it takes in the arena once read (f32 dense, or the compressed kernel layout) */
  arenaBytes: number;
  /** a compressed operator (read only whole, by `readLinear`); absent for dense tensors */
  compressed?: "2:4" | "csr";
  /** dense: elements [first, first + dst.length) as float32 into dst */
  readRange(first: number, dst: Float32Array): void;
  /** compressed: the kernel layout placed in `arena` */
  readLinear?(arena: Arena): LinearWeight;
}

export interface WeightFile {
  /** what the user named (a .bin file or a directory) */
  readonly path: string;
  readonly format: "hf" | "llama2c";
  readonly config: ModelConfig;
  /** the dtype holding the most bytes */
  readonly dtype: DType;
  /** the raw config.json object (HF), kept to write it back with only changed fields edited */
  readonly hfConfig?: Record<string, unknown>;
  /** the stored tensor of a spec of `hfTensorSpecs(config)` (lm_head: the embedding's when tied) */
  tensor(spec: HFTensorSpec): StoredTensor;
  /** bytes read from disk so far */
  readonly bytesRead: number;
  close(): void;
}

/** The specs of decoder layer l, and the top-level ones (embed, norm, lm_head), of a config. */
export function layerSpecs(c: ModelConfig, l: number): HFTensorSpec[] {
  return hfTensorSpecs(c).filter((s) => s.layer === l);
}

export function topSpecs(c: ModelConfig): HFTensorSpec[] {
  return hfTensorSpecs(c).filter((s) => s.layer === undefined);
}

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Read a whole dense tensor into a new arena block. */
export function readTensor(arena: Arena, t: StoredTensor): Tensor {
  if (t.compressed) throw new RangeError(`${t.name} is stored compressed (${t.compressed}); read it as a linear weight`);
  const n = numel(t.shape);
  const ptr = arena.alloc(n);
  const data = arena.f32(ptr, n);
  t.readRange(0, data);
  return { ptr, shape: t.shape, data };
}

/** Read a linear weight into the arena: dense f32, or the kernel layout of a compressed operator. */
export function readLinear(arena: Arena, t: StoredTensor): LinearWeight {
  if (t.compressed) return t.readLinear!(arena);
  return dense(readTensor(arena, t));
}

/** Arena bytes of decoder layer l once read (64-byte alignment of every block included). */
export function layerArenaBytes(file: WeightFile, l: number): number {
  return layerSpecs(file.config, l).reduce((s, spec) => s + Math.ceil(file.tensor(spec).arenaBytes / 64) * 64 + 64, 0);
}

/** Read decoder layer l into the arena. */
export function readLayer(arena: Arena, file: WeightFile, l: number): LayerWeights {
  const lw: Partial<Record<keyof LayerWeights, Tensor | LinearWeight>> = {};
  for (const spec of layerSpecs(file.config, l)) {
    const t = file.tensor(spec);
    lw[spec.key as keyof LayerWeights] = (LINEAR_OPS as readonly string[]).includes(spec.key) ? readLinear(arena, t) : readTensor(arena, t);
  }
  return lw as unknown as LayerWeights;
}
