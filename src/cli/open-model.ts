/**
 * @file Resolve the MODEL argument of every command: "builtin" is the seeded demo model, `hf:ORG/NAME[@REV]`
 * is fetched from the Hugging Face Hub into the local cache (src/model/hub.ts), anything else is a path.
 */
import { builtinModel, BUILTIN_NAME } from "../model/builtin.js";
import { fetchHubModel, isHubRef, parseHubRef } from "../model/hub.js";
import { loadModel, openStore, type StoreOptions } from "../model/load.js";
import type { Model } from "../model/types.js";
import { packModel } from "../model/linear.js";
import { weightDTypeOf, type WeightsOption } from "../model/weight-file.js";
import { residentStore, type ModelStore } from "../model/residency.js";
import { progress } from "./progress.js";

/**
 * MODEL resident. `weights` (inference commands' --weights-dtype): linear weights packed for the kernels as they
 * are read (the builtin model is packed after it is built); absent: row-major f32, for commands that edit weights.
 */
export async function openModel(path: string, opts: { tokenizer?: string; requireTokenizer?: boolean; weights?: WeightsOption } = {}): Promise<Model> {
  if (path === BUILTIN_NAME) {
    const m = builtinModel();
    if (opts.weights) packModel(m, weightDTypeOf(opts.weights, m.source.dtype));
    return m;
  }
  return loadModel(await resolveModelPath(path), { tokenizer: opts.tokenizer, requireTokenizer: opts.requireTokenizer ?? true, weights: opts.weights });
}

/** MODEL as a store: resident when it fits (or `builtin`), streamed a decoder layer at a time otherwise. */
export async function openModelStore(path: string, opts: StoreOptions = {}): Promise<ModelStore> {
  if (path === BUILTIN_NAME) return residentStore(builtinModel());
  return openStore(await resolveModelPath(path), { ...opts, requireTokenizer: opts.requireTokenizer ?? true });
}

/** A local path for MODEL: hub references are fetched (or found in the cache) first. */
export async function resolveModelPath(spec: string): Promise<string> {
  if (!isHubRef(spec)) return spec;
  const ref = parseHubRef(spec);
  let bar: ReturnType<typeof progress> | undefined;
  let current = "";
  try {
    return await fetchHubModel(ref, (file, received, total) => {
      if (file !== current) {
        bar?.stop();
        current = file;
        bar = progress(`fetch ${file}`, total ?? 0);
      }
      bar?.update(received);
    });
  } finally {
    bar?.stop();
  }
}
