/**
 * @file Anchors of `wasprune bench kernels`: dense f32 matmul in onnxruntime-web (WASM backend, MLAS) and
 * @tensorflow/tfjs-backend-wasm (XNNPACK), single thread with SIMD, on the shapes of bench/sparse.ts, so that
 * our dense GEMM/GEMV (and the sparse kernels) can be read against what users would otherwise run in WASM.
 *
 * Both load offline from node_modules: ORT-web's .wasm/.mjs ship in onnxruntime-web/dist (`env.wasm.wasmPaths`
 * points there), tfjs-backend-wasm's .wasm files in its dist/ (`setWasmPaths`). The ORT model is one MatMul
 * node with W as an initializer (encoded by hand below: ONNX is protobuf, and the model is tiny), so W lives
 * in ORT's WASM heap like ours in our arena; X is fed per call. tfjs computes matMul(X, W) on resident
 * tensors, W stored [K,N] (its fast layout). A call's time includes each runtime's per-call overhead (session.run's promise and
 * tensor wrapping; tfjs's kernel dispatch and dataSync), which is what a user of either pays.
 * Like bench/sparse.ts, 4096x4096 at batch 1 rotates through `copies` weight copies so the weights stream from
 * DRAM in every runtime.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { mulberry32 } from "../src/util/rng.js";

export type AnchorName = "onnxruntime-web" | "tfjs-wasm";

/** A dense matmul Y (M,N) = X (M,K) · Wᵀ of one runtime, weights resident in `copies` copies. */
export interface AnchorMatmul {
  /** runs one call on weight copy `rep % copies` */
  run(rep: number): Promise<void>;
  dispose(): Promise<void>;
}

export interface Anchor {
  name: AnchorName;
  version: string;
  /** how it was configured (threads, SIMD, backend) */
  setup: string;
  prepare(M: number, N: number, K: number, copies: number, seed: number): Promise<AnchorMatmul>;
}

/**
 * The anchors are development dependencies (package.json): an installed wasprune has them only when the user
 * adds them. Their folder is found from where Node resolves them from this module (the checkout's node_modules,
 * or wherever a user installed them), and a missing one is reported by name with the install line.
 */
const ANCHOR_VERSIONS: Record<string, string> = { "onnxruntime-web": "1.30.0", "@tensorflow/tfjs-core": "4.22.0", "@tensorflow/tfjs-backend-wasm": "4.22.0" };

function packageDir(pkg: string): string {
  let entry: string;
  try {
    entry = fileURLToPath(import.meta.resolve(pkg));
  } catch {
    throw new Error(`${pkg} is not installed (a development dependency of wasprune: npm install ${pkg}@${ANCHOR_VERSIONS[pkg]} to run this anchor)`);
  }
  for (let dir = path.dirname(entry); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, "package.json");
    if (fs.existsSync(file) && (JSON.parse(fs.readFileSync(file, "utf8")) as { name?: string }).name === pkg) return dir;
  }
  throw new Error(`${pkg}: no package.json above ${entry}`);
}
const versionOf = (pkg: string): string => (JSON.parse(fs.readFileSync(path.join(packageDir(pkg), "package.json"), "utf8")) as { version: string }).version;

function randomF32(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r() - 0.5;
  return a;
}

// ---- a minimal ONNX protobuf writer ----------------------------------------------------------------------

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}
type Field = Uint8Array;
const cat = (parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
const fInt = (field: number, v: number): Field => Uint8Array.from([...varint(field << 3), ...varint(v)]);
const fBytes = (field: number, b: Uint8Array): Field => cat([Uint8Array.from([...varint((field << 3) | 2), ...varint(b.length)]), b]);
const fStr = (field: number, s: string): Field => fBytes(field, new TextEncoder().encode(s));
const FLOAT = 1;

/** ValueInfoProto of a float tensor with fixed dims. */
function valueInfo(name: string, dims: number[]): Field {
  const shape = cat(dims.map((d) => fBytes(1, fInt(1, d)))); // TensorShapeProto.dim { dim_value }
  const tensorType = cat([fInt(1, FLOAT), fBytes(2, shape)]); // TypeProto.Tensor { elem_type, shape }
  return cat([fStr(1, name), fBytes(2, fBytes(1, tensorType))]); // { name, type { tensor_type } }
}

/** ModelProto (IR 8, opset 13) of Y = MatMul(X [M,K], W [K,N]) with W an initializer. */
export function matmulOnnx(M: number, K: number, N: number, wKN: Float32Array): Uint8Array {
  const w = cat([fInt(1, K), fInt(1, N), fInt(2, FLOAT), fStr(8, "W"), fBytes(9, new Uint8Array(wKN.buffer, wKN.byteOffset, wKN.byteLength))]);
  const node = cat([fStr(1, "X"), fStr(1, "W"), fStr(2, "Y"), fStr(3, "mm"), fStr(4, "MatMul")]);
  const graph = cat([fBytes(1, node), fStr(2, "matmul"), fBytes(5, w), fBytes(11, valueInfo("X", [M, K])), fBytes(12, valueInfo("Y", [M, N]))]);
  return cat([fInt(1, 8), fStr(2, "wasprune-bench"), fBytes(7, graph), fBytes(8, cat([fStr(1, ""), fInt(2, 13)]))]);
}

/** W [N,K] (our layout) transposed to [K,N] (MatMul's). */
function transpose(w: Float32Array, N: number, K: number): Float32Array {
  const t = new Float32Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) t[k * N + n] = w[n * K + k]!;
  return t;
}

