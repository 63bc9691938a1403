/**
 * @file Where the benchmarks find the checkout's root and `../shared` (the real model and data beside it), whether
 * they run from the sources (bench/) or compiled (dist/bench/): the nearest folder above this module holding a
 * package.json is the root.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export function checkoutRoot(): string {
  const start = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "package.json"))) return dir;
    if (path.dirname(dir) === dir) return path.dirname(start);
  }
}

/** `../shared` beside the checkout. */
export function sharedDir(): string {
  return path.resolve(checkoutRoot(), "..", "shared");
}
