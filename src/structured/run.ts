/**
 * @file A whole `wasprune prune --structured` job: check the request, perplexity of the dense model, scores,
 * the keep plan, the smaller model without and with the refit (perplexity of each), and the output written
 * with the policy of src/prune/run.ts: never over a finished output without --force, model files renamed into
 * place from a temporary directory, `pruning.json` renamed in last (it marks a finished output). The job takes
 * minutes at most, so it keeps no per-layer checkpoints; a killed run leaves no pruning.json and is redone.
 */
import fs from "node:fs";
import path from "node:path";
import { UsageError } from "../errors.js";
import { perplexity, type PerplexityResult } from "../eval/perplexity.js";
import type { Executor } from "../exec/executor.js";
import { describeProtocol, evalSequences, type EvalText, type ProtocolReport } from "../eval/protocol.js";
import { namedTensors } from "../model/names.js";
import { saveHF, saveLlama2c } from "../model/save.js";
import type { DType, Model, ModelConfig } from "../model/types.js";
import { calibrationSet } from "../prune/calibration.js";
import { writeFileAtomic } from "../prune/checkpoint.js";
import { prepareOutput, REPORT_FILE } from "../prune/run.js";
import { SCORERS, type StructuredMethod } from "./methods.js";
import { refitConsumers, shrinkModel, type RefitReport } from "./remove.js";
import type { SpsaSettings } from "./scorer.js";
import { planNonuniform, planUniform, removalCounts, type KeepPlan, type RemovalCounts, type StructureScores } from "./structures.js";

export interface StructuredJob {
  model: Model;
  /** where the work runs (src/exec/executor.ts; the model's instance) */
  exec: Executor;
  method: StructuredMethod;
  ratios: RemovalCounts;
  nonuniform: boolean;
  refit: boolean;
  spsa: SpsaSettings;
  calib: { text: string; file: string; nsamples: number; seqlen: number };
  /** output directory, or a .bin path (only for a uniform model with every head kept: llama2.c has head_dim = dim/n_heads) */
  out: string;
  force?: boolean;
  dtype?: DType;
  evalText?: EvalText;
}

interface ScoreSummary {
  layer: number;
  kind: "channel" | "group";
  count: number;
  kept: number;
  removed: number[];
  min: number;
  median: number;
  max: number;
  /** highest removed score / lowest kept score */
  removedMax: number | null;
  keptMin: number;
}

export interface StructuredSummary {
  out: string;
  kind: "structured";
  method: StructuredMethod;
  formula: string;
  ratios: RemovalCounts;
  nonuniform: boolean;
  refit: boolean;
  details: Record<string, unknown>;
  calibration: Record<string, unknown>;
  sizes: { before: ModelSizes; after: ModelSizes };
  perplexity?: { dense: PerplexityResult; noRefit: PerplexityResult; refit?: PerplexityResult; file: string } & ProtocolReport;
  scores: ScoreSummary[];
  refitOperators: RefitReport[];
  seconds: { score: number; refit: number; total: number };
}

export interface ModelSizes {
  params: number;
  linearParams: number;
  hiddenDim: number;
  nHeads: number;
  nKvHeads: number;
  layerSizes?: ModelConfig["layerSizes"];
}

export function modelSizes(m: Model): ModelSizes {
  let params = 0;
  let linearParams = 0;
  for (const t of namedTensors(m)) {
    const n = t.tensor.shape.reduce((a, b) => a * b, 1);
    params += n;
    if (t.op) linearParams += n;
  }
  const c = m.config;
  return { params, linearParams, hiddenDim: c.hiddenDim, nHeads: c.nHeads, nKvHeads: c.nKvHeads, ...(c.layerSizes ? { layerSizes: c.layerSizes } : {}) };
}

/** Checks that need no model work: ratios against the model, the output path. */
export function checkStructuredJob(job: Pick<StructuredJob, "model" | "ratios" | "nonuniform" | "out">): { channels: number[]; groups: number[] } {
  const counts = removalCounts(job.model.config, job.ratios);
  if (job.out.endsWith(".bin") && (job.nonuniform || counts.groups.some((g) => g > 0))) {
    throw new UsageError(
      `--out ${job.out}: a llama2.c .bin cannot hold ${job.nonuniform ? "per-layer sizes (--nonuniform)" : "removed heads (it has head_dim = dim / n_heads)"}; write a Hugging Face directory instead`,
    );
  }
  return counts;
}

