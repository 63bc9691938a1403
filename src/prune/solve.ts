/**
 * @file An operator group's solve: the method's work on the group's H (`prepare`, shared by its operators), then
 * each operator's problem, prune, quantization and rounding to the stored dtype. Here, or on workers (the solve
 * jobs of src/distributed): the group's summed statistics go to a file and each job solves the group's operators
 * whole or, for a method whose rows are independent (PruneMethod.rowsIndependent), one block of their rows. The
 * same code on the same float32 sums, so the same bits wherever and in however many blocks it runs; the reports
 * of an operator's blocks are merged here (sparsity recounted, relative error weighted by each block's energy).
 */
import { narrow16, widen16, type DType } from "../io/dtype.js";
import { WasmError, WorkerError } from "../errors.js";
import { shards, type Executor } from "../exec/executor.js";
import type { CapturePoint } from "../model/forward.js";
import type { DenseLayer } from "../model/linear.js";
import { linearName } from "../model/names.js";
import type { DenseLinear, LinearOp } from "../model/types.js";
import { canonicalZeros } from "../sparse/zero.js";
import { is2of4 } from "../sparse/nm.js";
import { gridOf } from "../quant/scheme.js";
import { gptqQuantize, quantBuffers, quantizedWeight, rtnQuantize } from "./quantize.js";
import { problemFromGram, relativeError, type OperatorProblem } from "./problem.js";
import type { CalibStats, RawStats, StatsCollector } from "./stats.js";
import { METHODS } from "./methods/index.js";
import type { LayerContext, OperatorReport, PruneSettings } from "./driver.js";

/** A decoder layer's operator groups: the operators fitted on the same input (one H), in forward order. */
export const GROUPS: ReadonlyArray<{ point: CapturePoint; ops: readonly LinearOp[] }> = [
  { point: "qkv", ops: ["wq", "wk", "wv"] },
  { point: "o", ops: ["wo"] },
  { point: "gateup", ops: ["wGate", "wUp"] },
  { point: "down", ops: ["wDown"] },
];

/** What a solve reads of a layer step: the arena, the executor, the settings, and the phase clock it adds to. */
export type SolveContext = Pick<LayerContext, "store" | "exec" | "settings" | "time">;

/** A group's statistics to solve elsewhere: its summed running sums (before `finish`), in `blocks` row blocks. */
export interface SolveRequest {
  g: number;
  raw: Map<CapturePoint, RawStats>;
  blocks: number;
}

/** Rows [r0, r1) of an operator as solved (by a job): the pruned rows, their report and target energy. */
export interface BlockResult {
  op: LinearOp;
  r0: number;
  r1: number;
  data: Float32Array;
  report: OperatorReport;
  energy: number;
}

/**
 * Rows of block b of `blocks` over `rows`: the executor's row split (shards, on multiples of 4), so a block past
 * the last shard (more blocks than 4-row tiles) is empty.
 */
export function rowBlock(rows: number, b: number, blocks: number): [number, number] {
  return shards(rows, blocks, 4)[b] ?? [rows, rows];
}

/** How many row blocks group solves of these settings take on `parts` machines: 1 unless rows are independent. */
export function solveBlocks(settings: PruneSettings, parts: number): number {
  return METHODS[settings.method].rowsIndependent(settings.pattern) ? Math.max(1, Math.floor(parts)) : 1;
}

/**
 * Groups `items` (index g into GROUPS, its collector holding the summed statistics) of layer l solved into
 * `pruned`, in order: by `ctx.remote` when it solves (all the groups' jobs at once; not when quantizing: the
 * codes stay in this thread's objects), else here one group after another. `done` is called per operator.
 */
export async function solveGroups(
  ctx: LayerContext, l: number, items: Array<{ g: number; stats: StatsCollector }>, dense: DenseLayer, pruned: Record<LinearOp, DenseLinear>,
  done: (r: OperatorReport) => void,
): Promise<OperatorReport[]> {
  const out: OperatorReport[] = [];
  const remote = ctx.remote;
  if (remote?.solve && !ctx.settings.quantize && items.every((it) => it.stats.kind !== "none")) {
    const t0 = performance.now();
    const blocks = solveBlocks(ctx.settings, remote.rowBlocks);
    const requests = items.map(({ g, stats }) => ({ g, raw: new Map([[GROUPS[g]!.point, stats.raw()]]), blocks }));
    const results = await remote.solve(l, dense, requests);
    ctx.time.solve += (performance.now() - t0) / 1000;
    items.forEach(({ g }, k) => {
      for (const op of GROUPS[g]!.ops) {
        const r = mergeBlocks(l, op, pruned[op], results[k]!.filter((b) => b.op === op));
        out.push(r);
        done(r);
      }
    });
    return out;
  }
  const arena = ctx.store.wasm.arena;
  for (const { g, stats } of items) {
    const s = stats.finish();
    const m = arena.mark();
    const prepared = await prepareGroup(ctx, s);
    for (const op of GROUPS[g]!.ops) {
      const { report } = await solveOperator(ctx, l, op, dense[op], s, pruned[op], prepared);
      out.push(report);
      done(report);
    }
    arena.release(m);
  }
  return out;
}