// ---- the two runtimes -------------------------------------------------------------------------------------

async function onnxruntimeWeb(): Promise<Anchor> {
  const dist = path.join(packageDir("onnxruntime-web"), "dist") + path.sep;
  const ort = await import("onnxruntime-web");
  ort.env.wasm.wasmPaths = pathToFileURL(dist).href;
  ort.env.wasm.numThreads = 1;
  (ort.env.wasm as { simd?: boolean }).simd = true;
  ort.env.logLevel = "error";
  return {
    name: "onnxruntime-web",
    version: versionOf("onnxruntime-web"),
    setup: "wasm execution provider, numThreads 1, SIMD build, graph optimizations all",
    async prepare(M, N, K, copies, seed) {
      const sessions: import("onnxruntime-web").InferenceSession[] = [];
      for (let c = 0; c < copies; c++) {
        const model = matmulOnnx(M, K, N, transpose(randomF32(N * K, seed + c), N, K));
        sessions.push(await ort.InferenceSession.create(model, { executionProviders: ["wasm"], graphOptimizationLevel: "all" }));
      }
      const x = new ort.Tensor("float32", randomF32(M * K, seed + 1000), [M, K]);
      return {
        async run(rep) {
          const out = await sessions[rep % copies]!.run({ X: x });
          out.Y!.dispose();
        },
        async dispose() {
          for (const s of sessions) await s.release();
        },
      };
    },
  };
}

async function tfjsWasm(): Promise<Anchor> {
  const dist = path.join(packageDir("@tensorflow/tfjs-backend-wasm"), "dist") + path.sep;
  packageDir("@tensorflow/tfjs-core");
  const tf = await import("@tensorflow/tfjs-core");
  const wasmBackend = await import("@tensorflow/tfjs-backend-wasm");
  wasmBackend.setWasmPaths(dist);
  wasmBackend.setThreadsCount?.(1);
  if (!(await tf.setBackend("wasm"))) throw new Error("tf.setBackend('wasm') returned false");
  await tf.ready();
  const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
  return {
    name: "tfjs-wasm",
    version: versionOf("@tensorflow/tfjs-backend-wasm"),
    setup: `wasm backend (XNNPACK), threads 1 (setThreadsCount), SIMD ${simd ? "on" : "off"}`,
    async prepare(M, N, K, copies, seed) {
      // W as [K,N]: matMul(X, W) ran 4-8x faster here than matMul(X, W [N,K], false, true), so tfjs gets that
      const ws = Array.from({ length: copies }, (_, c) => tf.tensor2d(transpose(randomF32(N * K, seed + c), N, K), [K, N]));
      const x = tf.tensor2d(randomF32(M * K, seed + 1000), [M, K]);
      return {
        async run(rep) {
          const y = tf.matMul(x, ws[rep % copies]!);
          y.dataSync();
          y.dispose();
        },
        async dispose() {
          x.dispose();
          for (const w of ws) w.dispose();
        },
      };
    },
  };
}

/** The anchors that load here; a failure to load is returned as its reason instead of thrown. */
export async function loadAnchors(): Promise<{ anchors: Anchor[]; failures: { name: AnchorName; reason: string }[] }> {
  const anchors: Anchor[] = [];
  const failures: { name: AnchorName; reason: string }[] = [];
  for (const [name, load] of [["onnxruntime-web", onnxruntimeWeb], ["tfjs-wasm", tfjsWasm]] as const) {
    try {
      const a = await load();
      // one tiny call proves the WASM binary loaded and runs
      const m = await a.prepare(1, 4, 4, 1, 1);
      await m.run(0);
      await m.dispose();
      anchors.push(a);
    } catch (e) {
      failures.push({ name, reason: (e as Error).message.split("\n")[0]! });
    }
  }
  return { anchors, failures };
}
