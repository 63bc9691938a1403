/**
 * @file FISTAPruner's per-operator solve on WebGPU: FistaSolver (src/prune/methods/fista.ts) with its FISTA
 * runs (solve, iht, the λ bisection) on the device. The rest of the method — baselines, candidates, the
 * safeguard, λmax(H) by power iteration — stays on WASM, unchanged.
 *
 * Data movement: H and B are uploaded once per operator; a run uploads its start point (and λ, the mask) and
 * encodes all its iterations into one command buffer — G = Y·H (GEMM_NT, H symmetric) then the fused step
 * (FISTA_STEP, the formulas of f32_fista_step) — with no read-back until the run ends. The bisection keeps W
 * on the device across all its steps: per step it writes λ (rows floats) and reads back only the nonzero
 * count of each row (rows u32); W comes back once, at the end.
 */
import { FistaSolver } from "../prune/methods/fista.js";
import { keptPerRow, type Pattern } from "../prune/pattern.js";
import type { GramProblem } from "../prune/problem.js";
import type { Executor } from "../exec/executor.js";
import type { GpuDevice } from "./device.js";
import { FISTA_STEP, GEMM_NT, MASK_MUL, NM_MASK, ROW_NNZ, TOPK_MASK, grid1 } from "./kernels.js";

/**
 * A FistaSolver factory for PruneOptions.fistaSolver: one GpuFistaSolver per operator; creating the next one
 * frees the previous one's buffers (so a whole-model prune holds one operator's buffers at a time).
 */
export function gpuFistaSolvers(gpu: GpuDevice): (exec: Executor, problem: GramProblem) => FistaSolver {
  let last: GpuFistaSolver | undefined;
  return (exec, problem) => {
    last?.dispose();
    last = new GpuFistaSolver(exec, problem, gpu);
    return last;
  };
}

export class GpuFistaSolver extends FistaSolver {
  private readonly buffers: GPUBuffer[] = [];
  private readonly dH: GPUBuffer;
  private readonly dB: GPUBuffer;
  private readonly dY: GPUBuffer;
  private readonly dG: GPUBuffer;
  private readonly dWa: GPUBuffer;
  private readonly dWb: GPUBuffer;
  private readonly dT: GPUBuffer;
  private readonly lamB: GPUBuffer;
  private readonly maskB: GPUBuffer;
  private readonly nnzB: GPUBuffer;
  private readonly ones: Float32Array;
  private readonly binds = new Map<string, GPUBindGroup>();
  private uniformEta = NaN;

  constructor(
    exec: Executor,
    problem: GramProblem,
    readonly gpu: GpuDevice,
  ) {
    super(exec, problem);
    const { rows, cols, n } = this;
    const a = exec.wasm.arena;
    const buf = (bytes: number) => this.own(gpu.buffer(bytes));
    this.dH = this.own(gpu.upload(a.f32(problem.H, cols * cols)));
    this.dB = this.own(gpu.upload(a.f32(problem.B, n)));
    this.dY = buf(n * 4);
    this.dG = buf(n * 4);
    this.dWa = buf(n * 4);
    this.dWb = buf(n * 4);
    this.dT = buf(rows * 4);
    this.lamB = buf(rows * 4);
    this.maskB = buf(n * 4);
    this.nnzB = buf(rows * 4);
    this.ones = new Float32Array(rows).fill(1);
  }

  private own(b: GPUBuffer): GPUBuffer {
    this.buffers.push(b);
    return b;
  }

  /** Free the device buffers (the solver is not used afterwards). */
  dispose(): void {
    for (const b of this.buffers.splice(0)) b.destroy();
    this.binds.clear();
  }

  /** Bind groups (with their uniforms) by role, made once per solver and step size. */
  private bindings(key: "gemm" | `step${0 | 1}${0 | 1}${"ab" | "ba"}`): GPUBindGroup {
    if (this.uniformEta !== this.eta) {
      this.binds.clear();
      this.uniformEta = this.eta;
    }
    let b = this.binds.get(key);
    if (!b) {
      const { rows, cols, gpu } = this;
      if (key === "gemm") {
        const u = this.own(gpu.uniforms([rows, cols, cols, 0, 1], new Set([4])));
        b = gpu.bind(GEMM_NT, [u, this.dY, this.dH, this.dG]);
      } else {
        const [useMask, momentum] = [Number(key[4]), Number(key[5])];
        const [wOld, wNew] = key.endsWith("ab") ? [this.dWa, this.dWb] : [this.dWb, this.dWa];
        const u = this.own(gpu.uniforms([rows, cols, useMask, momentum, this.eta], new Set([4])));
        b = gpu.bind(FISTA_STEP, [u, this.dY, this.dG, this.dB, wOld, wNew, this.lamB, this.dT, this.maskB]);
      }
      this.binds.set(key, b);
    }
    return b;
  }

  /** Encode `iters` FISTA steps from W in Wa (Y = Wa, t = 1 set by the caller); returns the buffer holding W. */
  private encodeRun(enc: GPUCommandEncoder, iters: number, useMask: boolean): GPUBuffer {
    const { rows, cols, gpu } = this;
    const gemmGroups = [Math.ceil(cols / 64), Math.ceil(rows / 64)] as const;
    const m = useMask ? 1 : 0;
    let ab = true;
    for (let it = 0; it < iters; it++) {
      gpu.pass(enc, GEMM_NT, this.bindings("gemm"), gemmGroups);
      gpu.pass(enc, FISTA_STEP, this.bindings(`step${m}1${ab ? "ab" : "ba"}`), grid1(rows));
      ab = !ab; // W⁺ becomes the next W (the host swap of the WASM loop)
    }
    return ab ? this.dWa : this.dWb;
  }

