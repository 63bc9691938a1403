/**
 * @file One WebGPU device and the helpers every WebGPU kernel uses (buffers, pipelines compiled once, bind groups,
 * passes, read-back), on any platform: ./device.ts opens it in Node (Dawn, the `webgpu` package), src/web/gpu.ts
 * in a browser (navigator.gpu). See ./device.ts for the lifetimes of Dawn's instance.
 */
/// <reference types="@webgpu/types" />
import { GpuError } from "../errors.js";

export { GpuError };

/** A SharedArrayBuffer (also where the global is hidden: a page that is not cross-origin isolated). */
const isShared = (b: ArrayBufferLike): boolean => Object.prototype.toString.call(b) === "[object SharedArrayBuffer]";

/** Dawn's storage-buffer limits we ask for (the defaults, 128/256 MiB, are too small for 4096² GEMMs and more). */
export const WANTED_LIMITS = ["maxStorageBufferBindingSize", "maxBufferSize", "maxComputeWorkgroupStorageSize",
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
    return isSoftwareAdapter(this.adapter);
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
    if (bytes % 4 === 0 && !isShared(data.buffer)) {
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

/** True for a CPU implementation of WebGPU (lavapipe/llvmpipe, SwiftShader). */
export function isSoftwareAdapter(adapter: GPUAdapter): boolean {
  const i = adapter.info;
  return /llvmpipe|lavapipe|swiftshader|software/i.test(`${i.vendor} ${i.device} ${i.description} ${i.architecture}`);
}

/** A device of `adapter` with the storage limits the kernels need (`instance`: Dawn's, kept alive with it). */
export async function openDevice(adapter: GPUAdapter, instance?: GPU): Promise<GpuDevice> {
  const requiredLimits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) requiredLimits[k] = adapter.limits[k];
  const device = await adapter.requestDevice({ requiredLimits });
  return new GpuDevice(instance, adapter, device);
}
