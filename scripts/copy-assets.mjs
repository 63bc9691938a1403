// After `tsc -p tsconfig.build.json` (dist/src, dist/bench): the files the compiled modules find relative to
// themselves, at the same relative places as in the checkout: the kernels (dist/build/kernels.wasm and the
// relaxed-SIMD build dist/build/kernels-relaxed.wasm, beside dist/src as build/ is beside src/), the browser build (dist/build/web, scripts/build-web.mjs's; what
// `wasprune serve` serves), the embedded demo model and text (dist/models, dist/data), and the kernels beside
// the compiled browser modules (dist/src/web/kernels.wasm and kernels-relaxed.wasm: a bundler
// that follows new URL("./kernels.wasm", import.meta.url) finds them there).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(root, "dist");
const copy = (from, to = from) => {
  const src = path.join(root, from);
  if (!fs.existsSync(src)) throw new Error(`copy-assets: ${from} is missing (run npm run build:wasm first?)`);
  fs.rmSync(path.join(dist, to), { recursive: true, force: true });
  fs.cpSync(src, path.join(dist, to), { recursive: true, dereference: true });
};
copy("build/kernels.wasm");
copy("build/kernels-relaxed.wasm");
copy("build/web");
copy("build/kernels.wasm", "src/web/kernels.wasm");
copy("build/kernels-relaxed.wasm", "src/web/kernels-relaxed.wasm");
copy("models");
copy("data");
