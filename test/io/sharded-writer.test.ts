import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DiskFullError, FormatError, OutputExistsError, UsageError } from "../../src/errors.js";
import { openCheckpoint, writeSafetensors } from "../../src/io/safetensors.js";
import { INDEX_FILE, PARTIAL_DIR, ShardedWriter, parseSize, planShards, type ShardPlan, type TensorSpec } from "../../src/io/sharded-writer.js";
import { bf16BitsToF32, decodeI64, encodeI64, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "../../src/io/dtype.js";
import { mulberry32 } from "../../src/util/rng.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-shard-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));
let dirCount = 0;
const newDir = (): string => path.join(tmp, `out${dirCount++}`);

/** U8 tensors t0, t1, … of the given byte sizes (so tensor bytes = element counts). */
const u8 = (...sizes: number[]): TensorSpec[] => sizes.map((n, i) => ({ name: `t${i}`, dtype: "U8" as const, shape: [n] }));
/** file of each tensor, in the order given */
const where = (plan: ShardPlan): string[] => [...plan.tensors.values()].sort((a, b) => Number(a.name.slice(1)) - Number(b.name.slice(1))).map((t) => t.file);
const shard = (k: number, n: number): string => `model-${String(k).padStart(5, "0")}-of-${String(n).padStart(5, "0")}.safetensors`;

test("planShards: Hugging Face's greedy split (split_state_dict_into_shards), by hand", () => {
  // the docstring's example: limit 10, sizes [6, 6, 2, 6, 2, 2] -> [6], [6+2], [6+2+2]
  let p = planShards(u8(6, 6, 2, 6, 2, 2), 10);
  assert.deepEqual(where(p), [shard(1, 3), shard(2, 3), shard(2, 3), shard(3, 3), shard(3, 3), shard(3, 3)]);
  // exact fit stays in the shard (a new one starts only when the sum would exceed the limit)
  p = planShards(u8(4, 6, 5, 5), 10);
  assert.deepEqual(where(p), [shard(1, 2), shard(1, 2), shard(2, 2), shard(2, 2)]);
  // a tensor larger than the limit: alone, appended at once, so before the shard still being filled
  p = planShards(u8(2, 12, 3, 9), 10);
  assert.deepEqual(where(p), [shard(2, 3), shard(1, 3), shard(2, 3), shard(3, 3)]);
  assert.equal(p.files[0]!.tensors.join(), "t1");
  // everything in one shard: model.safetensors, no index
  p = planShards(u8(2, 3, 5), 10);
  assert.deepEqual(p.files.map((f) => f.name), ["model.safetensors"]);
  assert.equal(p.index, undefined);
  p = planShards(u8(2, 3, 5), 5e9);
  assert.equal(p.files.length, 1);
  // the index: total_size = sum of tensor bytes (not file sizes), weight_map sorted by name
  const mixed: TensorSpec[] = [
    { name: "b.w", dtype: "F32", shape: [3, 2] }, // 24 bytes
    { name: "a.w", dtype: "BF16", shape: [10] }, // 20
    { name: "c.m", dtype: "I64", shape: [2] }, // 16
  ];
  p = planShards(mixed, 40);
  assert.deepEqual(p.index, {
    metadata: { total_parameters: 18, total_size: 60 },
    weight_map: { "a.w": shard(2, 2), "b.w": shard(1, 2), "c.m": shard(2, 2) },
  });
  assert.equal(p.totalSize, 60);
  assert.equal(p.fileBytes, p.files.reduce((s, f) => s + f.size, 0));
  // within a file: safetensors' order (descending dtype, then name), aligned, header a multiple of 8
  assert.deepEqual(p.files[1]!.tensors, ["c.m", "a.w"]);
  for (const t of p.tensors.values()) assert.equal(t.offset % (t.bytes / t.elements), 0);
  for (const f of p.files) assert.equal((f.header.length - 8) % 8, 0);
  assert.throws(() => planShards([...u8(1), ...u8(2)], 10), /"t0" is empty, reserved or duplicated/);
  assert.throws(() => planShards([{ name: "x", dtype: "Q4" as "U8", shape: [1] }], 10), /"x" has unknown dtype Q4/);
  assert.throws(() => planShards(u8(1), 0), /max shard size must be a positive number of bytes/);
});

test("parseSize: transformers' convert_file_size_to_int units", () => {
  assert.equal(parseSize("5GB"), 5_000_000_000);
  assert.equal(parseSize("5GiB"), 5 * 2 ** 30);
  assert.equal(parseSize("500MB"), 500_000_000);
  assert.equal(parseSize("10kib"), 10240);
  assert.equal(parseSize("2TB"), 2e12);
  assert.equal(parseSize("0.5GB"), 500_000_000);
  assert.equal(parseSize("5Gb"), 625_000_000); // a lower-case b is bits, as in transformers
  assert.equal(parseSize("1234"), 1234);
  assert.equal(parseSize(4096), 4096);
  for (const bad of ["5XB", "", "GB", "-1", "1.5", "0", "5 G B"]) {
    assert.throws(() => parseSize(bad, "--max-shard-size"), (e: unknown) => e instanceof UsageError && /^--max-shard-size: ".*" is not a size/.test(e.message), bad);
  }
});

/** A mixed set of tensors with data: F32/F16/BF16 from floats, U8 and I64 as encoded bytes. */
function tensors(): { spec: TensorSpec; data: Float32Array | Uint8Array }[] {
  const r = mulberry32(11);
  const f = (n: number): Float32Array => Float32Array.from({ length: n }, () => (r() - 0.5) * 8);
  const special = Float32Array.of(0, -0, 1, -2.5, 65504, 1e-8, Infinity, -Infinity, NaN, 3.4e38);
  return [
    { spec: { name: "model.embed_tokens.weight", dtype: "BF16", shape: [37, 50] }, data: f(37 * 50) },
    { spec: { name: "model.layers.0.a.weight", dtype: "F16", shape: [3000] }, data: f(3000) },
    { spec: { name: "model.layers.0.b.weight", dtype: "F32", shape: [40, 41] }, data: f(1640) },
    { spec: { name: "model.layers.0.specials", dtype: "BF16", shape: [10] }, data: special },
    { spec: { name: "model.layers.0.specials16", dtype: "F16", shape: [10] }, data: special },
    { spec: { name: "model.layers.0.mask", dtype: "U8", shape: [999] }, data: Uint8Array.from({ length: 999 }, () => Math.floor(r() * 256)) },
    { spec: { name: "model.layers.0.shape", dtype: "I64", shape: [2] }, data: encodeI64([11008, -4096]) },
    { spec: { name: "model.layers.1.big.weight", dtype: "BF16", shape: [100, 90] }, data: f(9000) },
    { spec: { name: "model.norm.weight", dtype: "F32", shape: [50] }, data: f(50) },
    { spec: { name: "model.empty", dtype: "F32", shape: [0, 4] }, data: new Float32Array(0) },
  ];
}

/** What reading a float tensor stored as `dtype` must give. */
function stored(dtype: string, v: Float32Array): Float32Array {
  if (dtype === "F16") return v.map((x) => f16BitsToF32(f32ToF16Bits(x)));
  if (dtype === "BF16") return v.map((x) => bf16BitsToF32(f32ToBf16Bits(x)));
  return v;
}

const sameBits = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function writeAll(dir: string, plan: ShardPlan, ts = tensors()): void {
  const w = ShardedWriter.create(dir, plan);
  for (const t of ts) w.write(t.spec.name, t.data);
  w.finish();
}

/** name -> bytes of every file in dir (sorted) */
function filesOf(dir: string): Map<string, Buffer> {
  return new Map(fs.readdirSync(dir).sort().map((f) => [f, fs.readFileSync(path.join(dir, f))]));
}

test("sharded output loads back bit-exact through openCheckpoint (F32/F16/BF16, raw U8/I64)", () => {
  const ts = tensors();
  const plan = planShards(ts.map((t) => t.spec), 8000);
  assert.ok(plan.files.length >= 4, `${plan.files.length} shards`);
  const dir = newDir();
  writeAll(dir, plan, ts);
  assert.deepEqual(fs.readdirSync(dir).sort(), [...plan.files.map((f) => f.name), INDEX_FILE].sort());
  const index = JSON.parse(fs.readFileSync(path.join(dir, INDEX_FILE), "utf8"));
  assert.equal(index.metadata.total_size, ts.reduce((s, t) => s + plan.tensors.get(t.spec.name)!.bytes, 0));
  assert.deepEqual(index, plan.index);
  const ck = openCheckpoint(dir)!;
  try {
    assert.equal(ck.files.length, plan.files.length);
    for (const t of ts) {
      const e = ck.tensors.get(t.spec.name)!;
      assert.equal(path.basename(e.file.path), plan.index!.weight_map[t.spec.name]);
      assert.deepEqual([e.entry.dtype, e.entry.shape], [t.spec.dtype, t.spec.shape]);
      assert.equal(e.file.metadata.format, "pt");
      if (t.data instanceof Uint8Array) assert.deepEqual(ck.readRaw(t.spec.name), t.data);
      else {
        const got = new Float32Array(t.data.length);
        ck.readF32Into(t.spec.name, got);
        assert.ok(sameBits(got, stored(t.spec.dtype, t.data)), t.spec.name);
      }
    }
    assert.deepEqual(decodeI64(ck.readRaw("model.layers.0.shape")), [11008, -4096]);
  } finally {
    ck.close();
  }
  // one shard: model.safetensors only, the same bytes as writeSafetensors writes
  const single = newDir();
  const plan1 = planShards(ts.map((t) => t.spec));
  writeAll(single, plan1, ts);
  assert.deepEqual(fs.readdirSync(single), ["model.safetensors"]);
  const ref = path.join(newDir() + ".safetensors");
  writeSafetensors(ref, ts.map((t) => ({ ...t.spec, data: t.data })), { format: "pt" });
  assert.ok(fs.readFileSync(ref).equals(fs.readFileSync(path.join(single, "model.safetensors"))), "a one-shard plan writes the bytes writeSafetensors writes");
});

test("writeRange: a tensor written in pieces, in any order, equals it written whole", () => {
  const ts = tensors();
  const plan = planShards(ts.map((t) => t.spec), 8000);
  const whole = newDir();
  writeAll(whole, plan, ts);
  const pieces = newDir();
  const w = ShardedWriter.create(pieces, plan);
  for (const t of [...ts].reverse()) {
    const es = plan.tensors.get(t.spec.name)!.bytes / Math.max(1, plan.tensors.get(t.spec.name)!.elements);
    const n = t.data instanceof Float32Array ? t.data.length : t.data.length / es;
    const cuts = [...new Set([0, Math.floor(n / 3), Math.min(n, Math.floor(n / 3) + 7), n])];
    for (let k = cuts.length - 2; k >= 0; k--) {
      const [a, b] = [cuts[k]!, cuts[k + 1]!];
      w.writeRange(t.spec.name, a, t.data instanceof Float32Array ? t.data.subarray(a, b) : t.data.subarray(a * es, b * es));
    }
    assert.ok(w.isWritten(t.spec.name), `${t.spec.name} complete after its pieces`);
  }
  w.finish();
  assert.deepEqual(filesOf(pieces), filesOf(whole));
  const w2 = ShardedWriter.create(newDir(), plan);
  assert.throws(() => w2.writeRange("model.norm.weight", 45, new Float32Array(6)), /elements \[45, 51\) are outside its 50/);
  assert.throws(() => w2.write("model.norm.weight", new Float32Array(49)), /"model.norm.weight" data has 196 bytes, shape \[50\] F32 needs 200/);
  assert.throws(() => w2.write("model.layers.0.mask", new Float32Array(999)), /is U8; float32 data can only be stored as F32, F16 or BF16/);
  assert.throws(() => w2.writeRange("model.layers.0.shape", 0, new Uint8Array(7)), /7 bytes is not a whole number of I64 elements/);
  assert.throws(() => w2.write("nope", new Float32Array(1)), /tensor "nope" is not in the plan/);
  w2.abort();
});

test("finish is atomic: nothing that looks finished before it; missing tensors refuse; existing outputs need force", () => {
  const ts = tensors();
  const plan = planShards(ts.map((t) => t.spec), 8000);
  const dir = newDir();
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, "config.json"), "{}");
  const w = ShardedWriter.create(dir, plan);
  const visible = (): string[] => fs.readdirSync(dir).filter((f) => f !== "config.json" && f !== PARTIAL_DIR);
  for (const t of ts.slice(0, -2)) {
    w.write(t.spec.name, t.data);
    w.sync();
    assert.deepEqual(visible(), [], "no output file appears before finish");
  }
  assert.throws(() => w.finish(), (e: unknown) => e instanceof UsageError && /^1 of 10 tensors not written \("model.norm.weight"\); nothing was finished/.test(e.message));
  assert.deepEqual(visible(), []);
  w.write("model.norm.weight", ts.at(-2)!.data);
  w.finish();
  assert.deepEqual(visible().sort(), [...plan.files.map((f) => f.name), INDEX_FILE].sort());
  assert.ok(!fs.existsSync(path.join(dir, PARTIAL_DIR)), "the temporary folder is removed");
  assert.ok(fs.existsSync(path.join(dir, "config.json")), "other files are left alone");
  assert.throws(() => w.write("model.norm.weight", ts.at(-2)!.data), /is finished/);

  // an existing output is refused without force; with force, a single-file plan replaces the shards and index
  const plan1 = planShards(ts.map((t) => t.spec));
  assert.throws(() => ShardedWriter.create(dir, plan1), (e: unknown) => e instanceof OutputExistsError && /already exists; pass force/.test(e.message));
  writeAllForce(dir, plan1, ts);
  assert.deepEqual(visible(), ["model.safetensors"]);
  // and back: the sharded plan replaces model.safetensors (which would otherwise shadow the index)
  writeAllForce(dir, plan, ts);
  assert.deepEqual(visible().sort(), [...plan.files.map((f) => f.name), INDEX_FILE].sort());
  // a partial write is refused too (resume it, or force)
  const p2 = newDir();
  ShardedWriter.create(p2, plan);
  assert.throws(() => ShardedWriter.create(p2, plan), /holds a partial write; resume it or pass force/);
  ShardedWriter.create(p2, plan, { force: true }).abort();
  assert.deepEqual(fs.readdirSync(p2), []);
});

