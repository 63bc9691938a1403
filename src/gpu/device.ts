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
import { WaspruneError } from "../errors.js";

/** The webgpu package (Dawn's Node bindings) wasprune is tested with: an optional peer dependency. */
export const WEBGPU_VERSION = "0.6.2";

export const DEVICE_KINDS = Object.freeze(["auto", "wasm", "webgpu"] as const);
export type DeviceKind = (typeof DEVICE_KINDS)[number];

/** The WebGPU side could not be used where it was required (`--device webgpu`), or failed while running. */
export class GpuError extends WaspruneError {}

/** .cache/lavapipe of this checkout (scripts/install-lavapipe.sh); WASPRUNE_LAVAPIPE_DIR overrides. */
export function lavapipeDir(): string {
  return process.env.WASPRUNE_LAVAPIPE_DIR ?? fileURLToPath(new URL("../../.cache/lavapipe", import.meta.url));
}

/** True when scripts/install-lavapipe.sh completed in this checkout (then an adapter must exist). */
export function lavapipeInstalled(): boolean {
  return existsSync(path.join(lavapipeDir(), "installed"));
}

/** Dawn's storage-buffer limits we ask for (the defaults, 128/256 MiB, are too small for 4096² GEMMs and more). */
const WANTED_LIMITS = ["maxStorageBufferBindingSize", "maxBufferSize", "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupSizeX", "maxStorageBuffersPerShaderStage"] as const;

/** One WebGPU device with the instance that owns it (see the file header for why both are held). */
export class GpuDevice {
  private destroyed = false;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  /** the first uncaptured validation / out-of-memory error, reported by the next `sync()` */
  private error: string | undefined;

  constructor(
    /** the `create()` result: Dawn's instance (must outlive the device) */
    private gpu: GPU | undefined,
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
  ) {
    device.addEventListener("uncapturederror", (ev) => {
      this.error ??= (ev as GPUUncapturedErrorEvent).error.message;
    });
  }

  get alive(): boolean {
    return !this.destroyed;
  }

  /** e.g. "llvmpipe (Mesa 25.0.7, vulkan)" */
  get name(): string {
    const i = this.adapter.info;
    return `${i.device || i.vendor || "adapter"}${i.description ? ` (${i.description})` : ""}`;
  }

  /** True for a CPU implementation (lavapipe/llvmpipe, SwiftShader): numbers say nothing about GPUs. */
  get isSoftware(): boolean {
    const i = this.adapter.info;
    return /llvmpipe|lavapipe|swiftshader|software/i.test(`${i.device} ${i.description} ${i.architecture}`);
  }

  /** The compute pipeline of a WGSL module, compiled once per device (entry point `main`). */
  pipeline(code: string): GPUComputePipeline {
    this.check();
    let p = this.pipelines.get(code);
    if (!p) {
      const module = this.device.createShaderModule({ code });
      p = this.device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
      this.pipelines.set(code, p);
    }
    return p;
  }

