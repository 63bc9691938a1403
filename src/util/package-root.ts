/**
 * @file The package's root folder: the nearest folder above the calling module that holds a package.json —
 * the checkout when running from the sources (src/, bench/) or compiled (dist/src, dist/bench), and the
 * installed package's own folder under node_modules. Files found from it: package.json (the version), and in a
 * checkout `.cache/` (the project's installers put redis-server, Chromium, … there) and `../shared`.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The nearest folder above `moduleUrl` (an `import.meta.url`) holding a package.json. */
export function packageRoot(moduleUrl: string): string {
  const start = path.dirname(fileURLToPath(moduleUrl));
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, "package.json"))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${start}`);
  }
}
