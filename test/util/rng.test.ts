import { test } from "node:test";
import assert from "node:assert/strict";
import { fillFromTable, gaussian, gaussianPairs, mix, mulberry32, mulberry32Bits, normalQuantile, normalTable, seedFrom } from "../../src/util/rng.js";

test("mulberry32 and both Box–Muller samplers give the numbers the engine's copies gave before they were merged", () => {
  // pinned from the four former copies (src/model/builtin.ts, src/prune/problem.ts, fista.ts, spsa.ts at 946738e)
  const m = mulberry32(2024);
  assert.deepEqual([m(), m(), m()], [0.811762373894453, 0.7108214949257672, 0.6505258858669549]);
  const g = gaussian(mulberry32(2024));
  assert.deepEqual([g(), g(), g()], [-0.44536120955512615, -0.5731558945941938, -0.6118697789343858]);
  const p = gaussianPairs(2024);
  assert.deepEqual([p(), p(), p()], [-0.15738025851367754, -0.626359883146381, -0.36654330951404523]);
  const b = mulberry32Bits(2024);
  const u = mulberry32(2024);
  for (let i = 0; i < 1000; i++) assert.equal(b() / 2 ** 32, u());
});

test("seedFrom: a pure function of its parts, sensitive to each and to their order", () => {
  assert.equal(seedFrom(1, "model.layers.0.mlp.up_proj.weight", 3), seedFrom(1, "model.layers.0.mlp.up_proj.weight", 3));
  const seeds = new Set([seedFrom(1, "a", 0), seedFrom(2, "a", 0), seedFrom(1, "b", 0), seedFrom(1, "a", 1), seedFrom(1, 0, "a"), seedFrom(1, "a"), seedFrom(1, "ab")]);
  assert.equal(seeds.size, 7);
  assert.equal(seedFrom(5, 7), mix(5, 7));
  for (const s of seeds) assert.ok(Number.isInteger(s) && s >= 0 && s < 2 ** 32, `seed ${s} is a uint32`);
});

test("normalQuantile (AS 241) and the 16-bit normal table", () => {
  const known: [number, number][] = [[0.5, 0], [0.975, 1.959963984540054], [0.999, 3.090232306167813], [1e-5, -4.264890793922825], [0.1, -1.2815515655446004]];
  for (const [p, z] of known) assert.ok(Math.abs(normalQuantile(p) - z) < 1e-14, `Φ⁻¹(${p}) = ${normalQuantile(p)}, want ${z}`);
  assert.throws(() => normalQuantile(1e-12), RangeError);
  const t = normalTable();
  assert.equal(t.length, 65536);
  let sum = 0;
  let sq = 0;
  for (let k = 0; k < 65536; k++) {
    assert.equal(t[k], -t[65535 - k]!);
    if (k) assert.ok(t[k]! > t[k - 1]!, "increasing");
    sum += t[k]!;
    sq += t[k]! * t[k]!;
  }
  assert.ok(Math.abs(sum) < 1e-9, `sum ${sum}`);
  assert.ok(Math.abs(sq / 65536 - 1) < 1e-12, `variance ${sq / 65536}`);
  assert.ok(t[32768]! > 0 && t[32768]! < 1e-4 && Math.abs(t[0]! + 4.3249) < 1e-3, "no zero; ends at ±4.32");
});

test("fillFromTable: the 16-bit halves of two XORed mulberry32 streams index the table; any [start, end)", () => {
  const table = new Float32Array(65536).map((_, k) => k);
  const out = new Float32Array(101);
  fillFromTable(out, 0, 101, 11, 22, table);
  const a = mulberry32Bits(11);
  const b = mulberry32Bits(22);
  for (let i = 0; i < 101; i += 2) {
    const w = (a() ^ b()) >>> 0;
    assert.equal(out[i], w & 0xffff);
    if (i + 1 < 101) assert.equal(out[i + 1], w >>> 16);
  }
  const part = new Float32Array(101).fill(-1);
  fillFromTable(part, 10, 21, 11, 22, table);
  assert.deepEqual(Array.from(part.subarray(10, 21)), Array.from(out.subarray(0, 11)), "a window starts its own stream");
  assert.ok(part[9] === -1 && part[21] === -1, "nothing outside [start, end) is written");
  // samples of N(0,1) through the normal table: mean ~0, variance ~1
  const n = 1 << 18;
  const z = new Float32Array(n);
  fillFromTable(z, 0, n, 1, 2, Float32Array.from(normalTable()));
  const mean = z.reduce((s, x) => s + x, 0) / n;
  const varc = z.reduce((s, x) => s + (x - mean) ** 2, 0) / n;
  assert.ok(Math.abs(mean) < 0.01 && Math.abs(varc - 1) < 0.01, `mean ${mean}, variance ${varc}`);
  assert.throws(() => fillFromTable(z, 0, 2, 1, 2, new Float32Array(10)), /not 65536/);
});
