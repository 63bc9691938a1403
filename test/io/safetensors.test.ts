import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import fc from "fast-check";
import { FormatError } from "../../src/errors.js";
import { openSafetensors, openCheckpoint, writeSafetensors, type SafetensorsFile } from "../../src/io/safetensors.js";
import { DTYPE_SIZE, f32ToF16Bits, f16BitsToF32, f32ToBf16Bits, bf16BitsToF32, decodeI64, encodeI64, isFloatDType } from "../../src/io/dtype.js";

const HF = "/work/shared/models/stories260K-hf/model.safetensors";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-st-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

/** A file: u64 header length, header JSON (as given), data bytes. */
function rawFile(name: string, header: string | object, data: Uint8Array = new Uint8Array(0), lenOverride?: bigint): string {
  const h = Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(h.length));
  const p = path.join(tmp, name);
  fs.writeFileSync(p, Buffer.concat([len, h, data]));
  return p;
}

function expectFormat(p: string, re: RegExp): void {
  assert.throws(() => openSafetensors(p).close(), (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  });
}

test("reads the real stories260K-hf checkpoint", () => {
  const st = openSafetensors(HF);
  try {
    assert.equal(st.header.size, 1 + 5 * 9 + 1);
    assert.deepEqual(st.metadata, { format: "pt" });
    const e = st.header.get("model.embed_tokens.weight")!;
    assert.deepEqual(e.shape, [512, 64]);
    const dst = new Float32Array(512 * 64);
    st.readF32Into("model.embed_tokens.weight", dst);
    const raw = st.readRaw("model.embed_tokens.weight");
    assert.deepEqual(new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4), dst);
    // the same bytes as in the file
    const whole = fs.readFileSync(HF);
    assert.deepEqual(Buffer.from(raw), whole.subarray(st.dataStart + e.begin, st.dataStart + e.end));
  } finally {
    st.close();
  }
});

test("reads into a shared (arena-like) buffer", () => {
  const st = openSafetensors(HF);
  const sab = new Float32Array(new SharedArrayBuffer(64 * 4 + 64), 16, 64);
  st.readF32Into("model.norm.weight", sab);
  const ref = new Float32Array(64);
  st.readF32Into("model.norm.weight", ref);
  assert.deepEqual(Array.from(sab), Array.from(ref));
  st.close();
});

test("writer round-trips F32/F16/BF16 with metadata, sorted and aligned", () => {
  const a = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 100);
  const b = Float32Array.from([1, -2.5, 65504, 1e-8, 0, -0, Infinity]);
  const p = path.join(tmp, "w.safetensors");
  writeSafetensors(
    p,
    [
      { name: "z.f32", dtype: "F32", shape: [10, 100], data: a },
      { name: "a.f16", dtype: "F16", shape: [1000], data: a },
      { name: "m.bf16", dtype: "BF16", shape: [7], data: b },
      { name: "empty", dtype: "F32", shape: [0, 3], data: new Float32Array(0) },
    ],
    { format: "pt", note: "x" },
  );
  assert.ok(!fs.readdirSync(tmp).some((f) => f.includes(".tmp-")));
  const buf = fs.readFileSync(p);
  const hlen = Number(buf.readBigUInt64LE(0));
  assert.equal(hlen % 8, 0);
  // safetensors' own order: by descending dtype (F32, BF16, F16), then name, so every tensor is aligned
  assert.deepEqual(Object.keys(JSON.parse(buf.subarray(8, 8 + hlen).toString())), ["__metadata__", "empty", "z.f32", "m.bf16", "a.f16"]);
  const st = openSafetensors(p);
  assert.deepEqual(st.metadata, { format: "pt", note: "x" });
  const out = new Float32Array(1000);
  st.readF32Into("z.f32", out);
  assert.deepEqual(out, a);
  st.readF32Into("a.f16", out);
  for (let i = 0; i < 1000; i++) assert.equal(out[i], f16BitsToF32(f32ToF16Bits(a[i]!)));
  const o7 = new Float32Array(7);
  st.readF32Into("m.bf16", o7);
  assert.deepEqual(Array.from(o7), Array.from(b).map((x) => bf16BitsToF32(f32ToBf16Bits(x))));
  st.close();
});

