/**
 * @file The kernels' instance and the memory they work in, on any platform (Node or a browser): nothing here
 * reads a file. The kernels (assembly/, built to build/kernels.wasm) are pure functions of pointers and sizes:
 * they never allocate. The host owns all memory through an {@link Arena} over one *shared* WebAssembly.Memory:
 *  - shared, so that views made before a `memory.grow` stay valid (a non-shared buffer is detached on grow),
 *    and so that worker threads (src/exec, src/workers, src/web) can instantiate the same module on the same memory;
 *  - 64-byte aligned blocks, so every v128 load in a kernel is aligned and rows start on cache lines.
 *
 * A block is described by its byte offset ("pointer"); `f32(ptr, n)` gives a Float32Array view with no copy.
 * Where the compiled module comes from is the platform's business: ./runtime.ts (Node: the file beside the
 * running module) and src/web/kernels.ts (a browser: fetched relative to the bundle).
 */
import { instantiateSync } from "@assemblyscript/loader";
import { WasmError } from "../errors.js";
import { checkKernels, type Kernels } from "./contract.js";

/**
 * The two WebAssembly types the library's declarations name, for a TypeScript program without lib "dom" (a
 * Node project): they merge with lib.dom's identical declarations where it is present.
 */
declare global {
  namespace WebAssembly {
    interface Module {}
    interface Memory {
      readonly buffer: ArrayBuffer;
      grow(delta: number): number;
    }
  }
}

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB: the wasm32 limit
export const ALIGN = 64;

/** The exports of an instance: the kernel contract (./contract.ts), checked when the module is instantiated. */
export type KernelExports = Kernels;

/** The two builds of the kernels (one source, assembly/): baseline WASM SIMD, and relaxed SIMD (FMA, bare swizzles). */
export const KERNEL_BUILDS = Object.freeze(["baseline", "relaxed"] as const);
export type KernelBuild = (typeof KERNEL_BUILDS)[number];

/**
 * A minimal module of one function returning f32x4.relaxed_madd of three zero vectors: `WebAssembly.validate`
 * of it tells whether this runtime runs the relaxed build (Node ≥ 22, Chromium ≥ 114; Node 20 does not).
 */
function relaxedProbe(): Uint8Array<ArrayBuffer> {
  const zero = [0xfd, 0x0c, ...new Array<number>(16).fill(0)]; // v128.const 0
  const body = [0x00, ...zero, ...zero, ...zero, 0xfd, 0x85, 0x02, 0x0b]; // no locals; relaxed_madd (0xfd 0x105); end
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: () -> v128
    0x03, 0x02, 0x01, 0x00, // function section: func 0 of type 0
    0x0a, body.length + 2, 0x01, body.length, ...body, // code section
  ]);
}

/** Whether this runtime validates relaxed SIMD (Node or a browser). */
export function relaxedSimdSupported(): boolean {
  try {
    return WebAssembly.validate(relaxedProbe());
  } catch {
    return false;
  }
}

/** Whether `s` names a build of the kernels. */
export function isKernelBuild(s: unknown): s is KernelBuild {
  return typeof s === "string" && (KERNEL_BUILDS as readonly string[]).includes(s);
}

/** The build feature detection picks (Node or a browser): relaxed where this runtime validates relaxed SIMD, else baseline. */
export function detectedBuild(): KernelBuild {
  return relaxedSimdSupported() ? "relaxed" : "baseline";
}

/** `build` when this runtime can run it; the relaxed build where relaxed SIMD is missing is refused, `what` naming the request. */
export function supportedBuild(build: KernelBuild, what: string): KernelBuild {
  if (build === "relaxed" && !relaxedSimdSupported()) throw new WasmError(`${what}: this runtime does not support relaxed SIMD (Node ≥ 22 and Chromium ≥ 114 do)`);
  return build;
}

export function createMemory(initialBytes = 64 << 20): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: Math.ceil(initialBytes / PAGE), maximum: MAX_PAGES, shared: true });
}

