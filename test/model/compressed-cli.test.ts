/**
 * @file prune → compress → decompress through the CLI, as a user runs it, for every method × {2:4, 0.5, 0.7} on
 * the real stories260K-hf: the pruned file holds no −0.0 (pruners write +0.0), the compressed file is really
 * smaller with every operator in the format its pattern calls for (a compress that stored a pruned operator
 * dense fails here), decompress is bit-exact to the pruned model, and the compressed model evaluates and
 * generates as the pruned one does. Also: the compressed-tensors config block, key by key against what
 * compressed-tensors 0.14's own `update_config` writes (fixture), and corrupt compressed tensors refused with one
 * clear error naming the tensor.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { openCheckpoint, writeSafetensors, type TensorToWrite } from "../../src/io/safetensors.js";
import { decodeI64, encodeI64 } from "../../src/io/dtype.js";
import { countNegativeZeros } from "../../src/sparse/zero.js";
import { STORIES_HF, TINY_TRAIN, TINY_VALID } from "../helpers/shared.js";
import { okCli, runCli } from "../helpers/cli.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-compress-cli-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

const run = runCli;
const ok = okCli;

const LINEAR = /\.(q|k|v|o|gate|up|down)_proj\.weight$/;

/** name → raw bytes of every tensor of a model directory. */
function rawTensors(dir: string): Map<string, Uint8Array> {
  const ck = openCheckpoint(dir)!;
  try {
    return new Map([...ck.tensors.keys()].map((n) => [n, ck.readRaw(n)]));
  } finally {
    ck.close();
  }
}

const METHODS = ["magnitude", "wanda", "sparsegpt", "fista"] as const;
const PATTERNS = ["2:4", "0.5", "0.7"] as const;

describe("prune → compress → decompress, every method and pattern (CLI)", { concurrency: 2 }, () => {
  for (const method of METHODS) {
    for (const sparsity of PATTERNS) {
      test(`${method} ${sparsity}`, async () => {
        const base = path.join(tmp, `${method}-${sparsity.replace(":", "of")}`);
        const [p, c, d] = ["pruned", "compressed", "decompressed"].map((s) => `${base}-${s}`);
        await ok(["prune", STORIES_HF, "--method", method, "--sparsity", sparsity, "--calib", TINY_TRAIN, "--nsamples", "16", "--out", p, "--threads", "1", "--json"]);

        // the pruned file says what it is: its zeros are +0.0
        const pruned = rawTensors(p);
        for (const [name, raw] of pruned) {
          if (!LINEAR.test(name)) continue;
          const w = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
          assert.equal(countNegativeZeros(w), 0, `${name}: pruned weights must be +0.0`);
        }

        const report = JSON.parse(await ok(["compress", p, "--out", c, "--json"])) as {
          operators: { name: string; format: string; sparsity: number; denseBytes: number; bytes: number }[];
          fileBytes: number; denseFileBytes: number;
        };
        const want = sparsity === "2:4" ? "sparse-24-bitmask" : "sparse-bitmask";
        assert.equal(report.operators.length, 35);
        for (const o of report.operators) assert.equal(o.format, want, `${o.name} (${(100 * o.sparsity).toFixed(2)}% zeros) stored ${o.format}`);
        const dense = report.operators.reduce((s, o) => s + o.denseBytes, 0);
        const stored = report.operators.reduce((s, o) => s + o.bytes, 0);
        const ratio = stored / dense;
        const bound = sparsity === "2:4" ? 0.6 : sparsity === "0.5" ? 0.6 : 0.4;
        assert.ok(ratio <= bound, `linear weights take ${ratio.toFixed(3)} of their dense bytes (bound ${bound})`);
        assert.ok(report.fileBytes < report.denseFileBytes);
        console.log(`${method} ${sparsity}: linear weights ${stored} / ${dense} B = ${ratio.toFixed(3)} of dense; file ${report.fileBytes} / ${report.denseFileBytes} B`);

        // decompress restores the pruned model bit for bit
        await ok(["decompress", c, "--out", d]);
        const back = rawTensors(d);
        assert.deepEqual([...back.keys()].sort(), [...pruned.keys()].sort());
        for (const [name, raw] of pruned) assert.ok(Buffer.from(back.get(name)!).equals(Buffer.from(raw)), `decompressed ${name} differs`);

        // the compressed model runs its sparse kernels and gives the pruned model's text and perplexity
        const evalOf = async (m: string) => (JSON.parse(await ok(["eval", m, "--text", TINY_VALID, "--paragraphs", "20", "--threads", "1", "--json"])) as { perplexity: number }).perplexity;
        const [pp, pc] = [await evalOf(p), await evalOf(c)];
        assert.ok(Math.abs(pc - pp) / pp < 1e-4, `perplexity compressed ${pc} vs pruned ${pp}`);
        const gen = (m: string) => ok(["generate", m, "--prompt", "Once upon a time", "--temperature", "0", "--steps", "80", "--threads", "1"]);
        assert.equal(await gen(c), await gen(p));
      });
    }
  }
});

