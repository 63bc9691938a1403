/**
 * @file Data-parallel training tasks (thin; the work is ./data-parallel.ts): one slot's run of gradient blocks
 * on this thread's instance of the shared memory. Per-sequence losses come back transferred (piscina `move`).
 */
import { Piscina } from "piscina";
import { crashHook, threadWasm } from "../parallel/thread.js";
import { trainBlocksLocal, type TrainBlocksTask } from "./data-parallel.js";

export default function train(t: TrainBlocksTask): unknown {
  crashHook(t.op);
  return Piscina.move(trainBlocksLocal(threadWasm(), t));
}