function writeAllForce(dir: string, plan: ShardPlan, ts: ReturnType<typeof tensors>): void {
  const w = ShardedWriter.create(dir, plan, { force: true });
  for (const t of ts) w.write(t.spec.name, t.data);
  w.finish();
}

test("resume after a SIGKILL mid-write gives identical bytes; a partial write of another plan is refused", () => {
  const ts = tensors();
  const specs = ts.map((t) => t.spec);
  const plan = planShards(specs, 8000);
  const ref = newDir();
  writeAll(ref, plan, ts);

  // a child process writes the same tensors, syncing after each, and is killed (SIGKILL) after the 5th,
  // in the middle of the 6th
  const dir = newDir();
  const child = `
    const { ShardedWriter, planShards } = await import(${JSON.stringify(path.resolve("src/io/sharded-writer.ts"))});
    const specs = ${JSON.stringify(specs)};
    const plan = planShards(specs, 8000);
    const w = ShardedWriter.create(${JSON.stringify(dir)}, plan);
    const data = ${JSON.stringify(ts.map((t) => [t.data instanceof Float32Array ? "f" : "u", Array.from(t.data, (x) => (Number.isNaN(x) ? "NaN" : Object.is(x, -0) ? "-0" : x === Infinity ? "Inf" : x === -Infinity ? "-Inf" : x))]))};
    const num = (x) => (x === "NaN" ? NaN : x === "-0" ? -0 : x === "Inf" ? Infinity : x === "-Inf" ? -Infinity : x);
    data.forEach(([kind, v], i) => {
      const arr = kind === "f" ? Float32Array.from(v.map(num)) : Uint8Array.from(v);
      if (i === 5) { w.writeRange(specs[i].name, 0, arr.subarray(0, arr.length >> 1)); process.kill(process.pid, "SIGKILL"); }
      w.write(specs[i].name, arr);
      w.sync();
    });
  `;
  const script = path.join(tmp, "killed-writer.mjs");
  fs.writeFileSync(script, child);
  const r = spawnSync(process.execPath, ["--import", "tsx", script], { encoding: "utf8" });
  assert.equal(r.signal, "SIGKILL", `status ${r.status}: ${r.error ?? ""}${r.stderr}`);
  assert.ok(!fs.readdirSync(dir).some((f) => f.endsWith(".safetensors") || f === INDEX_FILE), "nothing finished-looking after the kill");

  const w = ShardedWriter.resume(dir, plan);
  assert.deepEqual([...w.synced].sort(), specs.slice(0, 5).map((s) => s.name).concat("model.empty").sort());
  for (const t of ts) if (!w.synced.has(t.spec.name)) w.write(t.spec.name, t.data);
  w.finish();
  assert.deepEqual(filesOf(dir), filesOf(ref));

  // the temporaries of another plan (another dtype) are refused with a clear error
  const other = newDir();
  ShardedWriter.create(other, plan);
  const plan16 = planShards(specs.map((s) => (s.dtype === "F32" ? { ...s, dtype: "F16" as const } : s)), 8000);
  assert.throws(() => ShardedWriter.resume(other, plan16), (e: unknown) => e instanceof FormatError && /partial write is of another plan|header differs from the plan's/.test(e.message));
  assert.throws(() => ShardedWriter.resume(newDir(), plan), /no partial write to resume/);
});

test("create cut short by a full disk (simulated at the second file's header): resume makes the missing file and finishes", () => {
  const ts = tensors();
  const plan = planShards(ts.map((t) => t.spec), 8000);
  const ref = newDir();
  writeAll(ref, plan, ts);
  const dir = newDir();
  // the free-space check passed, then another process filled the disk: the hook is the only way to place that
  // moment deterministically (the tmpfs test below covers real ENOSPC)
  const second = plan.files[1]!.name;
  const failAt = (file: string): void => {
    if (file === second) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
  };
  assert.throws(() => ShardedWriter.create(dir, plan, { beforeWrite: failAt }), (e: unknown) => e instanceof DiskFullError && e.file.endsWith(second));
  assert.deepEqual(fs.readdirSync(path.join(dir, PARTIAL_DIR)), [plan.files[0]!.name], "the file without a header is not left behind");
  const w = ShardedWriter.resume(dir, plan);
  assert.equal(w.synced.size, 1, "only the empty tensor counts as written");
  for (const t of ts) w.write(t.spec.name, t.data);
  w.finish();
  assert.deepEqual(filesOf(dir), filesOf(ref));
});

/** Mount a tmpfs of `bytes` at a new directory; undefined (and why) when mounting is refused. */
function mountTmpfs(bytes: number): { dir: string; unmount: () => void } | { refused: string } {
  const dir = fs.mkdtempSync(path.join(tmp, "tmpfs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", dir], { stdio: "pipe" });
  } catch (e) {
    return { refused: String((e as { stderr?: Buffer }).stderr ?? e).trim() || String(e) };
  }
  return { dir, unmount: () => execFileSync("umount", [dir]) };
}