/**
 * `quantization_config` of a sparse-only model as compressed-tensors 0.14.0 writes it: ModelCompressor.update_config
 * (compressors/model_compressors/model_compressor.py) puts {version, quant_method, sparsity_config:
 * Sparse24BitMaskConfig/BitmaskConfig.model_dump(), transform_config: {}} under "quantization_config" (json.dump,
 * sort_keys=True); model_dump of the sparsity configs (config/sparse_24_bitmask.py, sparse_bitmask.py, base.py,
 * registry/registry.py) has format, global_sparsity, ignore, registry_requires_subclass, sparsity_structure,
 * targets. Model-specific values (sparsity, targets, ignore) are compared by type, the rest by value.
 */
const UPSTREAM: Record<string, Record<string, unknown>> = JSON.parse(fs.readFileSync(new URL("./fixtures/compressed-tensors-0.14-sparsity-configs.json", import.meta.url), "utf8"));

function sameShape(got: unknown, want: unknown, at: string): void {
  if (want && typeof want === "object" && !Array.isArray(want)) {
    assert.ok(got && typeof got === "object" && !Array.isArray(got), `${at}: expected an object`);
    assert.deepEqual(Object.keys(got as object).sort(), Object.keys(want).sort(), `${at}: keys`);
    for (const k of Object.keys(want)) sameShape((got as Record<string, unknown>)[k], (want as Record<string, unknown>)[k], `${at}.${k}`);
  } else if (Array.isArray(want)) {
    assert.ok(Array.isArray(got), `${at}: expected an array`);
  } else if (typeof want === "number" && !["version"].includes(at)) {
    assert.equal(typeof got, "number", `${at}: expected a number`);
  } else {
    assert.deepEqual(got, want, at);
  }
}

test("config.json: quantization_config key by key as compressed-tensors 0.14 writes it (no top-level format)", async () => {
  for (const [sparsity, format] of [["2:4", "sparse-24-bitmask"], ["0.7", "sparse-bitmask"]] as const) {
    const p = path.join(tmp, `cfg-${format}-pruned`);
    const c = path.join(tmp, `cfg-${format}-compressed`);
    await ok(["prune", STORIES_HF, "--method", "wanda", "--sparsity", sparsity, "--calib", TINY_TRAIN, "--nsamples", "8", "--out", p, "--threads", "1"]);
    await ok(["compress", p, "--out", c]);
    const cfg = JSON.parse(fs.readFileSync(path.join(c, "config.json"), "utf8")) as Record<string, Record<string, unknown>>;
    const q = cfg.quantization_config!;
    assert.equal("format" in q, false, "a top-level format without config_groups fails upstream's QuantizationConfig validation");
    sameShape(q, UPSTREAM[format], "quantization_config");
    const s = q.sparsity_config as { targets: string[]; ignore: string[]; global_sparsity: number };
    assert.equal(s.targets.length, 35);
    assert.deepEqual(s.ignore, ["lm_head"]);
    assert.ok(s.global_sparsity > (sparsity === "2:4" ? 0.49 : 0.69));
  }
});

