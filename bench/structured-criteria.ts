/**
 * @file `wasprune bench structured [MODEL]`: every structured-pruning criterion side by side on the same dense
 * weights, calibration and evaluation text — the README's table. Per criterion the scores are computed once
 * (the SPSA estimates once, read at K = 16 … 1024 from one run), then for each removal ratio (MLP channels and
 * k/v groups alike) and allocation (uniform, --nonuniform): perplexity without refit, with the least-squares
 * refit, and after LoRA recovery of the refit model (src/train, method "lora": a fixed token budget, distilled
 * from the dense model), with the parameter count. Also: how well the SPSA gradients agree with the exact
 * (backprop) ones at each K.
 */
import { readTextFile } from "../src/eval/text.js";
import { paragraphSequences } from "../src/eval/text.js";
import { UsageError } from "../src/errors.js";
import { perplexity } from "../src/eval/perplexity.js";
import { openModel } from "../src/cli/open-model.js";
import { fmt, table } from "../src/cli/format.js";
import { calibrationSet } from "../src/prune/calibration.js";
import { openExecutor } from "../src/workers/index.js";
import type { Model } from "../src/model/types.js";
import { LINEAR_OPS } from "../src/model/types.js";
import { activationScores } from "../src/structured/activation.js";
import { exactGradients } from "../src/structured/gradients.js";
import { magnitudeScores } from "../src/structured/magnitude.js";
import { featureMapGradient, flatGradient, gateHybridScores, paperScores, weightGradientSpsa } from "../src/structured/mini-llm.js";
import { refitConsumers, shrinkModel } from "../src/structured/remove.js";
import { modelSizes } from "../src/structured/run.js";
import { DEFAULT_SPSA, outputStats } from "../src/structured/scorer.js";
import { correlation } from "../src/structured/spsa.js";
import { planNonuniform, planUniform, removalCounts, type StructureScores } from "../src/structured/structures.js";
import { TextSource } from "../src/train/data.js";
import { mergeLora } from "../src/train/student.js";
import { DEFAULTS, Trainer, type TrainSettings } from "../src/train/trainer.js";

/**
 * The scorers of src/structured/methods.ts, plus `weight-activation`: the paper's form with the gradient factor
 * left out, Σ_{w∈G} |w|·‖x_col(w)‖ (Wanda's score summed over the group) — the limit mini-llm's score tends
 * to when its gradient estimate is noise of the same size for every weight.
 */
export const BENCH_CRITERIA = Object.freeze(["magnitude", "activation", "weight-activation", "taylor", "gate-hybrid-exact", "mini-llm-exact", "gate-hybrid", "mini-llm"] as const);
type Criterion = (typeof BENCH_CRITERIA)[number];

export interface BenchStructuredOptions {
  calib: string;
  eval: string;
  evalParagraphs: number;
  nsamples: number;
  seqlen: number;
  ratios: string;
  criteria: string;
  ks: string;
  allocations: string;
  spsaBatch: number;
  seed: number;
  /** LoRA recovery: steps of batch × seqlen tokens (0 = none) on --lora-data */
  loraSteps: number;
  loraBatch: number;
  loraSeqlen: number;
  loraLr: number;
  loraRank: number;
  /** α of the distillation loss α·CE + (1 − α)·τ²·KL */
  loraDistillAlpha: number;
  loraData: string;
  threads?: number;
  json?: boolean;
}

interface Row {
  criterion: string;
  ratio: number;
  allocation: "uniform" | "nonuniform";
  params: number;
  noRefit: number;
  refit: number;
  lora?: number;
}

function list(s: string): string[] {
  return s.split(",").map((x) => x.trim()).filter(Boolean);
}

