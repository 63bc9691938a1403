/**
 * @file `wasprune bench quant MODEL`: the quantization table — method × {f32, w8, w4 RTN, w4 GPTQ} × {dense, 50%,
 * 2:4} — every cell pruned (and quantized) from the same dense weights in memory and evaluated on the same text
 * (src/prune/compare.ts), with the targets of issue 14: int8 within 0.5% of the model it came from, int4 GPTQ better
 * than int4 RTN, 2:4 + int4 (GPTQ; SparseGPT's joint sweep) within 10% of 2:4 f32 from the same method, and the
 * 2:4 + int4 linear weights ≥ 8x smaller than their f32 dense bytes (pack-quantized as written by `--quantize`).
 */
import { readTextFile } from "../src/eval/text.js";
import { evalFlagProtocol, evalSequences, protocolLabel, type EvalFlagOptions } from "../src/eval/protocol.js";
import { UsageError } from "../src/errors.js";
import { openModel } from "../src/cli/open-model.js";
import { progress } from "../src/cli/progress.js";
import { fmt, table } from "../src/cli/format.js";
import { calibrationSet } from "../src/prune/calibration.js";
import { openExecutor } from "../src/workers/index.js";
import { compareSettings } from "../src/prune/compare.js";
import type { PruneSettings } from "../src/prune/driver.js";
import { METHOD_NAMES, type MethodName } from "../src/prune/methods/types.js";
import { parsePattern, type Pattern } from "../src/prune/pattern.js";
import { gridOf, parseScheme, type QuantMethod } from "../src/quant/scheme.js";
import { quantizedBytes } from "../src/quant/codes.js";
import { LINEAR_OPS } from "../src/model/types.js";
import type { QuantizeSettings } from "../src/prune/quantize.js";

export interface BenchQuantOptions extends EvalFlagOptions {
  threads?: number;
  calib: string;
  eval: string;
  nsamples: number;
  seqlen: number;
  methods: string;
  /** the int4 scheme of the w4 columns (default w4g64: stories260K's rows are 64 wide) */
  scheme4: string;
  json?: boolean;
  tokenizer?: string;
}

export const QUANT_COLUMNS = ["f32", "w8", "w4 RTN", "w4 GPTQ"] as const;
type Column = (typeof QUANT_COLUMNS)[number];

export interface QuantCell { method: string; pattern: string; column: Column; perplexity: number; sparsity: number; seconds: number }
export interface Target { name: string; value: number; limit: string; met: boolean }
export interface QuantBench {
  model: string;
  protocol: string;
  dense: number;
  scheme4: string;
  cells: QuantCell[];
  /** 2:4 + int4 linear operators: bytes stored pack-quantized and their f32 dense bytes */
  size: { linearBytes: number; linearF32Bytes: number; ratio: number };
  targets: Target[];
}

