/**
 * @file A whole `wasprune prune` job: output policy (never clobber, atomic, resumable), perplexity before and
 * after, the driver, the written model and `pruning.json`.
 *
 * Output layout for `--out DIR`: while running, DIR holds only `.wasprune-checkpoint/` (per-layer checkpoints
 * and the settings manifest). At the end the model is written to a temporary directory beside DIR, its files
 * are renamed into DIR, `pruning.json` is renamed in last (its presence marks a finished output) and the
 * checkpoints are removed. `--out FILE.bin` writes a llama2.c checkpoint instead (checkpoints in
 * FILE.bin.wasprune-checkpoint/).
 */
import fs from "node:fs";
import path from "node:path";
import { OutputExistsError, UsageError } from "../errors.js";
import { perplexity, type PerplexityResult } from "../eval/perplexity.js";
import type { Executor } from "../exec/executor.js";
import { describeProtocol, evalSequences, type EvalText, type ProtocolReport } from "../eval/protocol.js";
import { saveHF, saveLlama2c } from "../model/save.js";
import type { DType, Model } from "../model/types.js";
import { calibrationSet } from "./calibration.js";
import { CHECKPOINT_DIR, LayerCheckpoints, writeFileAtomic } from "./checkpoint.js";
import { pruneModel, type DriverHooks, type OperatorReport, type PruneSettings } from "./driver.js";
import { formatPattern, targetSparsity } from "./pattern.js";

export const REPORT_FILE = "pruning.json";

export interface PruneJob {
  model: Model;
  /** where the work runs (src/exec/executor.ts) */
  exec: Executor;
  settings: PruneSettings;
  calib: { text: string; file: string; nsamples: number; seqlen: number };
  /** output directory, or a path ending in .bin for a llama2.c checkpoint */
  out: string;
  force?: boolean;
  dtype?: DType;
  evalText?: EvalText;
}

export interface PruneSummary {
  out: string;
  method: string;
  pattern: string;
  schedule: string;
  errorCorrection: boolean;
  /** the method's options as set (JSON: functions such as a device solver are left out) */
  methodOptions: Record<string, unknown>;
  targetSparsity: number;
  /** measured over all linear operators */
  sparsity: number;
  meanRelErr: number;
  seconds: number;
  resumedLayers: number[];
  calibration: Record<string, unknown>;
  perplexity?: { dense: PerplexityResult; pruned: PerplexityResult; file: string } & ProtocolReport;
  operators: OperatorReport[];
}

function isBinOut(out: string): boolean {
  return out.endsWith(".bin");
}

/** Check the output path before any work, and decide where checkpoints go. Throws on a finished output without --force. */
export function prepareOutput(out: string, force: boolean): { checkpointDir: string } {
  if (isBinOut(out)) {
    if (fs.existsSync(out)) {
      if (fs.statSync(out).isDirectory()) throw new UsageError(`--out ${out}: is a directory, expected a .bin file path`);
      if (!force) throw new OutputExistsError(`--out ${out}: already exists; pass --force to overwrite it`);
    }
    const ck = `${out}.wasprune-checkpoint`;
    if (force) fs.rmSync(ck, { recursive: true, force: true });
    return { checkpointDir: ck };
  }
  if (fs.existsSync(out)) {
    if (!fs.statSync(out).isDirectory()) throw new UsageError(`--out ${out}: is a file, expected a directory (or a path ending in .bin)`);
    const entries = fs.readdirSync(out);
    const finished = entries.includes(REPORT_FILE);
    const partial = entries.includes(CHECKPOINT_DIR);
    if (finished && !force) throw new OutputExistsError(`--out ${out}: holds a finished pruned model (${REPORT_FILE}); pass --force to overwrite it`);
    if (!finished && !partial && entries.length > 0 && !force) {
      throw new OutputExistsError(`--out ${out}: is a non-empty directory that is not a wasprune output; pass --force to write into it`);
    }
    if (force) {
      // --force: the old result is no longer a finished output once we start
      fs.rmSync(path.join(out, REPORT_FILE), { force: true });
      fs.rmSync(path.join(out, CHECKPOINT_DIR), { recursive: true, force: true });
    }
  }
  return { checkpointDir: path.join(out, CHECKPOINT_DIR) };
}

