/** @file Resolve the MODEL argument of every command: "builtin" is the seeded demo model, anything else a path. */
import { builtinModel, BUILTIN_NAME } from "../model/builtin.js";
import { loadModel } from "../model/load.js";
import type { Model } from "../model/types.js";

export async function openModel(path: string, opts: { tokenizer?: string; requireTokenizer?: boolean } = {}): Promise<Model> {
  if (path === BUILTIN_NAME) return builtinModel();
  return loadModel(path, { tokenizer: opts.tokenizer, requireTokenizer: opts.requireTokenizer ?? true });
}