export async function benchStructured(modelPath: string, o: BenchStructuredOptions): Promise<unknown> {
  const criteria = list(o.criteria) as Criterion[];
  for (const c of criteria) if (!(BENCH_CRITERIA as readonly string[]).includes(c)) throw new UsageError(`--criteria ${c}: expected some of ${BENCH_CRITERIA.join(", ")}`);
  const ratios = list(o.ratios).map(Number);
  const ks = list(o.ks).map(Number);
  const allocations = list(o.allocations) as Row["allocation"][];
  for (const a of allocations) if (a !== "uniform" && a !== "nonuniform") throw new UsageError(`--allocations ${a}: expected uniform, nonuniform`);
  const model = await openModel(modelPath);
  const tok = model.tokenizer!;
  const exec = openExecutor(model.wasm, o.threads ?? 1);
  const log = (s: string) => console.error(s); // progress on stderr (stdout carries the table or the JSON)
  try {
    const calib = calibrationSet(tok, readTextFile(o.calib, "--calib"), o.calib, o.nsamples, o.seqlen).samples;
    const evalSeqs = paragraphSequences(tok, readTextFile(o.eval, "--eval"), o.evalParagraphs, model.config.maxSeqLen);
    const loraText = o.loraSteps > 0 ? readTextFile(o.loraData, "--lora-data") : "";
    for (const r of ratios) removalCounts(model.config, { channelsRatio: r, headsRatio: r });
    const dense = await perplexity(model, evalSeqs, exec);
    log(`dense ${fmt(dense.perplexity, 4)}`);

    // ---- scores ----------------------------------------------------------------------------------------
    const t0 = performance.now();
    const stats = await outputStats(model, calib, exec);
    const M = magnitudeScores(model);
    const A = activationScores(model, stats);
    const ones = new Float32Array(Math.max(...model.weights.layers.flatMap((lw) => LINEAR_OPS.map((op) => lw[op].shape[0] * lw[op].shape[1])))).fill(1);
    const WA = paperScores(model, stats, () => ones);
    const needExact = criteria.some((c) => c === "taylor" || c.endsWith("-exact") || c === "gate-hybrid" || c === "mini-llm");
    const exact = needExact ? exactGradients(model, calib) : undefined;
    const scores: { label: string; scores: StructureScores; recover: boolean }[] = [];
    const agreement: Record<string, unknown>[] = [];
    const spsa = { ...DEFAULT_SPSA, batchSize: o.spsaBatch, seed: o.seed, directions: Math.max(...ks) };
    const absAll = (s: StructureScores): StructureScores => ({ channels: s.channels.map((x) => x.map(Math.abs)), groups: s.groups.map((x) => x.map(Math.abs)) });
    const flat = (s: StructureScores): number[] => [...s.channels.flatMap((x) => [...x]), ...s.groups.flatMap((x) => [...x])];
    /** mean over layers and kinds of the Spearman correlation of two scores (what a per-layer ranking sees) */
    const rankAgreement = (a: StructureScores, b: StructureScores): number => {
      const pairs = [...a.channels.map((x, l) => [x, b.channels[l]]), ...a.groups.map((x, l) => [x, b.groups[l]])].filter(([x]) => x.length > 1);
      return pairs.reduce((t, [x, y]) => t + correlation(ranks(x), ranks(y)), 0) / pairs.length;
    };
    for (const c of criteria) {
      const t = performance.now();
      if (c === "magnitude") scores.push({ label: c, scores: M, recover: true });
      else if (c === "activation") scores.push({ label: c, scores: A, recover: true });
      else if (c === "weight-activation") scores.push({ label: c, scores: WA, recover: true });
      else if (c === "taylor") scores.push({ label: c, scores: absAll(exact!.gate), recover: true });
      else if (c === "gate-hybrid-exact") scores.push({ label: c, scores: gateHybridScores(M, A, exact!.gate), recover: true });
      else if (c === "mini-llm-exact") scores.push({ label: c, scores: paperScores(model, stats, exact!.grad), recover: true });
      else if (c === "gate-hybrid") {
        const g = featureMapGradient(model, calib, spsa, ks);
        const want = flat(exact!.gate);
        for (const K of ks) {
          const est = g.at.get(K)!;
          scores.push({ label: `${c} K=${K}`, scores: gateHybridScores(M, A, est), recover: K === spsa.directions });
          agreement.push({ criterion: c, K, gradientCorrelation: correlation(flat(est), want), scoreRankCorrelation: rankAgreement(gateHybridScores(M, A, est), gateHybridScores(M, A, exact!.gate)) });
        }
      } else if (c === "mini-llm") {
        const g = weightGradientSpsa(model, calib, spsa, ks, (k, K) => { if (k % 64 === 0) log(`  mini-llm SPSA ${k}/${K}`); });
        const want: number[] = [];
        for (let l = 0; l < model.config.nLayers; l++) for (const op of LINEAR_OPS) want.push(...Array.from(exact!.grad(l, op)));
        const exactScores = paperScores(model, stats, exact!.grad);
        for (const K of ks) {
          const est = g.at.get(K)!;
          const s = paperScores(model, stats, flatGradient(g.layout, est));
          scores.push({ label: `${c} K=${K}`, scores: s, recover: K === spsa.directions });
          agreement.push({ criterion: c, K, gradientCorrelation: correlation(est, want), scoreRankCorrelation: rankAgreement(s, exactScores), withoutGradientRankCorrelation: rankAgreement(s, WA) });
        }
      }
      log(`scores ${c}: ${fmt((performance.now() - t) / 1000, 1)} s`);
    }
    const scoreSeconds = (performance.now() - t0) / 1000;

    // ---- removal, refit, recovery ----------------------------------------------------------------------
    const rows: Row[] = [];
    for (const ratio of ratios) {
      const counts = removalCounts(model.config, { channelsRatio: ratio, headsRatio: ratio });
      for (const allocation of allocations) {
        for (const s of scores) {
          const plan = allocation === "uniform" ? planUniform(s.scores, counts) : planNonuniform(s.scores, counts);
          const mark = model.wasm.arena.mark();
          try {
            const noRefit = (await perplexity(shrinkModel(model, plan), evalSeqs, exec)).perplexity;
            const r = await refitConsumers(model, plan, calib, exec);
            const final = shrinkModel(model, plan, r);
            const refit = (await perplexity(final, evalSeqs, exec)).perplexity;
            const row: Row = { criterion: s.label, ratio, allocation, params: modelSizes(final).params, noRefit, refit };
            if (o.loraSteps > 0 && s.recover) row.lora = await recover(final, model, loraText, o, exec, evalSeqs);
            rows.push(row);
            log(`${s.label} ${allocation} ${ratio}: ${fmt(noRefit, 2)} / ${fmt(refit, 2)}${row.lora !== undefined ? ` / ${fmt(row.lora, 2)}` : ""}`);
          } finally {
            model.wasm.arena.release(mark);
          }
        }
      }
    }
    const result = {
      model: modelPath, dense: dense.perplexity, evalTokens: dense.tokens, calibration: { file: o.calib, samples: calib.length },
      spsa, lora: o.loraSteps > 0 ? { steps: o.loraSteps, batch: o.loraBatch, seqlen: o.loraSeqlen, tokens: o.loraSteps * o.loraBatch * o.loraSeqlen, lr: o.loraLr, rank: o.loraRank, distillAlpha: o.loraDistillAlpha, data: o.loraData } : null,
      scoreSeconds, agreement, rows,
    };
    if (!o.json) console.log(renderBenchStructured(result));
    return result;
  } finally {
    await exec.close();
  }
}

