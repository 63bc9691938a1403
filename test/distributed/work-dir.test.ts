// The work dir's files: layers with each tensor in the narrowest dtype that holds it exactly, statistics with the
// Gram sums as their upper triangle; read back bit for bit.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createWasm } from "../../src/wasm/runtime.js";
import { exactDtype } from "../../src/io/dtype.js";
import { openSafetensors } from "../../src/io/safetensors.js";
import { readDenseLayer, writeDenseLayer } from "../../src/distributed/work-dir.js";
import type { DenseLayer } from "../../src/model/linear.js";
import { mulberry32 } from "../../src/util/rng.js";
import { openExecutor } from "../../src/workers/index.js";
import { StatsCollector } from "../../src/prune/stats.js";
import { readRawStats, writeRawStats } from "../../src/distributed/sequential.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-wd-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

test("exactDtype: BF16 for widened bf16 (zeros of both signs too), F16 for f16-exact values that bf16 cannot hold, else F32", () => {
  const rnd = mulberry32(3);
  const bf = new Float32Array(5000).map(() => rnd() - 0.5);
  new Uint32Array(bf.buffer).forEach((u, i, a) => (a[i] = u & 0xffff0000));
  bf[7] = -0;
  assert.equal(exactDtype(bf), "BF16");
  const f16 = new Float32Array(70000).map((_, i) => 1 + (2 * (i % 512) + 1) / 1024); // 11 significant bits
  assert.equal(exactDtype(f16), "F16");
  const f16late = f16.slice();
  f16late[69999] = 1 + 1 / 4096; // only the last chunk fails f16
  assert.equal(exactDtype(f16late), "F32");
  assert.equal(exactDtype(new Float32Array([0.1, 0.2])), "F32");
  const nan = new Float32Array(new Uint32Array([0x7fc00001]).buffer); // a NaN payload neither 16-bit dtype keeps
  assert.equal(exactDtype(nan), "F32");
});

test("writeDenseLayer: a bf16 model's layer stored as BF16 (half the bytes), f32 norms as F32; read back bit for bit", () => {
  const rnd = mulberry32(9);
  const dim = 16, hidden = 48;
  const bf16 = (n: number) => {
    const a = new Float32Array(n).map(() => rnd() - 0.5);
    new Uint32Array(a.buffer).forEach((u, i, v) => (v[i] = u & 0xffff0000));
    return a;
  };
  const lin = (rows: number, cols: number, data = bf16(rows * cols)) => ({ format: "dense" as const, ptr: 0, shape: [rows, cols], data });
  const lw = {
    attnNorm: { ptr: 0, shape: [dim], data: new Float32Array(dim).map(() => 1 + rnd() / 3) },
    ffnNorm: { ptr: 0, shape: [dim], data: new Float32Array(dim).map(() => 1 + rnd() / 3) },
    wq: lin(dim, dim), wk: lin(dim, dim), wv: lin(dim, dim), wGate: lin(hidden, dim), wUp: lin(hidden, dim), wDown: lin(dim, hidden),
    wo: lin(dim, dim, new Float32Array(dim * dim).map((_, i) => 1 + (2 * i + 1) / 1024)),
  } as unknown as DenseLayer;
  const file = path.join(tmp, "layer.safetensors");
  writeDenseLayer(file, lw);
  const st = openSafetensors(file);
  const dtypes = Object.fromEntries([...st.header].map(([k, e]) => [k, e.dtype]));
  st.close();
  assert.deepEqual(dtypes, { attnNorm: "F32", ffnNorm: "F32", wq: "BF16", wk: "BF16", wv: "BF16", wo: "F16", wGate: "BF16", wUp: "BF16", wDown: "BF16" });
  const floats = 2 * dim + 4 * dim * dim + 3 * dim * hidden;
  assert.ok(fs.statSync(file).size < 0.6 * 4 * floats, `${fs.statSync(file).size} bytes for ${floats} floats`);
  const back = readDenseLayer(file, createWasm()) as unknown as Record<string, { data: Float32Array }>;
  for (const [k, t] of Object.entries(lw as unknown as Record<string, { data: Float32Array }>)) {
    assert.deepEqual(new Uint32Array(back[k]!.data.slice().buffer), new Uint32Array(t.data.slice().buffer), k);
  }
});

test("writeRawStats: a shard's Gram sums stored as their upper triangle (about half the bytes), the same H after finish", async () => {
  const wasm = createWasm();
  const exec = openExecutor(wasm, 1);
  try {
    const rnd = mulberry32(21);
    const cols = 37, T = 29; // odd sizes: tiles that straddle the diagonal write below it
    const input = () => {
      const ptr = wasm.arena.alloc(T * cols);
      wasm.arena.f32(ptr, T * cols).set(Float32Array.from({ length: T * cols }, () => rnd() - 0.5));
      return ptr;
    };
    for (const kind of ["gram", "cross"] as const) {
      const m = wasm.arena.mark();
      const g = new StatsCollector(exec, cols, kind);
      const xpPtr = input();
      const xdPtr = kind === "cross" ? input() : xpPtr;
      await g.add([{ xp: xpPtr, xd: xdPtr, T }], "test");
      const raw = g.raw();
      assert.deepEqual(raw.upper, kind === "cross" ? ["H", "Hd"] : ["H"]);
      const file = path.join(tmp, `stats-${kind}.safetensors`);
      writeRawStats(file, new Map([["down" as const, raw]]));
      const full = Object.keys(raw.arrays).length * cols * cols * 4;
      const packed = (kind === "cross" ? cols * cols + cols * (cols + 1) : (cols * (cols + 1)) / 2) * 4;
      assert.ok(fs.statSync(file).size < packed + 512 && fs.statSync(file).size < full, `${fs.statSync(file).size} bytes, ${full} unpacked`);
      const back = readRawStats(file).get("down")!;
      assert.equal(back.n, T);
      assert.deepEqual(back.upper, raw.upper);
      const again = new StatsCollector(exec, cols, kind);
      again.addRaw(back);
      const [a, b] = [g.finish(), again.finish()];
      for (const k of ["H", ...(kind === "cross" ? ["C", "Hd"] : [])] as const) {
        const ptr = (s: typeof a) => (k === "H" ? s.gram!.H : s.gram!.cross![k as "C" | "Hd"]);
        assert.deepEqual(new Uint32Array(wasm.arena.f32(ptr(b), cols * cols).slice().buffer), new Uint32Array(wasm.arena.f32(ptr(a), cols * cols).slice().buffer), `${kind} ${k}`);
      }
      wasm.arena.release(m);
    }
  } finally {
    await exec.close();
  }
});
