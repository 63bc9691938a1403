/**
 * @file `wasprune train`: sparse training of a student (MODEL, or --init) against a dense teacher (--teacher,
 * default MODEL) with the AST recipe (src/train/trainer.ts) or plain fixed-mask fine-tuning, on a text file or
 * on text sampled from the teacher (--data teacher). Writes a pruned model directory like `prune`.
 * `--method lora` instead trains LoRA adapters on a frozen student — typically `--init` a structurally pruned
 * (smaller) model, distilled from the dense MODEL or on next-token loss alone (--alpha 1) — and writes the
 * student with the adapters merged: a standard model of the student's shapes.
 */
import fs from "node:fs";
import path from "node:path";
import { UsageError } from "../../errors.js";
import { paragraphSequences, readTextFile } from "../../eval/text.js";
import { BUILTIN_NAME, builtinModel } from "../../model/builtin.js";
import { loadModel } from "../../model/load.js";
import { openExecutor } from "../../workers/index.js";
import type { Model } from "../../model/types.js";
import { parsePattern } from "../../prune/pattern.js";
import { createWasm, type Wasm } from "../../wasm/runtime.js";
import { TeacherSource, TextSource, type DataSource } from "../../train/data.js";
import { MASK_METRICS, type MaskMetric } from "../../train/mask.js";
import { runTrain, type TrainSummary } from "../../train/run.js";
import { DEFAULTS, TRAIN_METHODS, Trainer, type TrainMethod, type TrainSettings } from "../../train/trainer.js";
import { resolveModelPath } from "../open-model.js";
import { fmt } from "../format.js";
import cliProgress from "cli-progress";

export interface TrainCliOptions {
  /** undefined when not given on the command line (2:4 then, except with --method lora) */
  sparsity?: string;
  teacher?: string;
  data: string;
  steps: number;
  lr: number;
  batch: number;
  seqlen: number;
  accum: number;
  alpha: number;
  temperature: number;
  maskInterval: number;
  maskMetric: string;
  method: string;
  decay: number;
  decayRamp?: number;
  weightDecay: number;
  warmup?: number;
  slorb?: boolean;
  slorbK: number;
  loraRank: number;
  loraAlpha: number;
  init?: string;
  out: string;
  eval?: string;
  evalParagraphs?: number;
  evalEvery?: number;
  ctx: number;
  checkpointEvery?: number;
  seed: number;
  force?: boolean;
  json?: boolean;
  tokenizer?: string;
  threads?: number;
  gradBlocks?: number;
}

function positiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= 1)) throw new UsageError(`${name} must be a positive integer, got ${v}`);
}

/** Validate every option before loading anything (errors name the option). */
export function checkTrainOptions(o: TrainCliOptions): { n: number; m: number } {
  if (!(TRAIN_METHODS as readonly string[]).includes(o.method)) throw new UsageError(`--method ${o.method}: expected one of ${TRAIN_METHODS.join(", ")}`);
  const lora = o.method === "lora";
  if (lora && o.sparsity !== undefined) throw new UsageError(`--sparsity ${o.sparsity}: --method lora trains a dense (e.g. structurally pruned) model, without N:M masks`);
  if (lora && o.slorb) throw new UsageError("--slorb: SLoRB belongs to N:M training; --method lora trains LoRA adapters");
  const pattern = lora ? undefined : parsePattern(o.sparsity ?? "2:4");
  if (pattern && pattern.kind !== "nm") throw new UsageError(`--sparsity ${o.sparsity}: training supports N:M patterns (e.g. 2:4)`);
  for (const [name, v] of [["--steps", o.steps], ["--batch", o.batch], ["--seqlen", o.seqlen], ["--accum", o.accum], ["--mask-interval", o.maskInterval], ["--slorb-k", o.slorbK], ["--lora-rank", o.loraRank], ["--eval-every", o.evalEvery], ["--checkpoint-every", o.checkpointEvery], ["--decay-ramp", o.decayRamp], ["--eval-paragraphs", o.evalParagraphs]] as const) {
    positiveInt(name, v);
  }
  if (!(o.loraAlpha > 0)) throw new UsageError(`--lora-alpha must be positive, got ${o.loraAlpha}`);
  if (o.seqlen < 2) throw new UsageError(`--seqlen must be at least 2, got ${o.seqlen}`);
  if (!(o.lr > 0)) throw new UsageError(`--lr must be positive, got ${o.lr}`);
  if (!(o.alpha >= 0 && o.alpha <= 1)) throw new UsageError(`--alpha must be in [0, 1], got ${o.alpha}`);
  if (!(o.temperature > 0)) throw new UsageError(`--temperature must be positive, got ${o.temperature}`);
  if (o.gradBlocks !== undefined && !(Number.isInteger(o.gradBlocks) && o.gradBlocks >= 1)) throw new UsageError(`--grad-blocks must be a positive integer, got ${o.gradBlocks}`);
  if (!(o.decay >= 0)) throw new UsageError(`--decay must be ≥ 0, got ${o.decay}`);
  if (!(o.weightDecay >= 0)) throw new UsageError(`--weight-decay must be ≥ 0, got ${o.weightDecay}`);
  if (o.warmup !== undefined && !(Number.isInteger(o.warmup) && o.warmup >= 0)) throw new UsageError(`--warmup must be a non-negative integer, got ${o.warmup}`);
  if (!(MASK_METRICS as readonly string[]).includes(o.maskMetric)) throw new UsageError(`--mask-metric ${o.maskMetric}: expected one of ${MASK_METRICS.join(", ")}`);
  // --threads: the step's sequence blocks run data-parallel on the pool (src/train/data-parallel.ts): same bytes
  // for any N, and a run checkpointed at one N resumes at another
  if (o.data !== "teacher" && !fs.existsSync(o.data)) throw new UsageError(`--data ${o.data}: not found (a text file, or "teacher" for text sampled from the teacher)`);
  if (o.init !== undefined && !fs.existsSync(o.init)) throw new UsageError(`--init ${o.init}: not found`);
  if (o.eval !== undefined) readTextFile(o.eval, "--eval");
  return pattern?.kind === "nm" ? { n: pattern.n, m: pattern.m } : { n: 0, m: 0 };
}

