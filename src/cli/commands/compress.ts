/** @file `wasprune compress` / `wasprune decompress`: see src/sparse/compress.ts for the layout. */
import { loadModel } from "../../model/load.js";
import { decompressModel, type CompressReport } from "../../model/compressed.js";
import { compress } from "../../api/index.js";
import { fmt, humanCount, table } from "../format.js";
import { isQuantizedDir } from "../../model/compressed.js";
import { compactQuantizedDir, type CompactReport } from "../../model/quantized-compact.js";

export async function compressCommand(modelPath: string, opts: { out: string; force?: boolean; json?: boolean; tokenizer?: string }): Promise<CompressReport | CompactReport> {
  if (isQuantizedDir(modelPath)) {
    // a quantized model: its 2:4 int4 operators into the compact layout (src/model/quantized-compact.ts)
    const r = compactQuantizedDir(modelPath, opts.out, { force: opts.force });
    if (opts.json) console.log(JSON.stringify(r, null, 2));
    else {
      console.log(table(
        ["operator", "format", "zeros %", "f32 B", "input B", "stored B"],
        r.operators.map((o) => [o.name, o.format, fmt(100 * o.sparsity, 2), o.f32Bytes, o.inputBytes, o.bytes]),
        { align: ["l", "l", "r", "r", "r", "r"] },
      ));
      console.log(`linear weights ${humanCount(r.linear.bytes)}B: ${fmt(r.linear.f32Bytes / r.linear.bytes, 2)}x smaller than f32 dense (${humanCount(r.linear.f32Bytes)}B), ${fmt(r.linear.inputBytes / r.linear.bytes, 2)}x smaller than the input's ${humanCount(r.linear.inputBytes)}B`);
      console.log(`wrote ${r.dir}: weight files ${humanCount(r.fileBytes)}B (input ${humanCount(r.inputFileBytes)}B)`);
    }
    return r;
  }
  const model = await loadModel(modelPath, { tokenizer: opts.tokenizer, requireTokenizer: false });
  const r = await compress(model, opts.out, { force: opts.force });
  if (opts.json) console.log(JSON.stringify(r, null, 2));
  else {
    console.log(table(
      ["operator", "format", "zeros %", "dense B", "stored B"],
      r.operators.map((o) => [o.name, o.format, fmt(100 * o.sparsity, 2), o.denseBytes, o.bytes]),
      { align: ["l", "l", "r", "r", "r"] },
    ));
    console.log(`wrote ${r.dir}: model.safetensors ${humanCount(r.fileBytes)}B (dense ${humanCount(r.denseFileBytes)}B, ${fmt(r.denseFileBytes / r.fileBytes, 2)}x smaller)`);
  }
  return r;
}

export async function decompressCommand(modelPath: string, opts: { out: string; force?: boolean; tokenizer?: string }): Promise<void> {
  const model = await loadModel(modelPath, { tokenizer: opts.tokenizer, requireTokenizer: false });
  decompressModel(model, opts.out, { force: opts.force });
  console.log(`wrote ${opts.out} (dense)`);
}
