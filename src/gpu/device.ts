/**
 * @file The compute device of a run: `--device auto|wasm|webgpu`, detected once per process (STYLE.md §14).
 *
 * WebGPU comes from the `webgpu` package (Dawn's Node bindings, dawn.node for linux-x64 inside the package).
 * Dawn's Vulkan backend dlopens `libvulkan.so.1`; on a machine without a GPU, scripts/install-lavapipe.sh
 * unpacks Mesa's lavapipe (a Vulkan driver on the CPU) into .cache/lavapipe/, and this module makes it visible
 * without any environment from the user:
 *  - LD_LIBRARY_PATH is read by the dynamic linker at process start only; setting it here would do nothing.
 *    Instead the libraries listed in .cache/lavapipe/preload.txt (the Vulkan loader, a newer libdrm) are
 *    loaded by absolute path, RTLD_GLOBAL | RTLD_NODELETE, before Dawn starts: a later dlopen of a soname
 *    that is already loaded returns the loaded library, and so does the driver's own DT_NEEDED lookup.
 *  - the Vulkan loader reads VK_ADD_DRIVER_FILES when Dawn creates its instance, so setting it in
 *    process.env here works; it *adds* lavapipe to the system's drivers (a real GPU stays visible and is
 *    preferred). A user's VK_ICD_FILENAMES / VK_DRIVER_FILES is respected as is (and hides lavapipe:
 *    `VK_ICD_FILENAMES=/nonexistent` is how the tests simulate a machine with no adapter).
 *
 * Lifetimes (the cause of the "second compute pipeline crashes" seen while planning): the object returned
 * by `create()` owns Dawn's instance. If nothing references it, V8 collects it, the instance is destroyed
 * under the live adapter and device, and the next call into Dawn (typically compiling the next pipeline, the
 * first one having finished before any GC ran) dies with SIGSEGV or a glibc abort. {@link GpuDevice} keeps
 * it for as long as the device lives, and `destroy()` ends the device before dropping it, so Node can exit.
 */
/// <reference types="@webgpu/types" />
import { existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { GpuDevice, GpuError, openDevice } from "./gpu-device.js";
import type { DeviceKind } from "./device-kind.js";

/** The webgpu package (Dawn's Node bindings) wasprune is tested with: an optional peer dependency. */
export const WEBGPU_VERSION = "0.6.2";

export { DEVICE_KINDS, parseDeviceKind, type DeviceKind } from "./device-kind.js";

export { GpuDevice, GpuError } from "./gpu-device.js";

/**
 * .cache/lavapipe of this checkout (scripts/install-lavapipe.sh), WASPRUNE_LAVAPIPE_DIR overriding: the nearest
 * one above this module (src/gpu/ from the sources, dist/src/gpu/ compiled), or the checkout root's when none is
 * installed (where the installer would put it).
 */
export function lavapipeDir(): string {
  if (process.env.WASPRUNE_LAVAPIPE_DIR) return process.env.WASPRUNE_LAVAPIPE_DIR;
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = here; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, ".cache", "lavapipe", "installed"))) return path.join(dir, ".cache", "lavapipe");
  }
  return path.resolve(here, "..", "..", ".cache", "lavapipe");
}

/** True when scripts/install-lavapipe.sh completed in this checkout (then an adapter must exist). */
export function lavapipeInstalled(): boolean {
  return existsSync(path.join(lavapipeDir(), "installed"));
}

/** The outcome of asking for an adapter: a device, or why there is none. */
export type GpuProbe = { ok: true; gpu: GpuDevice } | { ok: false; reason: string };

let probe: Promise<GpuProbe> | undefined;

/**
 * Ask for an adapter and a device, once per process: later calls share the device until it is destroyed
 * (then the next call opens a new one), and share a negative answer for good. Never throws: the reason is
 * returned.
 */
export async function probeGpu(): Promise<GpuProbe> {
  if (probe) {
    const p = await probe;
    if (!p.ok || p.gpu.alive) return p;
    probe = undefined;
  }
  probe ??= openGpu().catch((e: unknown) => ({ ok: false as const, reason: e instanceof Error ? e.message : String(e) }));
  return probe;
}

async function openGpu(): Promise<GpuProbe> {
  if (process.platform === "linux") exposeLavapipe();
  let mod: typeof import("webgpu");
  try {
    mod = await import("webgpu");
  } catch (e) {
    // an optional dependency (package.json peerDependenciesMeta): not installed with wasprune itself
    if ((e as { code?: string }).code === "ERR_MODULE_NOT_FOUND" && /'webgpu'/.test((e as Error).message)) {
      return { ok: false, reason: `the optional package webgpu is not installed (npm install webgpu@${WEBGPU_VERSION} beside wasprune to use it)` };
    }
    return { ok: false, reason: `the webgpu package could not be loaded (${(e as Error).message.split("\n")[0]})` };
  }
  Object.assign(globalThis, mod.globals);
  const instance = mod.create([]);
  const adapter = await instance.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    const hint = lavapipeInstalled() ? "" : " (on Linux, scripts/install-lavapipe.sh provides a CPU Vulkan driver)";
    return { ok: false, reason: `no WebGPU adapter${hint}` };
  }
  return { ok: true, gpu: await openDevice(adapter, instance) };
}

let exposed = false;
/**
 * Make .cache/lavapipe's driver visible to the Vulkan loader (see the file header). On the main thread only:
 * a worker thread's process.env is a copy the loader (getenv) never sees, so a thread that opens the device
 * (src/gpu/linear.worker.ts) relies on its parent having called this first.
 */
export function exposeLavapipe(): void {
  if (exposed) return;
  exposed = true;
  const dir = lavapipeDir();
  if (!existsSync(path.join(dir, "installed"))) return;
  const { RTLD_NOW, RTLD_GLOBAL } = os.constants.dlopen;
  const RTLD_NODELETE = 0x1000; // glibc; not in os.constants
  for (const rel of readFileSync(path.join(dir, "preload.txt"), "utf8").split("\n").filter(Boolean)) {
    try {
      process.dlopen({ exports: {} }, path.join(dir, rel), RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE);
    } catch (e) {
      // a plain shared library is not a Node addon: "did not self-register" means it *was* loaded (and stays,
      // RTLD_NODELETE); any other message is a real failure
      if (!/self-register/.test((e as Error).message)) throw e;
    }
  }
  // the loader stays loaded either way (Dawn then finds no driver rather than no loader)
  if (process.env.VK_ICD_FILENAMES !== undefined || process.env.VK_DRIVER_FILES !== undefined) return;
  const icd = path.join(dir, "lvp_icd.json");
  const add = process.env.VK_ADD_DRIVER_FILES;
  process.env.VK_ADD_DRIVER_FILES = add ? `${add}${path.delimiter}${icd}` : icd;
}

/**
 * The device of a run. `wasm`: none. `webgpu`: the adapter's device, or a GpuError saying why there is none.
 * `auto`: the device when there is one, else one line on `log` (stderr by default) and undefined.
 */
export async function selectDevice(kind: DeviceKind, log: (line: string) => void = (l) => console.error(l)): Promise<GpuDevice | undefined> {
  if (kind === "wasm") return undefined;
  const p = await probeGpu();
  if (p.ok) return p.gpu;
  if (kind === "webgpu") throw new GpuError(`--device webgpu: ${p.reason}`);
  log(`device: ${p.reason}; using WASM`);
  return undefined;
}
