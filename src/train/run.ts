/**
 * @file A whole `wasprune train` job: output policy (never clobber, atomic, resumable), periodic evaluation,
 * checkpoints, the written model and `training.json`.
 *
 * Output layout for `--out DIR` (as `prune`, src/prune/run.ts): while running DIR holds only
 * `.wasprune-checkpoint/` (manifest.json with the settings, state.safetensors with the latest state). At the
 * end the model — W⊙M, exactly N:M; with LoRA, W + (α/r)·B A merged — is written beside DIR and its files
 * renamed in, `slorb.safetensors` with the SLoRB matrices when trained with them, then `training.json` (its
 * presence marks a finished output).
 *
 * A checkpoint holds everything a step depends on: every trained parameter (dense shadow weights, norms,
 * embeddings, SLoRB; with LoRA only the adapters — the frozen weights are the starting model's), the AdamW
 * moments and step count, the masks, Wanda's statistics, the step number and the log so far.
 * Data position and RNG are functions of (seed, step) (data.ts), so they need no saving. Rerunning the same
 * command after a kill resumes from the latest checkpoint and ends with the same bytes.
 */
import fs from "node:fs";
import path from "node:path";
import { OutputExistsError, UsageError } from "../errors.js";
import { openSafetensors, writeSafetensors, type TensorToWrite } from "../io/safetensors.js";
import { saveHF } from "../model/save.js";
import { writeFileAtomic } from "../prune/checkpoint.js";
import type { Trainer, StepResult, TrainSettings } from "./trainer.js";
import { maskedModelView, mergeLora } from "./student.js";

export const TRAIN_REPORT = "training.json";
export const TRAIN_CHECKPOINT_DIR = ".wasprune-checkpoint";
const MANIFEST = "manifest.json";
const STATE = "state.safetensors";
export const SLORB_FILE = "slorb.safetensors";

export type LogEntry =
  | ({ kind: "step"; tokensSeen: number } & Omit<StepResult, "tokens">)
  | { kind: "eval"; step: number; tokensSeen: number; perplexity: number; meanNll: number };

export interface TrainJob {
  trainer: Trainer;
  out: string;
  force?: boolean;
  /** the run's identity for the manifest: model paths, data, settings */
  manifest: Record<string, unknown>;
  evalSeqs?: number[][];
  evalInfo?: Record<string, unknown>;
  evalEvery: number;
  checkpointEvery: number;
}

export interface TrainSummary {
  out: string;
  settings: TrainSettings;
  manifest: Record<string, unknown>;
  steps: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  resumedFromStep: number;
  /** measured on the written weights: fraction of zeros over linear operators, and whether every group is N:M (not with LoRA) */
  sparsity: number;
  exactNM?: boolean;
  slorbParams: number;
  /** LoRA: rank, α, the adapters' parameter count (merged into the written weights) */
  lora?: { rank: number; alpha: number; adapterParams: number; merged: true };
  eval?: Record<string, unknown>;
  log: LogEntry[];
}

export interface TrainHooks {
  onStep?(r: StepResult, tokensPerSecond: number, lastPerplexity?: number): void;
  onEval?(e: LogEntry): void;
}

/** Check the output path before any work; returns the checkpoint directory. */
export function prepareTrainOutput(out: string, force: boolean): string {
  if (fs.existsSync(out)) {
    if (!fs.statSync(out).isDirectory()) throw new UsageError(`--out ${out}: is a file, expected a directory`);
    const entries = fs.readdirSync(out);
    const finished = entries.includes(TRAIN_REPORT);
    const partial = entries.includes(TRAIN_CHECKPOINT_DIR);
    if (finished && !force) throw new OutputExistsError(`--out ${out}: holds a finished trained model (${TRAIN_REPORT}); pass --force to overwrite it`);
    if (!finished && !partial && entries.length > 0 && !force) {
      throw new OutputExistsError(`--out ${out}: is a non-empty directory that is not a wasprune output; pass --force to write into it`);
    }
    if (force) {
      fs.rmSync(path.join(out, TRAIN_REPORT), { force: true });
      fs.rmSync(path.join(out, TRAIN_CHECKPOINT_DIR), { recursive: true, force: true });
    }
  }
  return path.join(out, TRAIN_CHECKPOINT_DIR);
}

