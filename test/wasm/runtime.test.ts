/**
 * @file Instantiation of the kernels through @assemblyscript/loader (src/wasm/runtime.ts): a kernel assertion
 * comes back as a WasmError naming the assertion's text and the assembly file, line and column it stands on,
 * on the main instance and on a second instance attached to the same shared memory (as worker threads do).
 * The expected line is found in the kernel's source, so the test follows the file as it changes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createWasm, attachWasm, type Wasm } from "../../src/wasm/runtime.js";
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
  return { p: main.arena.allocBytes(1024), instances: [["main instance", main], ["attached instance", attachWasm(main.memory)]] };
}

test("a kernel assertion reports its message, assembly file and line (f32_gemm_nt with M = -1)", () => {
  const text = "f32_gemm_nt: negative size";
  const line = lineOf("f32-gemm.ts", `"${text}"`);
  const { p, instances } = both();
  for (const [what, w] of instances) {
    const k = kernels(w);
    assertKernelError(() => k.f32_gemm_nt(p, p, p, -1, 4, 4, 0, p), text, "f32-gemm.ts", line);
    assert.equal(k.f32_gemm_nt_scratch(1, 1, 1) > 0, true, `${what}: the instance still works after the trap`);
  }
});

test("a 2:4 kernel with K not a multiple of 4 names its own file and line", () => {
  const text = "f32_spmv_2of4_4x: K must be a non-negative multiple of 4";
  const line = lineOf("f32-spmm-nm.ts", `"${text}"`);
  const { p, instances } = both();
  for (const [, w] of instances) {
    const spmv = w.exports.f32_spmv_2of4_4x as (...a: number[]) => void;
    assertKernelError(() => spmv(p, p, p, p, 4, 6), text, "f32-spmm-nm.ts", line);
  }
});

test("an assertion without a message still names the file and line", () => {
  const line = lineOf("f32-gram.ts", "assert(M >= 0 && N >= 0 && K >= 0 && (upper == 0 || M <= N));");
  const { p, instances: [[, w]] } = both();
  const gemm = w.exports.f32_gemm_strided as (...a: number[]) => void;
  assertKernelError(() => gemm(p, 1, 1, p, 1, p, 1, 3, 2, 1, 1, 0, 1), null, "f32-gram.ts", line);
});
