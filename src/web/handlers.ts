/**
 * @file The task handlers a browser worker runs (./worker.ts): the inference path's — the GEMV split of
 * generation, perplexity's sequences, the GEMM/Gram products — not pruning's or training's (those stay in Node).
 */
import type { Handlers } from "../exec/executor.js";
import { GEMV_HANDLERS } from "../generate/gemv.js";
import { NLL_HANDLERS } from "../eval/perplexity.js";
import { PRODUCT_HANDLERS } from "../kernels/products.js";

export const WEB_HANDLERS: Handlers = Object.freeze({ ...GEMV_HANDLERS, ...NLL_HANDLERS, ...PRODUCT_HANDLERS }) as unknown as Handlers;