test("disk full: refused up front when the plan cannot fit; ENOSPC mid-write is one DiskFullError, temporaries kept, resume finishes", (t) => {
  const r = mulberry32(3);
  const specs: TensorSpec[] = [0, 1, 2, 3].map((i) => ({ name: `w${i}`, dtype: "F32" as const, shape: [256, 256] })); // 256 KiB each
  const data = specs.map(() => Float32Array.from({ length: 256 * 256 }, () => r() - 0.5));
  const plan = planShards(specs, 600_000); // two shards of 512 KiB
  const ref = newDir();
  const wr = ShardedWriter.create(ref, plan);
  specs.forEach((s, i) => wr.write(s.name, data[i]!));
  wr.finish();

  const m = mountTmpfs(2 << 20);
  let root: string;
  let fill: (() => void) | undefined;
  let unfill: () => void;
  let opts = {};
  if ("refused" in m) {
    // only where this process may not mount: a hook fails writes with ENOSPC once "the disk is full"
    t.diagnostic(`tmpfs mount refused (${m.refused}); simulating ENOSPC with the writer's beforeWrite hook`);
    root = newDir();
    let full = false;
    fill = () => (full = true);
    unfill = () => (full = false);
    opts = {
      beforeWrite: () => {
        if (full) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
      },
    };
  } else {
    t.diagnostic("real ENOSPC on a 2 MiB tmpfs");
    root = m.dir;
    const filler = path.join(root, "filler");
    fill = () => fs.writeFileSync(filler, Buffer.alloc(1700 << 10)); // another process takes the space
    unfill = () => fs.rmSync(filler);
  }
  try {
    if (!("refused" in m)) {
      // a plan larger than the filesystem is refused before anything is written
      const huge = planShards([{ name: "x", dtype: "F32", shape: [1024, 1024] }]);
      const out = path.join(root, "huge");
      assert.throws(() => ShardedWriter.create(out, huge), (e: unknown) =>
        e instanceof DiskFullError && e.neededBytes === huge.fileBytes && e.freeBytes < huge.fileBytes && /disk full: .* needed, .* free; nothing was written/.test(e.message));
      assert.ok(!fs.existsSync(path.join(out, PARTIAL_DIR)), "nothing was created");
    }
    const out = path.join(root, "model");
    const w = ShardedWriter.create(out, plan, opts);
    w.write("w0", data[0]!);
    w.sync();
    fill();
    let err: unknown;
    try {
      for (let i = 1; i < 4; i++) w.write(specs[i]!.name, data[i]!);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof DiskFullError, `expected DiskFullError, got ${String(err)}`);
    assert.match(err.message, new RegExp(`${PARTIAL_DIR}/model-0000[12]-of-00002\\.safetensors: disk full: .* needed, .* free; the partial files are kept in .*${PARTIAL_DIR}: free some space and rerun to resume`));
    assert.ok(err.neededBytes > 0 && err.neededBytes <= plan.fileBytes, `needed ${err.neededBytes}`);
    assert.ok(!fs.readdirSync(out).some((f) => f !== PARTIAL_DIR), "no finished-looking output");
    w.close();
    assert.deepEqual(fs.readdirSync(path.join(out, PARTIAL_DIR)).sort(), ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "progress.json"]);
    // space freed: a rerun resumes from what was synced and gives the same bytes as an uninterrupted write
    unfill();
    const w2 = ShardedWriter.resume(out, plan, opts);
    assert.deepEqual([...w2.synced], ["w0"]);
    specs.forEach((s, i) => {
      if (!w2.synced.has(s.name)) w2.write(s.name, data[i]!);
    });
    w2.finish();
    assert.deepEqual(filesOf(out), filesOf(ref));
  } finally {
    if (!("refused" in m)) m.unmount();
  }
});
