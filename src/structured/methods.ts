/** @file `--method` of `prune --structured` → its score (one file each, one interface: scorer.ts). */
import { activation } from "./activation.js";
import { magnitude } from "./magnitude.js";
import { miniLlm } from "./mini-llm.js";
import type { StructureScorer } from "./scorer.js";

export const STRUCTURED_METHODS = Object.freeze(["mini-llm", "activation", "magnitude"] as const);
export type StructuredMethod = (typeof STRUCTURED_METHODS)[number];

export const SCORERS = Object.freeze({
  "mini-llm": miniLlm,
  activation,
  magnitude,
} satisfies Record<StructuredMethod, StructureScorer>);
