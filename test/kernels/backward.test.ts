/**
 * @file Every backward kernel (assembly/f32-*-backward.ts) against central finite differences of a float64
 * TypeScript reference of the forward op, on small shapes that hit the tiles, sub-tiles and remainders:
 * L = Σ dy ⊙ f(inputs) for a random dy, ∂L/∂input by (L(x+h) − L(x−h)) / 2h in float64, h = 1e-5.
 * Each test reports its worst error relative to max |gradient| (a diagnostic line in the spec reporter).
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mulberry32 } from "../helpers/random.js";
import { place, scoped } from "./util.js";
import { kernels } from "../../src/kernels/index.js";
import { finiteDifferenceGradient } from "../helpers/gradcheck.js";

const H = 1e-5;
/** worst |got − want| / max|want| allowed (f32 kernels vs f64 differences) */
const TOL = 2e-4;

function rand64(rand: () => number, n: number, lo = -1, hi = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.fround(lo + (hi - lo) * rand());
  return a;
}
const f32 = (a: Float64Array): Float32Array => Float32Array.from(a);

/** ∂/∂x of Σ dy·f(x) by central differences at step H, x perturbed in place and restored. */
const fdGrad = (x: Float64Array, loss: () => number): Float64Array => finiteDifferenceGradient(x, H, loss);

const dotLoss = (dy: Float64Array, y: Float64Array): number => {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += dy[i] * y[i];
  return s;
};

/** Max |got − want| / max |want|; fails above TOL naming the index. */
function check(t: TestContext, label: string, got: ArrayLike<number>, want: Float64Array, tol = TOL): number {
  assert.equal(got.length, want.length, `${label}: length`);
  let scale = 1e-12;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / scale;
    if (!(e <= worst)) { worst = e; at = i; }
  }
  if (!(worst <= tol)) assert.fail(`${label}: index ${at}: got ${got[at]}, finite difference ${want[at]} (rel. err ${worst.toExponential(2)} > ${tol})`);
  return worst;
}

function report(t: TestContext, name: string, worst: number): void {
  t.diagnostic(`${name}: worst error vs finite differences ${worst.toExponential(2)} (relative to max |grad|)`);
}

// ---- float64 references of the forward ops ------------------------------------------------------------

function linearRef(x: Float64Array, w: Float64Array, T: number, N: number, K: number): Float64Array {
  const y = new Float64Array(T * N);
  for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += x[t * K + k] * w[n * K + k];
    y[t * N + n] = s;
  }
  return y;
}

function rmsnormRef(x: Float64Array, g: Float64Array, rows: number, n: number, eps: number): Float64Array {
  const y = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = 0; j < n; j++) ss += x[r * n + j] ** 2;
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let j = 0; j < n; j++) y[r * n + j] = g[j] * x[r * n + j] * inv;
  }
  return y;
}

function ropeRef(x: Float64Array, cos: Float64Array, sin: Float64Array, nHeads: number, hd: number, layout: "interleaved" | "half"): Float64Array {
  const y = Float64Array.from(x);
  const half = hd / 2;
  for (let h = 0; h < nHeads; h++) for (let i = 0; i < half; i++) {
    const [a, b] = layout === "interleaved" ? [h * hd + 2 * i, h * hd + 2 * i + 1] : [h * hd + i, h * hd + i + half];
    y[a] = x[a] * cos[i] - x[b] * sin[i];
    y[b] = x[a] * sin[i] + x[b] * cos[i];
  }
  return y;
}

function attentionRef(q: Float64Array, k: Float64Array, v: Float64Array, nH: number, nKv: number, hd: number, T: number, qs: number, kvs: number): Float64Array {
  const out = new Float64Array(T * qs);
  const group = nH / nKv;
  for (let h = 0; h < nH; h++) {
    const g = Math.floor(h / group);
    for (let t = 0; t < T; t++) {
      const s = new Float64Array(t + 1);
      let m = -Infinity;
      for (let j = 0; j <= t; j++) {
        let d = 0;
        for (let i = 0; i < hd; i++) d += q[t * qs + h * hd + i] * k[j * kvs + g * hd + i];
        s[j] = d / Math.sqrt(hd);
        m = Math.max(m, s[j]);
      }
      let sum = 0;
      for (let j = 0; j <= t; j++) { s[j] = Math.exp(s[j] - m); sum += s[j]; }
      for (let j = 0; j <= t; j++) for (let i = 0; i < hd; i++) out[t * qs + h * hd + i] += (s[j] / sum) * v[j * kvs + g * hd + i];
    }
  }
  return out;
}

