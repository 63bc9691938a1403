/**
 * The worker pool: results bit-identical for 1, 2 and 3 threads through the real CLI (bin/wasprune-dev.js, which
 * registers tsx only in the main thread — the workers must load anyway), kernels' row-split invariance, and
 * a failing worker task named in a clear error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createWasm } from "../../src/wasm/runtime.ts";
import { syntheticOperator } from "../../src/prune/problem.ts";
import { shards, type Task } from "../../src/exec/executor.ts";
import { WorkerError } from "../../src/errors.ts";
import { openExecutor } from "../../src/workers/index.ts";
import { gramBatches, matmul, matmulNt } from "../../src/kernels/products.ts";
import { GramCollector } from "../../src/prune/gram.ts";
import { problemFromGram } from "../../src/prune/problem.ts";
import { METHODS } from "../../src/prune/methods/index.ts";
import { parsePattern } from "../../src/prune/pattern.ts";
import { randomLlama, BUILTIN_CONFIG } from "../../src/model/builtin.ts";
import { createRunState, forward } from "../../src/model/forward.ts";
import { gemvHelper } from "../../src/generate/gemv.ts";
import { LINEAR_OPS, type LinearWeight } from "../../src/model/types.ts";
import { denseLinear, packModel, place2of4, placeQuantized } from "../../src/model/linear.ts";
import { randomQuantized } from "../../src/quant/codes.ts";
import { gridOf, parseScheme } from "../../src/quant/scheme.ts";
import { mulberry32 } from "../../src/util/rng.ts";
import { pack2of4 } from "../../src/sparse/nm.ts";
import { magnitude2of4 } from "../../bench/model.ts";
import { CLI, STORIES_HF, TINY_TRAIN, TINY_VALID } from "../helpers/shared.ts";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-par-"));
const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 300_000 });

test("prune through the CLI with 1, 2 and 3 threads writes byte-identical models (sparsegpt 0.5; fista + correction 2:4)", () => {
  const dir = tmp();
  for (const [method, sparsity, nsamples] of [["sparsegpt", "0.5", "16"], ["fista", "2:4", "8"]]) {
    const files = ["1", "2", "3"].map((t) => {
      const out = path.join(dir, `${method}-${t}`);
      const r = cli(["prune", STORIES_HF, "--method", method, "--sparsity", sparsity, "--calib", TINY_TRAIN, "--nsamples", nsamples, "--seqlen", "256", "--out", out, "--threads", t, "--json"]);
      assert.equal(r.status, 0, r.stderr);
      return fs.readFileSync(path.join(out, "model.safetensors"));
    });
    assert.ok(files[0].equals(files[1]), `${method}: 1 vs 2 threads`);
    assert.ok(files[0].equals(files[2]), `${method}: 1 vs 3 threads`);
  }
});

test("--schedule parallel: layers in flight on the workers, byte-identical for 1, 2 and 3 threads; a dead layer job is named", () => {
  const dir = tmp();
  const base = ["prune", STORIES_HF, "--schedule", "parallel", "--sparsity", "2:4", "--calib", TINY_TRAIN, "--nsamples", "8", "--seqlen", "128", "--json"];
  for (const method of ["sparsegpt", "fista"]) {
    const files = ["1", "2", "3"].map((t) => {
      const out = path.join(dir, `${method}-${t}`);
      const r = cli([...base, "--method", method, "--out", out, "--threads", t]);
      assert.equal(r.status, 0, r.stderr);
      return fs.readFileSync(path.join(out, "model.safetensors"));
    });
    assert.ok(files[0].equals(files[1]), `${method}: 1 vs 2 threads`);
    assert.ok(files[0].equals(files[2]), `${method}: 1 vs 3 threads`);
  }
  // the jobs really run on the workers: a job whose thread exits fails the command, naming the layer
  const out = path.join(dir, "crash");
  const r = spawnSync(process.execPath, [CLI, ...base, "--method", "wanda", "--out", out, "--threads", "2"], {
    encoding: "utf8", timeout: 300_000, env: { ...process.env, WASPRUNE_TEST_WORKER_EXIT: "pruneLayer" },
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /error: layer [1-4] \(job\): worker thread exited \(code 70\)/);
  assert.ok(!fs.existsSync(path.join(out, "model.safetensors")));
});

test("eval through the CLI: the same perplexity with 1 and 2 threads; --threads is validated", () => {
  const run = (t: string) => {
    const r = cli(["eval", STORIES_HF, "--text", TINY_VALID, "--paragraphs", "40", "--threads", t, "--json"]);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  const one = run("1");
  const two = run("2");
  assert.equal(one.meanNll, two.meanNll);
  assert.equal(one.tokens, two.tokens);
  const bad = cli(["eval", STORIES_HF, "--text", TINY_VALID, "--threads", "0"]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--threads 0: expected an integer in \[1, 256\]/);
});

test("row-split invariance: products and Gram sums on 2 and 3 threads equal the single-thread kernels bit for bit", async () => {
  const wasm = createWasm(64 << 20);
  const a = wasm.arena;
  // odd sizes: row blocks, 4-row tiles and the 1-row / scalar edges all occur
  const [rows, cols, tokens] = [203, 77, 301];
  const { W0, X } = syntheticOperator(wasm, { rows, cols, tokens, seed: 3, correlated: true });
  const H = a.alloc(cols * cols);
  const results: Float32Array[][] = [];
  const mirror = wasm.exports.f32_sym_mirror;
  for (const threads of [1, 2, 3]) {
    const exec = openExecutor(wasm, threads);
    try {
      const G = a.alloc(rows * cols);
      const Gnt = a.alloc(rows * cols);
      const Hs = a.zeros(cols * cols);
      const C = a.zeros(cols * cols);
      const Hd = a.zeros(cols * cols);
      const half = Math.floor(tokens / 2);
      const xd = X + 4 * half * cols;
      await gramBatches(exec, [{ xp: X, xd, T: half }, { xp: X + 4 * cols, xd, T: tokens - half - 1 }], Hs, C, Hd, cols);
      // the upper triangles are the sums; what lies below the diagonal before the mirror is tile-dependent
      mirror(Hs, cols);
      mirror(Hd, cols);
      a.f32(H, cols * cols).set(a.f32(Hs, cols * cols));
      await matmul(exec, W0, C, G, rows, cols, cols);
      await matmulNt(exec, W0, H, Gnt, rows, cols);
      results.push([Hs, C, Hd, G, Gnt].map((p, i) => a.f32(p, i < 3 ? cols * cols : rows * cols).slice()));
    } finally {
      await exec.close();
    }
  }
  const names = ["H", "C", "H_d", "W·C", "W·Hᵀ"];
  for (const t of [1, 2]) {
    results[t].forEach((v, i) => assert.deepEqual(v, results[0][i], `${names[i]} with ${t + 1} threads`));
  }
});

test("sparsegpt's sharded OBS loop and inverse: the same bytes with 1, 2 and 3 threads (unstructured and N:M, partial last block)", async () => {
  const wasm = createWasm(64 << 20);
  const a = wasm.arena;
  // 136 columns in blocks of 32: the last block has 8; rows split at 4-row multiples with an odd remainder
  const [rows, cols, tokens] = [203, 136, 400];
  const { W0, X } = syntheticOperator(wasm, { rows, cols, tokens, seed: 5, correlated: true });
  for (let t = 0; t < tokens; t++) a.f32(X, tokens * cols)[t * cols + 7] = 0; // a dead input
  const setup = openExecutor(wasm, 1);
  const g = new GramCollector(setup, cols);
  await g.addBatches([{ xp: X, xd: X, T: tokens }]);
  const problem = await problemFromGram(setup, W0, rows, g.finish());
  for (const pat of ["0.5", "2:4", "0.7"]) {
    const outs: Buffer[] = [];
    // repeated: the row blocks of N:M run through the column blocks at their own pace (a race would show)
    for (const threads of [1, 2, 3, 3, 2]) {
      const exec = openExecutor(wasm, threads);
      try {
        const m = a.mark();
        const { W } = await METHODS.sparsegpt.prune(exec, problem, parsePattern(pat), { sparsegpt: { blockSize: 32 } });
        outs.push(Buffer.from(a.f32(W, rows * cols).slice().buffer));
        a.release(m);
      } finally {
        await exec.close();
      }
    }
    outs.forEach((o, i) => assert.ok(o.equals(outs[0]), `${pat}: run ${i}`));
  }
});

test("a worker thread that exits mid-task: the command fails naming the operator, leaves no finished model, and a rerun completes", () => {
  const dir = tmp();
  const out = path.join(dir, "crash");
  const args = ["prune", STORIES_HF, "--method", "sparsegpt", "--sparsity", "0.5", "--calib", TINY_TRAIN, "--nsamples", "8", "--seqlen", "128", "--out", out, "--threads", "2"];
  for (const [op, pattern] of [
    ["obs", /error: model\.layers\.0\.self_attn\.q_proj\.weight \(sparsegpt\): OBS loop, columns 0\.\.63: worker thread exited \(code 70\) before finishing its task/],
    ["layer", /error: layer 0: calibration forward: worker thread exited \(code 70\)/],
  ] as const) {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 300_000, env: { ...process.env, WASPRUNE_TEST_WORKER_EXIT: op } });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, pattern);
    assert.ok(!fs.existsSync(path.join(out, "model.safetensors")), "no finished model after a crash");
  }
  const ok = cli(args);
  assert.equal(ok.status, 0, ok.stderr);
  assert.ok(fs.existsSync(path.join(out, "model.safetensors")));
});

test("generation's split GEMV (main thread + a worker on a futex): the same logits bit for bit on row-major, p8 (f32/bf16), 2:4 (f16) and int8/int4 weights (int16 and int8 activations); small models decline it", async () => {
  for (const layout of ["rows", "p8 f32", "p8 bf16", "2:4 f16", "int8", "int4", "int8 a8", "int4 a8"] as const) {
    // odd row counts: the split falls on a multiple of 8 with a remainder on the worker's side
    const model = randomLlama({ ...BUILTIN_CONFIG, dim: 72, hiddenDim: 200, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 18, vocabSize: 131, maxSeqLen: 32 }, 9, createWasm(32 << 20));
    if (layout.startsWith("p8")) packModel(model, layout === "p8 f32" ? "f32" : "bf16");
    if (layout === "2:4 f16") {
      for (const lw of model.weights.layers) {
        for (const op of LINEAR_OPS) {
          const d = denseLinear(lw[op], op);
          magnitude2of4(d.data);
          lw[op] = place2of4(model.wasm.arena, pack2of4(d.data, d.shape[0]!, d.shape[1]!), "f16");
        }
      }
    }
    if (layout.startsWith("int")) {
      const rand = mulberry32(5);
      for (const lw of model.weights.layers) {
        for (const op of LINEAR_OPS) {
          const [N, K] = lw[op].shape as [number, number];
          // asymmetric; per channel (w4g128 on these widths: no group of 128 divides 72 or 200)
          lw[op] = placeQuantized(model.wasm, randomQuantized(rand, N, K, gridOf(parseScheme(layout.startsWith("int8") ? "w8" : "w4g128", true), K)), layout.endsWith("a8") ? 8 : 16);
        }
      }
    }
    const run = (gemv?: (w: LinearWeight, x: number, y: number, scratch: number, scratchBytes: number) => boolean) => model.wasm.arena.scoped(() => {
      const st = createRunState(model, 1, 16);
      if (gemv) st.gemv = gemv;
      const out: number[] = [];
      let tok = 1;
      for (let p = 0; p < 12; p++) {
        const logits = forward(model, st, [tok], p);
        out.push(...logits);
        tok = (tok * 7 + 3) % 131;
      }
      return Float32Array.from(out);
    });
    const one = run();
    const exec = openExecutor(model.wasm, 2);
    try {
      assert.equal(gemvHelper(exec, model), undefined, "a 200x72 model does not pay for the split");
      const h = gemvHelper(exec, model, 0)!;
      let split = 0;
      const two = run((w, x, y, scratch, scratchBytes) => {
        const done = h.gemv(w, x, y, scratch, scratchBytes);
        if (done) split++;
        return done;
      });
      await h.close();
      assert.ok(split > 0, `${layout}: the helper split some GEMVs`);
      assert.deepEqual(two, one, layout);
    } finally {
      await exec.close();
    }
  }
});

test("shards: contiguous, aligned, covering; weighted shards balance a triangle", () => {
  assert.deepEqual(shards(10, 3, 4), [[0, 4], [4, 8], [8, 10]]);
  assert.deepEqual(shards(3, 4, 4), [[0, 3]]);
  const tri = shards(768, 2, 4, (i) => 768 - i);
  assert.equal(tri.length, 2);
  assert.equal(tri[0][0], 0);
  assert.equal(tri[1][1], 768);
  assert.equal(tri[0][1] % 4, 0);
  assert.ok(tri[0][1] < 768 / 2, "the first block of a triangle's rows is the shorter one");
});

test("a task that fails in a worker rejects with a WorkerError naming the work", async () => {
  const wasm = createWasm(16 << 20);
  const p = openExecutor(wasm, 2);
  try {
    // a kernel precondition fails inside the worker (negative size)
    await assert.rejects(
      p.run({ op: "gemms", pack: 0, calls: [{ a: 0, sai: 1, sak: 1, b: 0, ldb: 1, c: 0, ldc: 1, M: -1, N: 1, K: 1, alpha: 1, accumulate: 0, upper: 0 }] } as Task, "layers.3.mlp.down_proj (fista)"),
      (e: unknown) => e instanceof WorkerError && /^layers\.3\.mlp\.down_proj \(fista\): worker thread failed: .*kernel assertion failed/.test((e as Error).message),
    );
    // a thread that exits (not throws) is named too
    process.env.WASPRUNE_TEST_WORKER_EXIT = "gram";
    const q = openExecutor(createWasm(16 << 20), 2);
    delete process.env.WASPRUNE_TEST_WORKER_EXIT;
    try {
      await assert.rejects(
        q.run({ op: "gram", batches: [], H: 0, C: 0, Hd: 0, cols: 0, i0: 0, i1: 0 } as Task, "layers.1.mlp.up_proj (wanda): Gram"),
        (e: unknown) => e instanceof WorkerError && /^layers\.1\.mlp\.up_proj \(wanda\): Gram: worker thread exited \(code 70\)/.test((e as Error).message),
      );
    } finally {
      await q.close();
    }
    // the pool still works afterwards
    assert.equal(await p.run({ op: "gemms", pack: 0, calls: [{ a: 0, sai: 1, sak: 1, b: 0, ldb: 1, c: 0, ldc: 1, M: 0, N: 0, K: 0, alpha: 1, accumulate: 1, upper: 0 }] } as Task, "noop"), 0);
  } finally {
    await p.close();
  }
});