/**
 * Block `b` of `blocks` of every operator of group g (a solve job's work): on the group's statistics `s`, each
 * operator's rows of the block solved into fresh arena rows (`dense` needs only the group's operators).
 */
export async function solveGroupRows(
  ctx: SolveContext, l: number, g: number, dense: Partial<Record<LinearOp, DenseLinear>>, s: CalibStats, b: number, blocks: number,
): Promise<BlockResult[]> {
  const a = ctx.store.wasm.arena;
  const prepared = await prepareGroup(ctx, s);
  const out: BlockResult[] = [];
  for (const op of GROUPS[g]!.ops) {
    const w = dense[op];
    if (!w) throw new WorkerError(`${linearName(l, op)}: not in the layer given to the solve`);
    const cols = w.shape[1]!;
    const [r0, r1] = rowBlock(w.shape[0]!, b, blocks);
    if (r1 === r0) continue;
    const n = (r1 - r0) * cols;
    const w0: DenseLinear = { format: "dense", ptr: w.ptr + 4 * r0 * cols, shape: [r1 - r0, cols], data: w.data.subarray(r0 * cols, r1 * cols) };
    const ptr = a.alloc(n);
    const into: DenseLinear = { format: "dense", ptr, shape: [r1 - r0, cols], data: a.f32(ptr, n) };
    const { report, energy } = await solveOperator(ctx, l, op, w0, s, into, prepared);
    out.push({ op, r0, r1, data: into.data, report, energy });
  }
  return out;
}

/**
 * An operator's blocks (in any order, covering its rows) into `into`, and their report: one block's as it is;
 * several: rows and sparsity counted over the whole, seconds added, the relative error Σ f_b / Σ E_b (each block's
 * f_b = relErr_b·E_b), the method's other extras from the first block.
 */
export function mergeBlocks(l: number, op: LinearOp, into: DenseLinear, blocks: BlockResult[]): OperatorReport {
  const [rows, cols] = into.shape as [number, number];
  const sorted = [...blocks].sort((x, y) => x.r0 - y.r0);
  let at = 0;
  for (const b of sorted) {
    if (b.r0 !== at || b.r1 <= b.r0 || b.data.length !== (b.r1 - b.r0) * cols) throw new WorkerError(`${linearName(l, op)}: solved row blocks do not cover rows ${at}.. of ${rows} (got ${b.r0}..${b.r1})`);
    into.data.set(b.data, b.r0 * cols);
    at = b.r1;
  }
  if (at !== rows) throw new WorkerError(`${linearName(l, op)}: solved row blocks cover rows 0..${at} of ${rows}`);
  if (sorted.length === 1) return sorted[0]!.report;
  let zeros = 0;
  for (const v of into.data) if (v === 0) zeros++;
  const measured = sorted.every((b) => b.report.relErr !== null && Number.isFinite(b.energy));
  const energy = sorted.reduce((t, b) => t + (measured ? b.energy : 0), 0);
  const relErr = !measured ? null : energy > 0 ? sorted.reduce((t, b) => t + b.report.relErr! * b.energy, 0) / energy : 0;
  const merged: OperatorReport = { ...sorted[0]!.report, rows, sparsity: rows * cols > 0 ? zeros / (rows * cols) : 0, relErr, seconds: sorted.reduce((t, b) => t + b.report.seconds, 0) };
  if (merged.twoOfFour !== undefined) merged.twoOfFour = sorted.every((b) => b.report.twoOfFour === 1) ? 1 : 0;
  return merged;
}

/** The method's work on a group's H (shared by its operators; in the caller's arena scope), timed as solve. */
export async function prepareGroup(ctx: SolveContext, s: CalibStats): Promise<unknown> {
  const method = METHODS[ctx.settings.method];
  if (!s.gram || !method.prepare) return undefined;
  const t0 = performance.now();
  const prepared = await method.prepare(ctx.exec, s.gram.H, s.cols, ctx.settings.errorCorrection, ctx.settings.methodOptions);
  ctx.time.solve += (performance.now() - t0) / 1000;
  return prepared;
}