  buffer(bytes: number, usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST): GPUBuffer {
    this.check();
    // sizes are rounded to 16 bytes: writeBuffer/copy need multiples of 4, uniforms of 16
    return this.device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 16) * 16), usage });
  }

  /** A storage buffer holding a copy of `data`. */
  upload(data: ArrayBufferView, usage?: GPUBufferUsageFlags): GPUBuffer {
    const b = this.buffer(data.byteLength, usage);
    this.write(b, data);
    return b;
  }

  /**
   * Queue a copy of `data` into `b`. Views of the WASM memory sit on a SharedArrayBuffer, which Dawn's
   * writeBuffer refuses: those (and sizes not a multiple of 4) go through a plain copy.
   */
  write(b: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    const bytes = data.byteLength;
    if (bytes % 4 === 0 && !(data.buffer instanceof SharedArrayBuffer)) {
      this.device.queue.writeBuffer(b, offset, data.buffer, data.byteOffset, bytes);
      return;
    }
    const tmp = new Uint8Array(Math.ceil(bytes / 4) * 4);
    tmp.set(new Uint8Array(data.buffer, data.byteOffset, bytes));
    this.device.queue.writeBuffer(b, offset, tmp.buffer, 0, tmp.byteLength);
  }

  /** A uniform buffer of 32-bit words (u32 for integers, f32 where `floats` says so). */
  uniforms(words: Array<number>, floats: ReadonlySet<number> = new Set()): GPUBuffer {
    const buf = new ArrayBuffer(Math.ceil(words.length / 4) * 16);
    const u = new Uint32Array(buf);
    const f = new Float32Array(buf);
    words.forEach((w, i) => (floats.has(i) ? (f[i] = w) : (u[i] = w)));
    return this.upload(u, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
  }

  /** A bind group of `buffers` at bindings 0, 1, … for the pipeline of `code` (reusable across dispatches). */
  bind(code: string, buffers: GPUBuffer[]): GPUBindGroup {
    return this.device.createBindGroup({
      layout: this.pipeline(code).getBindGroupLayout(0),
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
  }

  /** Encode one compute pass of `code` with a bind group into `enc`. */
  pass(enc: GPUCommandEncoder, code: string, bind: GPUBindGroup, groups: readonly [number, number?, number?]): void {
    const pass = enc.beginComputePass();
    pass.setPipeline(this.pipeline(code));
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(groups[0], groups[1] ?? 1, groups[2] ?? 1);
    pass.end();
  }

  /**
   * Encode one dispatch of `code` with `buffers` bound at 0, 1, …, into `enc` (or a command buffer of its own,
   * submitted at once). Nothing is read back: the host waits only in `read()` / `sync()`.
   */
  dispatch(code: string, buffers: GPUBuffer[], groups: readonly [number, number?, number?], enc?: GPUCommandEncoder): void {
    const e = enc ?? this.device.createCommandEncoder();
    this.pass(e, code, this.bind(code, buffers), groups);
    if (!enc) this.device.queue.submit([e.finish()]);
  }

  /** Copy `bytes` of `b` (from `offset`) to the host; the one place the host waits for the device. */
  async read(b: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    this.check();
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      const enc = this.device.createCommandEncoder();
      enc.copyBufferToBuffer(b, offset, staging, 0, size);
      this.device.queue.submit([enc.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      // copy out before unmap: the mapped range is detached by unmap()
      const out = staging.getMappedRange(0, size).slice(0, bytes);
      staging.unmap();
      this.check();
      return out;
    } finally {
      staging.destroy();
    }
  }

  async readF32(b: GPUBuffer, n: number, offset = 0): Promise<Float32Array> {
    return new Float32Array(await this.read(b, n * 4, offset));
  }

  /** Wait for all submitted work; throws the first uncaptured device error. */
  async sync(): Promise<void> {
    await this.device.queue.onSubmittedWorkDone();
    this.check();
  }

  private check(): void {
    if (this.destroyed) throw new GpuError("the WebGPU device was used after destroy()");
    if (this.error) throw new GpuError(`WebGPU: ${this.error}`);
  }

  /** End the device (unmaps and frees its buffers), then drop the instance: Node can exit afterwards. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.pipelines.clear();
    this.device.destroy();
    this.gpu = undefined;
  }
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
  const requiredLimits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) requiredLimits[k] = adapter.limits[k];
  const device = await adapter.requestDevice({ requiredLimits });
  return { ok: true, gpu: new GpuDevice(instance, adapter, device) };
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

/** Parse `--device`. */
export function parseDeviceKind(v: string): DeviceKind {
  if ((DEVICE_KINDS as readonly string[]).includes(v)) return v as DeviceKind;
  throw new GpuError(`--device must be one of ${DEVICE_KINDS.join(", ")}, got "${v}"`);
}
