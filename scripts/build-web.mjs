// The browser build (build/web/, beside build/kernels.wasm; the package ships it as dist/build/web/): esbuild
// bundles of the library (wasprune.js, from src/web/index.ts), its pool worker (worker.js), and the page of
// `wasprune serve` (page.js, and engine.js, its worker, which imports wasprune.js rather than a second copy),
// with index.html and the two builds of the kernels (kernels.wasm, kernels-relaxed.wasm) beside them. Every module finds the others and the kernels relative to
// itself (new URL("./…", import.meta.url)). Prints the bundle's bytes.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = path.join(root, "build", "web");
const kernels = ["kernels.wasm", "kernels-relaxed.wasm"];
for (const k of kernels) if (!fs.existsSync(path.join(root, "build", k))) throw new Error(`build-web: build/${k} is missing (npm run build:wasm first)`);
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

const library = path.join(root, "src", "web", "index.ts");
/** engine.ts imports the library: keep it as the separate wasprune.js */
const libraryExternal = {
  name: "library-external",
  setup(b) {
    b.onResolve({ filter: /index\.js$/ }, (args) => {
      const p = path.resolve(args.resolveDir, args.path.replace(/\.js$/, ".ts"));
      return p === library && args.importer !== library ? { path: "./wasprune.js", external: true } : undefined;
    });
  },
};
const common = { bundle: true, format: "esm", platform: "browser", target: "es2022", minify: true, legalComments: "none", logLevel: "warning", metafile: true };
const builds = [
  { entryPoints: { wasprune: library, worker: path.join(root, "src/web/worker.ts"), "gpu-worker": path.join(root, "src/web/gpu-worker.ts") } },
  { entryPoints: { engine: path.join(root, "src/web/page/engine.ts"), page: path.join(root, "src/web/page/main.ts") }, plugins: [libraryExternal] },
];
for (const b of builds) await esbuild.build({ ...common, ...b, outdir: out });
for (const k of kernels) fs.copyFileSync(path.join(root, "build", k), path.join(out, k));
fs.copyFileSync(path.join(root, "src/web/page/index.html"), path.join(out, "index.html"));
const size = (f) => fs.statSync(path.join(out, f)).size;
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
const parts = ["wasprune.js", "worker.js", "gpu-worker.js", "kernels.wasm", "kernels-relaxed.wasm"];
const lib = parts.reduce((n, f) => n + size(f), 0);
console.log(`build-web: ${out}: library ${kb(lib)} (${parts.map((f) => `${f} ${kb(size(f))}`).join(" + ")}), page ${kb(size("page.js") + size("engine.js") + size("index.html"))} more`);
