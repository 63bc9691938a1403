/**
 * @file The kernels in Node: the compiled modules read from build/kernels.wasm and build/kernels-relaxed.wasm,
 * located relative to this module (the repository's build/ when running from src/, the package's dist/build/
 * when running compiled), the choice of build, and the instance helpers every Node entry point uses. The
 * platform-free part (arena, instantiation, the build names and the relaxed-SIMD probe) is ./memory.ts,
 * re-exported here.
 */
import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { WasmError } from "../errors.js";
import { attachWasmTo, createWasmFrom, detectedBuild, isKernelBuild, KERNEL_BUILDS, supportedBuild, type KernelBuild, type Wasm } from "./memory.js";

export * from "./memory.js";

const wasmPaths: Record<KernelBuild, string> = {
  baseline: fileURLToPath(new URL("../../build/kernels.wasm", import.meta.url)),
  relaxed: fileURLToPath(new URL("../../build/kernels-relaxed.wasm", import.meta.url)),
};

/** The file of a build's kernels (e.g. to hash what a process runs). */
export function kernelPath(build: KernelBuild): string {
  return wasmPaths[build];
}

const compiled = new Map<KernelBuild, WebAssembly.Module>();
/** The compiled kernel module of `build` (compiled once per thread, instantiated per memory). */
export function kernelModule(build: KernelBuild = defaultBuild()): WebAssembly.Module {
  let m = compiled.get(build);
  if (!m) {
    const file = wasmPaths[build];
    if (!existsSync(file)) throw new WasmError(`${file}: kernels are not built; run \`npm run build\` first`);
    try {
      m = new WebAssembly.Module(readFileSync(file));
    } catch (e) {
      throw new WasmError(`${file}: this runtime cannot compile the ${build} kernels (${(e as Error).message})`);
    }
    compiled.set(build, m);
  }
  return m;
}

let detected: KernelBuild | undefined;
/**
 * The build this process runs: WASPRUNE_KERNELS=baseline|relaxed when set (tests, side-by-side benchmarks), else
 * relaxed where the runtime supports it (feature detection at start-up), else baseline.
 */
export function defaultBuild(): KernelBuild {
  if (!detected) {
    const env = process.env.WASPRUNE_KERNELS;
    if (env !== undefined && env !== "") {
      if (!isKernelBuild(env)) throw new WasmError(`WASPRUNE_KERNELS=${env}: expected ${KERNEL_BUILDS.join(" or ")}`);
      detected = supportedBuild(env, `WASPRUNE_KERNELS=${env}`);
    } else {
      detected = detectedBuild();
    }
  }
  return detected;
}

/** This thread's instance of `build` on the main thread's shared memory (a worker thread; views only, see ./memory.ts). */
export function attachWasm(memory: WebAssembly.Memory, build: KernelBuild): Wasm {
  return attachWasmTo(kernelModule(build), memory, build, wasmPaths[build]);
}

/** A fresh memory, an instance of `build` on it, and an arena starting above the module's static data. */
export function createWasm(initialBytes?: number, build: KernelBuild = defaultBuild()): Wasm {
  return createWasmFrom(kernelModule(build), build, initialBytes, wasmPaths[build]);
}
