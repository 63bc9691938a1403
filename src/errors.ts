/**
 * @file Every error wasprune raises on purpose. The CLI prints `error: <message>` for these (no stack unless
 * --verbose) and exits non-zero; anything else is a bug and is printed with its stack.
 * Messages name the file / tensor / option, and what was found against what was expected.
 */
export class WaspruneError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A model, tokenizer or data file is malformed: names the file and what is wrong. */
export class FormatError extends WaspruneError {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
  }
}

/** A file or directory that should exist does not. */
export class MissingFileError extends WaspruneError {}

/** config.json / header values that are unsupported or contradict the tensors. */
export class ConfigError extends WaspruneError {}

/** A command-line option or API argument out of range. */
export class UsageError extends WaspruneError {}

/** The WebAssembly side: module missing, out of memory, kernel assertion. */
export class WasmError extends WaspruneError {}

/** Refusing to overwrite an existing output without --force. */
export class OutputExistsError extends WaspruneError {}

/** The WebGPU side could not be used where it was required (`--device webgpu`), or failed while running. */
export class GpuError extends WaspruneError {}

/** A task on a worker thread threw or its thread died: names what it was doing (layer/operator) and the cause. */
export class WorkerError extends WaspruneError {}
/**
 * The disk (or quota) is full: an ENOSPC/EDQUOT while writing, or a free-space check before writing. Names the
 * file, the bytes still needed and the bytes free; the writer's temporaries are kept for a resume when it says so.
 */
export class DiskFullError extends WaspruneError {
  constructor(
    readonly file: string,
    readonly neededBytes: number,
    readonly freeBytes: number,
    detail: string,
  ) {
    super(`${file}: disk full: ${fmtBytes(neededBytes)} needed, ${fmtBytes(freeBytes)} free; ${detail}`);
  }
}

/** `13.50 GB (13500000000 bytes)` */
export function fmtBytes(n: number): string {
  const units: [number, string][] = [[1e12, "TB"], [1e9, "GB"], [1e6, "MB"], [1e3, "kB"]];
  const u = units.find(([v]) => n >= v);
  return u ? `${(n / u[0]).toFixed(2)} ${u[1]} (${n} bytes)` : `${n} bytes`;
}

// ---- Message factories of the file readers and writers (src/io, src/model/load*, save*, config, src/tokenizer).
// Tests pin these messages; keep the wording stable.

const fmtShape = (s: readonly number[]): string => `[${s.join(",")}]`;

/** `model.safetensors: "model.layers.3.mlp.down_proj.weight" has shape [a,b], expected [c,d]` */
export function shapeMismatch(file: string, tensor: string, got: readonly number[], expected: readonly number[]): FormatError {
  return new FormatError(file, `"${tensor}" has shape ${fmtShape(got)}, expected ${fmtShape(expected)}`);
}

/** A tensor the architecture needs is absent from the checkpoint. */
export function missingTensor(file: string, tensor: string): FormatError {
  return new FormatError(file, `missing tensor "${tensor}"`);
}

/** A model weight stored in a dtype that is not a float one (the reader accepts integer tensors, weights must be floats). */
export function notFloatWeight(file: string, tensor: string, dtype: string): FormatError {
  return new FormatError(file, `tensor "${tensor}" has dtype ${dtype}, but model weights must be F32, F16 or BF16`);
}

/** A file ended before what its header promised. */
export function truncated(file: string, expectedBytes: number, actualBytes: number, what = "the header implies"): FormatError {
  return new FormatError(file, `file is ${actualBytes} bytes but ${what} ${expectedBytes} bytes`);
}

/** A required config.json field is absent or has the wrong type. */
export function configField(file: string, field: string, detail: string): ConfigError {
  return new ConfigError(`${file}: "${field}" ${detail}`);
}

/** A file we looked for in several places was not found. */
export function notFound(what: string, looked: readonly string[], hint = ""): MissingFileError {
  return new MissingFileError(`${what} not found; looked for ${looked.join(", ")}${hint ? ` (${hint})` : ""}`);
}

/** Refusing to overwrite an output. */
export function outputExists(path: string): OutputExistsError {
  return new OutputExistsError(`${path} already exists; pass force (--force) to overwrite it`);
}
