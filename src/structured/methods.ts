/** @file `--method` of `prune --structured` → its score (one file each, one interface: scorer.ts). */
import { activation } from "./activation.js";
import { magnitude } from "./magnitude.js";
import { gateHybrid, gateHybridExact, miniLlm, miniLlmExact } from "./mini-llm.js";
import type { StructureScorer } from "./scorer.js";
import { taylor } from "./taylor.js";

export const STRUCTURED_METHODS = Object.freeze(["mini-llm", "mini-llm-exact", "gate-hybrid", "gate-hybrid-exact", "taylor", "activation", "magnitude"] as const);
export type StructuredMethod = (typeof STRUCTURED_METHODS)[number];

export const SCORERS = Object.freeze({
  "mini-llm": miniLlm,
  "mini-llm-exact": miniLlmExact,
  "gate-hybrid": gateHybrid,
  "gate-hybrid-exact": gateHybridExact,
  taylor,
  activation,
  magnitude,
} satisfies Record<StructuredMethod, StructureScorer>);
