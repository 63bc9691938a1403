/**
 * @file Residency: which of a model's weights are in the WebAssembly memory, and when they leave — decided here
 * and nowhere else (SparseGPT's layer loop, llm-compressor's sequential onloading). The forward pass of a layer,
 * pruning and layer-major evaluation ask a ModelStore for a decoder layer and give it back:
 *  - resident: every weight was read into the arena when the model was opened (./load.ts `loadModel`);
 *    `acquire` returns the layer in place. What generation, training and structured pruning use.
 *  - streamed: only the headers were read; `acquire(l)` reads layer l from disk, widened to f32, into one
 *    reserved *layer slot* of the arena (sized for the largest layer), `release(l)` frees the slot. At most one
 *    decoder layer is in the arena at any time (its accounting says so: `stats.maxLayersResident`). Embedding
 *    rows are gathered from the file in its stored dtype when asked for; LM-head rows are read in blocks into
 *    the same slot when logits are needed (no layer is in it then).
 * Which one a command gets is a choice made by size (`openStore`, ./load.ts), not the only path.
 */
import { BoundedArena, type Wasm } from "../wasm/memory.js";
import { UsageError } from "../errors.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { linearLayouts, setIntActivations, type IntActivationBits } from "./linear.js";
import { dense, type LayerWeights, type LinearWeight, type Model, type ModelConfig, type ModelSource, type Tensor } from "./types.js";
import { layerArenaBytes, readLayer, readLinear, readTensor, tensorArenaBytes, topSpecs, type StoredTensor, type WeightFile, type WeightsOption } from "./weight-file.js";

/** The WebAssembly memory (wasm32) holds at most 4 GiB. */
export const WASM32_LIMIT = 4 * 1024 ** 3;

/**
 * Arena bytes every weight of `file` takes once read: f32 dense, compressed operators in their kernel layouts, and
 * with `pack` (inference) the linear weights packed as they will be held (readLinear).
 */
export function residentBytes(file: WeightFile, pack?: WeightsOption, hostEmbedding = false): number {
  let n = 0;
  for (let l = 0; l < file.config.nLayers; l++) n += layerArenaBytes(file, l, pack);
  // the embedding table stays row-major f32 (rows gathered per token; in host memory with `hostEmbedding` when
  // untied); an untied LM head is packed like a layer's
  const hostEmbed = hostEmbedding && !file.config.tiedEmbeddings;
  for (const s of topSpecs(file.config)) {
    if ((s.key === "lmHead" && file.config.tiedEmbeddings) || (s.key === "embed" && hostEmbed)) continue;
    n += tensorArenaBytes(file, s, pack);
  }
  return n;
}

export function sourceOf(file: WeightFile): ModelSource {
  return { path: file.path, format: file.format, dtype: file.dtype, ...(file.hfConfig ? { hfConfig: file.hfConfig } : {}) };
}

const GiB = (n: number) => `${(n / 1024 ** 3).toFixed(2)} GiB`;

/** How a resident model's weights are held, for messages. */
function held(pack: WeightsOption | undefined): string {
  if (pack === undefined) return "float32";
  if (pack === "device") return "float32, quantized operators in their integer layouts";
  return pack === "stored" ? "linear weights in their stored dtype, packed" : `linear weights as ${pack}, packed`;
}

/**
 * Every weight of `file` into `wasm`'s arena: a resident Model (no tokenizer yet). A model whose weights do not
 * fit the 4 GiB WebAssembly memory is refused with its size and what would make it fit. `intActivations`: the
 * activations its quantized operators are placed for (default: as the checkpoint declares; StoredTensor.readInt).
 */
export function readResident(file: WeightFile, wasm: Wasm, pack?: WeightsOption, hostEmbedding = false, intActivations?: IntActivationBits): Model {
  const bytes = residentBytes(file, pack, hostEmbedding);
  if (bytes > WASM32_LIMIT - (256 << 20)) {
    throw new UsageError(
      `${file.path}: its weights take ${GiB(bytes)} in WebAssembly memory (${held(pack)}), more than the 4 GiB wasm32 limit ` +
        `(with room for the work); this command needs the whole model in memory. prune and eval stream such a model layer by layer; ` +
        `to run it whole, ${pack === "f32" || (pack === "stored" && file.dtype === "F32") ? "hold its linear weights as bf16 (--weights-dtype bf16: half the bytes) or " : ""}` +
        `prune it and store it compressed (wasprune compress: 2:4 takes ~0.53x the dense bytes)`,
    );
  }
  const c = file.config;
  const a = wasm.arena;
  const top = Object.fromEntries(topSpecs(c).map((s) => [s.key, s]));
  const et = file.tensor(top.embed!);
  const embed = hostEmbedding && !c.tiedEmbeddings ? hostTensor(et) : readTensor(a, et);
  const layers: LayerWeights[] = Array.from({ length: c.nLayers }, (_, l) => readLayer(wasm, file, l, pack, intActivations));
  const norm = readTensor(a, file.tensor(top.norm!));
  // a tied LM head is the embedding table itself (rows gathered per token), so it stays row-major f32
  const lmHead = c.tiedEmbeddings ? dense(embed) : readLinear(wasm, file.tensor(top.lmHead!), pack, intActivations);
  return withIntActivations({ config: c, weights: { embed, layers, norm, lmHead }, wasm, source: sourceOf(file) }, intActivations, file.path);
}

