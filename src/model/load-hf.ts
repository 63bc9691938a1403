/**
 * @file A Hugging Face checkpoint directory as a WeightFile (./weight-file.ts), in Node: config.json +
 * model.safetensors (or shards, via model.safetensors.index.json) read from `dir`. The checks and the tensor
 * readers (dense and compressed-tensors operators) are platform-free in ./hf-weights.ts.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { MissingFileError, notFound } from "../errors.js";
import { openCheckpoint, INDEX_FILE, SINGLE_FILE } from "../io/safetensors.js";
import type { WeightFile } from "./weight-file.js";
import { hfWeights, parseConfigJson } from "./hf-weights.js";

export { isCompressedConfig } from "./hf-weights.js";

export function readHFConfigFile(dir: string): Record<string, unknown> {
  const file = path.join(dir, "config.json");
  if (!fs.existsSync(file)) throw new MissingFileError(`${file} not found (a Hugging Face model directory needs config.json)`);
  return parseConfigJson(fs.readFileSync(file, "utf8"));
}

/** Open `dir` as a WeightFile (headers read and checked; no tensor data read yet). */
export function openHFWeights(dir: string): WeightFile {
  return hfWeights(dir, readHFConfigFile(dir), () => {
    const ck = openCheckpoint(dir);
    if (!ck) throw notFound("model weights", [path.join(dir, SINGLE_FILE), path.join(dir, INDEX_FILE)]);
    return ck;
  });
}