export async function runStructured(job: StructuredJob, hooks: { onPhase?(phase: string): void; onProgress?(what: string, done: number, total: number): void } = {}): Promise<StructuredSummary> {
  const { model, exec } = job;
  if (!model.tokenizer) throw new UsageError("prune needs a tokenizer for the calibration text (pass --tokenizer)");
  const t0 = performance.now();
  const counts = checkStructuredJob(job);
  prepareOutput(job.out, !!job.force);
  const calib = calibrationSet(model.tokenizer, job.calib.text, job.calib.file, job.calib.nsamples, job.calib.seqlen);
  const evalSeqs = job.evalText
    ? evalSequences(model.tokenizer, job.evalText.text, job.evalText.protocol, model.config.maxSeqLen, "eval-")
    : undefined;

  let dense: PerplexityResult | undefined;
  if (evalSeqs) {
    hooks.onPhase?.("eval dense");
    dense = await perplexity(model, evalSeqs.sequences, exec, undefined, evalSeqs.countFrom);
  }
  hooks.onPhase?.(`score ${job.method}`);
  const scorer = SCORERS[job.method];
  const ts = performance.now();
  const { scores, details } = await scorer.score({ model, exec, calib: calib.samples, spsa: job.spsa, onProgress: hooks.onProgress });
  const scoreSeconds = (performance.now() - ts) / 1000;
  const plan = job.nonuniform ? planNonuniform(scores, counts) : planUniform(scores, counts);

  const noRefit = shrinkModel(model, plan);
  let noRefitPpl: PerplexityResult | undefined;
  if (evalSeqs) {
    hooks.onPhase?.("eval without refit");
    noRefitPpl = await perplexity(noRefit, evalSeqs.sequences, exec, undefined, evalSeqs.countFrom);
  }
  let final = noRefit;
  let refitOperators: RefitReport[] = [];
  let refitPpl: PerplexityResult | undefined;
  const tr = performance.now();
  if (job.refit) {
    hooks.onPhase?.("refit o_proj, down_proj");
    const r = await refitConsumers(model, plan, calib.samples, exec, { onLayer: (l) => hooks.onProgress?.("refit", l + 1, model.config.nLayers) });
    refitOperators = r.reports;
    final = shrinkModel(model, plan, r);
    if (evalSeqs) {
      hooks.onPhase?.("eval with refit");
      refitPpl = await perplexity(final, evalSeqs.sequences, exec, undefined, evalSeqs.countFrom);
    }
  }
  const refitSeconds = (performance.now() - tr) / 1000;

  const summary: StructuredSummary = {
    out: job.out,
    kind: "structured",
    method: job.method,
    formula: scorer.formula,
    ratios: job.ratios,
    nonuniform: job.nonuniform,
    refit: job.refit,
    details,
    calibration: { ...calib.source, tokens: calib.totalTokens },
    sizes: { before: modelSizes(model), after: modelSizes(final) },
    perplexity:
      dense && noRefitPpl && job.evalText
        ? { dense, noRefit: noRefitPpl, ...(refitPpl ? { refit: refitPpl } : {}), file: job.evalText.file, ...describeProtocol(evalSeqs!) }
        : undefined,
    scores: summarizeScores(scores, plan),
    refitOperators,
    seconds: { score: scoreSeconds, refit: refitSeconds, total: (performance.now() - t0) / 1000 },
  };
  hooks.onPhase?.("write");
  writeStructured(final, job, summary);
  return summary;
}

function summarizeScores(scores: StructureScores, plan: KeepPlan): ScoreSummary[] {
  const out: ScoreSummary[] = [];
  const one = (layer: number, kind: "channel" | "group", s: Float64Array, keep: number[]): ScoreSummary => {
    const sorted = [...s].sort((a, b) => a - b);
    const kept = new Set(keep);
    const removed = [...s.keys()].filter((i) => !kept.has(i));
    return {
      layer, kind, count: s.length, kept: keep.length, removed,
      min: sorted[0], median: sorted[Math.floor(sorted.length / 2)], max: sorted[sorted.length - 1],
      removedMax: removed.length ? Math.max(...removed.map((i) => s[i])) : null,
      keptMin: Math.min(...keep.map((i) => s[i])),
    };
  };
  scores.channels.forEach((s, l) => out.push(one(l, "channel", s, plan.channels[l])));
  scores.groups.forEach((s, l) => out.push(one(l, "group", s, plan.groups[l])));
  return out;
}

function writeStructured(model: Model, job: StructuredJob, summary: StructuredSummary): void {
  const report = JSON.stringify({ wasprune: summary }, null, 2) + "\n";
  if (job.out.endsWith(".bin")) {
    saveLlama2c(model, job.out, { force: true });
    writeFileAtomic(`${job.out}.${REPORT_FILE}`, report);
    return;
  }
  fs.mkdirSync(job.out, { recursive: true });
  const tmp = `${job.out.replace(/\/+$/, "")}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  saveHF(model, tmp, { dtype: job.dtype, force: true });
  for (const f of fs.readdirSync(tmp)) fs.renameSync(path.join(tmp, f), path.join(job.out, f));
  fs.rmSync(tmp, { recursive: true, force: true });
  writeFileAtomic(path.join(job.out, REPORT_FILE), report);
}
