/** @file The `--method` registry: every pruning method by name, one file each, the same interface. */
import { magnitude } from "./magnitude.js";
import { wanda } from "./wanda.js";
import { sparsegpt } from "./sparsegpt.js";
import { fista } from "./fista.js";
import type { MethodName, PruneMethod } from "./types.js";

export const METHODS = Object.freeze({ magnitude, wanda, sparsegpt, fista } satisfies Record<MethodName, PruneMethod>);

export { METHOD_NAMES } from "./types.js";
export type { MethodName, PruneMethod, PruneOptions, PruneResult, PruneStats, FistaOptions, SparseGptOptions } from "./types.js";