/**
 * `model` with `bits` activations on its integer operators (./linear.ts setIntActivations; undefined: as
 * loaded); 8 and none to set: a UsageError naming `what` and how its linear weights are held.
 */
export function withIntActivations(model: Model, bits: IntActivationBits | undefined, what: string): Model {
  if (bits === undefined || setIntActivations(model, bits) > 0 || bits === 16) return model;
  const held = Object.entries(linearLayouts(model).layouts).map(([l, n]) => `${n} ${l}`).join(", ");
  throw new UsageError(
    `${what}: --int-activations 8 runs int8 and int4 operators in dense panels on int8 activations (W8A8, W4A8; 2:4 int4 ones too), ` +
      `and this model has none (its linear weights: ${held}); quantize it first (wasprune quantize --scheme w4g128), or drop the flag`,
  );
}


/** A whole dense tensor read into host memory (outside the arena): `ptr` -1, no kernel may read it. */
function hostTensor(t: StoredTensor): Tensor {
  const data = new Float32Array(t.shape.reduce((x, y) => x * y, 1));
  t.readRange(0, data);
  return { ptr: -1, shape: t.shape, data };
}

export interface ResidencyStats {
  /** decoder layers in the arena now, and at most so far */
  layersResident: number;
  maxLayersResident: number;
  /** arena bytes of the decoder-layer weights in the arena now, and at most so far */
  layerBytes: number;
  maxLayerBytes: number;
  /** bytes read from the model's files (streamed: every acquire and row read) */
  bytesRead: number;
}

export interface ModelStore {
  readonly config: ModelConfig;
  readonly wasm: Wasm;
  readonly source: ModelSource;
  readonly tokenizer?: Tokenizer;
  /** true: every weight is in the arena (`model`); false: decoder layers are read one at a time */
  readonly resident: boolean;
  /** the resident model (resident stores only) */
  readonly model?: Model;
  /** Layer l's weights in the arena, until `release(l)`. Streamed: one layer at a time. */
  acquire(l: number): LayerWeights;
  release(l: number): void;
  /** The embedding rows of `tokens` into `dst` (T·dim floats; any Float32Array, an arena view too). */
  embedRows(tokens: ArrayLike<number>, dst: Float32Array): void;
  /** the final RMSNorm weight (always in the arena) */
  readonly norm: Tensor;
  /** The largest block of LM-head rows `headRows` serves at once (all of them for a resident model). */
  readonly headBlockRows: number;
  /** LM-head rows [r0, r1) as a linear weight in the arena, valid until the next headRows or acquire. */
  headRows(r0: number, r1: number): LinearWeight;
  readonly stats: ResidencyStats;
  /** Close the files (a resident store's model stays usable). */
  close(): void;
}

function checkToken(id: number, vocab: number): void {
  if (!(id >= 0 && id < vocab)) throw new RangeError(`token id ${id} outside the vocabulary [0, ${vocab})`);
}

/** The store of a model already in the arena. */
export function residentStore(model: Model): ModelStore {
  const c = model.config;
  const w = model.weights;
  const layerBytes = w.layers.reduce((s, lw) => s + Object.values(lw).reduce((a, t) => a + arenaBytesOf(t as Tensor | LinearWeight), 0), 0);
  const stats: ResidencyStats = { layersResident: c.nLayers, maxLayersResident: c.nLayers, layerBytes, maxLayerBytes: layerBytes, bytesRead: 0 };
  return {
    config: c,
    wasm: model.wasm,
    source: model.source,
    tokenizer: model.tokenizer,
    resident: true,
    model,
    acquire: (l) => {
      const lw = w.layers[l];
      if (!lw) throw new RangeError(`layer ${l} of ${c.nLayers}`);
      return lw;
    },
    release: () => {},
    embedRows(tokens, dst) {
      const table = w.embed.data;
      for (let t = 0; t < tokens.length; t++) {
        const id = tokens[t]!;
        checkToken(id, c.vocabSize);
        dst.set(table.subarray(id * c.dim, (id + 1) * c.dim), t * c.dim);
      }
    },
    norm: w.norm,
    headBlockRows: c.vocabSize,
    headRows(r0, r1) {
      const h = w.lmHead;
      if (r0 === 0 && r1 === c.vocabSize) return h;
      if (h.format !== "dense") throw new UsageError(`the LM head is held as ${h.format}: its rows are served whole`);
      return { format: "dense", ptr: h.ptr + 4 * r0 * c.dim, shape: [r1 - r0, c.dim], data: h.data.subarray(r0 * c.dim, r1 * c.dim) };
    },
    stats,
    close: () => {},
  };
}

