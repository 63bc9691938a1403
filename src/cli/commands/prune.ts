import { UsageError } from "../../errors.js";
import { readTextFile } from "../../eval/text.js";
import { evalFlagProtocol, type EvalFlagOptions } from "../../eval/protocol.js";
import type { Schedule } from "../../prune/driver.js";
import type { MethodName } from "../../prune/methods/types.js";
import { parseDeviceKind } from "../../gpu/device.js";
import { parsePattern } from "../../prune/pattern.js";
import type { PruneSummary } from "../../prune/run.js";
import { DTYPES, type DType } from "../../model/types.js";
import { prune } from "../../api/index.js";
import { openModel } from "../open-model.js";
import { progress } from "../progress.js";
import { fmt, table } from "../format.js";

export interface PruneCliOptions extends EvalFlagOptions {
  method: string;
  sparsity: string;
  /** FISTA: also run the lasso path (λ bisected per row) as a candidate */
  fistaLasso?: boolean;
  calib?: string;
  nsamples: number;
  seqlen: number;
  schedule: string;
  errorCorrection?: boolean;
  out: string;
  force?: boolean;
  dtype?: string;
  json?: boolean;
  tokenizer?: string;
  /** worker threads (1 = no pool) */
  threads?: number;
  /** auto | wasm | webgpu: where FISTA's per-operator solve runs (src/gpu) */
  device?: string;
}

/** `wasprune prune` (unstructured and N:M): the library's prune (src/api) with a progress bar over operators. */
export async function pruneCommand(modelPath: string, o: PruneCliOptions): Promise<PruneSummary> {
  if (o.dtype !== undefined && !(DTYPES as readonly string[]).includes(o.dtype)) throw new UsageError(`--dtype ${o.dtype}: expected one of ${DTYPES.join(", ")}`);
  parsePattern(o.sparsity); // flags checked before any file is read
  const calibText = o.calib ? readTextFile(o.calib, "--calib") : undefined;
  const evalProtocol = evalFlagProtocol(o);
  const evalText = o.eval ? readTextFile(o.eval, "--eval") : undefined;
  const model = await openModel(modelPath, { tokenizer: o.tokenizer });
  // the operators finish in the main thread, so the bar counts the work of every worker
  const bar = progress(`prune ${o.method}`, model.config.nLayers * 7, { json: o.json, extra: "{op}" });
  const summary = await prune(model, calibText, {
    method: o.method as MethodName, sparsity: o.sparsity, schedule: o.schedule as Schedule, errorCorrection: o.errorCorrection,
    nsamples: o.nsamples, seqlen: o.seqlen, out: o.out, force: o.force, dtype: o.dtype as DType | undefined, calibFile: o.calib,
    evalText, evalFile: o.eval, evalProtocol: evalProtocol && { ...evalProtocol },
    methodOptions: o.fistaLasso ? { fista: { lassoPath: true } } : {},
    threads: o.threads, device: parseDeviceKind(o.device ?? "wasm"),
    onProgress: (p) => bar.update(p.done, { op: p.operator ? `${p.operator.name} relErr ${fmt(p.operator.relErr, 3)}` : `layer ${p.layer} done` }),
  }).finally(() => bar.stop());
  if (o.json) console.log(JSON.stringify(summary, null, 2));
  else console.log(renderPruneSummary(summary));
  return summary;
}

export function renderPruneSummary(s: PruneSummary): string {
  const rows = s.operators.map((r) => [
    String(r.layer), r.op, `${r.rows}x${r.cols}`, fmt(100 * r.sparsity, 2), fmt(r.relErr, 4), fmt(r.seconds, 3),
  ]);
  const lines = [
    table(["layer", "op", "shape", "sparsity %", "rel. error", "seconds"], rows, { align: ["r", "l", "r", "r", "r", "r"] }),
    "",
    `${s.method} ${s.pattern} (${s.schedule}${s.errorCorrection ? ", error correction" : ""}): ` +
      `${fmt(100 * s.sparsity, 2)}% of linear weights zero, mean rel. error ${fmt(s.meanRelErr, 4)}, ${fmt(s.seconds, 2)} s` +
      (s.resumedLayers.length ? ` (resumed: layers ${s.resumedLayers.join(", ")} from checkpoints)` : ""),
  ];
  if (s.perplexity) {
    lines.push(`perplexity: dense ${fmt(s.perplexity.dense.perplexity, 4)} → pruned ${fmt(s.perplexity.pruned.perplexity, 4)} (${s.perplexity.pruned.tokens} tokens)`);
  }
  lines.push(`written: ${s.out}`);
  return lines.join("\n");
}
