/**
 * @file The check of the SPSA estimator (src/structured/spsa.ts) on a real model: for a few structures (per
 * layer 3 MLP channels and 2 k/v groups), the exact ∂L/∂θ_s by central finite differences on the whole
 * calibration objective, against the SPSA estimate after K directions, K = 16 … 1024: Pearson correlation
 * and sign agreement. Run by `wasprune bench spsa [MODEL] --calib FILE [--max-k K] [--json]`.
 */
import { readFileSync } from "node:fs";
import { loadModel } from "../src/model/load.js";
import { paragraphSequences } from "../src/eval/text.js";
import { GATE_EPS, withGateLoss } from "../src/structured/mini-llm.js";
import { gateIndex } from "../src/structured/loss.js";
import { DEFAULT_SPSA } from "../src/structured/scorer.js";
import { correlation, finiteDifferenceGradient, spsaGradient } from "../src/structured/spsa.js";

export async function benchSpsa(modelPath: string, calibPath: string, maxK: number, json: boolean): Promise<unknown> {
const model = await loadModel(modelPath);
const calib = paragraphSequences(model.tokenizer!, readFileSync(calibPath, "utf8"), 128, 512);
const s = { ...DEFAULT_SPSA, eps: GATE_EPS };
const Ks = [16, 64, 256, 1024, 4096].filter((k) => k <= maxK);

const result = withGateLoss(model, calib, s.batchSize, (loss, layout, batches) => {
  const picks: { l: number; kind: "channel" | "group"; i: number; idx: number }[] = [];
  for (let l = 0; l < layout.offset.length; l++) {
    for (let i = 0; i < 3; i++) {
      const j = (37 * l + 59 * i + 11) % layout.channels[l];
      picks.push({ l, kind: "channel", i: j, idx: gateIndex(layout, l, "channel", j) });
    }
    for (let g = 0; g < Math.min(2, layout.groups[l]); g++) picks.push({ l, kind: "group", i: (g + l) % layout.groups[l], idx: gateIndex(layout, l, "group", (g + l) % layout.groups[l]) });
  }
  const theta0 = new Float64Array(layout.size);
  let t = performance.now();
  const exact = finiteDifferenceGradient(loss, theta0, picks.map((p) => p.idx), { eps: s.eps, batches: batches.length });
  const fdSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  const est = spsaGradient(loss, theta0, { directions: Math.max(...Ks), eps: s.eps, seed: s.seed, batches: batches.length }, Ks);
  const spsaSeconds = (performance.now() - t) / 1000;
  const rows = Ks.map((K) => {
    const g = est.at.get(K)!;
    const e = picks.map((p) => g[p.idx]);
    const signs = e.filter((v, i) => Math.sign(v) === Math.sign(exact[i])).length / e.length;
    return { K, correlation: correlation(e, exact), signAgreement: signs, absCorrelation: correlation(e.map(Math.abs), Array.from(exact, Math.abs)) };
  });
  return { structures: picks.length, dims: layout.size, batches: batches.length, fdSeconds, spsaSeconds, rows, exact: Array.from(exact), picks };
});
const out = { model: modelPath, spsa: s, ...result, exact: undefined, picks: undefined };
if (!json) {
  console.log(`${modelPath}: ${result.structures} structures, ${result.batches} batches; finite differences ${result.fdSeconds.toFixed(1)} s, SPSA ${result.spsaSeconds.toFixed(1)} s`);
  for (const r of result.rows) console.log(`K=${r.K}\tcorr ${r.correlation.toFixed(3)}\t|corr| ${r.absCorrelation.toFixed(3)}\tsign ${r.signAgreement.toFixed(2)}`);
}
return out;
}
