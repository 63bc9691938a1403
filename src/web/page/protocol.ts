/** @file Messages between the page (./main.ts) and an engine worker (./engine.ts): one engine per model pane. */
import type { BrowserGenerateResult } from "../index.js";
import type { KernelBuild } from "../../wasm/memory.js";

/** The page's `kernels` parameter: a build, or auto (relaxed SIMD where the browser has it). */
export type PageKernels = "auto" | KernelBuild;

export interface ModelEntry {
  /** the server's id of the model */
  id: string;
  /** what the page shows (the path the server was given, its base name) */
  label: string;
  /** the model's URL: a directory ("…/") or its .bin */
  url: string;
  /** the tokenizer's file name beside it, when the server found one (a .bin's tokenizer cannot be listed over HTTP) */
  tokenizer?: string;
}

/** What the page shows of a loaded model. */
export interface ModelSummary {
  label: string;
  architecture: string;
  dims: string;
  params: number;
  linearSparsity: number;
  /** operators per stored format, e.g. { dense: 1, "2:4": 28 } (a quantized checkpoint's: its scheme and format) */
  formats: Record<string, number>;
  /** linear weights per layout as the kernels hold them, e.g. { "p8 f32": 35 } or { "int4 g64 a8": 30, … } */
  layouts: Record<string, number>;
  dtype: string;
  /** bytes fetched for it */
  bytes: number;
  /** bytes of its weights in the kernels' memory */
  memoryBytes: number;
  /** how it will run: WASM (threads) or WebGPU, and why */
  backend: string;
  /** the build of the kernels it runs on */
  kernels: KernelBuild;
  loadSeconds: number;
}

export type ToEngine =
  | { type: "load"; entry: ModelEntry; maxBytes?: number; device: "auto" | "wasm" | "webgpu"; kernels: PageKernels }
  | { type: "generate"; prompt: string; steps: number; temperature: number; topP: number; seed: number; threads: number; splitWeights?: number };

export type FromEngine =
  | { type: "progress"; file: string; loaded: number; total?: number }
  | { type: "loaded"; summary: ModelSummary }
  | { type: "text"; text: string; tokens: number; seconds: number }
  | { type: "done"; result: Omit<BrowserGenerateResult, "tokens"> & { tokens: number } }
  | { type: "error"; message: string };
