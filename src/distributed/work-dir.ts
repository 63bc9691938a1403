/**
 * @file The shared working directory of a distributed prune (`--work-dir`, the same folder on every machine,
 * e.g. an NFS mount): what a job refers to. Layout of one run, `runs/<id>/` (id: the first 16 hex digits of the
 * run file's sha256, so one set of settings is one folder):
 *   run.json                          the settings, the model config, the calibration token ids (workers read it;
 *                                     its sha256 is the settings hash every job carries)
 *   dense/layer-<l>.safetensors       the dense decoder layer l as the coordinator's model store gives it (each
 *                                     tensor in the narrowest exact dtype), with its digest (layerDigest)
 *   streams/layer-<l>/shard-<s>.f32   the dense input of layer l for the samples of shard s (raw f32 rows)
 *   results/layer-<l>.safetensors     the pruned linear weights of layer l (narrowest exact dtype) and their
 *                                     reports (metadata)
 * Every file is written to a temporary name and renamed, so a reader sees it whole or not at all, and a job
 * killed half-way leaves nothing a rerun would trust. A worker resolves every path a job names inside its work
 * dir (symlinks followed) and refuses any other.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { UsageError } from "../errors.js";
import { openSafetensors, writeSafetensors } from "../io/safetensors.js";
import { exactDtype } from "../io/dtype.js";
import type { Wasm } from "../wasm/runtime.js";
import { LINEAR_OPS, type DenseLinear, type LinearOp, type ModelConfig, type Tensor } from "../model/types.js";
import type { DenseLayer } from "../model/linear.js";
import type { CalibrationSet } from "../prune/calibration.js";
import type { OperatorReport, PruneSettings } from "../prune/driver.js";
import { writeFileAtomic } from "../prune/checkpoint.js";

/** What every job of a run shares (run.json). */
export interface RunFile {
  code: string;
  config: ModelConfig;
  settings: PruneSettings;
  calib: CalibrationSet;
  /** sample ranges [i0, i1) of the dense-forward jobs */
  shards: Array<[number, number]>;
}

export class WorkDir {
  readonly root: string;

  constructor(dir: string) {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UsageError(`--work-dir ${dir}: not a directory (create it on storage every machine sees)`);
    this.root = fs.realpathSync(dir);
  }

  /**
   * `rel` (a path a job names, relative to the work dir) as an absolute path inside it; refuses an absolute
   * path, one that leaves the work dir, or one whose existing part resolves (through a symlink) outside it.
   */
  resolve(rel: string): string {
    if (typeof rel !== "string" || rel === "" || path.isAbsolute(rel)) throw new UsageError(`job path ${JSON.stringify(rel)}: expected a path relative to the work dir`);
    const abs = path.resolve(this.root, rel);
    if (!inside(this.root, abs)) throw new UsageError(`job path ${JSON.stringify(rel)}: outside the work dir ${this.root}; refused`);
    let existing = abs;
    while (!fs.existsSync(existing)) existing = path.dirname(existing);
    const real = fs.realpathSync(existing);
    if (!inside(this.root, real)) throw new UsageError(`job path ${JSON.stringify(rel)}: resolves outside the work dir ${this.root} (a symlink); refused`);
    return abs;
  }
}

function inside(root: string, p: string): boolean {
  const r = path.relative(root, p);
  return r === "" || (!r.startsWith("..") && !path.isAbsolute(r));
}

/** sha256 of a run file's text: the settings hash. */
export function runHash(text: string): string {
  return crypto.createHash("sha256").update(text).digest("hex");
}

/** The run's folder name under the work dir and the text of its run.json. */
export function runOf(run: RunFile): { rel: string; text: string; hash: string } {
  const text = JSON.stringify(run);
  const hash = runHash(text);
  return { rel: `runs/${hash.slice(0, 16)}`, text, hash };
}

export const paths = {
  run: (run: string) => `${run}/run.json`,
  dense: (run: string, l: number) => `${run}/dense/layer-${l}.safetensors`,
  stream: (run: string, l: number, s: number) => `${run}/streams/layer-${l}/shard-${s}.f32`,
  result: (run: string, l: number) => `${run}/results/layer-${l}.safetensors`,
};

/** Write `data` to `file` atomically, making its folder. */
export function writeAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, data);
}

const LAYER_TENSORS = ["attnNorm", "ffnNorm", ...LINEAR_OPS, "bq", "bk", "bv"] as const;

/**
 * A dense decoder layer, exactly the values the coordinator's store computes with, each tensor in the narrowest
 * dtype that holds it exactly (exactDtype: a bf16 model's layer, or a layer pruned and rounded to bf16, is stored as
 * BF16 — half the bytes every worker reads; an f32 model's stays F32).
 */
