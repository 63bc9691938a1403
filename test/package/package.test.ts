/**
 * The package as a user gets it: `npm pack` of the built checkout (dist/ as `npm run build` made it; npm test's
 * pretest builds it), installed into an empty temporary project offline — the tarball and, beside it, tarballs of
 * its runtime dependencies packed from this checkout's node_modules (cached in .cache/package-test/, by name and
 * version) — then used: `npx wasprune --help`, `npx wasprune generate` on stories260K (llama2.c's greedy text),
 * a Node script importing the library (the same text; the compiled worker pool without tsx), `--device webgpu`
 * without the optional package, and `tsc --noEmit` of TypeScript files using the types (Node and browser).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncOptions } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { GREEDY_200, REPO, STORIES_BIN, STORIES_HF, TINY_VALID } from "../helpers/shared.ts";

const NPM = process.platform === "win32" ? "npm.cmd" : "npm";
const NPX = process.platform === "win32" ? "npx.cmd" : "npx";
const TSC = path.join(REPO, "node_modules", ".bin", "tsc");
const DEPS = path.join(REPO, ".cache", "package-test");

function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 180_000, ...opts });
  if (r.error) throw r.error;
  return { stdout: String(r.stdout), stderr: String(r.stderr), status: r.status };
}

function ok(cmd: string, args: string[], opts: SpawnSyncOptions = {}): string {
  const r = run(cmd, args, opts);
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} failed (${r.status}):\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/** Newest mtime of the files under `dir` that `keep` accepts. */
function newest(dir: string, keep: (f: string) => boolean): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const f = path.join(e.parentPath, e.name);
    if (e.isFile() && keep(f)) t = Math.max(t, fs.statSync(f).mtimeMs);
  }
  return t;
}

/** Where Node would find package `name` from `dir` (its own node_modules, then each parent's). */
function resolvePackage(name: string, dir: string): string {
  for (let d = dir; ; d = path.dirname(d)) {
    const hit = path.join(d, "node_modules", name);
    if (fs.existsSync(path.join(hit, "package.json"))) return hit;
    if (d === path.dirname(d) || d === REPO) throw new Error(`${name} (a runtime dependency) is not installed under ${REPO}`);
  }
}

/**
 * The runtime dependency closure of the package, as installed in this checkout: package.json's `dependencies`,
 * then theirs (and their optional ones that are installed). Walked by hand: `npm ls --omit=dev` counts the
 * workspace's (test/assembly's) development tools in.
 */
function runtimeDependencyDirs(): string[] {
  const seen = new Set<string>();
  const visit = (dir: string, optional: boolean) => {
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
    const deps = [...Object.keys(pkg.dependencies ?? {}).map((n) => [n, false] as const), ...Object.keys(pkg.optionalDependencies ?? {}).map((n) => [n, true] as const)];
    for (const [name, opt] of deps) {
      let found: string;
      try {
        found = resolvePackage(name, dir);
      } catch (e) {
        if (opt || optional) continue; // an optional dependency for another platform
        throw e;
      }
      if (seen.has(found)) continue;
      seen.add(found);
      visit(found, opt);
    }
  };
  visit(REPO, false);
  return [...seen];
}

/** Tarballs of the runtime dependency closure, packed from node_modules once per version. */
function dependencyTarballs(): string[] {
  const dirs = runtimeDependencyDirs();
  fs.mkdirSync(DEPS, { recursive: true });
  const out = new Set<string>();
  for (const dir of dirs) {
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as { name: string; version: string };
    const file = path.join(DEPS, `${pkg.name.replace(/^@/, "").replace("/", "-")}-${pkg.version}.tgz`);
    if (!fs.existsSync(file)) ok(NPM, ["pack", dir, "--ignore-scripts", "--pack-destination", DEPS, "--silent"], { cwd: REPO });
    assert.ok(fs.existsSync(file), `npm pack ${dir} wrote no ${file}`);
    out.add(file);
  }
  return [...out];
}

function duBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += fs.statSync(path.join(e.parentPath, e.name)).size;
  return n;
}

