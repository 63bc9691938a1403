import { readTextFile } from "../../eval/text.js";
import { evalFlagProtocol, type EvalFlagOptions } from "../../eval/protocol.js";
import type { Schedule } from "../../prune/driver.js";
import type { MethodName, PruneOptions } from "../../prune/methods/types.js";
import { parseDeviceKind } from "../../gpu/device.js";
import type { PruneSummary } from "../../prune/run.js";
import type { CalibProtocol } from "../../prune/calibration.js";
import type { DType } from "../../model/types.js";
import { checkPruneSettings, prune, type PruneSettings } from "../../api/index.js";
import { openModelStore } from "../open-model.js";
import { progress } from "../progress.js";
import { UsageError } from "../../errors.js";
import { parseQuantMethod, parseScheme } from "../../quant/scheme.js";
import type { QuantizeSettings } from "../../prune/quantize.js";
import { fmt, table } from "../format.js";

export interface PruneCliOptions extends EvalFlagOptions {
  method: string;
  sparsity: string;
  /** FISTA: also run the lasso path (λ bisected per row) as a candidate */
  fistaLasso?: boolean;
  /** FISTA: W·H products per operator */
  fistaBudget?: number;
  calib?: string;
  nsamples: number;
  seqlen: number;
  schedule: string;
  /** calibration shards whose statistics are summed in order */
  calibShards?: number;
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
  /** the largest output shard, e.g. "5GB" (save_pretrained's default) */
  maxShardSize?: string;
  /** host-memory budget, e.g. "16GiB" (default: 3/4 of the free RAM) */
  maxMemory?: string;
  /** collect the Gram for every method, to report each operator's relative error */
  measureError?: boolean;
  /** auto | resident | streamed (src/model/residency.ts) */
  residency?: "auto" | "resident" | "streamed";
  /** paragraphs | windows (src/prune/calibration.ts) */
  calibProtocol?: string;
  calibSeed?: number;
  /** quantize every pruned operator: w8 | w4g128 | w4g64 | w4g32 (src/quant/scheme.ts) */
  quantize?: string;
  /** rtn | gptq (default) */
  quantizeMethod?: string;
  /** asymmetric grids (a zero point per group) */
  asym?: boolean;
  /** GPTQ in act-order (columns by decreasing H_jj, static groups) */
  actOrder?: boolean;
  /** --activations: "int8" declares dynamic int8 input activations in the written config (W4A8 / W8A8) */
  activations?: string;
  /** redis://… : run as the coordinator of a distributed prune (src/distributed) */
  queue?: string;
  /** the working directory every worker shares (with --queue) */
  workDir?: string;
}

/** `--quantize` / `--quantize-method` / `--asym` / `--act-order` as the driver's setting (none without --quantize). */
export function quantizeSettings(o: { quantize?: string; quantizeMethod?: string; asym?: boolean; actOrder?: boolean; activations?: string }): QuantizeSettings | undefined {
  if (o.quantize === undefined) {
    if (o.asym || o.actOrder || o.quantizeMethod !== undefined || o.activations !== undefined) throw new UsageError("--quantize-method, --asym, --act-order and --activations need --quantize SCHEME");
    return undefined;
  }
  const method = parseQuantMethod(o.quantizeMethod ?? "gptq");
  if (o.actOrder && method !== "gptq") throw new UsageError("--act-order is an option of GPTQ (--quantize-method gptq)");
  if (o.activations !== undefined && o.activations !== "int8") throw new UsageError(`--activations ${o.activations}: expected int8 (dynamic int8 input activations, W4A8 / W8A8)`);
  return { scheme: parseScheme(o.quantize, !!o.asym), method, ...(o.actOrder ? { actOrder: true } : {}), ...(o.activations ? { activations: "int8" as const } : {}) };
}

/**
 * `wasprune prune` (unstructured and N:M): the library's prune (src/api) on the model's store (resident, or
 * streamed a decoder layer at a time) with a progress bar over operators (they finish in the main thread, so the
 * bar counts the work of every worker).
 */