function logSoftmax(z: Float64Array, off: number, V: number, tau = 1): Float64Array {
  const out = new Float64Array(V);
  let m = -Infinity;
  for (let i = 0; i < V; i++) m = Math.max(m, z[off + i] / tau);
  let s = 0;
  for (let i = 0; i < V; i++) s += Math.exp(z[off + i] / tau - m);
  const ls = Math.log(s);
  for (let i = 0; i < V; i++) out[i] = z[off + i] / tau - m - ls;
  return out;
}

// ---- tests --------------------------------------------------------------------------------------------

test("f32_gemm_nn / f32_gemm_tn: dX = dY·W and dW += dYᵀ·X of a linear layer vs finite differences", (t) => {
  const rand = mulberry32(801);
  let worst = 0;
  // (T, N_out, K_in): tiles of 4x8, row/column remainders, K past the 256 block
  for (const [T, N, K] of [[1, 1, 1], [4, 8, 8], [5, 9, 7], [3, 17, 12], [9, 20, 33], [6, 300, 10], [270, 5, 9]] as const) {
    scoped((w) => {
      const k = kernels(w);
      const x = rand64(rand, T * K), W = rand64(rand, N * K), dy = rand64(rand, T * N);
      const bx = place(w, f32(x), 1), bw = place(w, f32(W)), bdy = place(w, f32(dy), 1);
      const bdx = place(w, new Float32Array(T * K)), bdw = place(w, new Float32Array(N * K).fill(0.5));
      k.f32_gemm_nn(bdy.ptr, bw.ptr, bdx.ptr, T, K, N, 0);
      k.f32_gemm_tn(bdy.ptr, bx.ptr, bdw.ptr, N, K, T, 1); // accumulate onto 0.5
      const label = `linear T=${T} N=${N} K=${K}`;
      const loss = () => dotLoss(dy, linearRef(x, W, T, N, K));
      if (T * K <= 400) worst = Math.max(worst, check(t, `${label} dX`, bdx.read(), fdGrad(x, loss)));
      if (N * K <= 400) worst = Math.max(worst, check(t, `${label} dW`, bdw.read().map((v) => v - 0.5), fdGrad(W, loss), 1e-3));
      // large shapes: against the exact float64 products (the FD of a linear map is the product)
      const dxRef = new Float64Array(T * K), dwRef = new Float64Array(N * K);
      for (let i = 0; i < T; i++) for (let n = 0; n < N; n++) for (let j = 0; j < K; j++) {
        dxRef[i * K + j] += dy[i * N + n] * W[n * K + j];
        dwRef[n * K + j] += dy[i * N + n] * x[i * K + j];
      }
      check(t, `${label} dX exact`, bdx.read(), dxRef);
      check(t, `${label} dW exact`, bdw.read().map((v) => v - 0.5), dwRef, 1e-3);
      for (const [n, b] of [["x", bx], ["w", bw], ["dy", bdy], ["dx", bdx], ["dw", bdw]] as const) b.checkGuards(`${label} ${n}`);
    });
  }
  report(t, "linear (gemm_nn, gemm_tn)", worst);
});