test("raw dtypes: validated like floats, read as bytes, written from encoded bytes", () => {
  const p = path.join(tmp, "raw.safetensors");
  const mask = Uint8Array.of(0b0101, 0b1010, 0xff);
  const shape = encodeI64([4096, -3]);
  const f64 = new Uint8Array(Float64Array.of(Math.PI, -1).buffer);
  writeSafetensors(p, [
    { name: "w.bitmask", dtype: "U8", shape: [3], data: mask },
    { name: "w.shape", dtype: "I64", shape: [2, 1], data: shape },
    { name: "d", dtype: "F64", shape: [2], data: f64 },
    { name: "i", dtype: "I16", shape: [1], data: Uint8Array.of(0xff, 0x7f) },
    { name: "x", dtype: "F32", shape: [1], data: Float32Array.of(2) },
  ]);
  const st = openSafetensors(p);
  try {
    // safetensors' order (descending dtype: I64, F64, F32, I16, U8; then name): each tensor aligned to its element size
    assert.deepEqual([...st.header].map(([n, e]) => [n, e.dtype, e.shape]), [
      ["w.shape", "I64", [2, 1]], ["d", "F64", [2]], ["x", "F32", [1]], ["i", "I16", [1]], ["w.bitmask", "U8", [3]],
    ]);
    for (const e of st.header.values()) assert.equal((st.dataStart + e.begin) % DTYPE_SIZE[e.dtype], 0);
    assert.deepEqual(st.readRaw("w.bitmask"), mask);
    assert.deepEqual(decodeI64(st.readRaw("w.shape")), [4096, -3]);
    assert.deepEqual(Array.from(new Float64Array(st.readRaw("d").slice().buffer)), [Math.PI, -1]);
    assert.throws(() => st.readF32Into("w.bitmask", new Float32Array(3)), (e: unknown) =>
      e instanceof FormatError && /^raw\.safetensors: tensor "w\.bitmask" is U8, not a float dtype/.test(e.message));
  } finally {
    st.close();
  }
  // the writer refuses float32 data for a raw dtype, wrong byte counts and unknown dtypes
  assert.throws(() => writeSafetensors(p, [{ name: "m", dtype: "U8", shape: [1], data: Float32Array.of(1) }]), /"m" is U8; float32 data can only be stored as F32, F16 or BF16/);
  assert.throws(() => writeSafetensors(p, [{ name: "s", dtype: "I64", shape: [2], data: new Uint8Array(8) }]), /"s" data has 8 bytes, shape \[2\] I64 needs 16/);
  assert.throws(() => writeSafetensors(p, [{ name: "q", dtype: "Q4" as "U8", shape: [1], data: new Uint8Array(1) }]), /"q" has unknown dtype Q4/);
  assert.equal(decodeI64(encodeI64([2 ** 53])), undefined);
});

test("f16/bf16 narrowing rounds to nearest even", () => {
  assert.equal(f32ToF16Bits(1), 0x3c00);
  assert.equal(f32ToF16Bits(65504), 0x7bff);
  assert.equal(f32ToF16Bits(65520), 0x7c00); // halfway to the next: rounds to even = Inf
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie -> even (down)
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie -> even (up)
  assert.equal(f32ToF16Bits(2 ** -24), 0x0001);
  assert.equal(f32ToF16Bits(2 ** -25), 0x0000); // tie -> even (0)
  assert.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002);
  assert.equal(f32ToF16Bits(-0), 0x8000);
  assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN))));
  assert.equal(f32ToBf16Bits(1), 0x3f80);
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80); // tie -> even
  assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
  assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
  // exhaustive: every f16 value survives f16 -> f32 -> f16
  for (let h = 0; h < 65536; h++) {
    const x = f16BitsToF32(h);
    if (!Number.isNaN(x)) assert.equal(f32ToF16Bits(x), h);
  }
});

