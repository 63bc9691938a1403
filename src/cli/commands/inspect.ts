import { inspectModel, quantLabel, type InspectReport } from "../../model/inspect.js";
import { openModelStore } from "../open-model.js";
import { fmt, humanCount, table } from "../format.js";

export async function inspectCommand(modelPath: string, opts: { json?: boolean; tokenizer?: string; residency?: "auto" | "resident" | "streamed" }): Promise<InspectReport> {
  const store = await openModelStore(modelPath, { tokenizer: opts.tokenizer, requireTokenizer: false, residency: opts.residency });
  let r: InspectReport;
  try {
    r = inspectModel(store);
  } finally {
    store.close();
  }
  if (opts.json) {
    console.log(JSON.stringify(r, null, 2));
    return r;
  }
  console.log(renderInspect(r));
  return r;
}

export function renderInspect(r: InspectReport): string {
  const c = r.config;
  const lines = [
    `model      ${r.path} (${r.format}, ${r.dtype}; ${r.residency === "resident" ? "read whole" : "streamed a layer at a time"})`,
    `arch       ${c.architecture}: dim ${c.dim}, hidden ${c.hiddenDim}, layers ${c.nLayers}, heads ${c.nHeads} (kv ${c.nKvHeads}, head_dim ${c.headDim}), vocab ${c.vocabSize}, ctx ${c.maxSeqLen}`,
    `           rope ${c.ropeLayout} θ=${c.ropeTheta}, rms eps ${c.normEps}, ${c.tiedEmbeddings ? "tied" : "untied"} embeddings${c.qkvBias ? ", q/k/v bias" : ""}`,
    `params     ${humanCount(r.params.total)} (${r.params.total}): ` +
      Object.entries(r.params.byKind).map(([k, v]) => `${k} ${humanCount(v)}`).join(", "),
    `linear     ${humanCount(r.linear.params)} weights, ${(100 * r.linear.sparsity).toFixed(2)}% exact zeros`,
    ...(r.compression
      ? [`compressed ${r.compression.operators} operators: ${humanCount(r.compression.bytes)}B for the sparse kernels vs ${humanCount(r.compression.denseBytes)}B dense f32 (${humanCount(r.compression.saved)}B saved, ${fmt(r.compression.denseBytes / r.compression.bytes, 2)}x)`]
      : []),
    ...(r.quantization
      ? [`quantized  ${Object.entries(r.quantization).map(([k, n]) => `${n} operators ${k}`).join("; ")} (compressed-tensors; the zeros and N:M are of the dequantized weights)`]
      : []),
    "",
    table(
      ["tensor", "shape", "params", "zeros %", "N:M", "format"],
      r.tensors.map((t) => [t.name, t.shape.join("x"), t.params, fmt(100 * t.zeroFraction, 2), t.nm ?? "", t.quantized ? quantLabel(t.quantized) : t.format ? `${t.format} ${humanCount(t.sparseBytes ?? 0)}B` : "dense"]),
      { align: ["l", "r", "r", "r", "r", "l"] },
    ),
  ];
  return lines.join("\n");
}
