/**
 * @file The least WebAssembly memory a prune needs, from the shapes alone, checked before any layer is read.
 *
 * Everything a layer's work touches lives in one wasm32 memory (4 GiB at most): the model's weights in the arena
 * (resident: all of them; streamed: one layer slot), the pruned copy of the layer (unless the pruned weights go
 * over the slot), the calibration statistics of the operator groups held at once (Gram matrices cols² each), and
 * at the largest operator its pruned weights W and the buffers the method holds while it solves. The sum over
 * these, at the operator where it is largest, is a floor — the run takes more (captures, the executor's run
 * states) — so a prune whose floor passes the limit is refused up front, naming that operator and the bytes,
 * instead of failing with "out of WebAssembly memory" after hours of calibration. A 70B-class layer
 * (8192 / 28672) is the case: its f32 weights alone are 3.4 GB and down_proj's Gram 28672² × 4 B = 3.3 GB.
 */
import type { ModelConfig } from "../model/types.js";
import { layerSpecsOf } from "../model/specs.js";
import { WasmError } from "../errors.js";
import { METHODS } from "./methods/index.js";
import type { StatsKind } from "./stats.js";

export const WASM32_BYTES = 4 * 1024 ** 3;

export interface MemoryFloor {
  /** the operator where the floor is largest (its HF name) */
  operator: string;
  /** bytes of WebAssembly memory at least (including what is in use when the prune starts) */
  bytes: number;
  /** what it is made of, largest first */
  parts: Array<[string, number]>;
}

/** Input width of the operator group an op belongs to (its statistics are cols × cols). */
const GROUP_OF: Record<string, string> = { wq: "qkv", wk: "qkv", wv: "qkv", wo: "o", wGate: "gateup", wUp: "gateup", wDown: "down" };

/**
 * The floor of a prune: `inUse` = arena bytes taken before it starts (the resident weights, or the streamed
 * store's layer slot), `copy` = whether a pruned copy of the layer is made (not when written over the slot).
 */
export function memoryFloor(
  c: ModelConfig, method: keyof typeof METHODS, kind: StatsKind, corrected: boolean, inUse: number, copy: boolean,
): MemoryFloor {
  let best: MemoryFloor = { operator: "", bytes: 0, parts: [] };
  for (let l = 0; l < c.nLayers; l++) {
    const specs = layerSpecsOf(c, l).filter((s) => s.op);
    const layerBytes = specs.reduce((n, s) => n + 4 * s.shape[0]! * s.shape[1]!, 0);
    const width = new Map(specs.map((s) => [GROUP_OF[s.op!]!, s.shape[1]!]));
    const gram = (cols: number) => (kind === "cross" ? 2 : 1) * 4 * cols * cols;
    for (const s of specs) {
      const [rows, cols] = s.shape as [number, number];
      const parts: Array<[string, number]> = [["weights in use when the prune starts", inUse]];
      if (copy) parts.push([`the layer's pruned copy (f32)`, layerBytes]);
      if (kind === "gram" || kind === "cross") {
        // without correction the statistics of every group are held through the layer; with it, one group's
        if (corrected) parts.push([`Gram statistics of ${s.name.replace(/.*\./, "")}'s input (${cols}² × 4 B${kind === "cross" ? ", with the cross term" : ""})`, gram(cols)]);
        else parts.push([`Gram statistics of the layer's 4 operator groups (${[...width.values()].map((w) => `${w}²`).join(" + ")} × 4 B)`, [...width.values()].reduce((n, w) => n + gram(w), 0)]);
      }
      parts.push([`pruned weights W (${rows} × ${cols} f32)`, 4 * rows * cols]);
      for (const [what, floats] of METHODS[method].memory(rows, cols, corrected)) parts.push([what, 4 * floats]);
      const bytes = parts.reduce((n, [, b]) => n + b, 0);
      if (bytes > best.bytes) best = { operator: s.name, bytes, parts: parts.filter(([, b]) => b > 0).sort((a, b) => b[1] - a[1]) };
    }
  }
  return best;
}

const GiB = (b: number) => `${(b / 1024 ** 3).toFixed(2)} GiB`;

/** Throws when the floor passes the wasm32 limit: one message naming the operator, the bytes and their parts. */
export function checkMemoryFloor(f: MemoryFloor, method: string): void {
  if (f.bytes <= WASM32_BYTES) return;
  throw new WasmError(
    `${f.operator} (${method}): needs at least ${GiB(f.bytes)} of WebAssembly memory, more than the 4 GiB wasm32 limit: ` +
      f.parts.map(([what, b]) => `${what} ${GiB(b)}`).join(", "),
  );
}