test("f32_rmsnorm_backward: dx (written and accumulated) and dg vs finite differences", (t) => {
  const rand = mulberry32(802);
  let worst = 0;
  for (const [rows, n] of [[1, 2], [3, 5], [2, 8], [4, 13], [2, 64]] as const) {
    scoped((w) => {
      const k = kernels(w);
      const eps = 1e-5;
      const x = rand64(rand, rows * n, -2, 2), g = rand64(rand, n, 0.5, 1.5), dy = rand64(rand, rows * n);
      const bx = place(w, f32(x)), bg = place(w, f32(g)), bdy = place(w, f32(dy));
      const bdx = place(w, new Float32Array(rows * n)), bdg = place(w, new Float32Array(n));
      k.f32_rmsnorm_backward(bx.ptr, bg.ptr, bdy.ptr, bdx.ptr, bdg.ptr, rows, n, eps, 0);
      const loss = () => dotLoss(dy, rmsnormRef(x, g, rows, n, eps));
      const label = `rmsnorm rows=${rows} n=${n}`;
      const dxWant = fdGrad(x, loss);
      worst = Math.max(worst, check(t, `${label} dx`, bdx.read(), dxWant), check(t, `${label} dg`, bdg.read(), fdGrad(g, loss)));
      // accumulate: adds the same again
      k.f32_rmsnorm_backward(bx.ptr, bg.ptr, bdy.ptr, bdx.ptr, bdg.ptr, rows, n, eps, 1);
      check(t, `${label} dx accumulated`, bdx.read(), dxWant.map((v) => 2 * v));
      for (const [nm, b] of [["x", bx], ["dx", bdx], ["dg", bdg]] as const) b.checkGuards(`${label} ${nm}`);
    });
  }
  report(t, "rmsnorm", worst);
});

test("f32_silu_mul_backward: d gate and d up of silu(gate)·up vs finite differences", (t) => {
  const rand = mulberry32(803);
  scoped((w) => {
    const k = kernels(w);
    const n = 37;
    const a = rand64(rand, n, -6, 6), u = rand64(rand, n, -2, 2), dh = rand64(rand, n);
    const ba = place(w, f32(a)), bu = place(w, f32(u)), bdh = place(w, f32(dh));
    const bda = place(w, new Float32Array(n)), bdu = place(w, new Float32Array(n));
    k.f32_silu_mul_backward(ba.ptr, bu.ptr, bdh.ptr, bda.ptr, bdu.ptr, n);
    const loss = () => {
      let s = 0;
      for (let i = 0; i < n; i++) s += dh[i] * (a[i] / (1 + Math.exp(-a[i]))) * u[i];
      return s;
    };
    const worst = Math.max(check(t, "silu dgate", bda.read(), fdGrad(a, loss)), check(t, "silu dup", bdu.read(), fdGrad(u, loss)));
    bda.checkGuards("silu dgate");
    bdu.checkGuards("silu dup");
    report(t, "silu·up", worst);
  });
});

test("f32_rope_{interleaved,half}_backward: transpose rotation vs finite differences", (t) => {
  const rand = mulberry32(804);
  let worst = 0;
  for (const layout of ["interleaved", "half"] as const) {
    for (const [nHeads, hd] of [[1, 2], [3, 6], [2, 8], [4, 16], [1, 10]] as const) {
      scoped((w) => {
        const k = kernels(w);
        const half = hd / 2;
        const x = rand64(rand, nHeads * hd), dy = rand64(rand, nHeads * hd);
        const ang = rand64(rand, half, 0, 6);
        const cos = ang.map(Math.cos), sin = ang.map(Math.sin);
        const bd = place(w, f32(dy)), bc = place(w, f32(cos)), bs = place(w, f32(sin));
        (layout === "interleaved" ? k.f32_rope_interleaved_backward : k.f32_rope_half_backward)(bd.ptr, bc.ptr, bs.ptr, nHeads, hd);
        const c32 = Float64Array.from(f32(cos)), s32 = Float64Array.from(f32(sin));
        const label = `rope ${layout} nHeads=${nHeads} hd=${hd}`;
        worst = Math.max(worst, check(t, label, bd.read(), fdGrad(x, () => dotLoss(dy, ropeRef(x, c32, s32, nHeads, hd, layout)))));
        bd.checkGuards(label);
      });
    }
  }
  report(t, "rope (both layouts)", worst);
});

