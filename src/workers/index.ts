/**
 * @file `openExecutor`: the executor of `threads` slots on an instance, wired to the task handlers — what the CLI
 * commands, benchmarks and tests call (domain code never makes an executor: it is given one).
 */
import { createExecutor } from "../exec/pool.js";
import type { Executor } from "../exec/executor.js";
import type { Wasm } from "../wasm/runtime.js";
import { HANDLERS } from "./handlers.js";

export function openExecutor(wasm: Wasm, threads: number): Executor {
  return createExecutor(wasm, threads, HANDLERS);
}
