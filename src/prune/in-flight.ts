/**
 * @file The `parallel` schedule's layers in flight: with dense inputs every layer is an independent problem, so
 * layers 1.. run as whole-layer jobs (./layer-job.ts) on the executor's workers, as many at once as there are
 * slots and room in the 4 GiB wasm32 memory — each job gets a region of 1.25x what layer 0 took in the arena
 * (measured: captures, statistics, method scratch, pruned tensors) plus its input stream. The main thread
 * advances the dense calibration stream as it hands out layers (so a layer's input is ready when a slot frees),
 * and hands the pruned layers to the sink, in layer order. Each job runs the single-thread code: bit-identical
 * results for any thread count. Only for a resident model (every job needs its dense layer in the arena).
 */
import { WorkerError } from "../errors.js";
import { createRunState } from "../model/forward.js";
import { describe } from "../model/describe.js";
import { advanceRows, layerPassesOn } from "../model/layer-passes.js";
import { denseLayer } from "../model/linear.js";
import type { ModelStore } from "../model/residency.js";
import type { DenseLinear, LinearOp } from "../model/types.js";
import { GROUPS } from "./solve.js";
import { type DriverHooks, type LayerContext, type LayerPhases, type OperatorReport, type PruneSink } from "./driver.js";
import type { LayerJobTask } from "./layer-job.js";

/** Room kept free in the 4 GiB wasm32 memory besides the layer jobs' regions. */
const RESERVE_BYTES = 256 << 20;
const MAX_BYTES = 4 * 1024 ** 3;

/**
 * Layers [1, nLayers) of the parallel schedule as jobs. Returns false (nothing done) when fewer than two jobs
 * fit at once: then the driver prunes them one by one with their operators sharded.
 */
export async function layersInFlight(
  store: ModelStore, ctx: LayerContext, sink: PruneSink, layer0Bytes: number, hooks: DriverHooks, reports: OperatorReport[],
): Promise<boolean> {
  const { calib, stream, exec, settings } = ctx;
  const { wasm, config: c } = store;
  const arena = wasm.arena;
  const totalOps = c.nLayers * 7;
  const streamFloats = calib.totalTokens * c.dim;
  // + the job's own local executor's packing scratch
  const regionBytes = Math.ceil((layer0Bytes * 1.25 + 4 * streamFloats + (2 << 20)) / 65536) * 65536;
  const fit = Math.floor((MAX_BYTES - RESERVE_BYTES - arena.mark()) / regionBytes);
  const slots = Math.min(exec.slots, c.nLayers - 1, fit);
  if (slots < 2) return false;
  const mark = arena.mark();
  try {
    const regions = Array.from({ length: slots }, () => arena.allocBytes(regionBytes));
    // the jobs' RunStates: apart from ctx.states[0], which this thread keeps using to advance the stream
    const maxT = Math.max(...calib.samples.map((s) => s.length));
    const jobStates = regions.map(() => createRunState(store, maxT, maxT, { kvLayers: 1, logits: false }));
    const main = ctx.states[0]!;
    const free = regions.map((_, s) => s);
    type Done = { l: number; slot: number; out: OperatorReport[] | Error; seconds: number };
    const running = new Map<number, Promise<Done>>();
    const finished = new Map<number, { reports: OperatorReport[]; phases: LayerPhases }>();
    const prunedOf = new Map<number, Record<LinearOp, DenseLinear>>();
    let flushed = 1;
    const flush = () => {
      for (; finished.has(flushed); flushed++) {
        const f = finished.get(flushed)!;
        finished.delete(flushed);
        reports.push(...f.reports);
        hooks.onLayer?.(flushed, f.reports, f.phases);
      }
    };
    const phasesOf = (l: number, resumed: boolean, seconds: number): LayerPhases => ({
      layer: l, read: 0, forward: 0, statistics: 0, solve: seconds, write: 0, advance: 0, arenaBytes: regionBytes, resumed,
    });
    const advance = (l: number) => advanceRows(wasm, c, denseLayer(store.acquire(l), l), stream, (lws, passes) => layerPassesOn(wasm, c, l, main, lws, passes));
    let next = 1;
    let done = reports.length;
    while (next < c.nLayers || running.size > 0) {
      // hand out layers while a slot is free (resumed layers need no slot)
      while (next < c.nLayers && free.length > 0) {
        const l = next++;
        const saved = sink.resumed(l);
        if (saved) {
          if (l + 1 < c.nLayers) await advance(l);
          finished.set(l, { reports: saved.reports, phases: phasesOf(l, true, 0) });
          flush();
          continue;
        }
        const slot = free.pop()!;
        // the region: input stream, pruned tensors, then the job's own arena
        const base = regions[slot]!;
        for (let i = 0; i < calib.samples.length; i++) stream.read(i, arena.f32(base + 4 * calib.offsets[i]! * c.dim, stream.size(i)));
        let p = base + 4 * streamFloats;
        const dense = denseLayer(store.acquire(l), l);
        const pruned = {} as Record<LinearOp, DenseLinear>;
        for (const g of GROUPS) {
          for (const op of g.ops) {
            const n = dense[op].data.length;
            p = (p + 63) & ~63;
            pruned[op] = { format: "dense", ptr: p, shape: [...dense[op].shape], data: arena.f32(p, n) };
            p += 4 * n;
          }
        }
        prunedOf.set(l, pruned);
        const task: LayerJobTask = {
          op: "pruneLayer", config: c, l, dense: describe(dense), pruned: describe(pruned), calib, stream: base,
          st: jobStates[slot]!, settings, base: p, limit: base + regionBytes,
        };
        const t0 = performance.now();
        running.set(l, exec.run<OperatorReport[]>(task, `layer ${l} (job)`, slot).then(
          (out) => ({ l, slot, out, seconds: (performance.now() - t0) / 1000 }),
          (e: unknown) => ({ l, slot, out: e instanceof Error ? e : new Error(String(e)), seconds: 0 })));
        // the next layer's input: this layer's dense output
        if (l + 1 < c.nLayers) await advance(l);
      }
      if (running.size === 0) break;
      const { l, slot, out, seconds } = await Promise.race(running.values());
      running.delete(l);
      if (out instanceof Error) {
        await Promise.allSettled(running.values());
        throw out instanceof WorkerError ? out : new WorkerError(`layer ${l}: ${out.message}`);
      }
      await sink.put(l, denseLayer(store.acquire(l), l), prunedOf.get(l)!, out);
      prunedOf.delete(l);
      free.push(slot);
      for (const r of out) hooks.onOperator?.(r, ++done, totalOps);
      finished.set(l, { reports: out, phases: phasesOf(l, false, seconds) });
      flush();
    }
    flush();
    return true;
  } finally {
    arena.release(mark);
  }
}
