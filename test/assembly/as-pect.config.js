// as-pect configuration of the kernels' AssemblyScript unit tests (see README, Toolchain).
// The specs import ../../assembly/*.ts directly, so they test the very source the release build compiles.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

// as-pect's own AssemblyScript entry (describe/test/expect) must be in every compilation. Its package.json
// "exports" hides the .ts files from require.resolve, so look for it along node's module search path
// (npm hoists it to the repository's node_modules, or keeps it here).
function aspectEntry() {
  const file = join("@as-pect", "assembly", "assembly", "index.ts");
  for (const dir of createRequire(import.meta.url).resolve.paths("@as-pect/assembly") ?? []) {
    if (existsSync(join(dir, file))) return join(dir, file);
  }
  throw new Error(`${file} not found in any node_modules above ${import.meta.url}; run npm ci`);
}

export default {
  entries: ["*.spec.ts"],
  include: [aspectEntry()],
  disclude: [/node_modules/],
  async instantiate(memory, createImports, instantiate, binary) {
    return instantiate(binary, createImports({ env: { memory } }));
  },
  outputBinary: false,
};
