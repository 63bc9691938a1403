/**
 * @file Where the benchmarks find the checkout's root and `../shared` (the real model and data beside it), whether
 * they run from the sources (bench/) or compiled (dist/bench/): the nearest folder above this module holding a
 * package.json is the root.
 */
import path from "node:path";
import { packageRoot } from "../src/util/package-root.js";

export function checkoutRoot(): string {
  return packageRoot(import.meta.url);
}

/** `../shared` beside the checkout. */
export function sharedDir(): string {
  return path.resolve(checkoutRoot(), "..", "shared");
}
