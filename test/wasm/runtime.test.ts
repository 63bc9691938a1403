/**
 * @file Instantiation of the kernels through @assemblyscript/loader (src/wasm/runtime.ts): a kernel assertion
 * comes back as a WasmError naming the assertion's text and the assembly file, line and column it stands on,
 * on the main instance and on a second instance attached to the same shared memory (as worker threads do).
 * The expected line is found in the kernel's source, so the test follows the file as it changes. Also: the kernel
 * contract (src/wasm/contract.ts) checked at instantiation, and the choice between the baseline and relaxed builds.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createWasm, createWasmFrom, attachWasm, attachWasmTo, defaultBuild, kernelModule, relaxedSimdSupported, type Wasm } from "../../src/wasm/runtime.js";
import { checkKernels, KERNEL_ARITY } from "../../src/wasm/contract.js";
import { kernels } from "../../src/kernels/index.js";
import { WasmError } from "../../src/errors.js";

/** The 1-based line of `file` (under assembly/) holding `needle`, which must occur exactly once. */
function lineOf(file: string, needle: string): number {
  const lines = readFileSync(fileURLToPath(new URL(`../../assembly/${file}`, import.meta.url)), "utf8").split("\n");
  const hits = lines.flatMap((l, i) => (l.includes(needle) ? [i + 1] : []));
  assert.equal(hits.length, 1, `${file}: expected one line with ${needle}, found ${hits.length}`);
  return hits[0]!;
}

function assertKernelError(fn: () => unknown, text: string | null, file: string, line: number): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof WasmError, `expected a WasmError, got ${String(e)}`);
    const where = `assembly/${file}:${line}:`;
    assert.ok(e.message.includes(where), `"${e.message}" does not name ${where}`);
    if (text) assert.ok(e.message.includes(text), `"${e.message}" does not carry the assertion text "${text}"`);
    assert.match(e.message, new RegExp(`^kernel assertion failed.*:${line}:\\d+\\)?$`));
    return true;
  });
}

/** A fresh instance and a second one attached to its memory (as a worker thread's), and 1 KiB in that memory. */
function both(): { p: number; instances: [string, Wasm][] } {
  const main = createWasm(4 << 20);
  return { p: main.arena.allocBytes(1024), instances: [["main instance", main], ["attached instance", attachWasm(main.memory, main.build)]] };
}

test("a kernel assertion reports its message, assembly file and line (f32_gemm_nt with M = -1)", () => {
  const text = "f32_gemm_nt: negative size";
  const line = lineOf("gemm.ts", `"${text}"`);
  const { p, instances } = both();
  for (const [what, w] of instances) {
    const k = kernels(w);
    assertKernelError(() => k.f32_gemm_nt(p, p, p, -1, 4, 4, 0, p), text, "gemm.ts", line);
    assert.equal(k.f32_gemm_nt_scratch(1, 1, 1) > 0, true, `${what}: the instance still works after the trap`);
  }
});

test("a 2:4 kernel with K not a multiple of 4 names its own file and line", () => {
  const text = "spmv_2of4_4x: K must be a non-negative multiple of 4";
  const line = lineOf("spmm-nm.ts", `"${text}"`);
  const { p, instances } = both();
  for (const [, w] of instances) {
    assertKernelError(() => w.exports.f32_spmv_2of4_4x(p, p, p, p, 4, 6), text, "spmm-nm.ts", line);
    assertKernelError(() => w.exports.bf16_spmv_2of4_4x(p, p, p, p, 4, 6), text, "spmm-nm.ts", line);
  }
});

test("an assertion without a message still names the file and line", () => {
  const line = lineOf("gemm.ts", "assert(M >= 0 && N >= 0 && K >= 0 && (upper == 0 || M <= N));");
  const { p, instances: [[, w]] } = both();
  assertKernelError(() => w.exports.f32_gemm_strided(p, 1, 1, p, 1, p, 1, 3, 2, 1, 1, 0, 1, 0), null, "gemm.ts", line);
});

test("the kernel contract is checked at instantiation: a missing, re-typed or undeclared export fails naming it", () => {
  const w = createWasm(4 << 20);
  const exports: Record<string, unknown> = { ...w.exports };
  assert.equal(checkKernels(exports, "k.wasm"), exports, "the real module passes");
  const { f32_gemv_p8: _gone, ...missing } = exports;
  assert.throws(() => checkKernels(missing, "k.wasm"), /k\.wasm does not match the kernel contract: f32_gemv_p8 is missing/);
  assert.throws(() => checkKernels({ ...exports, f32_gemm_nt: (a: number) => a }, "k.wasm"), /f32_gemm_nt takes 1 parameters, the contract says 8/);
  assert.throws(() => checkKernels({ ...exports, bf16_gemv_rows: () => 0 }, "k.wasm"), /bf16_gemv_rows is exported but not in the contract/);
  // every declared export is a function of the declared arity on the built module (and the names agree)
  for (const [name, arity] of Object.entries(KERNEL_ARITY)) assert.equal((w.exports[name as keyof typeof KERNEL_ARITY] as (...a: number[]) => unknown).length, arity, name);
});

test("kernel builds: relaxed SIMD is chosen by feature detection, WASPRUNE_KERNELS overrides; both builds pass the contract", () => {
  const probe = relaxedSimdSupported();
  assert.equal(typeof probe, "boolean");
  // Node 20 lacks relaxed SIMD (V8 11.3), Node 22+ has it
  if (Number(process.versions.node.split(".")[0]) >= 22) assert.equal(probe, true, "Node ≥ 22 runs relaxed SIMD");
  const expected = process.env.WASPRUNE_KERNELS || (probe ? "relaxed" : "baseline");
  assert.equal(defaultBuild(), expected);
  assert.equal(createWasm(4 << 20, "baseline").build, "baseline");
  if (probe) assert.equal(createWasm(4 << 20, "relaxed").build, "relaxed");
  else assert.throws(() => createWasm(4 << 20, "relaxed"), /cannot compile the relaxed kernels/);
});

test("a module says which build it is: a build loaded under the other's name is refused naming both", () => {
  const baseline = kernelModule("baseline");
  assert.equal(createWasmFrom(baseline).build, "baseline");
  assert.equal(createWasmFrom(baseline).exports.kernelsRelaxed(), 0);
  assert.throws(() => createWasmFrom(baseline, "relaxed", undefined, "kernels-relaxed.wasm"),
    (e: Error) => e instanceof WasmError && e.message === "kernels-relaxed.wasm: this module is the baseline build of the kernels, not the relaxed build it was loaded as; rebuild with `npm run build`");
  const shared = createWasm(4 << 20, "baseline");
  assert.throws(() => attachWasmTo(baseline, shared.memory, "relaxed"), /this module is the baseline build of the kernels, not the relaxed build/);
  if (relaxedSimdSupported()) {
    assert.equal(createWasmFrom(kernelModule("relaxed")).build, "relaxed");
    assert.equal(createWasmFrom(kernelModule("relaxed")).exports.kernelsRelaxed(), 1);
    assert.throws(() => createWasmFrom(kernelModule("relaxed"), "baseline"), /the relaxed build of the kernels, not the baseline build/);
  }
});
