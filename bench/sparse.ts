/**
 * @file Sparse part of `wasprune bench kernels`: dense GEMM/GEMV vs 2:4 vs unstructured (panel CSR) at 50/70/90%
 * on real operator shapes (768x768, 3072x768, 4096x4096 as N x K), batch 1, 8 and 64, single thread, measured
 * side by side in one run (interleaved rounds, best of each). Dense is the p8 panel layout inference runs
 * (weights packed once, never per call; src/model/packed.ts). Honest units: GFLOP/s are effective (dense-equivalent, 2·M·N·K per call) so the
 * speed-up over dense is their ratio; GFLOP/s on nonzeros is effective × density.
 *
 * Batch 1 of the 4096x4096 operator rotates through enough copies of the weights (≥ 1 GiB per format, or
 * 4x the last-level cache if smaller) that every call streams its weights from DRAM, as in decode of a big
 * model; the smaller shapes and batches reuse one copy (they are cache-resident in a real model's layer too,
 * or compute-bound). Weights are random; unstructured masks are uniform random; 2:4 keeps a random pair.
 * The quantized rows (int8 per channel, int4 in groups of 128: assembly/qgemm.ts) run random codes; their
 * "effective" GFLOP/s count the same 2·M·N·K.
 */
import { writeFileSync } from "node:fs";
import type { Wasm } from "../src/wasm/runtime.js";
import { kernels } from "../src/kernels/index.js";
import { pack2of4 } from "../src/sparse/nm.js";
import { packCsr } from "../src/sparse/bcsr.js";
import { place2of4, placeCsr, placeP8, intScratchBytes, placeQuantized, runLinear, type IntActivationBits, type KernelLinear } from "../src/model/linear.js";
import { packP8 } from "../src/model/packed.js";
import { mulberry32 } from "../src/util/rng.js";
import { randomQuantized, type QuantizedWeight } from "../src/quant/codes.js";
import { gridOf, parseScheme } from "../src/quant/scheme.js";
import type { Anchor, AnchorName } from "./anchors.js";
import { rate, rateAsync } from "./timing.js";

export const SPARSE_SHAPES: [number, number][] = [[768, 768], [3072, 768], [4096, 4096]];
export const SPARSE_BATCHES = [1, 8, 64];
export const SPARSE_FORMATS = ["dense", "2:4", "unstructured 50%", "unstructured 70%", "unstructured 90%", "int8", "int8 a8", "int4 g128", "int4 g128 a8", "2:4 int4 g128"] as const;
export type SparseFormatName = (typeof SPARSE_FORMATS)[number];

export interface SparseRow {
  N: number;
  K: number;
  M: number;
  format: SparseFormatName;
  /** dense-equivalent GFLOP/s (2·M·N·K per call) */
  effGflops: number;
  /** GFLOP/s counting only the multiply-adds of stored values */
  nnzGflops: number;
  /** effective GFLOP/s over the dense kernel's in the same run */
  speedup: number;
  /** distinct weight copies rotated through (1: cache-resident) */
  copies: number;
}

/** An anchor's dense matmul at one shape and batch, measured in the same run as our rows. */
export interface AnchorRow {
  N: number;
  K: number;
  M: number;
  name: AnchorName;
  gflops: number;
  /** our dense kernel's GFLOP/s over the anchor's (> 1: ours is faster) */
  oursOver: number;
  copies: number;
}

const GiB = 1 << 30;

function weights(N: number, K: number, format: SparseFormatName, seed: number): { w: Float32Array; density: number } {
  const r = mulberry32(seed);
  const w = new Float32Array(N * K);
  for (let i = 0; i < w.length; i++) w[i] = r() - 0.5;
  if (format === "2:4") {
    const pairs = [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]];
    for (let o = 0; o < w.length; o += 4) {
      const keep = pairs[Math.floor(r() * 6)]!;
      for (let j = 0; j < 4; j++) if (!keep.includes(j)) w[o + j] = 0;
    }
    return { w, density: 0.5 };
  }
  if (format.startsWith("unstructured")) {
    const s = Number(/(\d+)%/.exec(format)![1]) / 100;
    for (let i = 0; i < w.length; i++) if (r() < s) w[i] = 0;
    return { w, density: 1 - s };
  }
  return { w, density: 1 };
}

/**
 * The quantized formats of the benchmarks and their schemes: int8 per output channel, int4 in groups of 128, and
 * int4 g128 with 2 of every 4 codes zero (placed in the 2:4 int4 layout).
 */
/** The integer formats and their schemes; "a8": the operator on int8 activations (W8A8 / W4A8, --int-activations 8). */
export const INT_FORMATS = { "int8": "w8", "int8 a8": "w8", "int4 g128": "w4g128", "int4 g128 a8": "w4g128", "2:4 int4 g128": "w4g128" } as const;