describe("corrupt compressed tensors: one clear error naming the tensor", () => {
  const p = path.join(tmp, "bad-pruned");
  const good24 = path.join(tmp, "bad-good24");
  const goodBm = path.join(tmp, "bad-goodbm");
  const op = "model.layers.0.mlp.up_proj";

  /** A copy of `src` whose tensors are edited by `edit` (name → bytes), then the CLI's eval on it. */
  async function corrupt(src: string, label: string, edit: (t: Map<string, TensorToWrite>) => void): Promise<string> {
    const dir = path.join(tmp, `bad-${label}`);
    fs.cpSync(src, dir, { recursive: true });
    const ck = openCheckpoint(dir)!;
    const ts = new Map<string, TensorToWrite>();
    for (const [name, { entry }] of ck.tensors) ts.set(name, { name, dtype: entry.dtype, shape: entry.shape, data: ck.readRaw(name) });
    ck.close();
    edit(ts);
    writeSafetensors(path.join(dir, "model.safetensors"), [...ts.values()]);
    const r = await run(["eval", dir, "--text", TINY_VALID, "--paragraphs", "2", "--threads", "1"]);
    assert.notEqual(r.code, 0, `a corrupt model must not evaluate: ${label}`);
    const lines = r.err.trim().split("\n");
    assert.equal(lines.length, 1, r.err);
    assert.doesNotMatch(r.err, /\n\s+at /);
    return lines[0]!;
  }

  test("setup", async () => {
    await ok(["prune", STORIES_HF, "--method", "magnitude", "--sparsity", "2:4", "--out", p, "--threads", "1", "--nsamples", "4"]);
    await ok(["compress", p, "--out", good24]);
    const p7 = `${p}-07`;
    await ok(["prune", STORIES_HF, "--method", "magnitude", "--sparsity", "0.7", "--out", p7, "--threads", "1", "--nsamples", "4"]);
    await ok(["compress", p7, "--out", goodBm]);
  });

  test("sparse-24-bitmask: a group of 4 marking 3 values", async () => {
    const line = await corrupt(good24, "three-of-four", (t) => {
      const b = t.get(`${op}.bitmask`)!.data as Uint8Array;
      b[0] |= 0x07; // columns 0, 1, 2 of row 0
    });
    assert.match(line, new RegExp(`${op}\\.bitmask.*row 0 group 0 marks more than 2 of 4`));
  });

  test("sparse-bitmask: the bitmask marks more values than compressed holds", async () => {
    const line = await corrupt(goodBm, "count", (t) => {
      const b = t.get(`${op}.bitmask`)!.data as Uint8Array;
      const last = b.length - 1;
      b[last] = 0xff;
    });
    assert.match(line, new RegExp(`${op}\\.(compressed|row_offsets)`));
  });

  test("sparse-bitmask: row_offsets not monotone", async () => {
    const line = await corrupt(goodBm, "monotone", (t) => {
      const r = decodeI64(t.get(`${op}.row_offsets`)!.data as Uint8Array)!;
      [r[3], r[4]] = [r[4]!, r[3]!];
      t.get(`${op}.row_offsets`)!.data = encodeI64(r);
    });
    assert.match(line, new RegExp(`${op}\\.row_offsets" is not monotone`));
  });

  test("sparse-bitmask: row_offsets pointing past the values", async () => {
    const line = await corrupt(goodBm, "past", (t) => {
      const r = decodeI64(t.get(`${op}.row_offsets`)!.data as Uint8Array)!;
      r[r.length - 1] = 1e9;
      t.get(`${op}.row_offsets`)!.data = encodeI64(r);
    });
    assert.match(line, new RegExp(`${op}\\.row_offsets"\\[\\d+\\] is 1000000000, past the \\d+ values`));
  });
});