  /** Y = Wa = W (device copies), t = 1. */
  private restartAt(enc: GPUCommandEncoder, W: GPUBuffer): void {
    const bytes = this.n * 4;
    if (W !== this.dWa) enc.copyBufferToBuffer(W, 0, this.dWa, 0, bytes);
    enc.copyBufferToBuffer(this.dWa, 0, this.dY, 0, bytes);
    this.gpu.write(this.dT, this.ones);
  }

  override async wh(W: number, G: number): Promise<void> {
    const { n, gpu } = this;
    const a = this.wasm.arena;
    gpu.write(this.dY, a.f32(W, n));
    const enc = gpu.device.createCommandEncoder();
    gpu.pass(enc, GEMM_NT, this.bindings("gemm"), [Math.ceil(this.cols / 64), Math.ceil(this.rows / 64)]);
    gpu.device.queue.submit([enc.finish()]);
    a.f32(G, n).set(await gpu.readF32(this.dG, n));
  }

  override async solve(start: number, out: number, lam: number, mask: number, iters: number): Promise<void> {
    const { n, rows, gpu } = this;
    const a = this.wasm.arena;
    gpu.write(this.dWa, a.f32(start, n));
    gpu.write(this.lamB, a.f32(lam, rows));
    if (mask) gpu.write(this.maskB, a.f32(mask, n));
    const enc = gpu.device.createCommandEncoder();
    this.restartAt(enc, this.dWa);
    const W = this.encodeRun(enc, iters, mask !== 0);
    gpu.device.queue.submit([enc.finish()]);
    this.iterations += iters;
    a.f32(out, n).set(await gpu.readF32(W, n));
  }

  override async iht(start: number, out: number, lam0: number, mask: number, pattern: Pattern, iters: number): Promise<void> {
    const { n, rows, cols, gpu } = this;
    const a = this.wasm.arena;
    a.f32(lam0, rows).fill(0);
    gpu.write(this.dWa, a.f32(start, n));
    gpu.write(this.lamB, a.f32(lam0, rows));
    const keep = keptPerRow(pattern, cols);
    const enc = gpu.device.createCommandEncoder();
    enc.copyBufferToBuffer(this.dWa, 0, this.dY, 0, n * 4);
    const proj =
      pattern.kind === "nm"
        ? { code: NM_MASK, u: gpu.uniforms([n / pattern.m, pattern.n, pattern.m]), groups: grid1(Math.ceil(n / pattern.m / 64)) }
        : { code: TOPK_MASK, u: gpu.uniforms([rows, cols, keep]), groups: grid1(rows) };
    this.own(proj.u);
    const projBind = gpu.bind(proj.code, [proj.u, this.dWb, this.maskB]);
    const mulU = this.own(gpu.uniforms([n]));
    const mulBind = gpu.bind(MASK_MUL, [mulU, this.dWb, this.maskB, this.dWa, this.dY]);
    for (let it = 0; it < iters; it++) {
      // t = 1 (momentum off), λ = 0: Wb = Y − 2η(Y·H − B); mask by |Wb|; Wa = Y = Wb·mask
      gpu.pass(enc, GEMM_NT, this.bindings("gemm"), [Math.ceil(cols / 64), Math.ceil(rows / 64)]);
      gpu.pass(enc, FISTA_STEP, this.bindings("step00ab"), grid1(rows));
      gpu.pass(enc, proj.code, projBind, proj.groups);
      gpu.pass(enc, MASK_MUL, mulBind, grid1(Math.ceil(n / 256)));
    }
    gpu.device.queue.submit([enc.finish()]);
    this.iterations += iters;
    a.f32(out, n).set(await gpu.readF32(this.dWa, n));
    if (iters > 0) a.f32(mask, n).set(await gpu.readF32(this.maskB, n)); // the refit after IHT uses the last mask
  }

  override async bisect(W: number, lam: number, keep: number, steps: number, iters: number, finalIters: number): Promise<Int32Array> {
    const { rows, cols, n, gpu } = this;
    const a = this.wasm.arena;
    const lo = new Float64Array(rows);
    const hi = new Float64Array(rows);
    const b = a.f32(this.problem.B, n);
    for (let r = 0; r < rows; r++) {
      let mx = 0;
      for (let j = 0; j < cols; j++) mx = Math.max(mx, Math.abs(b[r * cols + j]));
      hi[r] = Math.max(2 * mx, 1e-30);
      lo[r] = hi[r] * 1e-6;
    }
    const l = a.f32(lam, rows);
    const setLam = () => {
      for (let r = 0; r < rows; r++) l[r] = Math.sqrt(lo[r] * hi[r]);
      gpu.write(this.lamB, l);
    };
    const nnzU = this.own(gpu.uniforms([rows, cols]));
    let cur = this.dWa;
    gpu.write(cur, a.f32(W, n));
    const run = async (its: number): Promise<Int32Array> => {
      const enc = gpu.device.createCommandEncoder();
      this.restartAt(enc, cur);
      cur = this.encodeRun(enc, its, false);
      gpu.pass(enc, ROW_NNZ, gpu.bind(ROW_NNZ, [nnzU, cur, this.nnzB]), grid1(rows));
      gpu.device.queue.submit([enc.finish()]);
      this.iterations += its;
      return new Int32Array(await gpu.read(this.nnzB, rows * 4)); // the only read-back of a step
    };
    for (let step = 0; step < steps; step++) {
      setLam();
      const z = await run(iters);
      for (let r = 0; r < rows; r++) {
        if (z[r] > keep) lo[r] = l[r];
        else hi[r] = l[r];
      }
    }
    setLam();
    const z = await run(finalIters);
    a.f32(W, n).set(await gpu.readF32(cur, n));
    return z;
  }
}
