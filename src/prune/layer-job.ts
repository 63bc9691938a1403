/**
 * @file Whole-layer pruning jobs (the `parallel` schedule's layers in flight, ./in-flight.ts): one decoder layer
 * pruned start to finish on the thread the job runs on — calibration passes, Grams, every operator's method —
 * with the same code as the main thread's path, on a local executor (every product runs in one block, which
 * is bit-identical to the sharded one). The job allocates from its own region [base, limit) of the shared
 * memory (a BoundedArena), which the main thread reserved; its input stream, its RunState and the pruned
 * output tensors were placed by the main thread.
 */
import { BoundedArena, type Wasm } from "../wasm/runtime.js";
import { localExecutor, type Handlers } from "../exec/executor.js";
import { revive, type Described } from "../model/describe.js";
import type { LayerWeights, Model, ModelConfig } from "../model/types.js";
import type { DenseLayer } from "../model/linear.js";
import type { RunState } from "../model/forward.js";
import type { CalibrationSet } from "./calibration.js";
import { pruneLayerJob, type OperatorReport, type PruneSettings } from "./driver.js";

export interface LayerJobTask {
  op: "pruneLayer";
  config: ModelConfig;
  l: number;
  dense: Described<DenseLayer>;
  pruned: Described<DenseLayer>;
  calib: CalibrationSet;
  /** this layer's input stream [N, dim] */
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
    const model = { config: t.config, wasm } as Model; // the layer code reads config and wasm only
    return pruneLayerJob(model, exec, t.l, revive<DenseLayer>(wasm, t.dense), revive<DenseLayer>(wasm, t.pruned), t.calib, t.stream, t.st, t.settings);
  },
} as const;
