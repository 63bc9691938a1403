/**
 * @file The kernels in Node: the compiled module read from build/kernels.wasm, located relative to this module
 * (the repository's build/ when running from src/, the package's dist/build/ when running compiled), and the
 * instance helpers every Node entry point uses. The platform-free part (arena, instantiation) is ./memory.ts,
 * re-exported here.
 */
import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { WasmError } from "../errors.js";
import { attachWasmTo, createWasmFrom, type Wasm } from "./memory.js";

export * from "./memory.js";

const wasmPath = fileURLToPath(new URL("../../build/kernels.wasm", import.meta.url));

let compiled: WebAssembly.Module | undefined;
/** The compiled kernel module (compiled once per thread, instantiated per memory). */
export function kernelModule(): WebAssembly.Module {
  if (!compiled) {
    if (!existsSync(wasmPath)) {
      throw new WasmError(`${wasmPath}: kernels are not built; run \`npm run build\` first`);
    }
    compiled = new WebAssembly.Module(readFileSync(wasmPath));
  }
  return compiled;
}

/** This thread's instance on the main thread's shared memory (a worker thread; views only, see ./memory.ts). */
export function attachWasm(memory: WebAssembly.Memory): Wasm {
  return attachWasmTo(kernelModule(), memory);
}

/** A fresh memory, an instance on it, and an arena starting above the module's static data. */
export function createWasm(initialBytes?: number): Wasm {
  return createWasmFrom(kernelModule(), initialBytes);
}
