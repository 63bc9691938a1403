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
