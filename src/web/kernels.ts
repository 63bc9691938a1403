/**
 * @file The kernels in a browser: the two builds, build/kernels.wasm (WASM SIMD) and build/kernels-relaxed.wasm
 * (relaxed SIMD: fused multiply-add, the int8 dot of the W8A8 / W4A8 kernels), fetched relative to this module
 * (the bundle's folder holds copies, build/web/; so does the package's dist/src/web/ for bundlers that follow
 * `new URL(…, import.meta.url)`) and compiled once per call; instances are made on a shared memory by
 * src/wasm/memory.ts, as in Node. As in Node the build is chosen by feature detection (`WebAssembly.validate`
 * of one relaxed instruction: Chromium ≥ 114 runs the relaxed build), with the baseline as the fallback; the
 * baseline's sums are Node 20's bit for bit, the relaxed build's Node 24's.
 */
import { WasmError } from "../errors.js";
import { createWasmFrom, detectedBuild, isKernelBuild, supportedBuild, type KernelBuild, type Wasm } from "../wasm/memory.js";

/** Where each build is, unless told: beside this module. */
export const KERNEL_URLS: Readonly<Record<KernelBuild, URL>> = Object.freeze({
  baseline: new URL("./kernels.wasm", import.meta.url),
  relaxed: new URL("./kernels-relaxed.wasm", import.meta.url),
});

/** The baseline build's URL (what every browser with WASM SIMD runs). */
export const KERNELS_URL = KERNEL_URLS.baseline;

/**
 * Which kernels a browser loads: "auto" (the default: relaxed where this browser validates relaxed SIMD, else
 * baseline), a build by name (beside this module), or a module of either build by URL or already compiled (its
 * build is read from the module itself).
 */
export type BrowserKernels = "auto" | KernelBuild | string | URL | WebAssembly.Module;

/** The source and the expected build of a `kernels` option (a named build unsupported here is refused by name). */
function resolveKernels(kernels: BrowserKernels | undefined): { source: string | URL | WebAssembly.Module; build?: KernelBuild } {
  if (kernels === undefined || kernels === "auto") {
    const build = detectedBuild();
    return { source: KERNEL_URLS[build], build };
  }
  if (isKernelBuild(kernels)) return { source: KERNEL_URLS[kernels], build: supportedBuild(kernels, `kernels "${kernels}"`) };
  return { source: kernels };
}

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
 * A fresh shared memory with the kernels `kernels` names instantiated on it (the instance's `build` says which).
 * A page that is not cross-origin isolated may still make a shared WebAssembly.Memory (it cannot hand it to
 * workers: one thread there, src/web/pool.ts).
 */
export async function createBrowserWasm(kernels?: BrowserKernels): Promise<Wasm> {
  const { source, build } = resolveKernels(kernels);
  const where = source instanceof WebAssembly.Module ? "kernels (a compiled module)" : `kernels ${String(source)}`;
  return createWasmFrom(await compileKernels(source), build, undefined, where);
}
