/** @file `wasprune synth`: a random-weight model of a real shape (src/model/synthetic.ts); not for quality. */
import * as fs from "node:fs";
import { ConfigError, MissingFileError } from "../../errors.js";
import { parseSize } from "../../io/sharded-writer.js";
import { SYNTHETIC_SHAPES, synthesize, type SynthReport } from "../../model/synthetic.js";
import type { DType } from "../../model/types.js";
import { fmt, humanBytes, humanCount, table } from "../format.js";
import { progress } from "../progress.js";

export interface SynthCliOptions {
  out: string;
  layers?: number;
  vocab?: number;
  dtype?: string;
  seed?: number;
  maxShardSize?: string;
  tokenizer?: string;
  force?: boolean;
  json?: boolean;
}

/** A named shape, or the path of a config.json (any file that is not a shape name). */
function shapeArg(shape: string): string | Record<string, unknown> {
  if (Object.prototype.hasOwnProperty.call(SYNTHETIC_SHAPES, shape) || !(shape.endsWith(".json") || fs.existsSync(shape))) return shape;
  if (!fs.existsSync(shape) || fs.statSync(shape).isDirectory()) throw new MissingFileError(`config file ${shape} does not exist`);
  try {
    const raw = JSON.parse(fs.readFileSync(shape, "utf8")) as unknown;
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error("not an object");
    return raw as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(`${shape}: is not a valid JSON object (${(e as Error).message})`);
  }
}

export function synthCommand(shape: string, opts: SynthCliOptions): SynthReport {
  const bar = progress("synth", 100, { json: opts.json, extra: "{bytes}" });
  let r: SynthReport;
  try {
    r = synthesize(opts.out, {
      shape: shapeArg(shape),
      layers: opts.layers,
      vocab: opts.vocab,
      dtype: (opts.dtype?.toUpperCase() ?? "BF16") as DType,
      seed: opts.seed,
      maxShardBytes: parseSize(opts.maxShardSize ?? "5GB", "--max-shard-size"),
      tokenizer: opts.tokenizer,
      force: opts.force,
      onProgress: (done, total) => bar.update(Math.floor((100 * done) / Math.max(1, total)), { bytes: humanBytes(done) }),
    });
  } finally {
    bar.stop();
  }
  if (opts.json) {
    console.log(JSON.stringify(r, null, 2));
    return r;
  }
  const c = r.config;
  console.log(`wrote ${r.dir}: random weights of shape ${r.shape}${r.source ? ` (${r.source})` : ""}, ${r.dtype}, seed ${r.seed} (not a model to evaluate: its perplexity means nothing)`);
  console.log(`  dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nLayers} layers, ${c.nHeads} heads / ${c.nKvHeads} kv, vocab ${c.vocabSize}; ${humanCount(r.parameters)} parameters`);
  console.log(table(["file", "bytes"], r.files.map((f) => [f.name, String(f.bytes)]), { align: ["l", "r"] }));
  console.log(`${humanBytes(r.bytes)} in ${fmt(r.seconds, 3)} s (${humanBytes(r.bytes / r.seconds)}/s)`);
  return r;
}
