/**
 * @file The page's engine (a dedicated worker, one per model pane): loads a model with the browser library and
 * streams its generation to the page. In a worker, not on the page's thread: generation may block on a futex
 * (threads, src/generate/gemv.ts) and the page stays responsive.
 */
import { attachWebGpu, describeModel, environment, generate, loadModel, type Model } from "../index.js";
import { linearLayouts } from "../../model/linear.js";
import { quantLabel } from "../../model/inspect.js";
import type { FromEngine, ModelSummary, ToEngine } from "./protocol.js";

const scope = self as unknown as { onmessage: ((e: MessageEvent<ToEngine>) => void) | null; postMessage(m: FromEngine): void };
const post = (m: FromEngine) => scope.postMessage(m);
let model: Model | undefined;

function summarize(m: Model, label: string, bytes: number, loadSeconds: number, backend: string): ModelSummary {
  const r = describeModel(m);
  const c = m.config;
  const formats: Record<string, number> = {};
  for (const t of r.tensors) {
    if (!/(_proj|lm_head)\.weight$/.test(t.name)) continue;
    const f = t.quantized ? quantLabel(t.quantized) : t.format ?? "dense";
    formats[f] = (formats[f] ?? 0) + 1;
  }
  const env = environment();
  return {
    label,
    architecture: c.architecture,
    dims: `dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nLayers} layers, ${c.nHeads}/${c.nKvHeads} heads, vocab ${c.vocabSize}, context ${c.maxSeqLen}`,
    params: r.params.total,
    linearSparsity: r.linear.sparsity,
    formats,
    layouts: linearLayouts(m).layouts,
    dtype: r.dtype,
    bytes,
    memoryBytes: m.wasm.arena.used,
    kernels: m.wasm.build,
    backend: `${backend}; ${env.crossOriginIsolated ? `cross-origin isolated, up to ${Math.min(2, env.cores)} threads` : "not cross-origin isolated: one thread"}`,
    loadSeconds,
  };
}

async function load(msg: Extract<ToEngine, { type: "load" }>): Promise<void> {
  const t0 = performance.now();
  let bytes = 0;
  const seen = new Map<string, number>();
  // on WASM the inference layouts (stored precision in panels, quantized operators on the integer kernels); for
  // WebGPU what a device reads (row-major f32, quantized operators still on their integer kernels)
  model = await loadModel(msg.entry.url, {
    weights: msg.device === "wasm" ? "stored" : "device",
    kernels: msg.kernels,
    tokenizer: msg.entry.tokenizer,
    maxBytes: msg.maxBytes,
    onProgress(file, loaded, total) {
      bytes += loaded - (seen.get(file) ?? 0);
      seen.set(file, loaded);
      post({ type: "progress", file, loaded, total });
    },
  });
  // WebGPU when navigator.gpu gives an adapter (device auto or webgpu), WASM otherwise: the choice is shown
  const simd = model.wasm.build === "relaxed" ? "WASM relaxed SIMD" : `WASM SIMD${environment().relaxedSimd ? "" : " (no relaxed SIMD in this browser)"}`;
  let backend = simd;
  if (msg.device !== "wasm") {
    const gpu = await attachWebGpu(model, { acceptSoftware: msg.device === "webgpu" });
    if (gpu.ok) backend = `WebGPU: ${gpu.linears.device}${gpu.software ? " (a software adapter)" : ""}, ${gpu.linears.offloaded.length} linear layers; the rest ${simd}`;
    else if (msg.device === "webgpu") throw new Error(`device=webgpu: ${gpu.reason}`);
    else backend = `${simd} (no WebGPU: ${gpu.reason})`;
  }
  post({ type: "loaded", summary: summarize(model, msg.entry.label, bytes, (performance.now() - t0) / 1000, backend) });
}

async function run(msg: Extract<ToEngine, { type: "generate" }>): Promise<void> {
  if (!model) throw new Error("no model is loaded");
  const it = generate(model, msg);
  const t0 = performance.now();
  let tokens = 0;
  let pending = "";
  let lastPost = t0;
  for (;;) {
    const r = await it.next();
    if (r.done) {
      if (pending) post({ type: "text", text: pending, tokens, seconds: (performance.now() - t0) / 1000 });
      const { tokens: ids, ...rest } = r.value;
      post({ type: "done", result: { ...rest, tokens: ids.length } });
      return;
    }
    if (!r.value.prompt) tokens++;
    pending += r.value.text;
    // streamed in pieces of ≤ 30 ms, so that messages do not cost more than the tokens
    const now = performance.now();
    if (now - lastPost > 30) {
      post({ type: "text", text: pending, tokens, seconds: (now - t0) / 1000 });
      pending = "";
      lastPost = now;
    }
  }
}

scope.onmessage = (e) => {
  const msg = e.data;
  (msg.type === "load" ? load(msg) : run(msg)).catch((err: unknown) => post({ type: "error", message: err instanceof Error ? err.message : String(err) }));
};
