/**
 * @file `wasprune prune MODEL --structured …`: structured pruning (src/structured). `routePrune` decides,
 * from the options the user actually gave, whether `prune` runs this or the unstructured command, and refuses
 * options of the other path.
 */
import { UsageError } from "../../errors.js";
import { readTextFile } from "../../eval/text.js";
import { evalFlagProtocol, type EvalFlagOptions } from "../../eval/protocol.js";
import { DTYPES, type DType } from "../../model/types.js";
import { STRUCTURED_METHODS, type StructuredMethod } from "../../structured/methods.js";
import { runStructured, type StructuredSummary } from "../../structured/run.js";
import { openExecutor } from "../../workers/index.js";
import { DEFAULT_SPSA } from "../../structured/scorer.js";
import { fmt, table } from "../format.js";
import { openModel } from "../open-model.js";
import { progress } from "../progress.js";
import { selfText } from "../../generate/generate.js";

export interface PruneStructuredCliOptions extends EvalFlagOptions {
  method?: string;
  ratio?: number;
  headsRatio?: number;
  channelsRatio?: number;
  nonuniform?: boolean;
  refit: boolean;
  spsaDirections?: number;
  spsaEps?: number;
  spsaBatch?: number;
  seed?: number;
  calib?: string;
  nsamples: number;
  seqlen: number;
  out: string;
  force?: boolean;
  dtype?: string;
  json?: boolean;
  tokenizer?: string;
  /** worker threads (1 = none; the same results for any N) */
  threads?: number;
}

const STRUCTURED_ONLY: Record<string, string> = {
  ratio: "--ratio", headsRatio: "--heads-ratio", channelsRatio: "--channels-ratio", nonuniform: "--nonuniform", refit: "--no-refit",
  spsaDirections: "--spsa-directions", spsaEps: "--spsa-eps", spsaBatch: "--spsa-batch", seed: "--seed",
};
const UNSTRUCTURED_ONLY: Record<string, string> = { sparsity: "--sparsity", schedule: "--schedule", errorCorrection: "--error-correction" };

/**
 * "structured" or "unstructured" for the `prune` options; an option of the other path given on the command
 * line is a UsageError. Under --structured a defaulted --method (fista) is dropped so that the structured
 * default (DEFAULT_STRUCTURED_METHOD) applies.
 */
export function routePrune(opts: Record<string, unknown>, source: (name: string) => string | undefined): "structured" | "unstructured" {
  const given = (k: string): boolean => source(k) === "cli";
  if (opts.structured) {
    for (const [k, flag] of Object.entries(UNSTRUCTURED_ONLY)) if (given(k)) throw new UsageError(`${flag} applies to unstructured pruning; --structured takes --ratio/--heads-ratio/--channels-ratio`);
    if (!given("method")) opts.method = undefined;
    return "structured";
  }
  for (const [k, flag] of Object.entries(STRUCTURED_ONLY)) if (given(k)) throw new UsageError(`${flag} needs --structured`);
  return "unstructured";
}

/**
 * The default score: `activation`, the best on stories260K of every criterion measured (README "Structured
 * pruning": no refit, refit and refit + LoRA at 25% and 50%; `wasprune bench structured`) — MINI-LLM's hybrid
 * (mini-llm) and its exact-gradient bound lose to it there.
 */
export const DEFAULT_STRUCTURED_METHOD: StructuredMethod = "activation";

export function parseStructuredMethod(m: string | undefined): StructuredMethod {
  const name = m ?? DEFAULT_STRUCTURED_METHOD;
  if (!(STRUCTURED_METHODS as readonly string[]).includes(name)) throw new UsageError(`--method ${name}: with --structured, expected one of ${STRUCTURED_METHODS.join(", ")}`);
  return name as StructuredMethod;
}

/** --ratio sets both; --heads-ratio / --channels-ratio override it. At least one must be given. */
export function parseRatios(o: Pick<PruneStructuredCliOptions, "ratio" | "headsRatio" | "channelsRatio">): { channelsRatio: number; headsRatio: number } {
  if (o.ratio === undefined && o.headsRatio === undefined && o.channelsRatio === undefined) {
    throw new UsageError("--structured needs --ratio R (or --heads-ratio / --channels-ratio), a fraction in [0,1)");
  }
  const r = { channelsRatio: o.channelsRatio ?? o.ratio ?? 0, headsRatio: o.headsRatio ?? o.ratio ?? 0 };
  for (const [flag, v] of [["--ratio", o.ratio], ["--heads-ratio", o.headsRatio], ["--channels-ratio", o.channelsRatio]] as const) {
    if (v !== undefined && !(v >= 0 && v < 1)) throw new UsageError(`${flag} ${v}: expected a fraction in [0, 1)`);
  }
  return r;
}

