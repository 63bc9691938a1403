/**
 * @file compressed-tensors' pack-quantized layout and config (src/quant/compressed-tensors.ts) against its source
 * (neuralmagic/compressed-tensors 0.12.2): pack_to_int32's own docstring example and layout, the zero points packed
 * along the rows, `quantization_config` key by key (fixture: QuantizationConfig.model_dump of the W4A16 preset's
 * weights args as update_config writes it, with a channel group for the operators a group size does not divide and
 * the 2:4 `sparsity_config`), the scheme grammar, and every malformed tensor refused with one error naming it.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { FORMAT_INT, FORMAT_NAIVE, FORMAT_PACK, checkOperator, decodeOperator, encodeOperator, gridForShape, gridsFromConfig, packCols, packRows, quantizationConfig, readOperatorParts, schemesFromConfig, unpackCols, unpackRows, type RawTensor } from "../../src/quant/compressed-tensors.js";
import { codesOf, dequantize, reorderRows, type QuantizedWeight } from "../../src/quant/codes.js";
import { gridOf, parseScheme, qrange, type Grid } from "../../src/quant/scheme.js";
import { FormatError, UsageError, WaspruneError } from "../../src/errors.js";
import { mulberry32 } from "../helpers/random.js";

const FIXTURE = JSON.parse(fs.readFileSync(new URL("./fixtures/quantization_config.w4g64-2of4.json", import.meta.url), "utf8")) as Record<string, unknown>;

/** A random quantized weight on `grid` (codes over the whole range, zero points too when asymmetric). */
function randomQuant(N: number, K: number, grid: Grid, seed: number): QuantizedWeight {
  const r = mulberry32(seed);
  const [qmin, qmax] = qrange(grid.bits);
  const codes = Int8Array.from({ length: N * K }, () => qmin + Math.floor(r() * (qmax - qmin + 1)));
  const scale = Float32Array.from({ length: N * grid.ng }, () => Math.fround(0.01 + r()));
  const zero = grid.symmetric ? undefined : Int8Array.from({ length: N * grid.ng }, () => qmin + Math.floor(r() * (qmax - qmin + 1)));
  return { N, K, grid, codes, scale, ...(zero ? { zero } : {}) };
}

const source = (tensors: RawTensor[]) => {
  const m = new Map(tensors.map((t) => [t.name, t]));
  return { has: (n: string) => m.has(n), header: (n: string) => m.get(n), bytes: (n: string) => m.get(n)!.data };
};

describe("pack_to_int32", () => {
  test("the docstring's example: int8 [1, 2] packs to 33409", () => {
    assert.deepEqual(Array.from(packRows(Int8Array.from([1, 2]), 1, 2, 8)), [33409]);
  });

  test("int4: code c of a row, shifted by 8, in nibble c mod 8 of word c / 8; padded words zero-filled", () => {
    const codes = Int8Array.from([-8, -7, 0, 7, 1, 2, 3, 4, -1]);
    const w = packRows(codes, 1, 9, 4);
    assert.equal(w.length, 2);
    const nib = [0, 1, 8, 15, 9, 10, 11, 12];
    assert.equal(w[0]! >>> 0, nib.reduce((a, v, i) => a + v * 2 ** (4 * i), 0));
    assert.equal(w[1], 7); // −1 + 8, the rest padding
    assert.deepEqual(Array.from(unpackRows(w, 1, 9, 4)), Array.from(codes));
  });

  test("zero points pack along the rows (packed_dim 0); every layout round-trips", () => {
    const z = Int8Array.from({ length: 10 * 3 }, (_, i) => (i % 16) - 8);
    const w = packCols(z, 10, 3, 4);
    assert.equal(w.length, 2 * 3);
    assert.equal((w[0 * 3 + 1]! >>> (4 * 2)) & 15, z[2 * 3 + 1]! + 8); // row 2, group 1
    assert.equal((w[1 * 3 + 2]! >>> (4 * 1)) & 15, z[9 * 3 + 2]! + 8); // row 9, group 2
    assert.deepEqual(Array.from(unpackCols(w, 10, 3, 4)), Array.from(z));
    for (const bits of [4, 8]) {
      const q = randomQuant(7, 40, { strategy: "group", group: 8, ng: 5, bits: bits as 4 | 8, symmetric: false }, bits);
      assert.deepEqual(Array.from(unpackRows(packRows(q.codes, 7, 40, bits), 7, 40, bits)), Array.from(q.codes));
      assert.deepEqual(Array.from(unpackCols(packCols(q.zero!, 7, 5, bits), 7, 5, bits)), Array.from(q.zero!));
    }
  });
});