export async function pruneCommand(modelPath: string, o: PruneCliOptions): Promise<PruneSummary> {
  const fista: NonNullable<PruneOptions["fista"]> = { ...(o.fistaLasso ? { lassoPath: true } : {}), ...(o.fistaBudget !== undefined ? { budget: o.fistaBudget } : {}) };
  const settings: Omit<PruneSettings, "out"> = {
    method: o.method as MethodName, sparsity: o.sparsity, schedule: o.schedule as Schedule, errorCorrection: o.errorCorrection,
    nsamples: o.nsamples, seqlen: o.seqlen, calibProtocol: (o.calibProtocol ?? "paragraphs") as CalibProtocol, calibSeed: o.calibSeed ?? 0,
    force: o.force, dtype: o.dtype as DType | undefined, calibFile: o.calib, maxShardSize: o.maxShardSize, maxMemory: o.maxMemory,
    measureError: !!o.measureError, methodOptions: Object.keys(fista).length ? { fista } : {},
    threads: o.threads, device: parseDeviceKind(o.device ?? "wasm"), quantize: quantizeSettings(o), calibShards: o.calibShards,
  };
  checkPruneSettings(settings); // flags checked before any file is read
  const calibText = o.calib ? readTextFile(o.calib, "--calib") : undefined;
  const evalProtocol = evalFlagProtocol(o);
  const evalText = o.eval ? readTextFile(o.eval, "--eval") : undefined;
  if ((o.queue === undefined) !== (o.workDir === undefined)) throw new UsageError(o.queue ? "--queue needs --work-dir DIR (the folder every worker shares)" : "--work-dir is the shared folder of a distributed prune: it needs --queue");
  if (o.queue && (o.device ?? "wasm") !== "wasm") throw new UsageError(`--queue: workers solve on WASM; --device ${o.device} is not distributed`);
  // the queue (bullmq, ioredis) is loaded only for a distributed prune
  const distributed = o.queue ? await (await import("./distributed.js")).openCoordinator(o.queue, o.workDir!) : undefined;
  const store = await openModelStore(modelPath, { tokenizer: o.tokenizer, residency: o.residency }).catch(async (e) => {
    await distributed?.close();
    throw e;
  });
  const c = store.config;
  const bar = progress(`prune ${o.method}`, c.nLayers * 7, { json: o.json, extra: "{op}" });
  const summary = await prune(store, calibText, {
    ...settings, out: o.out, evalText, evalFile: o.eval, evalProtocol: evalProtocol && { ...evalProtocol }, runner: distributed?.runner,
    onProgress: (p) => {
      const r = p.operator;
      if (r) bar.update(p.done, { op: `layer ${r.layer + 1}/${c.nLayers} ${r.op}${r.relErr === null ? "" : ` relErr ${fmt(r.relErr, 3)}`}` });
      else if (p.layer !== undefined) bar.update(p.done, { op: `layer ${p.layer + 1}/${c.nLayers} done${p.resumed ? " (resumed)" : ""}` });
      else bar.update(p.done, { op: p.phase ?? "" });
    },
  }).finally(async () => {
    bar.stop();
    store.close();
    await distributed?.close();
  });
  if (o.json) console.log(JSON.stringify(summary, null, 2));
  else console.log(renderPruneSummary(summary));
  return summary;
}

export function renderPruneSummary(s: PruneSummary): string {
  const rows = s.operators.map((r) => [
    String(r.layer), r.op, `${r.rows}x${r.cols}`, fmt(100 * r.sparsity, 2), r.relErr === null ? "-" : fmt(r.relErr, 4), fmt(r.seconds, 3),
  ]);
  const lines = [
    table(["layer", "op", "shape", "sparsity %", "rel. error", "seconds"], rows, { align: ["r", "l", "r", "r", "r", "r"] }),
    "",
    `${s.method} ${s.pattern} (${s.schedule}${s.errorCorrection ? ", error correction" : ""}): ` +
      `${fmt(100 * s.sparsity, 2)}% of linear weights zero, ` +
      (s.meanRelErr === null ? `rel. error not measured (--measure-error measures it)` : `mean rel. error ${fmt(s.meanRelErr, 4)}`) +
      `, ${fmt(s.seconds, 2)} s, peak RSS ${fmt(s.resources.peakRss / 1024 ** 3, 2)} GiB (${s.resources.residency})` +
      (s.resumedLayers.length ? ` (resumed: layers ${s.resumedLayers.join(", ")} from checkpoints)` : ""),
  ];
  if (s.perplexity) {
    lines.push(`perplexity: dense ${fmt(s.perplexity.dense.perplexity, 4)} → pruned ${fmt(s.perplexity.pruned.perplexity, 4)} (${s.perplexity.pruned.tokens} tokens)`);
  }
  lines.push(`written: ${s.out}`);
  return lines.join("\n");
}