/**
 * An instance of the kernels on `memory`, through @assemblyscript/loader: it reads the kernels' strings (an
 * `assert`'s message and file, static data in linear memory even with `--runtime stub`) from the module's
 * memory — the imported shared one, which the module re-exports — so a kernel assertion surfaces as a
 * WasmError naming the message, the assembly file, line and column. Worker threads (attachWasm) instantiate the
 * same way on the main thread's memory: the loader only wraps `new WebAssembly.Instance`, nothing is copied.
 *
 * The module is compiled once per thread by plain `WebAssembly.Module` (the platform's loader: ./runtime.ts in
 * Node, src/web/kernels.ts in a browser) and handed in; the loader
 * accepts as is. The loader wraps every export function in a closure that sets the argument count for optional
 * parameters; no kernel has any (the module exports no `__setArgumentsLength`), so the exports handed out are
 * the loader's exports with each function replaced by its `.original`, the export itself: the wrapper's rest and
 * spread cost ~10–15 ns a call (measured on a shared machine, preliminary), paid by kernels called per row.
 */
export function instantiate(module: WebAssembly.Module, memory: WebAssembly.Memory, where = "kernels"): KernelExports {
  let getString: ((ptr: number) => string | null) | undefined;
  const { exports } = instantiateSync<Record<string, unknown>>(module, {
    env: {
      memory,
      abort(msg: number, file: number, line: number, col: number): never {
        const text = getString?.(msg);
        const where = `${getString?.(file) ?? "kernel"}:${line}:${col}`;
        throw new WasmError(text ? `kernel assertion failed: ${text} (${where})` : `kernel assertion failed at ${where}`);
      },
      seed(): number {
        return 0;
      },
    },
  });
  getString = (ptr) => {
    try {
      return ptr ? exports.__getString(ptr) : null;
    } catch {
      return null; // not a string object: report the line and column alone rather than a second error
    }
  };
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(exports)) {
    const original = typeof value === "function" ? (value as { original?: unknown }).original : undefined;
    out[name] = original ?? value;
  }
  return checkKernels(out, where);
}

/**
 * The instance of a worker thread on the main thread's memory. Its arena only makes views: the main thread
 * owns allocation (src/exec/executor.ts), so any allocation here throws.
 */
export function attachWasmTo(module: WebAssembly.Module, memory: WebAssembly.Memory, build: KernelBuild, where?: string): Wasm {
  const exports = instantiate(module, memory, where);
  return { module, memory, exports, build: checkBuild(exports, build, where), arena: new ViewArena(memory, exports.heapBase()) };
}

/** Which build an instance is: the module says so itself (`kernelsRelaxed`). */
export function buildOf(exports: KernelExports): KernelBuild {
  return exports.kernelsRelaxed() === 1 ? "relaxed" : "baseline";
}

/** The instance's build, refused by name when it is not the one `expected` (a file of one build under the other's name). */
function checkBuild(exports: KernelExports, expected: KernelBuild | undefined, where = "kernels"): KernelBuild {
  const actual = buildOf(exports);
  if (expected !== undefined && actual !== expected) throw new WasmError(`${where}: this module is the ${actual} build of the kernels, not the ${expected} build it was loaded as; rebuild with \`npm run build\``);
  return actual;
}

/**
 * A bump allocator with marks over the shared memory. Long-lived blocks (weights) are taken first;
 * scratch for a forward pass or a pruning step is taken after a `mark()` and given back by `release(mark)`.
 */
export class Arena {
  readonly memory: WebAssembly.Memory;
  private top: number;
  private high: number;
  readonly base: number;

  constructor(memory: WebAssembly.Memory, base: number) {
    this.memory = memory;
    this.base = alignUp(Math.max(base, 1024), ALIGN);
    this.top = this.base;
    this.high = this.top;
  }

  /** The highest end of an allocation since creation or the last resetPeak (bytes, an address). */
  get peak(): number {
    return this.high;
  }

  resetPeak(): void {
    this.high = this.top;
  }

  /** Bytes in use above the module's static data. */
  get used(): number {
    return this.top - this.base;
  }

