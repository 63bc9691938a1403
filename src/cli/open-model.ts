/**
 * @file Resolve the MODEL argument of every command through the library (src/api): "builtin" is the seeded demo
 * model, `hf:ORG/NAME[@REV]` is fetched from the Hugging Face Hub into the local cache (src/model/hub.ts) with a
 * progress bar per file, anything else is a path.
 */
import { loadModel, openModelStore as openStoreOf, resolveSource, type FetchProgress, type LoadModelOptions } from "../api/index.js";
import type { StoreOptions } from "../model/load.js";
import type { Model } from "../model/types.js";
import type { ModelStore } from "../model/residency.js";
import type { IntActivationBits } from "../model/linear.js";
import { progress } from "./progress.js";

/** Progress bars of `hf:` downloads, one per file; `done()` stops the last one. */
function fetchBars(): { onFetch: FetchProgress; done(): void } {
  let bar: ReturnType<typeof progress> | undefined;
  let current = "";
  return {
    onFetch(file, received, total) {
      if (file !== current) {
        bar?.stop();
        current = file;
        bar = progress(`fetch ${file}`, total ?? 0);
      }
      bar?.update(received);
    },
    done: () => bar?.stop(),
  };
}

/** `--int-activations` as the loader's option: "stored" (default) leaves each operator as its checkpoint declares. */
export function intActivationsOption(v: "stored" | "16" | "8" | undefined): IntActivationBits | undefined {
  return v === "8" ? 8 : v === "16" ? 16 : undefined;
}

/**
 * MODEL resident. `weights` (inference commands' --weights-dtype): linear weights packed for the kernels as they
 * are read; absent: row-major f32, for commands that edit weights.
 */
export async function openModel(path: string, opts: Omit<LoadModelOptions, "onFetch"> = {}): Promise<Model> {
  const bars = fetchBars();
  try {
    return await loadModel(path, { ...opts, onFetch: bars.onFetch });
  } finally {
    bars.done();
  }
}

/** MODEL as a store: resident when it fits (or `builtin`), streamed a decoder layer at a time otherwise. */
export async function openModelStore(path: string, opts: StoreOptions = {}): Promise<ModelStore> {
  const bars = fetchBars();
  try {
    return await openStoreOf(path, { ...opts, onFetch: bars.onFetch });
  } finally {
    bars.done();
  }
}

/** A local path for MODEL: hub references are fetched (or found in the cache) first. */
export async function resolveModelPath(spec: string): Promise<string> {
  const bars = fetchBars();
  try {
    return await resolveSource(spec, bars.onFetch);
  } finally {
    bars.done();
  }
}
