/**
 * @file The handler of every task op (src/exec/executor.ts): the one table both the worker threads
 * (./worker.ts) and inline runs use, so a task runs the same code wherever it runs. Each domain owns its tasks
 * and their handlers; this folder only assembles them (it imports the domains, nothing imports it but the
 * entry points that make executors).
 */
import type { Handlers } from "../exec/executor.js";
import { PRODUCT_HANDLERS } from "../kernels/products.js";
import { PRUNE_ROW_HANDLERS } from "../prune/row-tasks.js";
import { LAYER_JOB_HANDLERS } from "../prune/layer-job.js";
import { LAYER_PASS_HANDLERS } from "../model/layer-passes.js";
import { NLL_HANDLERS } from "../eval/perplexity.js";
import { TRAIN_HANDLERS } from "../train/data-parallel.js";
import { GEMV_HANDLERS } from "../generate/gemv.js";

export const HANDLERS: Handlers = Object.freeze({
  ...PRODUCT_HANDLERS,
  ...PRUNE_ROW_HANDLERS,
  ...LAYER_JOB_HANDLERS,
  ...LAYER_PASS_HANDLERS,
  ...NLL_HANDLERS,
  ...TRAIN_HANDLERS,
  ...GEMV_HANDLERS,
}) as unknown as Handlers;
