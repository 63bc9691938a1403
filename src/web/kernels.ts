/**
 * @file The kernels in a browser: build/kernels.wasm fetched relative to this module (the bundle's folder holds a
 * copy, build/web/kernels.wasm; so does the package's dist/src/web/ for bundlers that follow
 * `new URL(…, import.meta.url)`), compiled once per call; instances are made on a shared memory by
 * src/wasm/memory.ts, as in Node. The page runs the baseline build (WASM SIMD), the one Node 20 runs, so the
 * page's sums are Node's bit for bit; the relaxed-SIMD build (build/kernels-relaxed.wasm) is not shipped to it.
 */
import { WasmError } from "../errors.js";
import { createWasmFrom, type Wasm } from "../wasm/memory.js";

/** Where the kernels are, unless told: beside this module. */
export const KERNELS_URL = new URL("./kernels.wasm", import.meta.url);

/** Fetch and compile the kernels (`source`: a URL, or an already compiled module). */
export async function compileKernels(source: string | URL | WebAssembly.Module = KERNELS_URL): Promise<WebAssembly.Module> {
  if (source instanceof WebAssembly.Module) return source;
  let res: Response;
  try {
    res = await fetch(source);
  } catch (e) {
    throw new WasmError(`kernels ${String(source)}: could not be fetched (${(e as Error).message})`);
  }
  if (!res.ok) throw new WasmError(`kernels ${String(source)}: HTTP ${res.status} ${res.statusText}`);
  try {
    return await WebAssembly.compile(await res.arrayBuffer());
  } catch (e) {
    throw new WasmError(`kernels ${String(source)}: not a WebAssembly module this browser compiles (${(e as Error).message}); WASM SIMD and threads are needed`);
  }
}

/**
 * A fresh shared memory with the kernels instantiated on it. A page that is not cross-origin isolated may still
 * make a shared WebAssembly.Memory (it cannot hand it to workers: one thread there, src/web/pool.ts).
 */
export async function createBrowserWasm(source?: string | URL | WebAssembly.Module): Promise<Wasm> {
  return createWasmFrom(await compileKernels(source), "baseline", undefined, `kernels ${String(source ?? KERNELS_URL)}`);
}