export async function benchQuant(modelPath: string, o: BenchQuantOptions): Promise<QuantBench> {
  const methods = o.methods.split(",").map((m) => m.trim()) as MethodName[];
  for (const m of methods) if (!(METHOD_NAMES as readonly string[]).includes(m)) throw new UsageError(`--methods ${m}: expected one of ${METHOD_NAMES.join(", ")}`);
  const s4 = parseScheme(o.scheme4);
  if (s4.bits !== 4) throw new UsageError(`--scheme4 ${o.scheme4}: expected an int4 scheme (w4g128, w4g64, w4g32)`);
  const s8 = parseScheme("w8");
  const quant: Record<Column, QuantizeSettings | undefined> = {
    f32: undefined,
    w8: { scheme: s8, method: "gptq" },
    "w4 RTN": { scheme: s4, method: "rtn" as QuantMethod },
    "w4 GPTQ": { scheme: s4, method: "gptq" },
  };
  const model = await openModel(modelPath, { tokenizer: o.tokenizer });
  const exec = openExecutor(model.wasm, o.threads ?? 1);
  const tok = model.tokenizer!;
  const calib = calibrationSet(tok, readTextFile(o.calib, "--calib"), o.calib, o.nsamples, o.seqlen);
  const evalSeqs = evalSequences(tok, readTextFile(o.eval, "--eval"), evalFlagProtocol(o)!, model.config.maxSeqLen, "eval-");
  const runs: Array<{ method: string; pattern: string; column: Column; settings: PruneSettings }> = [];
  const dense: Pattern = { kind: "unstructured", sparsity: 0 };
  for (const column of QUANT_COLUMNS) {
    if (column !== "f32") runs.push({ method: "-", pattern: "dense", column, settings: { method: "magnitude", pattern: dense, schedule: "sequential", errorCorrection: false, quantize: quant[column] } });
  }
  for (const p of ["0.5", "2:4"]) {
    for (const method of methods) {
      for (const column of QUANT_COLUMNS) {
        runs.push({ method, pattern: p, column, settings: { method, pattern: parsePattern(p), schedule: "sequential", errorCorrection: method === "fista", ...(quant[column] ? { quantize: quant[column] } : {}) } });
      }
    }
  }
  const bar = progress("bench quant", runs.length, { json: o.json, extra: "{run}" });
  let cmp;
  try {
    cmp = await compareSettings(model, calib, evalSeqs, runs.map((r) => r.settings), exec, (done, _t, run) => bar.update(done, { run }));
  } finally {
    bar.stop();
    await exec.close();
  }
  const cells: QuantCell[] = runs.map((r, i) => ({ method: r.method, pattern: r.pattern, column: r.column, perplexity: cmp.rows[i]!.perplexity, sparsity: cmp.rows[i]!.sparsity, seconds: cmp.rows[i]!.seconds }));
  const ppl = (method: string, pattern: string, column: Column): number =>
    column === "f32" && pattern === "dense" ? cmp.dense.perplexity : cells.find((c) => c.method === method && c.pattern === pattern && c.column === column)!.perplexity;
  const targets: Target[] = [];
  const combos: Array<[string, string]> = [["-", "dense"], ...["0.5", "2:4"].flatMap((p) => methods.map((m) => [m, p] as [string, string]))];
  for (const [m, p] of combos) {
    const r8 = ppl(m, p, "w8") / ppl(m, p, "f32") - 1;
    targets.push({ name: `w8 vs f32, ${m} ${p}`, value: r8, limit: "≤ +0.5%", met: r8 <= 0.005 });
  }
  for (const [m, p] of combos) {
    const rtn = ppl(m, p, "w4 RTN");
    const gptq = ppl(m, p, "w4 GPTQ");
    targets.push({ name: `w4 GPTQ vs RTN, ${m} ${p}`, value: gptq / rtn, limit: "< 1", met: gptq < rtn });
  }
  for (const m of methods) {
    const r = ppl(m, "2:4", "w4 GPTQ") / ppl(m, "2:4", "f32") - 1;
    targets.push({ name: `2:4 + ${s4.name} GPTQ vs 2:4 f32, ${m}`, value: r, limit: "≤ +10%", met: r <= 0.1 });
  }
  let linearBytes = 0;
  let linearF32Bytes = 0;
  for (const lw of model.weights.layers) {
    for (const op of LINEAR_OPS) {
      const [N, K] = lw[op].shape as [number, number];
      linearBytes += quantizedBytes({ N, K, grid: gridOf(s4, K) });
      linearF32Bytes += 4 * N * K;
    }
  }
  const ratio = linearF32Bytes / linearBytes;
  targets.push({ name: `2:4 + ${s4.name} linear bytes vs f32 dense (pack-quantized, zeros stored as codes)`, value: ratio, limit: "≥ 8x", met: ratio >= 8 });
  const out: QuantBench = { model: modelPath, protocol: protocolLabel(evalSeqs), dense: cmp.dense.perplexity, scheme4: s4.name, cells, size: { linearBytes, linearF32Bytes, ratio }, targets };
  if (!o.json) console.log(renderQuantBench(out, methods));
  return out;
}

export function renderQuantBench(b: QuantBench, methods: string[]): string {
  const header = ["method", ...["dense", "0.5", "2:4"].flatMap((p) => QUANT_COLUMNS.map((c) => `${p} ${c === "w4 RTN" || c === "w4 GPTQ" ? c.replace("w4", b.scheme4) : c}`))];
  const cell = (m: string, p: string, c: Column) => (p === "dense" && c === "f32" ? b.dense : b.cells.find((x) => (p === "dense" ? x.method === "-" : x.method === m) && x.pattern === p && x.column === c)?.perplexity);
  const rows = methods.map((m) => [m, ...["dense", "0.5", "2:4"].flatMap((p) => QUANT_COLUMNS.map((c) => fmt(cell(m, p, c)!, 4)))]);
  return [
    `${b.model}: perplexity (${b.protocol}); dense columns are the same for every method`,
    table(header, rows, { align: ["l", ...header.slice(1).map(() => "r" as const)] }),
    "",
    ...b.targets.map((t) => `${t.met ? "met   " : "MISSED"} ${t.name}: ${fmt(t.value, 4)} (${t.limit})`),
  ].join("\n");
}