function saveState(file: string, tr: Trainer, log: LogEntry[]): void {
  const st = tr.student;
  const tensors: TensorToWrite[] = st.params.map((p) => ({ name: `p.${p.name}`, dtype: "F32" as const, shape: [p.t.data.length], data: p.t.data }));
  tensors.push({ name: "adam.m", dtype: "F32", shape: [tr.opt.m.length], data: tr.opt.m });
  tensors.push({ name: "adam.v", dtype: "F32", shape: [tr.opt.v.length], data: tr.opt.v });
  st.linears.forEach((lp, j) => {
    if (lp.mask) tensors.push({ name: `mask.${lp.layer}.${lp.op}`, dtype: "U8", shape: [lp.mask.length], data: lp.mask });
    if (tr.wanda) {
      const a = tr.wanda.sq[j];
      tensors.push({ name: `wanda.${j}`, dtype: "F64", shape: [a.length], data: new Uint8Array(a.buffer, a.byteOffset, a.byteLength) });
    }
  });
  writeSafetensors(file, tensors, {
    step: String(tr.step),
    adamT: String(tr.opt.t),
    wandaSamples: String(tr.wanda?.samples ?? -1),
    log: JSON.stringify(log),
  });
}

function loadState(file: string, tr: Trainer): LogEntry[] {
  const sf = openSafetensors(file);
  try {
    const st = tr.student;
    const need = (name: string) => {
      const e = sf.header.get(name);
      if (!e) throw new UsageError(`${file}: checkpoint lacks "${name}"; delete ${path.dirname(file)} or pass --force`);
      return e;
    };
    for (const p of st.params) {
      need(`p.${p.name}`);
      sf.readF32Into(`p.${p.name}`, p.t.data);
    }
    need("adam.m");
    sf.readF32Into("adam.m", tr.opt.m);
    sf.readF32Into("adam.v", tr.opt.v);
    tr.opt.t = Number(sf.metadata.adamT);
    const samples = Number(sf.metadata.wandaSamples);
    if (samples >= 0) tr.wanda = { sq: [], samples };
    st.linears.forEach((lp, j) => {
      if (lp.mask) {
        need(`mask.${lp.layer}.${lp.op}`);
        lp.mask.set(sf.readRaw(`mask.${lp.layer}.${lp.op}`));
      }
      if (tr.wanda) {
        const raw = sf.readRaw(`wanda.${j}`);
        tr.wanda.sq.push(new Float64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)));
      }
    });
    tr.step = Number(sf.metadata.step);
    tr.refreshAll();
    return JSON.parse(sf.metadata.log ?? "[]") as LogEntry[];
  } finally {
    sf.close();
  }
}