describe("operators", () => {
  const grids: Grid[] = [gridOf(parseScheme("w4g32"), 64), gridOf(parseScheme("w4g64", true), 64), gridOf(parseScheme("w8"), 64), gridOf(parseScheme("w8g32", true), 64)];
  test("encode → decode is exact (codes, scales, zero points), names and shapes as upstream writes them", () => {
    for (const [i, grid] of grids.entries()) {
      const q = randomQuant(9, 64, grid, 10 + i);
      const t = encodeOperator("model.layers.0.mlp.up_proj", q);
      const byName = Object.fromEntries(t.map((x) => [x.name.replace(/^.*\./, ""), x]));
      const pf = 32 / grid.bits;
      assert.deepEqual(byName.weight_packed!.shape, [9, 64 / pf]);
      assert.equal(byName.weight_packed!.dtype, "I32");
      assert.deepEqual(byName.weight_scale!.shape, [9, grid.ng]);
      assert.deepEqual(byName.weight_shape!.shape, [2]);
      assert.equal(byName.weight_shape!.dtype, "I64");
      assert.equal(!!byName.weight_zero_point, !grid.symmetric);
      if (!grid.symmetric) assert.deepEqual(byName.weight_zero_point!.shape, [Math.ceil(9 / pf), grid.ng]);
      const d = decodeOperator(source(t), "f", "model.layers.0.mlp.up_proj", 9, 64, grid);
      assert.deepEqual(d.codes, q.codes);
      assert.deepEqual(d.scale, q.scale);
      assert.deepEqual(d.zero, q.zero);
    }
  });

  test("int-quantized (upstream's format for W8A8 / W4A8): an I8 weight of the signed codes, scales, unpacked I8 zero points, no weight_shape; exact both ways; the kernels' words are pack-quantized's", () => {
    for (const [i, grid] of grids.entries()) {
      const q = randomQuant(9, 64, grid, 20 + i);
      const t = encodeOperator("model.layers.0.mlp.up_proj", q, FORMAT_INT);
      const byName = Object.fromEntries(t.map((x) => [x.name.replace(/^.*\./, ""), x]));
      assert.deepEqual(Object.keys(byName).sort(), grid.symmetric ? ["weight", "weight_scale"] : ["weight", "weight_scale", "weight_zero_point"]);
      assert.equal(byName.weight!.dtype, "I8");
      assert.deepEqual(byName.weight!.shape, [9, 64]);
      // the bytes are the signed codes themselves (int4 too: −8..7 in an int8 each, upstream's quantize() output)
      assert.deepEqual(Array.from(new Int8Array(byName.weight!.data.slice().buffer)), Array.from(q.codes));
      assert.deepEqual(byName.weight_scale!.shape, [9, grid.ng]);
      if (!grid.symmetric) {
        assert.equal(byName.weight_zero_point!.dtype, "I8");
        assert.deepEqual(byName.weight_zero_point!.shape, [9, grid.ng]);
        assert.deepEqual(Array.from(new Int8Array(byName.weight_zero_point!.data.slice().buffer)), Array.from(q.zero!));
      }
      for (const format of [FORMAT_INT, FORMAT_NAIVE] as const) {
        const d = decodeOperator(source(t), "f", "model.layers.0.mlp.up_proj", 9, 64, grid, format);
        assert.deepEqual(d.codes, q.codes);
        assert.deepEqual(d.scale, q.scale);
        assert.deepEqual(d.zero, q.zero);
      }
      const p = readOperatorParts(source(t), "f", "model.layers.0.mlp.up_proj", 9, 64, grid, FORMAT_INT);
      const packed = readOperatorParts(source(encodeOperator("model.layers.0.mlp.up_proj", q)), "f", "model.layers.0.mlp.up_proj", 9, 64, grid, FORMAT_PACK);
      assert.deepEqual(p.packed, packed.packed);
      assert.deepEqual(p.zero, packed.zero);
      // upstream's own tests store the zero points I32: read as the same values
      if (!grid.symmetric) {
        const z32 = t.map((x) => (x.name.endsWith("weight_zero_point") ? { ...x, dtype: "I32" as const, data: new Uint8Array(Int32Array.from(q.zero!).buffer) } : x));
        assert.deepEqual(decodeOperator(source(z32), "f", "model.layers.0.mlp.up_proj", 9, 64, grid, FORMAT_INT).zero, q.zero);
      }
    }
  });

  test("act-order groups (weight_g_idx, upstream's actorder group): the groups relabelled and the scales moved with them give the same weights; without g_idx they would not", () => {
    for (const [i, grid] of grids.filter((g) => g.ng > 1).entries()) {
      const q = randomQuant(6, 64, grid, 40 + i);
      const sigma = Array.from({ length: grid.ng }, (_, g) => grid.ng - 1 - g); // group g is stored as σ(g)
      const moved = (a: Float32Array | Int8Array) => {
        const out = a.slice();
        for (let r = 0; r < 6; r++) for (let g = 0; g < grid.ng; g++) out[r * grid.ng + sigma[g]!] = a[r * grid.ng + g]!;
        return out;
      };
      const q2 = { ...q, scale: moved(q.scale) as Float32Array, ...(q.zero ? { zero: moved(q.zero) as Int8Array } : {}) };
      const gIdx = Int32Array.from({ length: 64 }, (_, j) => sigma[Math.floor(j / grid.group)]!);
      for (const format of [FORMAT_PACK, FORMAT_INT] as const) {
        const t = [...encodeOperator("op", q2, format), { name: "op.weight_g_idx", dtype: "I32" as const, shape: [64], data: new Uint8Array(gIdx.buffer) }];
        const d = decodeOperator(source(t), "f", "op", 6, 64, grid, format);
        assert.deepEqual(d.gIdx, gIdx);
        assert.deepEqual(dequantize(d), dequantize(q), `${format} ${grid.bits} ${grid.group}`);
        assert.notDeepEqual(dequantize({ ...d, gIdx: undefined }), dequantize(q));
        assert.throws(() => readOperatorParts(source(t), "f", "op", 6, 64, grid, format), /act-order groups do not go on the integer kernels/);
        const bad = t.map((x) => (x.name === "op.weight_g_idx" ? { ...x, data: new Uint8Array(Int32Array.from(gIdx, (v, j) => (j === 9 ? grid.ng : v)).buffer) } : x));
        assert.throws(() => decodeOperator(source(bad), "m.safetensors", "op", 6, 64, grid, format), new RegExp(`m\\.safetensors: "op\\.weight_g_idx" \\[9\\] is ${grid.ng}, expected a scale group 0\\.\\.${grid.ng - 1}`));
        const short = t.map((x) => (x.name === "op.weight_g_idx" ? { ...x, shape: [32], data: x.data.subarray(0, 128) } : x));
        assert.throws(() => checkOperator(source(short), "m.safetensors", "op", 6, 64, grid, format), /"op\.weight_g_idx" has shape \[32\], expected \[64\]/);
      }
    }
  });

  test("codesOf recovers the codes of dequantized weights exactly, and refuses weights off the grid", () => {
    const grid = gridOf(parseScheme("w4g32", true), 64);
    const q = randomQuant(5, 64, grid, 3);
    const w = dequantize(q);
    const back = codesOf(w, 5, 64, grid, q.scale, Float32Array.from(q.zero!), "op");
    assert.deepEqual(back.codes, q.codes);
    w[7] = Math.fround(w[7]! + q.scale[0]! / 3);
    assert.throws(() => codesOf(w, 5, 64, grid, q.scale, Float32Array.from(q.zero!), "model.x"), (e: Error) => e instanceof WaspruneError && /model\.x: weight \[0, 7\]/.test(e.message));
  });

  test("reorderRows moves codes, scales and zero points together", () => {
    const grid = gridOf(parseScheme("w4g32", true), 64);
    const q = randomQuant(4, 64, grid, 4);
    const r = reorderRows(q, [2, 0, 3, 1]);
    const dq = dequantize(q);
    const dr = dequantize(r);
    assert.deepEqual(dr.subarray(0, 64), dq.subarray(128, 192));
    assert.deepEqual(dr.subarray(192, 256), dq.subarray(64, 128));
  });
});

