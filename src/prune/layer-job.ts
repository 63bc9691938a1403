/**
 * @file Whole-layer pruning jobs (the `parallel` schedule's layers in flight, ./in-flight.ts): one decoder layer
 * pruned start to finish on the thread the job runs on — calibration passes, statistics, every operator's
 * method — with the same code as the main thread's path (./driver.ts `pruneLayer`), on a local executor (every
 * product runs in one block, which is bit-identical to the sharded one). The job allocates from its own region
 * [base, limit) of the shared memory (a BoundedArena) that the main thread reserved; its input stream, its
 * RunState and the pruned output tensors were placed there by the main thread.
 */
import { BoundedArena, type Wasm } from "../wasm/runtime.js";
import { localExecutor, type Handlers } from "../exec/executor.js";
import { MemoryRows } from "../io/row-store.js";
import { revive, type Described } from "../model/describe.js";
import type { DenseLinear, LinearOp, ModelConfig } from "../model/types.js";
import type { RunState } from "../model/forward.js";
import type { DenseLayer } from "../model/linear.js";
import type { CalibrationSet } from "./calibration.js";
import { pruneLayer, type OperatorReport, type PruneSettings } from "./driver.js";

export interface LayerJobTask {
  op: "pruneLayer";
  config: ModelConfig;
  l: number;
  dense: Described<DenseLayer>;
  pruned: Described<Record<LinearOp, DenseLinear>>;
  calib: CalibrationSet;
  /** this layer's input stream, every sample's rows in order ([N, dim] floats at this pointer) */
  stream: number;
  st: RunState;
  settings: PruneSettings;
  base: number;
  limit: number;
}

export const LAYER_JOB_HANDLERS = {
  async pruneLayer(shared: Wasm, t: LayerJobTask, handlers: Handlers): Promise<OperatorReport[]> {
    const wasm: Wasm = { memory: shared.memory, exports: shared.exports, build: shared.build, arena: new BoundedArena(shared.memory, t.base, t.limit) };
    const exec = localExecutor(wasm, handlers);
    const stream = new MemoryRows(wasm.arena.f32(t.stream, t.calib.totalTokens * t.config.dim), t.calib.samples.map((s) => s.length), t.config.dim);
    const ctx = { store: { config: t.config, wasm }, exec, calib: t.calib, stream, states: [t.st], settings: t.settings, time: { forward: 0, statistics: 0, solve: 0 } };
    return pruneLayer(ctx, t.l, revive<DenseLayer>(wasm, t.dense), revive<Record<LinearOp, DenseLinear>>(wasm, t.pruned));
  },
} as const;