async function open(spec: string, wasm: Wasm, tokenizer?: string): Promise<Model> {
  if (spec === BUILTIN_NAME) return builtinModel(wasm);
  return loadModel(await resolveModelPath(spec), { wasm, tokenizer });
}

export async function trainCommand(modelPath: string, o: TrainCliOptions): Promise<TrainSummary> {
  const { n, m } = checkTrainOptions(o);
  const dataText = o.data === "teacher" ? undefined : readTextFile(o.data, "--data");
  const evalText = o.eval ? readTextFile(o.eval, "--eval") : undefined;
  const wasm = createWasm();
  const teacherPath = o.teacher ?? modelPath;
  const teacher = await open(teacherPath, wasm, o.tokenizer);
  const student = await open(o.init ?? modelPath, wasm, o.tokenizer);
  const tok = teacher.tokenizer ?? student.tokenizer;
  if (!tok && (dataText || evalText)) throw new UsageError("train needs a tokenizer for --data / --eval text (pass --tokenizer)");
  if (!student.tokenizer && tok) student.tokenizer = tok;
  // AST trains the student's masks against a teacher of its own shapes; LoRA's student may be smaller
  // (structured pruning): the distillation loss compares logits, so only the vocabulary must agree
  const keys = o.method === "lora" ? (["vocabSize"] as const) : (["dim", "nLayers", "nHeads", "nKvHeads", "hiddenDim", "vocabSize"] as const);
  for (const key of keys) {
    if (o.init && student.config[key] !== teacher.config[key]) {
      throw new UsageError(`--init ${o.init}: ${key} ${student.config[key]} differs from the model's ${teacher.config[key]}`);
    }
  }
  const s: TrainSettings = {
    ...DEFAULTS,
    n, m,
    method: o.method as TrainMethod,
    metric: o.maskMetric as MaskMetric,
    maskInterval: o.maskInterval,
    steps: o.steps,
    lr: o.lr,
    warmup: o.warmup ?? Math.min(100, Math.ceil(o.steps / 10)),
    batch: o.batch,
    seqlen: o.seqlen,
    accum: o.accum,
    alpha: o.alpha,
    temperature: o.temperature,
    decay: o.decay,
    decayRamp: o.decayRamp ?? o.steps,
    weightDecay: o.weightDecay,
    slorbK: o.slorb ? o.slorbK : 0,
    loraRank: o.loraRank,
    loraAlpha: o.loraAlpha,
    seed: o.seed,
    gradBlocks: o.gradBlocks ?? DEFAULTS.gradBlocks,
  };
  const data: DataSource = dataText ? new TextSource(tok!, dataText, o.data, s.seqlen, s.seed) : new TeacherSource(teacher, s.seqlen, s.seed);
  const ctx = Math.min(o.ctx, student.config.maxSeqLen);
  const evalSeqs = evalText ? paragraphSequences(tok!, evalText, o.evalParagraphs, ctx) : undefined;
  const exec = openExecutor(wasm, o.threads ?? 1); // before the Trainer, which takes the slots' buffers from the arena
  let trainer: Trainer;
  try {
    trainer = new Trainer(student, teacher, data, s, exec, evalSeqs ? Math.max(...evalSeqs.map((q) => q.length)) : 0);
  } catch (e) {
    await exec.close();
    throw e;
  }
  const manifest = {
    model: modelPath, teacher: teacherPath, init: o.init ?? null, data: data.describe(), settings: s,
    eval: o.eval ? { file: o.eval, paragraphs: o.evalParagraphs ?? null, ctx } : null,
  };
  const evalEvery = o.evalEvery ?? Math.max(1, Math.ceil(o.steps / 10));
  const bar = trainBar(s.method === "lora" ? `train lora r=${s.loraRank}` : `train ${s.method} ${n}:${m}`, s.steps, o.json);
  let flipsInterval = 0;
  let lastFlips: number | string = "-";
  try {
    const summary = await runTrain(
      {
        trainer, out: o.out, force: o.force, manifest, evalSeqs, evalEvery, checkpointEvery: o.checkpointEvery ?? evalEvery,
        evalInfo: o.eval ? { file: o.eval, paragraphs: o.evalParagraphs ?? null, ctx, sequences: evalSeqs!.length } : undefined,
      },
      {
        onStep: (r, tps, ppl) => {
          if (r.flips !== undefined) {
            flipsInterval = r.flips;
            lastFlips = flipsInterval;
          }
          bar.update(r.step, { loss: fmt(r.loss, 4), kl: fmt(r.kl, 4), flips: lastFlips, tps: Math.round(tps), ppl: ppl === undefined ? "-" : fmt(ppl, 3) });
        },
      },
    );
    bar.stop();
    if (o.json) console.log(JSON.stringify(summary, null, 2));
    else console.log(renderTrainSummary(summary));
    return summary;
  } finally {
    bar.stop();
    await exec.close();
  }
}