describe("bad input: one clear error naming the tensor", () => {
  const op = "model.layers.1.self_attn.q_proj";
  const grid = gridOf(parseScheme("w4g32"), 64);
  const good = () => encodeOperator(op, randomQuant(8, 64, grid, 7));
  const edit = (name: string, f: (t: RawTensor) => RawTensor) => good().map((t) => (t.name === `${op}.${name}` ? f(t) : t));
  const refuses = (tensors: RawTensor[], re: RegExp, g: Grid = grid) =>
    assert.throws(() => decodeOperator(source(tensors), "model.safetensors", op, 8, 64, g), (e: Error) => e instanceof FormatError && re.test(e.message) && e.message.startsWith("model.safetensors: "), re.source);

  test("wrong packed length", () => {
    refuses(edit("weight_packed", (t) => ({ ...t, shape: [8, 7], data: t.data.subarray(0, 8 * 7 * 4) })), /"model\.layers\.1\.self_attn\.q_proj\.weight_packed" has shape \[8,7\], expected \[8,8\]/);
  });
  test("wrong scale count", () => {
    refuses(edit("weight_scale", (t) => ({ ...t, shape: [8, 3], data: new Uint8Array(8 * 3 * 4) })), /q_proj\.weight_scale" has shape \[8,3\], expected \[8,2\]/);
  });
  test("group size disagreeing with the shape", () => {
    const g48: Grid = { ...grid, group: 48, ng: 2 };
    refuses(good(), /q_proj": group size 48 does not divide its 64 inputs/, g48);
    assert.throws(() => gridForShape({ strategy: "group", group: 48, ng: 0, bits: 4, symmetric: true }, 64, "config.json", op), /config\.json: "model\.layers\.1\.self_attn\.q_proj": group size 48 does not divide its 64 inputs/);
  });
  test("weight_shape disagreeing with the operator", () => {
    assert.throws(() => decodeOperator(source(good()), "m.safetensors", op, 16, 64, grid), /m\.safetensors: "model\.layers\.1\.self_attn\.q_proj\.weight_shape" is \[8,64\], expected \[16, 64\]/);
  });
  test("zero points: a symmetric scheme's must be 0, an asymmetric one's padding rows must be empty", () => {
    const zp: RawTensor = { name: `${op}.weight_zero_point`, dtype: "I8", shape: [8, 2], data: Uint8Array.from({ length: 16 }, (_, i) => (i === 5 ? 3 : 0)) };
    refuses([...good(), zp], /q_proj\.weight_zero_point" \[5\] is 3: a symmetric scheme's zero point is 0/);
    const ga = gridOf(parseScheme("w4g32", true), 64);
    const asym = encodeOperator(op, randomQuant(5, 64, { ...ga, symmetric: false }, 8));
    const padded = asym.map((t) => (t.name.endsWith("weight_zero_point") ? { ...t, data: Uint8Array.from(t.data, (b, i) => (i === 3 ? b | 0x80 : b)) } : t));
    assert.throws(() => decodeOperator(source(padded), "m.safetensors", op, 5, 64, { ...ga, symmetric: false }), /q_proj\.weight_zero_point" has a non-zero padding entry past row 5/);
  });
  test("a scale that is not positive", () => {
    refuses(edit("weight_scale", (t) => ({ ...t, data: new Uint8Array(t.data.length) })), /q_proj\.weight_scale" \[0, 0\] is 0, expected a positive finite scale/);
  });
  test("unknown scheme names and unsupported config groups", () => {
    for (const s of ["w3", "w4", "w4g48", "int4", "w8g256", "w4g4"]) assert.throws(() => parseScheme(s), (e: Error) => e instanceof UsageError && e.message.includes(`"${s}"`), s);
    const cfg = (weights: Record<string, unknown>, format = "pack-quantized") => ({ quantization_config: { quant_method: "compressed-tensors", config_groups: { group_0: { targets: ["Linear"], format, weights } } } });
    assert.throws(() => gridsFromConfig(cfg({ num_bits: 4, type: "float", strategy: "group", group_size: 32 }), "config.json"), /config\.json: quantization_config\.config_groups\.group_0\.weights: float 4-bit is not supported/);
    assert.throws(() => gridsFromConfig(cfg({ num_bits: 4, type: "int", strategy: "group", group_size: 32 }, "marlin-24"), "config.json"), /group_0: format "marlin-24" is not supported/);
    // actorder "group" and its alias "dynamic" (operators with weight_g_idx) are read
    for (const actorder of ["group", "dynamic", "weight", "static", null]) assert.equal(gridsFromConfig(cfg({ num_bits: 4, type: "int", strategy: "group", group_size: 32, actorder }), "config.json")("model.layers.0.mlp.up_proj")!.group, 32);
    for (const f of [FORMAT_INT, FORMAT_NAIVE]) assert.equal(schemesFromConfig(cfg({ num_bits: 8, type: "int", strategy: "channel" }, f), "config.json")("model.layers.0.mlp.up_proj")!.format, f);
    assert.throws(() => gridsFromConfig(cfg({ num_bits: 4, type: "int", strategy: "tensor" }), "config.json"), /strategy "tensor": expected group or channel/);
  });
  test("int-quantized: a code or a zero point outside the scheme's range, a weight of the wrong shape or dtype", () => {
    const ga = gridOf(parseScheme("w4g32", true), 64);
    const q = randomQuant(8, 64, ga, 9);
    const tensors = encodeOperator(op, q, FORMAT_INT);
    const editInt = (name: string, f: (t: RawTensor) => RawTensor) => tensors.map((t) => (t.name === `${op}.${name}` ? f(t) : t));
    const refusesInt = (ts: RawTensor[], re: RegExp) =>
      assert.throws(() => decodeOperator(source(ts), "model.safetensors", op, 8, 64, ga, FORMAT_INT), (e: Error) => e instanceof FormatError && re.test(e.message) && e.message.startsWith("model.safetensors: "), re.source);
    refusesInt(editInt("weight", (t) => ({ ...t, data: Uint8Array.from(t.data, (b, i) => (i === 64 + 5 ? 8 : b)) })), /"model\.layers\.1\.self_attn\.q_proj\.weight" \[1, 5\] is 8, outside int4's range -8\.\.7/);
    refusesInt(editInt("weight_zero_point", (t) => ({ ...t, dtype: "I32", data: new Uint8Array(Int32Array.from({ length: 16 }, (_, i) => (i === 3 ? 9 : 0)).buffer) })), /q_proj\.weight_zero_point" \[1, 1\] is 9, outside int4's range -8\.\.7/);
    refusesInt(editInt("weight", (t) => ({ ...t, shape: [8, 32], data: t.data.subarray(0, 256) })), /q_proj\.weight" has shape \[8,32\], expected \[8,64\]/);
    refusesInt(editInt("weight", (t) => ({ ...t, dtype: "U8" })), /q_proj\.weight" is U8, expected I8/);
    refusesInt(tensors.filter((t) => !t.name.endsWith("weight_scale")), /q_proj\.weight_scale" is missing \(an int-quantized operator needs it\)/);
    refusesInt(editInt("weight_scale", (t) => ({ ...t, data: new Uint8Array(t.data.length) })), /q_proj\.weight_scale" \[0, 0\] is 0, expected a positive finite scale/);
  });
  test("checkOperator alone (headers) finds the same shape errors", () => {
    assert.throws(() => checkOperator(source(edit("weight_packed", (t) => ({ ...t, dtype: "I64" }))), "f", op, 8, 64, grid), /weight_packed" is I64, expected I32/);
  });
});

describe("quantization_config", () => {
  test("key by key as compressed-tensors' update_config writes it (fixture)", () => {
    const grids = new Map<string, Grid>([
      ["model.layers.0.self_attn.q_proj", gridOf(parseScheme("w4g64"), 64)],
      ["model.layers.0.mlp.gate_proj", gridOf(parseScheme("w4g64"), 64)],
      ["model.layers.0.mlp.down_proj", gridOf(parseScheme("w4g64"), 172)],
    ]);
    const got = quantizationConfig({ grids, ignore: ["lm_head"], sparsity: { structure: "2:4", globalSparsity: 0.5, targets: ["Linear"] } });
    assert.deepEqual(Object.keys(got), Object.keys(FIXTURE));
    for (const k of Object.keys(FIXTURE)) assert.deepEqual(got[k], FIXTURE[k], k);
    // and read back: every operator's grid from the config
    const gridOfOp = gridsFromConfig({ quantization_config: got }, "config.json");
    assert.equal(gridOfOp("model.layers.3.mlp.down_proj")!.strategy, "channel");
    assert.equal(gridOfOp("model.layers.3.self_attn.q_proj")!.group, 64);
    assert.equal(gridOfOp("lm_head"), undefined);
  });
  test("one grid for every operator targets Linear; no sparsity: an empty sparsity_config", () => {
    const got = quantizationConfig({ grids: new Map([["model.layers.0.mlp.up_proj", gridOf(parseScheme("w8"), 64)]]), ignore: ["lm_head"] });
    const g = (got.config_groups as Record<string, Record<string, unknown>>).group_0!;
    assert.deepEqual(g.targets, ["Linear"]);
    assert.deepEqual(g.weights, { ...(FIXTURE.config_groups as Record<string, Record<string, unknown>>).group_1!.weights as object, num_bits: 8 });
    assert.deepEqual(got.sparsity_config, {});
    // act-order with static groups: actorder "weight" on group strategies only (upstream refuses it elsewhere)
    const ao = quantizationConfig({ grids: new Map([["model.layers.0.mlp.up_proj", gridOf(parseScheme("w4g32"), 64)], ["model.layers.0.mlp.down_proj", gridOf(parseScheme("w4g32"), 172)]]), ignore: ["lm_head"], actOrder: true });
    const groups = Object.values(ao.config_groups as Record<string, { weights: { strategy: string; actorder: unknown } }>);
    assert.deepEqual(groups.map((x) => [x.weights.strategy, x.weights.actorder]), [["group", "weight"], ["channel", null]]);
  });
  test("int8 activations declared (W4A8 / W8A8): int-quantized, as upstream's format inference gives it, read back with the activations", () => {
    const got = quantizationConfig({ grids: new Map([["model.layers.0.mlp.up_proj", gridOf(parseScheme("w8"), 64)]]), ignore: ["lm_head"], activations: "int8" });
    const g = (got.config_groups as Record<string, Record<string, unknown>>).group_0!;
    assert.equal(g.format, "int-quantized");
    assert.equal(got.format, "int-quantized");
    assert.deepEqual(schemesFromConfig({ quantization_config: got }, "config.json")("model.layers.5.mlp.up_proj"), { grid: { strategy: "channel", group: 0, ng: 0, bits: 8, symmetric: true }, activationBits: 8, format: "int-quantized" });
    const w16 = quantizationConfig({ grids: new Map([["model.layers.0.mlp.up_proj", gridOf(parseScheme("w8"), 64)]]), ignore: ["lm_head"] });
    assert.equal(w16.format, "pack-quantized");
  });
});