/** Ranks 0..n−1 of the values (ties by index). */
function ranks(v: Float64Array): Float64Array {
  const order = [...v.keys()].sort((i, j) => v[i] - v[j] || i - j);
  const r = new Float64Array(v.length);
  order.forEach((i, k) => { r[i] = k; });
  return r;
}

/** LoRA recovery of `student` (refit, smaller) distilled from `teacher`; the validation perplexity of the merged model. */
async function recover(student: Model, teacher: Model, text: string, o: BenchStructuredOptions, exec: Awaited<ReturnType<typeof openExecutor>>, evalSeqs: number[][]): Promise<number> {
  const s: TrainSettings = {
    ...DEFAULTS, n: 0, m: 0, method: "lora", steps: o.loraSteps, lr: o.loraLr, warmup: Math.min(100, Math.ceil(o.loraSteps / 10)),
    batch: o.loraBatch, seqlen: o.loraSeqlen, accum: 1, alpha: o.loraDistillAlpha, decay: 0, decayRamp: o.loraSteps, slorbK: 0,
    loraRank: o.loraRank, loraAlpha: 2 * o.loraRank,
  };
  const tr = new Trainer(student, teacher, new TextSource(teacher.tokenizer!, text, o.loraData, s.seqlen, s.seed), s, exec);
  tr.init();
  for (let i = 0; i < s.steps; i++) await tr.trainStep();
  mergeLora(tr.student);
  return (await perplexity(student, evalSeqs, exec)).perplexity;
}

export function renderBenchStructured(r: { dense: number; rows: Row[]; agreement: Record<string, unknown>[]; lora: unknown }): string {
  const out: string[] = [`dense ${fmt(r.dense, 4)}`];
  const ratios = [...new Set(r.rows.map((x) => x.ratio))];
  for (const allocation of ["uniform", "nonuniform"] as const) {
    const rows = r.rows.filter((x) => x.allocation === allocation);
    if (!rows.length) continue;
    const labels = [...new Set(rows.map((x) => x.criterion))];
    const head = ["criterion", ...ratios.flatMap((q) => [`${100 * q}% no refit`, `${100 * q}% refit`, ...(r.lora ? [`${100 * q}% refit+LoRA`] : [])])];
    const body = labels.map((label) => [label, ...ratios.flatMap((q) => {
      const x = rows.find((y) => y.criterion === label && y.ratio === q)!;
      return [fmt(x.noRefit, 2), fmt(x.refit, 2), ...(r.lora ? [x.lora === undefined ? "" : fmt(x.lora, 2)] : [])];
    })]);
    body.push(["parameters", ...ratios.flatMap((q) => { const p = String(rows.find((y) => y.ratio === q)!.params); return r.lora ? [p, p, p] : [p, p]; })]);
    out.push("", allocation, table(head, body, { align: ["l", ...head.slice(1).map(() => "r" as const)] }));
  }
  if (r.agreement.length) {
    out.push("", "SPSA vs exact: Pearson correlation of the gradients; mean per-layer Spearman correlation of the scores (and, mini-llm, with weight-activation's)",
      ...r.agreement.map((a) => `${a.criterion} K=${a.K}: ${fmt(a.gradientCorrelation as number, 3)}, ${fmt(a.scoreRankCorrelation as number, 3)}` +
        (a.withoutGradientRankCorrelation === undefined ? "" : `, ${fmt(a.withoutGradientRankCorrelation as number, 3)}`)));
  }
  return out.join("\n");
}