test("npm pack → offline install → npx wasprune, the library from Node, and its types", { timeout: 300_000 }, (t) => {
  const built = path.join(REPO, "dist", "src", "api", "index.js");
  assert.ok(fs.existsSync(built), "dist/ is not built: run `npm run build`");
  const srcTime = newest(path.join(REPO, "src"), (f) => /\.(ts|html|cjs)$/.test(f));
  // tsc (incremental) rewrites its build info whenever a source changed; the browser build is rewritten whole
  const stamps = [path.join(REPO, "dist", ".tsbuildinfo"), path.join(REPO, "dist", "build", "web", "page.js")];
  assert.ok(stamps.every((f) => fs.existsSync(f) && fs.statSync(f).mtimeMs >= srcTime - 1000),
    "dist/ is older than src/: run `npm run build` (npm test's pretest does)");

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-package-"));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const packed = JSON.parse(ok(NPM, ["pack", "--ignore-scripts", "--json", "--pack-destination", tmp], { cwd: REPO })) as { filename: string; files: { path: string }[] }[];
  const files = packed[0]!.files.map((f) => f.path);
  for (const f of ["bin/wasprune.js", "dist/build/kernels.wasm", "dist/build/web/wasprune.js", "dist/build/web/index.html", "dist/build/web/kernels-relaxed.wasm", "dist/src/web/kernels.wasm", "dist/src/web/kernels-relaxed.wasm", "dist/src/api/index.js", "dist/src/api/index.d.ts", "dist/src/web/index.d.ts", "dist/src/workers/worker.js", "package.json"]) {
    assert.ok(files.includes(f), `the package has no ${f}`);
  }
  assert.deepEqual(files.filter((f) => /\.ts$/.test(f) && !/\.d\.ts$/.test(f)), [], "TypeScript sources in the package");
  assert.ok(!files.some((f) => f.startsWith("src/") || f.startsWith("test/") || f === "bin/wasprune-dev.js"), "sources or tests in the package");
  const tarball = path.join(tmp, packed[0]!.filename);

  const proj = path.join(tmp, "project");
  fs.mkdirSync(proj);
  fs.writeFileSync(path.join(proj, "package.json"), JSON.stringify({ name: "uses-wasprune", version: "1.0.0", private: true, type: "module" }));
  ok(NPM, ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball, ...dependencyTarballs()], { cwd: proj });
  const installed = duBytes(path.join(proj, "node_modules"));
  t.diagnostic(`installed: node_modules ${(installed / 1e6).toFixed(1)} MB (wasprune itself ${(duBytes(path.join(proj, "node_modules", "wasprune")) / 1e6).toFixed(1)} MB)`);
  assert.ok(!fs.existsSync(path.join(proj, "node_modules", "onnxruntime-web")) && !fs.existsSync(path.join(proj, "node_modules", "webgpu")) && !fs.existsSync(path.join(proj, "node_modules", "tsx")),
    "a development-only package was installed");

  const help = ok(NPX, ["--offline", "wasprune", "--help"], { cwd: proj });
  assert.match(help, /^Usage: wasprune /m);
  assert.match(help, /^\s+serve /m);

  const gen = ok(NPX, ["--offline", "wasprune", "generate", STORIES_BIN, "--prompt", "Once upon a time", "--temperature", "0", "--steps", "200"], { cwd: proj });
  assert.equal(gen, `${GREEDY_200}\n`);

  const noGpu = run(NPX, ["--offline", "wasprune", "generate", STORIES_BIN, "--steps", "4", "--device", "webgpu"], { cwd: proj });
  assert.equal(noGpu.status, 1);
  assert.equal(noGpu.stderr.trim().split("\n").length, 1, noGpu.stderr);
  assert.match(noGpu.stderr, /^error: --device webgpu: the optional package webgpu is not installed \(npm install webgpu@\d/);

  // the library from plain Node: the greedy text as an async iterator; perplexity on 2 threads is the compiled
  // worker pool (dist/src/workers/worker.js, no tsx) and must equal 1 thread's
  fs.writeFileSync(path.join(proj, "use.mjs"), `
import { loadModel, generate, perplexity, describeModel } from "wasprune";
import fs from "node:fs";
const model = await loadModel(${JSON.stringify(STORIES_BIN)});
let text = "";
const it = generate(model, { prompt: "Once upon a time", steps: 200, temperature: 0 });
let r;
while (!(r = await it.next()).done) text += r.value.text;
const hf = await loadModel(${JSON.stringify(STORIES_HF)});
const valid = fs.readFileSync(${JSON.stringify(TINY_VALID)}, "utf8");
const p1 = await perplexity(hf, valid, { paragraphs: 16, threads: 1 });
const p2 = await perplexity(hf, valid, { paragraphs: 16, threads: 2 });
console.log(JSON.stringify({ text, generated: r.value.generatedTokens, params: describeModel(model).params.total, p1: p1.perplexity, p2: p2.perplexity }));
`);
  const out = JSON.parse(ok(process.execPath, ["use.mjs"], { cwd: proj })) as { text: string; generated: number; params: number; p1: number; p2: number };
  assert.equal(out.text, GREEDY_200);
  assert.equal(out.params, 260_032);
  assert.ok(out.p1 > 1 && out.p1 < 10, `perplexity ${out.p1}`);
  assert.equal(out.p2, out.p1);

  // types: a Node program (with @types/node, as a Node project has: this checkout's) and a browser one (the
  // `browser` condition, DOM only), both strict, no skipLibCheck
  fs.writeFileSync(path.join(proj, "node-use.ts"), `
import { loadModel, openModelStore, generate, prune, compress, perplexity, UsageError, type GeneratedToken, type GenerateResult, type PruneSummary } from "wasprune";
const model = await loadModel("stories260K.bin", { tokenizer: "tok512.bin" });
const it: AsyncGenerator<GeneratedToken, GenerateResult, void> = generate(model, { prompt: "Once", steps: 8, temperature: 0, threads: 2 });
for await (const tok of it) { const s: string = tok.text; void s; }
const p: number = (await perplexity(model, "text", { protocol: "windows", ctx: 256 })).perplexity;
const s: PruneSummary = await prune(model, undefined, { method: "wanda", sparsity: "2:4", out: "pruned", onProgress: (q) => void q.done });
const c = await compress(model, "compressed", { force: true });
const store = await openModelStore("big-model", { residency: "streamed" });
const p2: number = (await perplexity(store, "text")).perplexity;
const s2: PruneSummary = await prune(store, "calibration text", { method: "sparsegpt", sparsity: 0.5, out: "o", calibProtocol: "windows", calibSeed: 1, maxMemory: "16GiB", maxShardSize: 5e9, measureError: true, methodOptions: { fista: { budget: 60 } } });
store.close();
const packed = await loadModel("model", { weights: "bf16" });
void p2; void s2; void packed;
const e: Error = new UsageError("x");
void p; void s; void c; void e;
// @ts-expect-error: steps is a number
generate(model, { steps: "8" });
`);
  fs.writeFileSync(path.join(proj, "web-use.ts"), `
import { loadModel, generate, describeModel, environment, type BrowserModelSource } from "wasprune";
const src: BrowserModelSource = "/models/0/stories260K.bin";
const model = await loadModel(src, { tokenizer: "tok512.bin", maxBytes: 1e8 });
for await (const tok of generate(model, { prompt: "Once", temperature: 0, threads: 2 })) void tok.text;
const n: number = describeModel(model).params.total;
const isolated: boolean = environment().crossOriginIsolated;
void n; void isolated;
`);
  const base = { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, types: [] as string[] };
  const nodeTypes = { types: ["node"], typeRoots: [path.join(REPO, "node_modules", "@types")] };
  fs.writeFileSync(path.join(proj, "tsconfig.json"), JSON.stringify({ compilerOptions: { ...base, ...nodeTypes, lib: ["ES2022"] }, files: ["node-use.ts"] }));
  fs.writeFileSync(path.join(proj, "tsconfig.web.json"), JSON.stringify({ compilerOptions: { ...base, lib: ["ES2022", "DOM"], customConditions: ["browser"] }, files: ["web-use.ts"] }));
  for (const cfg of ["tsconfig.json", "tsconfig.web.json"]) {
    const r = run(TSC, ["-p", cfg], { cwd: proj });
    assert.equal(r.status, 0, `tsc -p ${cfg}:\n${r.stdout}${r.stderr}`);
  }
});
