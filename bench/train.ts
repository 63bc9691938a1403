/**
 * @file `wasprune bench train`: tokens/s of a whole training step (student forward keeping activations,
 * teacher forward, α·CE + (1−α)·KL, backward, AdamW with AST's decay, mask refresh) on a real model and on a
 * synthetic 8-layer 512-wide LLaMA, 1 thread vs 2 (data-parallel over the worker pool, src/train/data-parallel.ts).
 *
 * Measured on this 2-core machine with both cores free (checked before and after with a 2-thread spin: ~2.0
 * cores), 21:15 UTC 2026-11-29, full run: stories260K 8x256 3902 → 6920 tok/s (1.77x); + SLoRB 3479 → 6421
 * (1.85x); synthetic 8x512 (25.3M params) 2x256 113 → 202 tok/s (1.79x). With another job holding a core the
 * 2-thread rows equal the 1-thread ones (x0.87–1.03): there is no second core to win.
 */
import { sharedDir } from "./shared.js";
import fs from "node:fs";
import path from "node:path";
import { loadModel } from "../src/model/load.js";
import { randomLlama } from "../src/model/builtin.js";
import { createWasm } from "../src/wasm/runtime.js";
import type { Model, ModelConfig } from "../src/model/types.js";
import { Trainer, DEFAULTS, type TrainSettings } from "../src/train/trainer.js";
import type { DataSource } from "../src/train/data.js";
import { mulberry32 } from "../src/util/rng.js";
import { openExecutor } from "../src/workers/index.js";

export const SYNTH_8x512: ModelConfig = {
  architecture: "llama", dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKvHeads: 4, headDim: 64, vocabSize: 4096,
  maxSeqLen: 512, normEps: 1e-5, ropeTheta: 10000, ropeLayout: "half", tiedEmbeddings: true, qkvBias: false, bosId: 1, eosId: 2,
};

class RandomTokens implements DataSource {
  constructor(readonly V: number, readonly L: number) {}
  describe() { return { kind: "random" }; }
  sample(i: number): Int32Array {
    const r = mulberry32(1000 + i);
    return Int32Array.from({ length: this.L + 1 }, () => Math.floor(r() * this.V));
  }
}

export interface TrainBenchRow {
  model: string;
  params: number;
  seqlen: number;
  batch: number;
  slorb: boolean;
  threads: number;
  stepSeconds: number;
  tokensPerSecond: number;
}

async function measure(
  name: string, make: () => Promise<{ student: Model; teacher: Model }>, over: Partial<TrainSettings>, steps: number, threads: number,
): Promise<TrainBenchRow> {
  const { student, teacher } = await make();
  const exec = openExecutor(student.wasm, threads); // before the Trainer: it takes the slots' buffers from the arena
  try {
    const s: TrainSettings = { ...DEFAULTS, n: 2, m: 4, steps: 1000, lr: 1e-4, warmup: 10, decay: 0.01, decayRamp: 1000, slorbK: 0, ...over };
    const tr = new Trainer(student, teacher, new RandomTokens(student.config.vocabSize, s.seqlen), s, exec);
    tr.init();
    await tr.trainStep(); // warm-up (JIT, first-touch, worker start-up)
    const t0 = performance.now();
    let tokens = 0;
    for (let i = 0; i < steps; i++) tokens += (await tr.trainStep()).tokens;
    const sec = (performance.now() - t0) / 1000;
    const params = tr.student.params.reduce((a, p) => a + p.t.data.length, 0);
    return { model: name, params, seqlen: s.seqlen, batch: s.batch, slorb: s.slorbK > 0, threads, stepSeconds: sec / steps, tokensPerSecond: tokens / sec };
  } finally {
    await exec.close();
  }
}

/**
 * Each configuration at 1 thread (no pool) and at 2 (data-parallel over the pool: the step's sequences in
 * gradBlocks = 4 blocks, at most, summed in block order; same bytes either way), side by side.
 */
export async function benchTrain(o: { model?: string; json?: boolean; quick?: boolean; threads?: number[] }): Promise<TrainBenchRow[]> {
  const model = o.model ?? path.join(sharedDir(), "models/stories260K-hf");
  const threadCounts = o.threads ?? [1, 2];
  const rows: TrainBenchRow[] = [];
  const config = async (name: string, make: () => Promise<{ student: Model; teacher: Model }>, over: Partial<TrainSettings>, steps: number) => {
    const got: TrainBenchRow[] = [];
    for (const th of threadCounts) got.push(await measure(name, make, over, steps, th));
    rows.push(...got);
    if (!o.json) {
      const r = got[0];
      const cells = got.map((g) => `${g.threads} thr ${g.stepSeconds.toFixed(3)} s/step ${String(Math.round(g.tokensPerSecond)).padStart(6)} tok/s`);
      const speedup = got.length > 1 ? `  (x${(got.at(-1)!.tokensPerSecond / got[0].tokensPerSecond).toFixed(2)})` : "";
      console.log(`${r.model.padEnd(24)} ${String(r.params).padStart(9)} params  ${r.seqlen}x${r.batch}${r.slorb ? " +SLoRB" : "       "}  ${cells.join("  |  ")}${speedup}`);
    }
  };
  if (fs.existsSync(model)) {
    const load = async () => {
      const wasm = createWasm();
      return { student: await loadModel(model, { wasm }), teacher: await loadModel(model, { wasm }) };
    };
    await config(path.basename(model), load, { batch: 8, seqlen: 256 }, o.quick ? 2 : 5);
    await config(path.basename(model), load, { batch: 8, seqlen: 256, slorbK: 16 }, o.quick ? 2 : 5);
  }
  await config("synthetic 8x512 LLaMA", async () => {
    const wasm = createWasm();
    return { student: randomLlama(SYNTH_8x512, 1, wasm), teacher: randomLlama(SYNTH_8x512, 1, wasm) };
  }, { batch: 2, seqlen: 256 }, o.quick ? 1 : 2);
  return rows;
}