/**
 * The problem a method gets from an operator's statistics. The Gram problem is formed in full (B, target energy)
 * only when something reads it: error correction, a method that needs it (FISTA), or a measured error.
 */
async function problemOf(exec: Executor, w0: DenseLinear, s: CalibStats, settings: PruneSettings, prepared: unknown): Promise<OperatorProblem> {
  const [rows, cols] = w0.shape as [number, number];
  const corrected = settings.errorCorrection;
  const full = corrected || !!settings.measureError || !!METHODS[settings.method].needsFullProblem;
  if (s.gram) return { ...(await problemFromGram(exec, w0.ptr, rows, s.gram, full)), prepared };
  return { kind: "light", rows, cols, W0: w0.ptr, nTokens: s.n, ...(s.diag ? { diag: s.diag } : {}), corrected };
}

/**
 * Solve one operator (or a block of its rows: `w0` and `into` those rows) and copy its pruned weights, rounded to
 * the stored dtype, into `into`. `energy`: the target energy E of its relative error (NaN when not formed).
 */
export async function solveOperator(
  ctx: SolveContext, l: number, op: LinearOp, w0: DenseLinear, s: CalibStats, into: DenseLinear, prepared: unknown,
): Promise<{ report: OperatorReport; energy: number }> {
  const { exec, settings } = ctx;
  const [rows, cols] = w0.shape as [number, number];
  const wasm = exec.wasm;
  const name = linearName(l, op);
  const m = wasm.arena.mark();
  try {
    const t0 = performance.now();
    const problem = await problemOf(exec, w0, s, settings, prepared);
    const q = settings.quantize;
    const grid = q ? gridOf(q.scheme, cols) : undefined;
    // the grid buffers before the method's blocks, so they outlive its scratch
    const qb = grid ? quantBuffers(wasm, rows, cols, grid) : undefined;
    const joint = q?.method === "gptq" && settings.method === "sparsegpt" && !q.actOrder;
    const opts = joint ? { ...settings.methodOptions, sparsegpt: { ...settings.methodOptions?.sparsegpt, quant: qb } } : settings.methodOptions;
    const { W, stats } = await METHODS[settings.method].prune(exec, problem, settings.pattern, opts);
    if (q && !joint) {
      if (q.method === "rtn") rtnQuantize(wasm, W, rows, cols, qb!);
      else await gptqQuantize(exec, problem.kind === "gram" ? problem.H : 0, W, rows, cols, qb!, { percDamp: q.percDamp, actOrder: q.actOrder });
      if (stats.relErr !== null && problem.kind === "gram") stats.relErr = await relativeError(exec, problem, W);
    }
    into.data.set(wasm.arena.f32(W, rows * cols));
    if (grid) {
      canonicalZeros(into.data);
      into.quant = quantizedWeight(wasm, W, rows, cols, grid, qb!, name);
      stats.quant = grid.strategy === "group" ? `int${grid.bits} g${grid.group}` : `int${grid.bits} channel`;
      // the pattern the quantized output declares (sparsity_config), also when nothing was pruned here (`quantize`)
      stats.twoOfFour = is2of4(into.data, rows, cols) ? 1 : 0;
    } else {
      roundTo(into.data, settings.storeDtype ?? "F32");
    }
    const seconds = (performance.now() - t0) / 1000;
    ctx.time.solve += seconds;
    return { report: { layer: l, op, name, rows, cols, ...stats, seconds }, energy: problem.kind === "gram" ? problem.targetEnergy : NaN };
  } catch (e) {
    if (e instanceof WorkerError) throw new WorkerError(`${name} (${settings.method}): ${e.message}`);
    // in a layer job (no pool of its own) any failure is named here: the main thread only knows the layer
    if (e instanceof Error && ((wasm.arena as { limit?: number }).limit !== undefined || e instanceof WasmError)) e.message = `${name} (${settings.method}): ${e.message}`;
    throw e;
  } finally {
    wasm.arena.release(m);
  }
}

/**
 * Round `w` in place to what `dtype` stores (F16/BF16: narrowed and widened back, round to nearest even) with
 * every zero +0.0 (a tiny negative weight may round to −0.0): the next layers are calibrated on what is written.
 */
export function roundTo(w: Float32Array, dtype: DType): void {
  if (dtype !== "F32") {
    const CH = 1 << 20;
    const bytes = new Uint8Array(2 * Math.min(CH, w.length));
    for (let i = 0; i < w.length; i += CH) {
      const part = w.subarray(i, Math.min(w.length, i + CH));
      const b = bytes.subarray(0, 2 * part.length);
      narrow16(dtype, part, b);
      widen16(dtype, b, part, part.length);
    }
  }
  canonicalZeros(w);
}