export async function runTrain(job: TrainJob, hooks: TrainHooks = {}): Promise<TrainSummary> {
  const { trainer: tr, out } = job;
  const s = tr.s;
  const ckDir = prepareTrainOutput(out, !!job.force);
  fs.mkdirSync(ckDir, { recursive: true });
  const manifestFile = path.join(ckDir, MANIFEST);
  const want = JSON.stringify(job.manifest);
  const stateFile = path.join(ckDir, STATE);
  let log: LogEntry[] = [];
  let resumedFromStep = 0;
  if (fs.existsSync(manifestFile)) {
    const have = fs.readFileSync(manifestFile, "utf8").trim();
    if (have !== want) {
      throw new UsageError(`${ckDir}: holds a partial training run with different settings; rerun the same command to resume, or pass --force to start over`);
    }
  } else {
    writeFileAtomic(manifestFile, want + "\n");
  }
  if (fs.existsSync(stateFile)) {
    log = loadState(stateFile, tr);
    resumedFromStep = tr.step;
  } else {
    tr.init();
  }
  const evaluate = () => {
    if (!job.evalSeqs) return undefined;
    const r = tr.perplexity(job.evalSeqs);
    const e: LogEntry = { kind: "eval", step: tr.step, tokensSeen: tokensAt(tr.step), perplexity: r.perplexity, meanNll: r.meanNll };
    log.push(e);
    hooks.onEval?.(e);
    return r.perplexity;
  };
  const tokensAt = (step: number) => step * s.batch * s.accum * s.seqlen;
  let lastPpl: number | undefined;
  if (tr.step === 0) lastPpl = evaluate();
  else lastPpl = [...log].reverse().find((e) => e.kind === "eval")?.perplexity as number | undefined;
  const t0 = performance.now();
  let trained = 0;
  while (tr.step < s.steps) {
    const r = await tr.trainStep();
    trained += r.tokens;
    const { tokens: _t, ...rest } = r;
    log.push({ kind: "step", tokensSeen: tokensAt(r.step), ...rest });
    if (job.evalSeqs && (r.step % job.evalEvery === 0 || r.step === s.steps)) lastPpl = evaluate();
    hooks.onStep?.(r, trained / ((performance.now() - t0) / 1000), lastPpl);
    if (r.step % job.checkpointEvery === 0 && r.step < s.steps) saveState(stateFile, tr, log);
  }
  const seconds = (performance.now() - t0) / 1000;
  const lora = tr.student.linears.filter((lp) => lp.lora);
  const adapterParams = lora.reduce((n, lp) => n + lp.lora!.a.data.length + lp.lora!.b.data.length, 0);
  mergeLora(tr.student);

  // measured on what is written
  let zeros = 0;
  let params = 0;
  let exact = true;
  for (const lp of tr.student.linears) {
    const w = lp.wm.data;
    params += w.length;
    for (const v of w) if (v === 0) zeros++;
    if (s.m > 0) {
      for (let g = 0; g < w.length; g += s.m) {
        let nz = 0;
        for (let i = 0; i < s.m; i++) if (w[g + i] !== 0) nz++;
        if (nz > s.n) exact = false;
      }
    }
  }
  const slorbs = tr.student.linears.filter((lp) => lp.slorb);
  const summary: TrainSummary = {
    out,
    settings: s,
    manifest: job.manifest,
    steps: tr.step,
    tokens: tokensAt(tr.step),
    seconds,
    tokensPerSecond: trained / seconds,
    resumedFromStep,
    sparsity: zeros / params,
    ...(s.m > 0 ? { exactNM: exact } : {}),
    slorbParams: slorbs.reduce((a, lp) => a + lp.slorb!.s.data.length, 0),
    ...(lora.length ? { lora: { rank: s.loraRank, alpha: s.loraAlpha, adapterParams, merged: true as const } } : {}),
    eval: job.evalInfo,
    log,
  };
  writeOutput(job, summary);
  fs.rmSync(ckDir, { recursive: true, force: true });
  return summary;
}

function writeOutput(job: TrainJob, summary: TrainSummary): void {
  const tr = job.trainer;
  const out = job.out;
  const tmp = `${path.resolve(out)}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  saveHF(maskedModelView(tr.student), tmp, { force: true });
  const slorbs = tr.student.linears.filter((lp) => lp.slorb);
  if (slorbs.length) {
    // not part of the LLaMA checkpoint format: y += S·(P x), P summing groups of k inputs (see trainer.ts)
    writeSafetensors(
      path.join(tmp, SLORB_FILE),
      slorbs.map((lp) => ({ name: `model.layers.${lp.layer}.${lp.op}.slorb`, dtype: "F32" as const, shape: lp.slorb!.s.shape, data: lp.slorb!.s.data })),
      { k: String(slorbs[0].slorb!.k), formula: "y = (W*M) x + S (P x), (P x)[q] = sum of inputs q*k .. q*k+k-1" },
    );
  }
  fs.mkdirSync(out, { recursive: true });
  for (const f of fs.readdirSync(tmp)) fs.renameSync(path.join(tmp, f), path.join(out, f));
  fs.rmSync(tmp, { recursive: true, force: true });
  writeFileAtomic(path.join(out, TRAIN_REPORT), JSON.stringify({ wasprune: summary }, null, 2) + "\n");
}
