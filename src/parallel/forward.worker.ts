/**
 * @file Forward-pass tasks (thin; the work is ./forward-local.ts): calibration layer passes of the pruning
 * driver and per-sequence NLLs of perplexity, each on the RunState of the task's slot (allocated by the main
 * thread). The NLLs come back as a transferred Float64Array (piscina `move`).
 */
import { Piscina } from "piscina";
import { crashHook, threadWasm } from "./thread.js";
import { layerPasses, revive, sequenceNlls, type LayerPassesTask, type NllTask } from "./forward-local.js";
import type { LayerWeights, Model } from "../model/types.js";

export default function forward(t: LayerPassesTask | NllTask): unknown {
  crashHook(t.op);
  const wasm = threadWasm();
  if (t.op === "layer") {
    layerPasses(wasm, t.config, t.l, t.st, t.lws.map((lw) => revive<LayerWeights>(wasm, lw)), t.passes);
    return 0;
  }
  const model = { config: t.model.config, weights: revive<Model["weights"]>(wasm, t.model.weights), wasm } as Model;
  return Piscina.move(sequenceNlls(wasm, model, t.st, t.seqs, t.countFrom));
}