test("f32_attention_causal (forward) and f32_attention_backward: dq, dk, dv of causal GQA attention vs finite differences", (t) => {
  const rand = mulberry32(805);
  let worst = 0;
  // nHeads, nKvHeads, headDim, T, extra kv stride
  for (const [nH, nKv, hd, T, extra] of [[1, 1, 4, 1, 0], [2, 2, 4, 3, 0], [4, 2, 8, 5, 0], [4, 1, 6, 4, 2], [6, 3, 5, 6, 1], [2, 1, 8, 11, 0]] as const) {
    scoped((w) => {
      const k = kernels(w);
      const qs = nH * hd, kvs = nKv * hd + extra;
      const q = rand64(rand, T * qs, -1.5, 1.5), kk = rand64(rand, T * kvs, -1.5, 1.5), v = rand64(rand, T * kvs), dO = rand64(rand, T * qs);
      const bq = place(w, f32(q)), bk = place(w, f32(kk)), bv = place(w, f32(v)), bdo = place(w, f32(dO));
      const bdq = place(w, new Float32Array(T * qs)), bdk = place(w, new Float32Array(T * kvs)), bdv = place(w, new Float32Array(T * kvs));
      const bs = place(w, new Float32Array(2 * (T + 3)));
      const bo = place(w, new Float32Array(T * qs)), blse = place(w, new Float32Array(nH * T));
      k.f32_attention_causal(bq.ptr, bk.ptr, bv.ptr, bo.ptr, blse.ptr, bs.ptr, nH, nKv, hd, T, qs, kvs);
      k.f32_attention_backward(bq.ptr, bk.ptr, bv.ptr, blse.ptr, bdo.ptr, bdq.ptr, bdk.ptr, bdv.ptr, bs.ptr, nH, nKv, hd, T, qs, kvs);
      const loss = () => dotLoss(dO, attentionRef(q, kk, v, nH, nKv, hd, T, qs, kvs));
      const label = `attention nH=${nH} nKv=${nKv} hd=${hd} T=${T} kvStride+${extra}`;
      check(t, `${label} forward`, bo.read(), attentionRef(q, kk, v, nH, nKv, hd, T, qs, kvs), 2e-6);
      worst = Math.max(
        worst,
        check(t, `${label} dq`, bdq.read(), fdGrad(q, loss)),
        check(t, `${label} dk`, bdk.read(), fdGrad(kk, loss)),
        check(t, `${label} dv`, bdv.read(), fdGrad(v, loss)),
      );
      for (const [nm, b] of [["out", bo], ["lse", blse], ["dq", bdq], ["dk", bdk], ["dv", bdv], ["scratch", bs]] as const) b.checkGuards(`${label} ${nm}`);
    });
  }
  report(t, "attention (GQA, causal)", worst);
});

test("f32_embedding_backward and the tied classifier: gradient of the table vs finite differences", (t) => {
  const rand = mulberry32(806);
  scoped((w) => {
    const k = kernels(w);
    const V = 7, dim = 6, T = 5;
    const tokens = [3, 1, 3, 6, 0];
    const E = rand64(rand, V * dim), dyEmb = rand64(rand, T * dim);
    // loss = Σ dyEmb ⊙ E[tokens] + Σ dyLog ⊙ (X·Eᵀ) — lookup and tied classifier share E
    const X = rand64(rand, T * dim), dyLog = rand64(rand, T * V);
    const bt = w.arena.alloc(T);
    w.arena.i32(bt, T).set(tokens);
    const bdx = place(w, f32(dyEmb)), bdl = place(w, f32(dyLog)), bX = place(w, f32(X));
    const bdE = place(w, new Float32Array(V * dim));
    k.f32_embedding_backward(bt, bdx.ptr, bdE.ptr, T, dim, V);
    k.f32_gemm_tn(bdl.ptr, bX.ptr, bdE.ptr, V, dim, T, 1);
    const loss = () => {
      let s = 0;
      for (let i = 0; i < T; i++) for (let j = 0; j < dim; j++) s += dyEmb[i * dim + j] * E[tokens[i] * dim + j];
      return s + dotLoss(dyLog, linearRef(X, E, T, V, dim));
    };
    const worst = check(t, "embedding + tied classifier dE", bdE.read(), fdGrad(E, loss));
    bdE.checkGuards("dE");
    report(t, "embedding + tied classifier", worst);
    assert.throws(() => { w.arena.i32(bt, 1)[0] = V; k.f32_embedding_backward(bt, bdx.ptr, bdE.ptr, 1, dim, V); }, /kernel assertion failed/);
  });
});

