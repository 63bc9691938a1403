/**
 * @file A model's weights on disk, read tensor by tensor: the one interface the checkpoint formats implement
 * (Hugging Face safetensors, dense or compressed — ./load-hf.ts; llama2.c .bin — ./load-llama2c.ts; only those
 * files know their byte layout). Opening one reads and checks headers only (every tensor the config implies,
 * with its shape and dtype); bytes are read when a tensor is asked for, widened to float32 on the way
 * (F16/BF16 → F32), into the arena (`readTensor`) or into any Float32Array (`readRows`, e.g. embedding rows).
 * Residency (./residency.ts) decides what is read when.
 */
import type { Arena, Wasm } from "../wasm/runtime.js";
import type { DType } from "../io/dtype.js";
import { dense, LINEAR_OPS, type LayerWeights, type LinearWeight, type ModelConfig, type Tensor, type WeightDType } from "./types.js";
import { NotFiniteInF16, p8Bytes, packPanel } from "./packed.js";
import { UsageError } from "../errors.js";
import type { IntActivationBits } from "./linear.js";
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
  /** compressed: the kernel layout placed in `arena`, its values in `dtype` */
  readLinear?(arena: Arena, dtype: WeightDType): LinearWeight;
  /**
   * stored quantized with a grid the integer kernels run (assembly/qgemm.ts): its bytes in their layout, and
   * `readInt` placing it there (inference with --weights-dtype stored); `readRange` still gives dequantized f32
   */
  intBytes?: number;
  /** `activations`: the int8 / int16 activations to place it for (default: what the checkpoint declares) */
  readInt?(wasm: Wasm, activations?: IntActivationBits): LinearWeight;
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

/**
 * How the linear weights of a model are held in memory. Absent: row-major f32 (dense), compressed operators
 * with f32 values — what pruning, training and every command that edits weights need. Set (inference commands:
 * eval, generate, bench model; `--weights-dtype`): dense weights packed once into p8 panels (src/model/packed.ts),
 * compressed operators' values, both in that dtype; "stored" takes each tensor's stored dtype (F32 → f32,
 * BF16 → bf16, F16 → f16), so a half-precision checkpoint runs in half precision with the same values, and a
 * quantized one runs its int8 / int4 codes on the integer kernels (a grid they have no kernel for: f32 panels).
 * "device" is what a linear-layer device (WebGPU) reads: dense and compressed operators as without `pack`
 * (row-major f32, f32 values), quantized ones in their integer layouts as with "stored" — the device has no
 * kernel for those, so they run on WASM.
 */
export type WeightsOption = WeightDType | "stored" | "device";

/** The in-memory dtype `opt` gives a tensor stored as `stored`. */
export function weightDTypeOf(opt: WeightDType | "stored", stored: DType): WeightDType {
  if (opt !== "stored") return opt;
  return stored === "BF16" ? "bf16" : stored === "F16" ? "f16" : "f32";
}

/**
 * Read a linear weight into the arena: row-major f32 or a compressed kernel layout, or packed for inference
 * (`pack`; a quantized one for `activations`, see StoredTensor.readInt).
 */
export function readLinear(wasm: Wasm, t: StoredTensor, pack?: WeightsOption, activations?: IntActivationBits): LinearWeight {
  try {
    if ((pack === "stored" || pack === "device") && t.readInt) return t.readInt(wasm, activations);
    return readLinearAs(wasm.arena, t, pack === undefined || pack === "device" ? undefined : weightDTypeOf(pack, t.dtype));
  } catch (e) {
    if (e instanceof NotFiniteInF16) throw new UsageError(`${t.name}: a weight ${e.message}; load it with --weights-dtype bf16 or f32`);
    throw e;
  }
}

function readLinearAs(arena: Arena, t: StoredTensor, dtype: WeightDType | undefined): LinearWeight {
  if (t.compressed) return t.readLinear!(arena, dtype ?? "f32");
  if (dtype === undefined) return dense(readTensor(arena, t));
  // packed straight from the file, 8 rows at a time: no row-major copy is ever made in the arena
  const [N, K] = t.shape as [number, number];
  const bytes = p8Bytes(N, K, dtype);
  const ptr = arena.allocBytes(Math.max(bytes, 16));
  const panels = arena.u8(ptr, bytes);
  const rows = new Float32Array(8 * K);
  for (let p = 0; 8 * p < N; p++) {
    const r = Math.min(8, N - 8 * p);
    t.readRange(8 * p * K, rows.subarray(0, r * K));
    packPanel(rows, r, K, dtype, panels, p);
  }
  return { format: "p8", dtype, shape: [N, K], ptr, bytes };
}

/** Arena bytes of one tensor once read: packed for inference when `pack` is given and it is a linear weight (see readLinear). */
export function tensorArenaBytes(file: WeightFile, spec: HFTensorSpec, pack?: WeightsOption): number {
  const t = file.tensor(spec);
  const linear = spec.key === "lmHead" || (LINEAR_OPS as readonly string[]).includes(spec.key);
  if (pack === undefined || t.compressed || !linear) return t.arenaBytes;
  if ((pack === "stored" || pack === "device") && t.intBytes !== undefined) return t.intBytes;
  if (pack === "device") return t.arenaBytes;
  const [N, K] = t.shape as [number, number];
  return Math.max(p8Bytes(N, K, weightDTypeOf(pack, t.dtype)), 16);
}

/** Arena bytes of decoder layer l once read (64-byte alignment of every block included), packed with `pack`. */
export function layerArenaBytes(file: WeightFile, l: number, pack?: WeightsOption): number {
  return layerSpecs(file.config, l).reduce((s, spec) => s + Math.ceil(tensorArenaBytes(file, spec, pack) / 64) * 64 + 64, 0);
}

/** Read decoder layer l into wasm's arena (its linear weights packed for inference when `pack` is set; quantized ones for `activations`). */
export function readLayer(wasm: Wasm, file: WeightFile, l: number, pack?: WeightsOption, activations?: IntActivationBits): LayerWeights {
  const lw: Partial<Record<keyof LayerWeights, Tensor | LinearWeight>> = {};
  for (const spec of layerSpecs(file.config, l)) {
    const t = file.tensor(spec);
    lw[spec.key as keyof LayerWeights] = (LINEAR_OPS as readonly string[]).includes(spec.key) ? readLinear(wasm, t, pack, activations) : readTensor(wasm.arena, t);
  }
  return lw as unknown as LayerWeights;
}