test("bad files: each a FormatError naming the file and the problem", () => {
  expectFormat(rawFile("short.safetensors", ""), /short\.safetensors: file is 8 bytes|header is not valid JSON/);
  fs.writeFileSync(path.join(tmp, "tiny.safetensors"), Buffer.from([1, 2, 3]));
  expectFormat(path.join(tmp, "tiny.safetensors"), /^tiny\.safetensors: file is 3 bytes, too short/);
  expectFormat(rawFile("huge.safetensors", "{}", undefined, 1n << 40n), /^huge\.safetensors: header length \d+ exceeds the 100000000-byte limit/);
  expectFormat(rawFile("past.safetensors", "{}", undefined, 100n), /^past\.safetensors: header length 100 exceeds the 2 bytes after the length field/);
  expectFormat(rawFile("notjson.safetensors", "{nope"), /^notjson\.safetensors: header is not valid JSON/);
  expectFormat(rawFile("arr.safetensors", "[1,2]"), /^arr\.safetensors: header is not a JSON object/);
  const utf = Buffer.concat([Buffer.alloc(8), Buffer.from([0x7b, 0xff, 0x7d])]);
  utf.writeBigUInt64LE(3n);
  fs.writeFileSync(path.join(tmp, "utf.safetensors"), utf);
  expectFormat(path.join(tmp, "utf.safetensors"), /^utf\.safetensors: header is not valid UTF-8/);
  expectFormat(
    rawFile("end.safetensors", { x: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, new Uint8Array(8)),
    /^end\.safetensors: tensor "x" claims bytes \[0,16\) but the data section has only 8 bytes$/,
  );
  // raw dtypes are accepted now (see "raw dtypes" below) but checked the same way: size x shape = span
  expectFormat(
    rawFile("i8.safetensors", { q: { dtype: "I8", shape: [4], data_offsets: [0, 8] } }, new Uint8Array(8)),
    /^i8\.safetensors: tensor "q" has 8 bytes \[0,8\) but shape \[4\] of I8 needs 4$/,
  );
  expectFormat(
    rawFile("f64.safetensors", { d: { dtype: "F64", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
    /^f64\.safetensors: tensor "d" has 8 bytes \[0,8\) but shape \[2\] of F64 needs 16$/,
  );
  expectFormat(
    rawFile("f8.safetensors", { d: { dtype: "F8_E4M3", shape: [8], data_offsets: [0, 8] } }, new Uint8Array(8)),
    /^f8\.safetensors: tensor "d" has unsupported dtype F8_E4M3 \(supported: F32, F16, BF16, F64, BOOL, U8, I8, U16, I16, U32, I32, U64, I64\)$/,
  );
  expectFormat(
    rawFile("xx.safetensors", { d: { dtype: "Q4_K", shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)),
    /^xx\.safetensors: tensor "d" has unknown dtype "Q4_K"/,
  );
  expectFormat(
    rawFile("sz.safetensors", { w: { dtype: "F16", shape: [2, 3], data_offsets: [0, 8] } }, new Uint8Array(8)),
    /^sz\.safetensors: tensor "w" has 8 bytes \[0,8\) but shape \[2,3\] of F16 needs 12$/,
  );
  expectFormat(
    rawFile("neg.safetensors", { w: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)),
    /^neg\.safetensors: tensor "w" has an invalid "shape"/,
  );
  expectFormat(
    rawFile("rev.safetensors", { w: { dtype: "F32", shape: [0], data_offsets: [4, 0] } }, new Uint8Array(4)),
    /^rev\.safetensors: tensor "w" has data_offsets \[4,0\) with begin > end/,
  );
  expectFormat(
    rawFile(
      "ovl.safetensors",
      { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [4, 12] } },
      new Uint8Array(12),
    ),
    /^ovl\.safetensors: tensors "a" \[0,8\) and "b" \[4,12\) overlap$/,
  );
  expectFormat(rawFile("meta.safetensors", { __metadata__: { a: 1 } }), /^meta\.safetensors: "__metadata__"\."a" is not a string/);
  // a valid file cut short
  const whole = fs.readFileSync(HF);
  fs.writeFileSync(path.join(tmp, "cut.safetensors"), whole.subarray(0, whole.length - 100));
  expectFormat(path.join(tmp, "cut.safetensors"), /^cut\.safetensors: tensor "[^"]+" claims bytes \[\d+,\d+\) but the data section has only \d+ bytes$/);
});

test("sharded checkpoints: index validated, tensors found across shards", () => {
  const dir = fs.mkdtempSync(path.join(tmp, "shard-"));
  writeSafetensors(path.join(dir, "model-00001-of-00002.safetensors"), [{ name: "a", dtype: "F32", shape: [2], data: Float32Array.of(1, 2) }]);
  writeSafetensors(path.join(dir, "model-00002-of-00002.safetensors"), [{ name: "b", dtype: "BF16", shape: [1], data: Float32Array.of(3) }]);
  const index = { metadata: {}, weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" } };
  fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify(index));
  const ck = openCheckpoint(dir)!;
  const b = new Float32Array(1);
  ck.readF32Into("b", b);
  assert.equal(b[0], 3);
  assert.equal(ck.tensors.size, 2);
  ck.close();
  fs.writeFileSync(
    path.join(dir, "model.safetensors.index.json"),
    JSON.stringify({ weight_map: { ...index.weight_map, c: "model-00003-of-00003.safetensors" } }),
  );
  assert.throws(() => openCheckpoint(dir), /model\.safetensors\.index\.json: lists shard "model-00003-of-00003\.safetensors" which does not exist/);
  fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: { a: "model-00002-of-00002.safetensors" } }));
  assert.throws(() => openCheckpoint(dir), /maps tensor "a" to model-00002-of-00002\.safetensors, which does not contain it/);
  assert.equal(openCheckpoint(fs.mkdtempSync(path.join(tmp, "empty-"))), undefined);
});

// ---- property-based: the reader returns a valid result or throws FormatError, nothing else ----------

function tryOpen(bytes: Uint8Array, name: string): void {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, bytes);
  let st: SafetensorsFile | undefined;
  try {
    const f = (st = openSafetensors(p));
    // valid: every tensor must then read without error (float ones as f32, all as bytes)
    for (const [n, e] of f.header) {
      const dst = new Float32Array(e.shape.reduce((a, b) => a * b, 1));
      if (isFloatDType(e.dtype)) f.readF32Into(n, dst);
      else assert.throws(() => f.readF32Into(n, dst), FormatError);
      assert.equal(f.readRaw(n).length, e.end - e.begin);
    }
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    assert.ok(e.message.startsWith(`${name}: `), e.message);
  } finally {
    st?.close();
  }
}