test("f32_group_sum / f32_group_expand_add (SLoRB projection) are transposes, ragged last group", (t) => {
  const rand = mulberry32(807);
  scoped((w) => {
    const k = kernels(w);
    const rows = 3, n = 21, kk = 8, G = 3;
    const x = rand64(rand, rows * n), ds = rand64(rand, rows * G);
    const bx = place(w, f32(x)), bs = place(w, new Float32Array(rows * G)), bds = place(w, f32(ds)), bdx = place(w, new Float32Array(rows * n));
    k.f32_group_sum(bx.ptr, bs.ptr, rows, n, kk);
    k.f32_group_expand_add(bds.ptr, bdx.ptr, rows, n, kk);
    const sum = (xx: Float64Array) => {
      const s = new Float64Array(rows * G);
      for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) s[r * G + Math.floor(j / kk)] += xx[r * n + j];
      return s;
    };
    check(t, "group sum", bs.read(), sum(x), 1e-6);
    const worst = check(t, "group expand = d(group sum)", bdx.read(), fdGrad(x, () => dotLoss(ds, sum(x))));
    bs.checkGuards("s");
    bdx.checkGuards("dx");
    report(t, "SLoRB group sum", worst);
  });
});

test("f32_cross_entropy_backward and f32_kl_backward: losses and logit gradients vs finite differences", (t) => {
  const rand = mulberry32(808);
  let worst = 0;
  for (const [rows, V] of [[1, 2], [3, 11], [4, 64]] as const) {
    for (const tau of [1, 2, 0.7]) {
      scoped((w) => {
        const k = kernels(w);
        const z = rand64(rand, rows * V, -4, 4), zt = rand64(rand, rows * V, -4, 4);
        const targets = Array.from({ length: rows }, (_, i) => (i === 1 ? -1 : Math.floor(rand() * V)));
        const bz = place(w, f32(z)), bzt = place(w, f32(zt)), bd = place(w, new Float32Array(rows * V));
        const bt = w.arena.alloc(rows);
        w.arena.i32(bt, rows).set(targets);
        const ce = () => {
          let s = 0;
          for (let r = 0; r < rows; r++) if (targets[r] >= 0) s -= logSoftmax(z, r * V, V)[targets[r]];
          return s;
        };
        const kl = () => {
          let s = 0;
          for (let r = 0; r < rows; r++) {
            const ls = logSoftmax(z, r * V, V, tau), lt = logSoftmax(zt, r * V, V, tau);
            for (let i = 0; i < V; i++) s += Math.exp(lt[i]) * (lt[i] - ls[i]);
          }
          return tau * tau * s;
        };
        const label = `rows=${rows} V=${V} tau=${tau}`;
        const ceGot = k.f32_cross_entropy_backward(bz.ptr, bt, bd.ptr, rows, V, 1, 0);
        assert.ok(Math.abs(ceGot - ce()) <= 1e-5 * Math.max(1, ce()), `${label}: CE ${ceGot} vs ${ce()}`);
        worst = Math.max(worst, check(t, `${label} dCE/dz`, bd.read(), fdGrad(z, ce)));
        const klGot = k.f32_kl_backward(bz.ptr, bzt.ptr, bd.ptr, rows, V, tau, 1, 0);
        assert.ok(Math.abs(klGot - kl()) <= 1e-5 * Math.max(1, kl()), `${label}: KL ${klGot} vs ${kl()}`);
        worst = Math.max(worst, check(t, `${label} dKL/dz`, bd.read(), fdGrad(z, kl)));
        // α·CE + (1−α)·KL through scale + accumulate
        const a = 0.33;
        k.f32_cross_entropy_backward(bz.ptr, bt, bd.ptr, rows, V, a, 0);
        k.f32_kl_backward(bz.ptr, bzt.ptr, bd.ptr, rows, V, tau, 1 - a, 1);
        worst = Math.max(worst, check(t, `${label} d(αCE+(1−α)KL)/dz`, bd.read(), fdGrad(z, () => a * ce() + (1 - a) * kl())));
        bd.checkGuards(label);
      });
    }
  }
  report(t, "cross-entropy, KL(teacher‖student) at τ", worst);
});
