/**
 * @file The structures structured pruning removes, their geometry in the weights, and the plan of what to keep.
 *
 * - MLP channel j of layer l: row j of gate_proj and up_proj, column j of down_proj. Its output (feature map)
 *   is a_j = silu(gate_j·x)·(up_j·x), the j-th input of down_proj.
 * - Attention: a *k/v group* g — k/v head g with the G = nHeads/nKvHeads query heads that share it (rows
 *   g·G·hd..(g+1)·G·hd of q_proj, rows g·hd..(g+1)·hd of k_proj and v_proj, the same q columns of o_proj).
 *   Its output is the attention output of those G query heads (G·hd inputs of o_proj).
 *
 *   Why whole groups rather than an equal number of q heads inside every group: removing a group shrinks all
 *   four projections *and the KV cache* (the memory that grows with context), while dropping q heads inside
 *   groups leaves k/v untouched; the granularity is one group = 1/nKvHeads of the attention (stories260K:
 *   one of 4 groups = 25%) against nKvHeads heads at a time inside groups (stories260K: one of 2 q heads per
 *   group = 50%, too coarse for 25%); and any number of groups keeps the layer a valid GQA layer with the
 *   same G, so a standard config (num_attention_heads = G·num_key_value_heads) describes it.
 */
import { UsageError } from "../errors.js";
import { layerSizesOf, type LayerWeights, type ModelConfig } from "../model/types.js";

export const STRUCTURE_KINDS = Object.freeze(["channel", "group"] as const);
export type StructureKind = (typeof STRUCTURE_KINDS)[number];

/** One score per structure: channels[l][j] (MLP channel j of layer l), groups[l][g] (k/v group g of layer l). */
export interface StructureScores {
  channels: Float64Array[];
  groups: Float64Array[];
}

/** Sorted indices of the structures kept in each layer. */
export interface KeepPlan {
  channels: number[][];
  groups: number[][];
}

/** Query heads per k/v head (constant over layers, see config.ts). */
export function groupSize(c: ModelConfig): number {
  return c.nHeads / c.nKvHeads;
}

/** Channels and k/v groups of layer l, read from its tensors. */
export function layerCounts(c: ModelConfig, lw: LayerWeights): { channels: number; groups: number } {
  return { channels: lw.wGate.shape[0], groups: lw.wk.shape[0] / c.headDim };
}

/** Columns of o_proj (= the attention output) of group g: [start, end). */
export function groupQCols(c: ModelConfig, g: number): [number, number] {
  const w = groupSize(c) * c.headDim;
  return [g * w, (g + 1) * w];
}

/** Rows of k_proj / v_proj of group g: [start, end). */
export function groupKvRows(c: ModelConfig, g: number): [number, number] {
  return [g * c.headDim, (g + 1) * c.headDim];
}

export function emptyScores(c: ModelConfig, layers: readonly LayerWeights[]): StructureScores {
  return {
    channels: layers.map((lw) => new Float64Array(layerCounts(c, lw).channels)),
    groups: layers.map((lw) => new Float64Array(layerCounts(c, lw).groups)),
  };
}

export interface RemovalCounts {
  /** fraction of MLP channels to remove, in [0, 1) */
  channelsRatio: number;
  /** fraction of k/v groups to remove, in [0, 1); must be a whole number of groups */
  headsRatio: number;
}

/** Check the ratios against the model (before any work) and return how many structures each layer loses. */
export function removalCounts(c: ModelConfig, r: RemovalCounts): { channels: number[]; groups: number[] } {
  for (const [name, v] of [["--channels-ratio", r.channelsRatio], ["--heads-ratio", r.headsRatio]] as const) {
    if (!(Number.isFinite(v) && v >= 0 && v < 1)) throw new UsageError(`${name} ${v}: expected a fraction in [0, 1)`);
  }
  const channels: number[] = [];
  const groups: number[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const s = layerSizesOf(c, l);
    const g = r.headsRatio * s.nKvHeads;
    if (Math.abs(g - Math.round(g)) > 1e-9) {
      throw new UsageError(
        `--heads-ratio ${r.headsRatio}: layer ${l} has ${s.nKvHeads} k/v groups (${s.nHeads} query heads, ${groupSize(c)} per group); ` +
          `heads are removed as whole k/v groups, so the ratio must be a multiple of 1/${s.nKvHeads} (${r.headsRatio} x ${s.nKvHeads} = ${+g.toFixed(4)} groups)`,
      );
    }
    const rg = Math.round(g);
    if (rg >= s.nKvHeads) throw new UsageError(`--heads-ratio ${r.headsRatio} removes all ${s.nKvHeads} k/v groups (every attention head) of layer ${l}`);
    const rc = Math.round(r.channelsRatio * s.hiddenDim);
    if (rc >= s.hiddenDim) throw new UsageError(`--channels-ratio ${r.channelsRatio} removes all ${s.hiddenDim} MLP channels of layer ${l}`);
    channels.push(rc);
    groups.push(rg);
  }
  return { channels, groups };
}

/** Keep everything but the `remove[l]` lowest-scored structures of each layer (ties: lower index removed first). */
export function planUniform(scores: StructureScores, counts: { channels: number[]; groups: number[] }): KeepPlan {
  const keep = (s: Float64Array, remove: number): number[] => {
    const order = [...s.keys()].sort((a, b) => s[a] - s[b] || a - b);
    return order.slice(remove).sort((a, b) => a - b);
  };
  return {
    channels: scores.channels.map((s, l) => keep(s, counts.channels[l])),
    groups: scores.groups.map((s, l) => keep(s, counts.groups[l])),
  };
}

/**
 * Non-uniform allocation: the same total number of structures of each kind is removed, the lowest scores over
 * all layers first (scores compared as they are — meaningful for loss-based scores such as taylor's; the
 * magnitude and activation scores' scales differ between layers), never the last channel or the last k/v
 * group of a layer. On stories260K it is worse than uniform for every score (README).
 */
export function planNonuniform(scores: StructureScores, counts: { channels: number[]; groups: number[] }): KeepPlan {
  const pick = (per: Float64Array[], total: number): number[][] => {
    const all: { l: number; i: number; s: number }[] = [];
    per.forEach((s, l) => s.forEach((v, i) => all.push({ l, i, s: v })));
    all.sort((a, b) => a.s - b.s || a.l - b.l || a.i - b.i);
    const removed = per.map(() => new Set<number>());
    let left = total;
    for (const e of all) {
      if (left === 0) break;
      if (per[e.l].length - removed[e.l].size <= 1) continue;
      removed[e.l].add(e.i);
      left--;
    }
    return per.map((s, l) => [...s.keys()].filter((i) => !removed[l].has(i)));
  };
  const sum = (a: number[]): number => a.reduce((x, y) => x + y, 0);
  return { channels: pick(scores.channels, sum(counts.channels)), groups: pick(scores.groups, sum(counts.groups)) };
}