/** The progress bar: loss, KL, mask flips of the last interval, tokens/s, last validation perplexity. */
function trainBar(label: string, total: number, json?: boolean) {
  if (json || !process.stderr.isTTY || process.env.CI) return { update(_d: number, _p?: Record<string, unknown>) {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {value}/{total} | loss {loss} | KL {kl} | flips {flips} | {tps} tok/s | ppl {ppl} | ETA {eta_formatted}`,
      stream: process.stderr, hideCursor: true, clearOnComplete: true, etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { loss: "-", kl: "-", flips: "-", tps: 0, ppl: "-" });
  let stopped = false;
  return {
    update: (d: number, p?: Record<string, unknown>) => bar.update(d, p),
    stop: () => {
      if (!stopped) bar.stop();
      stopped = true;
    },
  };
}

export function renderTrainSummary(s: TrainSummary): string {
  const evals = s.log.filter((e) => e.kind === "eval");
  const lines: string[] = [];
  if (evals.length) {
    lines.push("validation perplexity vs training tokens:");
    for (const e of evals) lines.push(`  step ${String(e.step).padStart(6)}  tokens ${String(e.tokensSeen).padStart(9)}  ppl ${fmt(e.perplexity, 4)}`);
  }
  const st = s.settings;
  const what = s.lora ? `lora r=${s.lora.rank} α=${s.lora.alpha}` : `${st.method} ${st.n}:${st.m}${st.slorbK ? ` + SLoRB k=${st.slorbK}` : ""}`;
  lines.push(
    `${what}: ${s.steps} steps, ${s.tokens} tokens, ${fmt(s.seconds, 1)} s, ` +
      `${Math.round(s.tokensPerSecond)} tokens/s${s.resumedFromStep ? ` (resumed at step ${s.resumedFromStep})` : ""}`,
  );
  if (s.lora) lines.push(`written: ${s.out} (${s.lora.adapterParams} adapter parameters trained and merged into the weights)`);
  else lines.push(`written: ${s.out} (${fmt(100 * s.sparsity, 2)}% of linear weights zero, exact ${st.n}:${st.m}: ${s.exactNM ? "yes" : "NO"})`);
  if (s.slorbParams) lines.push(`SLoRB: ${s.slorbParams} extra parameters in ${path.join(s.out, "slorb.safetensors")} (loaded with the model: eval, generate and compress keep it)`);
  return lines.join("\n");
}