/** The activation bits a benchmark format runs its integer operator on. */
export const intActivationsOf = (format: string): IntActivationBits => (format.endsWith(" a8") ? 8 : 16);

/** Random symmetric codes of an [N,K] operator in `format` (speed only: the values do not matter). */
export function randomInt(N: number, K: number, format: keyof typeof INT_FORMATS, seed: number): QuantizedWeight {
  const rand = mulberry32(seed);
  const q = randomQuantized(rand, N, K, gridOf(parseScheme(INT_FORMATS[format]), K));
  if (format.startsWith("2:4")) {
    // two random positions of every group of 4 set to zero
    for (let i = 0; i < N * K; i += 4) {
      const a = Math.floor(rand() * 4);
      const b = (a + 1 + Math.floor(rand() * 3)) % 4;
      q.codes[i + a] = 0;
      q.codes[i + b] = 0;
    }
  }
  return q;
}

export async function benchSparse(
  wasm: Wasm, llc: number | null, quick: boolean, notes: string[], log: (s: string) => void, anchors: Anchor[] = [],
): Promise<{ rows: SparseRow[]; anchors: AnchorRow[] }> {
  const k = kernels(wasm);
  const a = wasm.arena;
  const rows: SparseRow[] = [];
  const anchorRows: AnchorRow[] = [];
  const budget = quick ? 40 : 120;
  const rounds = quick ? 2 : 4;
  const rotateBytes = Math.min(GiB, 4 * (llc ?? 32 << 20));
  log("");
  log(`sparse kernels, effective GFLOP/s (dense-equivalent) and speed-up over dense (p8 panels, packed once), single thread,`);
  log(`best of ${rounds} interleaved rounds`);
  log(`  shape NxK    M  ${SPARSE_FORMATS.map((f) => f.replace("unstructured ", "unstr ").padStart(16)).join("")}${anchors.map((a) => `${a.name.padStart(16)} (dense/it)`).join("")}`);
  for (const [N, K] of SPARSE_SHAPES) {
    // pack once per shape and format (packing is TypeScript and not what is measured)
    const packed = SPARSE_FORMATS.map((format, i) => {
      // the quantized rows get random codes; the others random f32 weights with their sparsity
      if (format in INT_FORMATS) return { format, density: 1, q: randomInt(N, K, format as keyof typeof INT_FORMATS, 31 + i) };
      const { w, density } = weights(N, K, format, 11 + i);
      return { format, density, p8: format === "dense" ? packP8(w, N, K, "f32") : undefined, p24: format === "2:4" ? pack2of4(w, N, K) : undefined, csr: format.startsWith("unstr") ? packCsr(w, N, K) : undefined };
    });
    for (const M of SPARSE_BATCHES) {
      const stream = M === 1 && N * K >= 4096 * 4096;
      const mark = a.mark();
      try {
        const x = a.alloc(M * K);
        a.f32(x, M * K).fill(0.25);
        const y = a.alloc(M * N);
        const scratchBytes = Math.max(16, k.gemm_p8_nt_scratch(M, K), k.f32_spmm_nt_scratch(M, N, K), intScratchBytes(k, M, K));
        const scratch = a.allocBytes(scratchBytes);
        // every format placed (with its rotated copies) before any is timed, so the rounds interleave them
        const sides = packed.map((p) => {
          const place = (): KernelLinear => (p.p8 ? placeP8(a, p.p8, N, K, "f32") : p.p24 ? place2of4(a, p.p24) : p.q ? placeQuantized(wasm, p.q, intActivationsOf(p.format)) : placeCsr(a, p.csr!));
          const first = place();
          const copies = stream ? Math.max(2, Math.ceil(rotateBytes / first.bytes)) : 1;
          const all = [first];
          for (let c = 1; c < copies; c++) all.push(place());
          return { p, copies, call: (rep: number) => runLinear(k, all[rep % copies]!, x, y, M, scratch, scratchBytes) };
        });
        const denseCopies = sides[0]!.copies;
        const prepared = [];
        for (const an of anchors) {
          // the same number of weight copies as our dense row (so the same DRAM streaming at 4096x4096 batch 1)
          const m = await an.prepare(M, N, K, denseCopies, 21);
          // every copy once before timing: both runtimes pack/prepare a weight on its first use
          for (let c = 1; c < denseCopies; c++) await m.run(c);
          prepared.push({ an, m });
        }
        const best = new Map<string, number>();
        const keep = (key: string, r: number) => best.set(key, Math.max(best.get(key) ?? 0, r));
        try {
          for (let round = 0; round < rounds; round++) {
            for (const side of sides) keep(side.p.format, rate(side.call, budget, side.copies));
            for (const { an, m } of prepared) keep(an.name, await rateAsync((rep) => m.run(rep), budget, denseCopies));
          }
        } finally {
          for (const { m } of prepared) await m.dispose();
        }
        const denseRate = best.get("dense")!;
        const line: string[] = [];
        for (const side of sides) {
          const r = best.get(side.p.format)!;
          const eff = (2 * M * N * K * r) / 1e9;
          const row: SparseRow = { N, K, M, format: side.p.format, effGflops: eff, nnzGflops: eff * side.p.density, speedup: r / denseRate, copies: side.copies };
          rows.push(row);
          line.push(`${eff.toFixed(1).padStart(7)} ${row.speedup.toFixed(2).padStart(5)}x  `);
        }
        for (const { an } of prepared) {
          const r = best.get(an.name)!;
          const gflops = (2 * M * N * K * r) / 1e9;
          anchorRows.push({ N, K, M, name: an.name, gflops, oursOver: denseRate / r, copies: denseCopies });
          line.push(`${gflops.toFixed(1).padStart(7)} ${(denseRate / r).toFixed(2).padStart(5)}x          `);
        }
        log(`  ${`${N}x${K}`.padEnd(10)} ${String(M).padStart(3)}  ${line.join("")}`);
      } finally {
        a.release(mark);
      }
    }
  }
  notes.push(`sparse: 4096x4096 at batch 1 rotates ≥ ${(rotateBytes / GiB).toFixed(2)} GiB of weights per format (streamed from DRAM); other rows use one copy`);
  return { rows, anchors: anchorRows };
}

