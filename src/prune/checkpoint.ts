/**
 * @file Resumable pruning: after each decoder layer the pruned weights of its linear operators (float32, exact)
 * and its reports are written to `<out>/.wasprune-checkpoint/layer-<l>.safetensors`, atomically. A manifest
 * records the settings; a rerun of the same command finds the checkpoints, loads those layers instead of
 * pruning them again, recomputes the activation stream through them (deterministic kernels), and so finishes
 * with a byte-identical result. A rerun with different settings is refused (use --force to start over).
 */
import fs from "node:fs";
import path from "node:path";
import { UsageError } from "../errors.js";
import { openSafetensors, writeSafetensors } from "../io/safetensors.js";
import { LINEAR_OPS, type LinearOp } from "../model/types.js";
import type { OperatorReport } from "./driver.js";

export const CHECKPOINT_DIR = ".wasprune-checkpoint";
const MANIFEST = "manifest.json";

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

export class LayerCheckpoints {
  readonly dir: string;

  /** `settings` is any JSON describing the run; it must match for a resume. */
  constructor(dir: string, readonly settings: Record<string, unknown>) {
    this.dir = dir;
    const manifest = path.join(dir, MANIFEST);
    const want = JSON.stringify(settings);
    if (fs.existsSync(manifest)) {
      const have = fs.readFileSync(manifest, "utf8");
      if (have.trim() !== want) {
        throw new UsageError(
          `${dir}: holds a partial prune with different settings (${diffKeys(JSON.parse(have), settings)}); ` +
            `rerun with the same options to resume, or pass --force to start over`,
        );
      }
    } else {
      fs.mkdirSync(dir, { recursive: true });
      writeFileAtomic(manifest, want + "\n");
    }
  }

  /** Layers already done, for the report. */
  completed(): number[] {
    return fs
      .readdirSync(this.dir)
      .map((f) => /^layer-(\d+)\.safetensors$/.exec(f))
      .filter((m): m is RegExpExecArray => !!m)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
  }

  load(l: number): { weights: Partial<Record<LinearOp, Float32Array>>; reports: OperatorReport[] } | undefined {
    const file = path.join(this.dir, `layer-${l}.safetensors`);
    if (!fs.existsSync(file)) return undefined;
    const st = openSafetensors(file);
    try {
      const weights: Partial<Record<LinearOp, Float32Array>> = {};
      for (const op of LINEAR_OPS) {
        const e = st.header.get(op);
        if (!e) throw new UsageError(`${file}: checkpoint lacks "${op}"; delete ${this.dir} or pass --force`);
        const dst = new Float32Array(e.shape.reduce((a, b) => a * b, 1));
        st.readF32Into(op, dst);
        weights[op] = dst;
      }
      const reports = JSON.parse(st.metadata.reports ?? "[]") as OperatorReport[];
      return { weights, reports };
    } finally {
      st.close();
    }
  }

  save(l: number, weights: Record<LinearOp, Float32Array>, reports: OperatorReport[]): void {
    const tensors = LINEAR_OPS.map((op) => ({ name: op, dtype: "F32" as const, shape: [weights[op].length], data: weights[op] }));
    writeSafetensors(path.join(this.dir, `layer-${l}.safetensors`), tensors, { reports: JSON.stringify(reports) });
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function diffKeys(a: Record<string, unknown>, b: Record<string, unknown>): string {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  const diff = keys.filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
  return diff.map((k) => `${k}: ${JSON.stringify(a[k])} → ${JSON.stringify(b[k])}`).join(", ") || "unknown difference";
}
