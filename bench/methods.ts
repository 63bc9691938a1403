/**
 * @file `wasprune bench methods MODEL`: the perplexity table of the README — every method × pattern × schedule
 * × error correction, pruned from the same dense weights and evaluated on the same text, in one run.
 */
import { readTextFile } from "../src/eval/text.js";
import { evalFlagProtocol, evalSequences, protocolLabel, type EvalFlagOptions } from "../src/eval/protocol.js";
import { UsageError } from "../src/errors.js";
import { openModel } from "../src/cli/open-model.js";
import { progress } from "../src/cli/progress.js";
import { renderComparison } from "../src/cli/commands/demo.js";
import { calibrationSet, type CalibProtocol } from "../src/prune/calibration.js";
import { openExecutor } from "../src/workers/index.js";
import { compareSettings, type Comparison } from "../src/prune/compare.js";
import { SCHEDULES, type PruneSettings, type Schedule } from "../src/prune/driver.js";
import { METHOD_NAMES, type MethodName } from "../src/prune/methods/types.js";
import { parsePattern } from "../src/prune/pattern.js";

export interface BenchMethodsOptions extends EvalFlagOptions {
  /** worker threads (1 = no pool) */
  threads?: number;
  calib: string;
  eval: string;
  nsamples: number;
  calibProtocol?: string;
  calibSeed?: number;
  seqlen: number;
  methods: string;
  patterns: string;
  schedules: string;
  correction: string;
  /** fista: a row per W·H budget per operator, e.g. "15,30,60,150,555" */
  fistaBudgets?: string;
  json?: boolean;
  tokenizer?: string;
}

function list<T extends string>(s: string, allowed: readonly T[], what: string): T[] {
  const xs = s.split(",").map((x) => x.trim()).filter(Boolean);
  for (const x of xs) if (!(allowed as readonly string[]).includes(x)) throw new UsageError(`${what} ${x}: expected one of ${allowed.join(", ")}`);
  return xs as T[];
}

export async function benchMethods(modelPath: string, o: BenchMethodsOptions): Promise<Comparison> {
  const methods = list<MethodName>(o.methods, METHOD_NAMES, "--methods");
  const schedules = list<Schedule>(o.schedules, SCHEDULES, "--schedules");
  const corrections = list(o.correction, ["on", "off", "both", "default"] as const, "--correction")[0] ?? "default";
  const patterns = o.patterns.split(",").map((p) => parsePattern(p));
  const budgets = o.fistaBudgets?.split(",").map((b) => {
    const n = Number(b);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`--fista-budgets ${b}: expected non-negative integers`);
    return n;
  });
  const protocol = evalFlagProtocol(o)!;
  const calibText = readTextFile(o.calib, "--calib");
  const evalText = readTextFile(o.eval, "--eval");
  const model = await openModel(modelPath, { tokenizer: o.tokenizer });
  const exec = openExecutor(model.wasm, o.threads ?? 1);
  const tok = model.tokenizer!;
  const calib = calibrationSet(tok, calibText, o.calib, o.nsamples, o.seqlen, o.calibProtocol as CalibProtocol | undefined, o.calibSeed);
  const evalSeqs = evalSequences(tok, evalText, protocol, model.config.maxSeqLen, "eval-");
  const grid: PruneSettings[] = [];
  for (const schedule of schedules)
    for (const pattern of patterns)
      for (const method of methods) {
        const corr = corrections === "both" ? [false, true] : corrections === "on" ? [true] : corrections === "off" ? [false] : [method === "fista"];
        for (const errorCorrection of corr) {
          // fista's cost as a dimension of the grid (its quality-vs-budget curve)
          for (const budget of method === "fista" && budgets ? budgets : [undefined]) {
            grid.push({ method, pattern, schedule, errorCorrection, ...(budget !== undefined ? { methodOptions: { fista: { budget } } } : {}) });
          }
        }
      }
  const bar = progress("bench methods", grid.length, { json: o.json, extra: "{run}" });
  let cmp: Comparison;
  try {
    cmp = await compareSettings(model, calib, evalSeqs, grid, exec, (done, _t, run) => bar.update(done, { run }));
  } finally {
    bar.stop();
    await exec.close();
  }
  if (!o.json) {
    console.log(`${modelPath}: calibration ${o.calib} (${calib.samples.length} paragraphs, ${calib.totalTokens} tokens), eval ${o.eval} (${protocolLabel(evalSeqs)})\n`);
    console.log(renderComparison(cmp));
  }
  return cmp;
}