/** A grouped bar chart of speed-up over dense, per shape x batch, one bar per sparse format (hand-written SVG). */
export function sparseChartSvg(rows: SparseRow[], title: string): string {
  const formats = SPARSE_FORMATS.filter((f) => f !== "dense");
  const groups = SPARSE_SHAPES.flatMap(([N, K]) => SPARSE_BATCHES.map((M) => ({ N, K, M })));
  const colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];
  const W = 960, H = 420, left = 60, right = 20, top = 50, bottom = 80;
  const maxY = Math.max(2, ...rows.map((r) => r.speedup)) * 1.1;
  const gw = (W - left - right) / groups.length;
  const bw = (gw * 0.8) / formats.length;
  const y = (v: number) => top + (H - top - bottom) * (1 - v / maxY);
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(title)}</text>`,
  ];
  for (let t = 0; t <= maxY; t += maxY > 8 ? 2 : 0.5) {
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${t}x</text>`);
  }
  out.push(`<line x1="${left}" x2="${W - right}" y1="${y(1).toFixed(1)}" y2="${y(1).toFixed(1)}" stroke="black" stroke-dasharray="4 3"/>`);
  groups.forEach((g, gi) => {
    const gx = left + gi * gw + gw * 0.1;
    formats.forEach((f, fi) => {
      const r = rows.find((r) => r.N === g.N && r.K === g.K && r.M === g.M && r.format === f);
      if (!r) return;
      out.push(`<rect x="${(gx + fi * bw).toFixed(1)}" y="${y(r.speedup).toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${(y(0) - y(r.speedup)).toFixed(1)}" fill="${colors[fi]}"><title>${esc(`${g.N}x${g.K} M=${g.M} ${f}: ${r.speedup.toFixed(2)}x`)}</title></rect>`);
    });
    out.push(`<text x="${(gx + gw * 0.4).toFixed(1)}" y="${H - bottom + 16}" text-anchor="middle">M=${g.M}</text>`);
    if (g.M === SPARSE_BATCHES[0]) out.push(`<text x="${(gx + gw * 1.4).toFixed(1)}" y="${H - bottom + 34}" text-anchor="middle">${g.N}x${g.K}</text>`);
  });
  formats.forEach((f, fi) => {
    out.push(`<rect x="${left + fi * 150}" y="${H - 24}" width="12" height="12" fill="${colors[fi]}"/><text x="${left + fi * 150 + 16}" y="${H - 14}">${esc(f)}</text>`);
  });
  out.push(`<text x="14" y="${top + (H - top - bottom) / 2}" transform="rotate(-90 14 ${top + (H - top - bottom) / 2})" text-anchor="middle">speed-up over dense</text>`);
  out.push("</svg>");
  return out.join("\n") + "\n";
}

export function writeSparseChart(file: string, rows: SparseRow[], cpu: string): void {
  writeFileSync(file, sparseChartSvg(rows, `wasprune sparse kernels vs dense, single thread (${cpu})`));
}