export function writeDenseLayer(file: string, lw: DenseLayer, opts: { digest?: boolean } = {}): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const rec = lw as unknown as Record<string, Tensor | undefined>;
  const tensors = LAYER_TENSORS.filter((k) => rec[k]).map((k) => ({ name: k, dtype: exactDtype(rec[k]!.data), shape: rec[k]!.shape, data: rec[k]!.data }));
  writeSafetensors(file, tensors, opts.digest ? { digest: layerDigest(lw) } : undefined);
}

/**
 * sha256 of a layer's tensors (names, shapes and f32 bits, in file order): what a worker with its own copy of the
 * model (`worker --model`) checks its layer against before using it instead of the work dir's file.
 */
export function layerDigest(lw: DenseLayer): string {
  const h = crypto.createHash("sha256");
  const rec = lw as unknown as Record<string, Tensor | undefined>;
  const CHUNK = 1 << 22;
  for (const k of LAYER_TENSORS) {
    const t = rec[k];
    if (!t) continue;
    h.update(`${k}:${t.shape.join("x")};`);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    // copied out in chunks: the arena is a SharedArrayBuffer
    for (let o = 0; o < bytes.length; o += CHUNK) h.update(bytes.slice(o, Math.min(o + CHUNK, bytes.length)));
  }
  return h.digest("hex");
}

/** The digest the coordinator stored with a dense layer file (undefined without one). */
export function readLayerDigest(file: string): string | undefined {
  const st = openSafetensors(file);
  try {
    return st.metadata.digest;
  } finally {
    st.close();
  }
}

/** A dense layer file into fresh arena tensors of `wasm`. */
export function readDenseLayer(file: string, wasm: Wasm): DenseLayer {
  const st = openSafetensors(file);
  try {
    const out: Record<string, Tensor | DenseLinear> = {};
    for (const k of LAYER_TENSORS) {
      const e = st.header.get(k);
      if (!e) continue;
      const n = e.shape.reduce((a, b) => a * b, 1);
      const ptr = wasm.arena.alloc(n);
      const data = wasm.arena.f32(ptr, n);
      st.readF32Into(k, data);
      out[k] = (LINEAR_OPS as readonly string[]).includes(k) ? { format: "dense", ptr, shape: [...e.shape], data } : { ptr, shape: [...e.shape], data };
    }
    for (const k of ["attnNorm", "ffnNorm", ...LINEAR_OPS]) if (!out[k]) throw new UsageError(`${file}: lacks "${k}"`);
    return out as unknown as DenseLayer;
  } finally {
    st.close();
  }
}

/** A pruned layer's linear weights and reports (the result of a layer job). */
export function writeResult(file: string, pruned: Record<LinearOp, DenseLinear>, reports: OperatorReport[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeSafetensors(file, LINEAR_OPS.map((op) => ({ name: op, dtype: exactDtype(pruned[op].data), shape: pruned[op].shape, data: pruned[op].data })), { reports: JSON.stringify(reports) });
}

/** A layer job's result in host memory (ptr 0: not in an arena). */
export function readResult(file: string): { pruned: Record<LinearOp, DenseLinear>; reports: OperatorReport[] } {
  const st = openSafetensors(file);
  try {
    const pruned = {} as Record<LinearOp, DenseLinear>;
    for (const op of LINEAR_OPS) {
      const e = st.header.get(op);
      if (!e) throw new UsageError(`${file}: lacks "${op}"`);
      const data = new Float32Array(e.shape.reduce((a, b) => a * b, 1));
      st.readF32Into(op, data);
      pruned[op] = { format: "dense", ptr: 0, shape: [...e.shape], data };
    }
    return { pruned, reports: JSON.parse(st.metadata.reports ?? "[]") as OperatorReport[] };
  } finally {
    st.close();
  }
}

/** Sample ranges of at most `per` samples: the dense-forward jobs. */
export function sampleShards(n: number, per: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < n; i += per) out.push([i, Math.min(n, i + per)]);
  return out;
}

/** Rows of samples [i0, i1) of `calib` (width floats each) from/to a raw f32 stream file. */
export function readStream(file: string, floats: number): Float32Array {
  const buf = fs.readFileSync(file);
  if (buf.byteLength !== 4 * floats) throw new UsageError(`${file}: ${buf.byteLength} bytes, expected ${4 * floats} (a stream file of this run)`);
  return new Float32Array(buf.buffer, buf.byteOffset, floats).slice();
}

export function writeStream(file: string, rows: Float32Array): void {
  writeAtomic(file, new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength));
}

/** Tokens of samples [i0, i1). */
export function shardTokens(calib: CalibrationSet, [i0, i1]: [number, number]): number {
  return calib.samples.slice(i0, i1).reduce((s, x) => s + x.length, 0);
}