let smallCache: Buffer | undefined;
/** A small valid file with the three float dtypes and a raw one (written by writeSafetensors). */
function smallFile(): Buffer {
  if (!smallCache) {
    const p = path.join(tmp, "small.safetensors");
    writeSafetensors(p, [
      { name: "a", dtype: "F32", shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) },
      { name: "b", dtype: "F16", shape: [3], data: Float32Array.of(1, -2, 0.5) },
      { name: "c", dtype: "BF16", shape: [1, 2], data: Float32Array.of(7, 8) },
      { name: "d", dtype: "U8", shape: [4], data: Uint8Array.of(1, 2, 3, 4) },
    ], { format: "pt" });
    smallCache = fs.readFileSync(p);
  }
  return smallCache;
}

test("fuzz: random bytes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (b) => tryOpen(b, "rand.safetensors")),
    { numRuns: 1000, seed: 42 },
  );
  // random bytes behind a plausible length prefix
  fc.assert(
    fc.property(fc.nat({ max: 300 }), fc.uint8Array({ maxLength: 300 }), (n, b) => {
      const f = Buffer.alloc(8 + b.length);
      f.writeBigUInt64LE(BigInt(n));
      f.set(b, 8);
      tryOpen(f, "pref.safetensors");
    }),
    { numRuns: 1000, seed: 43 },
  );
});

test("fuzz: mutated valid files (byte flips, truncation)", () => {
  const small = smallFile();
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat({ max: small.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      fc.option(fc.nat({ max: small.length }), { nil: undefined }),
      (flips, cut) => {
        const b = Buffer.from(small);
        for (const [i, v] of flips) b[i] = v;
        tryOpen(cut === undefined ? b : b.subarray(0, cut), "mut.safetensors");
      },
    ),
    { numRuns: 2000, seed: 44 },
  );
});

test("fuzz: structurally mutated headers (offsets, shapes, dtypes, metadata)", () => {
  const small = smallFile();
  const hlen = Number(small.readBigUInt64LE(0));
  const header = JSON.parse(small.subarray(8, 8 + hlen).toString()) as Record<string, Record<string, unknown>>;
  const data = small.subarray(8 + hlen);
  const names = Object.keys(header);
  const anyJson = fc.oneof(
    fc.integer({ min: -10, max: 5000 }),
    fc.constantFrom(1.5, -0, 2 ** 53, 1e300, NaN),
    fc.string({ maxLength: 5 }),
    fc.constantFrom("F32", "F16", "BF16", "I8", "F64", "U8", "I64", "F8_E4M3", "Q4_K", null, true),
    fc.array(fc.integer({ min: -2, max: 5000 }), { maxLength: 3 }),
    fc.constant(null).map(() => ({})),
  );
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(fc.constantFrom(...names), fc.constantFrom("dtype", "shape", "data_offsets", "extra", "__self__"), anyJson),
        { minLength: 1, maxLength: 3 },
      ),
      fc.nat({ max: data.length }),
      (edits, keep) => {
        const h = structuredClone(header) as Record<string, unknown>;
        for (const [n, field, v] of edits) {
          if (field === "__self__") h[n] = v;
          else if (typeof h[n] === "object" && h[n] !== null) (h[n] as Record<string, unknown>)[field] = v;
        }
        const hb = Buffer.from(JSON.stringify(h));
        const len = Buffer.alloc(8);
        len.writeBigUInt64LE(BigInt(hb.length));
        tryOpen(Buffer.concat([len, hb, data.subarray(0, keep)]), "hdr.safetensors");
      },
    ),
    { numRuns: 2000, seed: 45 },
  );
});