/** Arena bytes of a tensor or linear weight. */
function arenaBytesOf(t: Tensor | LinearWeight | undefined): number {
  if (!t) return 0;
  if (!("format" in t) || t.format === "dense") return 4 * (t as Tensor).data.length;
  return t.bytes;
}

/**
 * The streamed store of `file` on `wasm`: the final norm and one layer slot (for the largest decoder layer) are
 * taken from the arena now, for the store's life; nothing else is read until asked for.
 */
export function streamedStore(file: WeightFile, wasm: Wasm, source: ModelSource, tokenizer?: Tokenizer): ModelStore {
  const c = file.config;
  const norm = readTensor(wasm.arena, file.tensor(topSpecs(c).find((s) => s.key === "norm")!));
  const perLayer = Array.from({ length: c.nLayers }, (_, l) => layerArenaBytes(file, l));
  const slotBytes = Math.max(...perLayer, 64 * c.dim * 4);
  const base = wasm.arena.allocBytes(slotBytes);
  const slot = new BoundedArena(wasm.memory, base, base + slotBytes, "the layer slot of a streamed model");
  const embed = file.tensor(topSpecs(c).find((s) => s.key === "embed")!);
  const head = file.tensor(topSpecs(c).find((s) => s.key === (c.tiedEmbeddings ? "embed" : "lmHead"))!);
  const headBlockRows = Math.max(1, Math.min(c.vocabSize, Math.floor(slotBytes / (4 * c.dim) / 8) * 8 || 1));
  let resident = -1;
  const stats: ResidencyStats = { layersResident: 0, maxLayersResident: 0, layerBytes: 0, maxLayerBytes: 0, get bytesRead() { return file.bytesRead; } };
  return {
    config: c,
    wasm,
    source,
    tokenizer,
    resident: false,
    acquire(l) {
      if (!(l >= 0 && l < c.nLayers)) throw new RangeError(`layer ${l} of ${c.nLayers}`);
      if (resident >= 0) throw new UsageError(`streamed model: layer ${l} asked for while layer ${resident} is still in memory (one layer at a time)`);
      slot.release(slot.base);
      const lw = readLayer({ ...wasm, arena: slot }, file, l);
      resident = l;
      stats.layersResident = 1;
      stats.maxLayersResident = Math.max(stats.maxLayersResident, 1);
      stats.layerBytes = slot.mark() - slot.base;
      stats.maxLayerBytes = Math.max(stats.maxLayerBytes, stats.layerBytes);
      return lw;
    },
    release(l) {
      if (resident !== l) throw new UsageError(`streamed model: release of layer ${l}, but ${resident < 0 ? "none" : `layer ${resident}`} is in memory`);
      resident = -1;
      stats.layersResident = 0;
      stats.layerBytes = 0;
      slot.release(slot.base);
    },
    embedRows(tokens, dst) {
      for (let t = 0; t < tokens.length; t++) {
        const id = tokens[t]!;
        checkToken(id, c.vocabSize);
        embed.readRange(id * c.dim, dst.subarray(t * c.dim, (t + 1) * c.dim));
      }
    },
    norm,
    headBlockRows,
    headRows(r0, r1) {
      if (resident >= 0) throw new UsageError(`streamed model: LM-head rows asked for while layer ${resident} is in memory`);
      if (!(0 <= r0 && r0 < r1 && r1 <= c.vocabSize && r1 - r0 <= headBlockRows)) throw new RangeError(`LM-head rows [${r0}, ${r1}) (blocks of at most ${headBlockRows})`);
      slot.release(slot.base);
      const n = (r1 - r0) * c.dim;
      const ptr = slot.alloc(n);
      const data = wasm.arena.f32(ptr, n);
      head.readRange(r0 * c.dim, data);
      return { format: "dense", ptr, shape: [r1 - r0, c.dim], data };
    },
    stats,
    close: () => file.close(),
  };
}