// ---- perplexity curves of finished runs (training.json) ------------------------------------------------

export interface Curve {
  label: string;
  points: { tokens: number; perplexity: number }[];
  tokensPerSecond: number;
}

/** The eval points of a finished `wasprune train` output directory (or its training.json). */
export function readCurve(spec: string): Curve {
  const [label, p] = spec.includes("=") ? spec.split("=", 2) as [string, string] : [path.basename(spec), spec];
  const file = fs.statSync(p).isDirectory() ? path.join(p, "training.json") : p;
  const s = JSON.parse(fs.readFileSync(file, "utf8")).wasprune as { log: { kind: string; tokensSeen: number; perplexity: number }[]; tokensPerSecond: number };
  return {
    label,
    points: s.log.filter((e) => e.kind === "eval").map((e) => ({ tokens: e.tokensSeen, perplexity: e.perplexity })),
    tokensPerSecond: s.tokensPerSecond,
  };
}

/** A markdown table: one row per eval point (tokens), one column per run. */
export function curveTable(curves: Curve[]): string {
  const tokens = [...new Set(curves.flatMap((c) => c.points.map((p) => p.tokens)))].sort((a, b) => a - b);
  const head = `| training tokens | ${curves.map((c) => c.label).join(" | ")} |`;
  const sep = `|---:|${curves.map(() => "---:").join("|")}|`;
  const rows = tokens.map((t) => `| ${t.toLocaleString("en-US")} | ${curves.map((c) => {
    const p = c.points.find((q) => q.tokens === t);
    return p ? p.perplexity.toFixed(2) : "";
  }).join(" | ")} |`);
  return [head, sep, ...rows].join("\n");
}

/** A hand-written SVG line chart: perplexity (log scale) against training tokens, with reference lines. */
export function curveSvg(curves: Curve[], refs: { label: string; perplexity: number }[] = []): string {
  const W = 760, H = 440, L = 60, R = 230, T = 30, B = 50;
  const xs = curves.flatMap((c) => c.points.map((p) => p.tokens));
  const ys = [...curves.flatMap((c) => c.points.map((p) => p.perplexity)), ...refs.map((r) => r.perplexity)];
  const xMax = Math.max(...xs, 1);
  const yMin = Math.log(Math.min(...ys) * 0.9), yMax = Math.log(Math.min(Math.max(...ys), 200) * 1.1);
  const X = (t: number) => L + ((W - L - R) * t) / xMax;
  const Y = (p: number) => T + ((H - T - B) * (yMax - Math.log(Math.min(p, 200)))) / (yMax - yMin);
  const colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="18" font-size="14">stories260K 2:4: validation perplexity (300 paragraphs) vs training tokens</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">training tokens</text>`,
    `<text x="16" y="${(T + H - B) / 2}" transform="rotate(-90 16 ${(T + H - B) / 2})" text-anchor="middle">perplexity (log scale)</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const t = (xMax * i) / 5;
    out.push(`<line x1="${X(t)}" y1="${H - B}" x2="${X(t)}" y2="${H - B + 5}" stroke="black"/><text x="${X(t)}" y="${H - B + 18}" text-anchor="middle">${Math.round(t / 1000)}k</text>`);
  }
  for (const p of [4, 5, 6, 8, 10, 15, 20, 30, 50, 100, 200]) {
    if (Math.log(p) < yMin || Math.log(p) > yMax) continue;
    out.push(`<line x1="${L - 5}" y1="${Y(p)}" x2="${W - R}" y2="${Y(p)}" stroke="#ddd"/><text x="${L - 8}" y="${Y(p) + 4}" text-anchor="end">${p}</text>`);
  }
  refs.forEach((r) => {
    out.push(`<line x1="${L}" y1="${Y(r.perplexity)}" x2="${W - R}" y2="${Y(r.perplexity)}" stroke="#666" stroke-dasharray="5,4"/>`);
    out.push(`<text x="${W - R + 6}" y="${Y(r.perplexity) + 4}" fill="#444">${r.label}</text>`);
  });
  curves.forEach((c, i) => {
    const col = colors[i % colors.length];
    const pts = c.points.map((p) => `${X(p.tokens).toFixed(1)},${Y(p.perplexity).toFixed(1)}`).join(" ");
    out.push(`<polyline fill="none" stroke="${col}" stroke-width="2" points="${pts}"/>`);
    const last = c.points.at(-1)!;
    out.push(`<text x="${W - R + 6}" y="${T + 16 * i + 60}" fill="${col}">■ ${c.label}: ${last.perplexity.toFixed(2)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
