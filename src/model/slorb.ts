/**
 * @file SLoRB add-ons beside a model: `slorb.safetensors`, written by `wasprune train --slorb` (src/train/run.ts),
 * holds per linear operator `model.layers.{l}.{op}.slorb` S (N, ceil(K/k)) and the group size `k` in its
 * metadata; the operator computes y = W x + S (P x), (P x)[q] = Σ inputs q·k .. q·k+k−1 (AST's SLoRB). The
 * loader attaches S to the weight tensor (Tensor.slorb) and `linear()` adds the term, so a trained model keeps
 * SLoRB's gain in eval and generate.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { FormatError } from "../errors.js";
import { openSafetensors } from "../io/safetensors.js";
import { LINEAR_OPS, type LinearOp, type Model } from "./types.js";

export const SLORB_FILE = "slorb.safetensors";

/** Attach `dir`/slorb.safetensors, when present, to the model's linear weights; returns the operators it covered. */
export function attachSlorb(model: Model, dir: string): number {
  const file = path.join(dir, SLORB_FILE);
  if (!fs.existsSync(file)) return 0;
  const sf = openSafetensors(file);
  try {
    const k = Number(sf.metadata.k);
    if (!(Number.isInteger(k) && k > 0)) throw new FormatError(file, `metadata k = ${sf.metadata.k}: expected the group size, a positive integer`);
    let n = 0;
    for (const [name, e] of sf.header) {
      const m = /^model\.layers\.(\d+)\.(\w+)\.slorb$/.exec(name);
      const l = m ? Number(m[1]) : -1;
      const op = m?.[2] as LinearOp | undefined;
      const lw = model.weights.layers[l];
      if (!lw || !op || !(LINEAR_OPS as readonly string[]).includes(op)) throw new FormatError(file, `tensor "${name}" names no linear operator of this model`);
      const [N, K] = lw[op].shape;
      const groups = Math.ceil(K / k);
      if (e.shape.length !== 2 || e.shape[0] !== N || e.shape[1] !== groups) {
        throw new FormatError(file, `"${name}" has shape [${e.shape}], expected [${N}, ${groups}] for a ${N}x${K} weight and k = ${k}`);
      }
      const ptr = model.wasm.arena.alloc(N * groups);
      const data = model.wasm.arena.f32(ptr, N * groups);
      sf.readF32Into(name, data);
      lw[op] = { ...lw[op], slorb: { s: { ptr, shape: [N, groups], data }, k } };
      n++;
    }
    return n;
  } finally {
    sf.close();
  }
}