export async function pruneStructuredCommand(modelPath: string, o: PruneStructuredCliOptions): Promise<StructuredSummary> {
  const method = parseStructuredMethod(o.method);
  const ratios = parseRatios(o);
  if (o.dtype !== undefined && !(DTYPES as readonly string[]).includes(o.dtype)) throw new UsageError(`--dtype ${o.dtype}: expected one of ${DTYPES.join(", ")}`);
  const spsa = {
    directions: o.spsaDirections ?? DEFAULT_SPSA.directions,
    eps: o.spsaEps,
    seed: o.seed ?? DEFAULT_SPSA.seed,
    batchSize: o.spsaBatch ?? DEFAULT_SPSA.batchSize,
  };
  if (!(Number.isInteger(spsa.directions) && spsa.directions >= 1)) throw new UsageError(`--spsa-directions ${spsa.directions}: expected a positive integer`);
  if (spsa.eps !== undefined && !(spsa.eps > 0 && spsa.eps < 1)) throw new UsageError(`--spsa-eps ${spsa.eps}: expected a number in (0, 1)`);
  if (!(Number.isInteger(spsa.batchSize) && spsa.batchSize >= 1)) throw new UsageError(`--spsa-batch ${spsa.batchSize}: expected a positive integer`);
  const calibText = o.calib ? readTextFile(o.calib, "--calib") : undefined;
  const evalProtocol = evalFlagProtocol(o);
  const evalText = o.eval ? readTextFile(o.eval, "--eval") : undefined;
  const model = await openModel(modelPath, { tokenizer: o.tokenizer });
  const text = calibText ?? selfText(model, Math.min(o.nsamples, 128), Math.min(o.seqlen, model.config.maxSeqLen), 7);
  let bar = progress("", 1, { json: o.json });
  const exec = openExecutor(model.wasm, o.threads ?? 1);
  try {
    const summary = await runStructured(
      {
        model, exec, method, ratios, nonuniform: !!o.nonuniform, refit: o.refit !== false, spsa,
        calib: { text, file: o.calib ?? "(text sampled from the dense model, seed 7)", nsamples: o.nsamples, seqlen: o.seqlen },
        out: o.out, force: o.force, dtype: o.dtype as DType | undefined,
        evalText: evalText && evalProtocol ? { text: evalText, file: o.eval!, protocol: evalProtocol } : undefined,
      },
      {
        onProgress: (what, done, total) => {
          if (done === 1) {
            bar.stop();
            bar = progress(what, total, { json: o.json });
          }
          bar.update(done);
        },
      },
    );
    bar.stop();
    if (o.json) console.log(JSON.stringify(summary, null, 2));
    else console.log(renderStructuredSummary(summary));
    return summary;
  } finally {
    bar.stop();
    await exec.close();
  }
}

export function renderStructuredSummary(s: StructuredSummary): string {
  const b = s.sizes.before;
  const a = s.sizes.after;
  const lines: string[] = [];
  if (s.refitOperators.length) {
    lines.push(
      table(
        ["layer", "op", "kept / in", "rel. error dropped", "rel. error refit"],
        s.refitOperators.map((r) => [String(r.layer), r.op, `${r.kept}/${r.cols}`, fmt(r.relErrDropped, 4), fmt(r.relErrRefit, 4)]),
        { align: ["r", "l", "r", "r", "r"] },
      ),
      "",
    );
  }
  const layerSizes = a.layerSizes ? ` per layer ${a.layerSizes.map((x) => `${x.hiddenDim}/${x.nKvHeads}`).join(" ")} (channels/kv groups)` : "";
  lines.push(
    `structured ${s.method}${s.nonuniform ? " (nonuniform)" : ""}: channels ${fmt(100 * s.ratios.channelsRatio, 1)}%, k/v groups ${fmt(100 * s.ratios.headsRatio, 1)}% removed; ` +
      `intermediate ${b.hiddenDim} → ${a.hiddenDim}, heads ${b.nHeads}/${b.nKvHeads} → ${a.nHeads}/${a.nKvHeads}${layerSizes}`,
    `parameters ${b.params} → ${a.params} (linear ${b.linearParams} → ${a.linearParams}), ${fmt(s.seconds.total, 2)} s`,
  );
  if (s.perplexity) {
    const p = s.perplexity;
    lines.push(
      `perplexity: dense ${fmt(p.dense.perplexity, 4)} → without refit ${fmt(p.noRefit.perplexity, 4)}` +
        (p.refit ? `, with refit ${fmt(p.refit.perplexity, 4)}` : "") + ` (${p.dense.tokens} tokens)`,
    );
  }
  lines.push(`written: ${s.out}`);
  return lines.join("\n");
}