export async function runPrune(job: PruneJob, hooks: DriverHooks & { onPhase?(phase: string): void } = {}): Promise<PruneSummary> {
  const { model, settings } = job;
  if (!model.tokenizer) throw new UsageError("prune needs a tokenizer for the calibration text (pass --tokenizer)");
  const t0 = performance.now();
  const { checkpointDir } = prepareOutput(job.out, !!job.force);
  const calib = calibrationSet(model.tokenizer, job.calib.text, job.calib.file, job.calib.nsamples, job.calib.seqlen);
  const evalSeqs = job.evalText
    ? evalSequences(model.tokenizer, job.evalText.text, job.evalText.protocol, model.config.maxSeqLen, "eval-")
    : undefined;

  const manifest = {
    model: model.source.path,
    method: settings.method,
    pattern: formatPattern(settings.pattern),
    schedule: settings.schedule,
    errorCorrection: settings.errorCorrection,
    methodOptions: settings.methodOptions ?? {},
    calibration: calib.source,
  };
  if (!isBinOut(job.out)) fs.mkdirSync(job.out, { recursive: true });
  const checkpoints = new LayerCheckpoints(checkpointDir, manifest);
  const resumedLayers = checkpoints.completed();

  let dense: PerplexityResult | undefined;
  if (evalSeqs) {
    hooks.onPhase?.("eval dense");
    dense = await perplexity(model, evalSeqs.sequences, job.exec, undefined, evalSeqs.countFrom);
  }
  hooks.onPhase?.("prune");
  const operators = await pruneModel(model, calib, settings, job.exec, { ...hooks, checkpoint: checkpoints });
  let pruned: PerplexityResult | undefined;
  if (evalSeqs) {
    hooks.onPhase?.("eval pruned");
    pruned = await perplexity(model, evalSeqs.sequences, job.exec, undefined, evalSeqs.countFrom);
  }

  let params = 0;
  let zeros = 0;
  for (const r of operators) {
    params += r.rows * r.cols;
    zeros += r.sparsity * r.rows * r.cols;
  }
  const summary: PruneSummary = {
    out: job.out,
    method: settings.method,
    pattern: formatPattern(settings.pattern),
    schedule: settings.schedule,
    errorCorrection: settings.errorCorrection,
    methodOptions: JSON.parse(JSON.stringify(settings.methodOptions ?? {})) as Record<string, unknown>,
    targetSparsity: targetSparsity(settings.pattern),
    sparsity: params ? zeros / params : 0,
    meanRelErr: operators.reduce((a, r) => a + r.relErr, 0) / Math.max(1, operators.length),
    seconds: (performance.now() - t0) / 1000,
    resumedLayers,
    calibration: { ...calib.source, tokens: calib.totalTokens },
    perplexity:
      dense && pruned && job.evalText
        ? { dense, pruned, file: job.evalText.file, ...describeProtocol(evalSeqs!) }
        : undefined,
    operators,
  };
  hooks.onPhase?.("write");
  writeOutput(job, summary);
  checkpoints.remove();
  return summary;
}

function writeOutput(job: PruneJob, summary: PruneSummary): void {
  const report = JSON.stringify({ wasprune: summary }, null, 2) + "\n";
  if (isBinOut(job.out)) {
    saveLlama2c(job.model, job.out, { force: true });
    writeFileAtomic(`${job.out}.${REPORT_FILE}`, report);
    return;
  }
  const tmp = `${job.out.replace(/\/+$/, "")}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  saveHF(job.model, tmp, { dtype: job.dtype, force: true });
  for (const f of fs.readdirSync(tmp)) fs.renameSync(path.join(tmp, f), path.join(job.out, f));
  fs.rmSync(tmp, { recursive: true, force: true });
  writeFileAtomic(path.join(job.out, REPORT_FILE), report);
}