  /** Reserve `bytes` bytes, 64-byte aligned; the memory grows as needed. Contents are not cleared. */
  allocBytes(bytes: number): number {
    const ptr = alignUp(this.top, ALIGN);
    const end = ptr + Math.max(bytes, 0);
    if (end > MAX_PAGES * PAGE) {
      throw new WasmError(`out of WebAssembly memory: need ${fmtBytes(end)}, the wasm32 limit is 4 GiB`);
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const grow = Math.max(Math.ceil((end - have) / PAGE), Math.ceil(have / PAGE / 4));
      this.memory.grow(Math.min(grow, MAX_PAGES - have / PAGE));
    }
    this.top = end;
    if (end > this.high) this.high = end;
    return ptr;
  }

  /** Reserve room for `n` float32 values and return the pointer. */
  alloc(n: number): number {
    return this.allocBytes(n * 4);
  }

  /** Reserve and zero `n` float32 values. */
  zeros(n: number): number {
    const ptr = this.alloc(n);
    this.f32(ptr, n).fill(0);
    return ptr;
  }

  /** Copy `src` into a new block; returns its pointer. */
  put(src: Float32Array): number {
    const ptr = this.alloc(src.length);
    this.f32(ptr, src.length).set(src);
    return ptr;
  }

  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, n);
  }

  u8(ptr: number, n: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr, n);
  }

  i32(ptr: number, n: number): Int32Array {
    return new Int32Array(this.memory.buffer, ptr, n);
  }

  u32(ptr: number, n: number): Uint32Array {
    return new Uint32Array(this.memory.buffer, ptr, n);
  }

  mark(): number {
    return this.top;
  }

  release(mark: number): void {
    if (mark < this.base || mark > this.top) throw new WasmError(`arena release to ${mark} outside [${this.base}, ${this.top}]`);
    this.top = mark;
  }

  /** Run `fn` and give back everything it allocated. */
  scoped<T>(fn: () => T): T {
    const m = this.mark();
    try {
      return fn();
    } finally {
      this.release(m);
    }
  }
}

/**
 * An arena confined to [base, limit) of the memory: never grows it, throws past the limit (`what` names the region
 * in the message). A region the main arena reserved: a layer job's, the layer slot of a streamed model.
 */
export class BoundedArena extends Arena {
  readonly limit: number;
  constructor(memory: WebAssembly.Memory, base: number, limit: number, readonly what = "layer job") {
    super(memory, base);
    this.limit = limit;
  }
  override allocBytes(bytes: number): number {
    const ptr = alignUp(this.mark(), ALIGN);
    if (ptr + Math.max(bytes, 0) > this.limit) {
      throw new WasmError(`${this.what} out of its memory region: need ${ptr + bytes - this.base} bytes of ${this.limit - this.base}`);
    }
    return super.allocBytes(bytes);
  }
}

/** The arena of a worker thread: views only. */
class ViewArena extends Arena {
  override allocBytes(_bytes: number): number {
    throw new WasmError("a worker thread may not allocate from the arena (the main thread pre-allocates scratch)");
  }
}

export function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

function fmtBytes(n: number): string {
  return n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;
}

/** A WASM instance together with its arena: what every compute path takes (work is split by an Executor, src/exec). */
export interface Wasm {
  /** the compiled kernels this instance is of (what a browser worker instantiates on `memory`) */
  module?: WebAssembly.Module;
  memory: WebAssembly.Memory;
  exports: KernelExports;
  /** which build of the kernels this instance runs (workers instantiate the same one) */
  build: KernelBuild;
  arena: Arena;
}

/**
 * A fresh memory, an instance of `module` on it, and an arena starting above the module's static data. `build`:
 * the build the module is expected to be (refused by name if it is the other one; absent: whichever it is);
 * `where` names the module in an error.
 */
export function createWasmFrom(module: WebAssembly.Module, build?: KernelBuild, initialBytes?: number, where?: string): Wasm {
  const memory = createMemory(initialBytes);
  const exports = instantiate(module, memory, where);
  const arena = new Arena(memory, exports.heapBase());
  return { module, memory, exports, build: checkBuild(exports, build, where), arena };
}
