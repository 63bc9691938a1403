// The SPSA estimator (src/structured/spsa.ts) on a small synthetic function with a known gradient: unbiased
// (the mean over many seeds is the true gradient), variance falling as 1/K, finite differences exact.
import { test } from "node:test";
import assert from "node:assert/strict";
import { correlation, finiteDifferenceGradient, rademacher, spsaGradient } from "../../src/structured/spsa.ts";
import { UsageError } from "../../src/errors.ts";

// f_b(θ) = ½ θᵀAθ + (c + n_b)ᵀθ + ⅙ Σ θ_i³, with batch offsets n_b summing to 0: ∇f̄(θ0) = Aθ0 + c + ½θ0².
const d = 12;
const A = Float64Array.from({ length: d * d }, (_, k) => {
  const i = Math.floor(k / d);
  const j = k % d;
  return i === j ? 2 + i / d : 0.3 * Math.sin(i + j);
});
const c = Float64Array.from({ length: d }, (_, i) => Math.cos(3 * i) - 0.2);
const batchOffsets = [-0.5, 0.2, 0.3];
const theta0 = Float64Array.from({ length: d }, (_, i) => 0.1 * (i % 5) - 0.2);
function f(theta: Float64Array, b: number): number {
  let s = 0;
  for (let i = 0; i < d; i++) {
    let r = 0;
    for (let j = 0; j < d; j++) r += A[i * d + j] * theta[j];
    s += 0.5 * theta[i] * r + (c[i] + batchOffsets[b] * (i % 2 ? 1 : -1)) * theta[i] + theta[i] ** 3 / 6;
  }
  return s;
}
const trueGrad = Float64Array.from({ length: d }, (_, i) => {
  let r = 0;
  for (let j = 0; j < d; j++) r += A[i * d + j] * theta0[j];
  return r + c[i] + 0.5 * theta0[i] ** 2;
});

function estimates(K: number, seeds: number, eps = 1e-3): Float64Array[] {
  return Array.from({ length: seeds }, (_, s) => spsaGradient(f, theta0, { directions: K, eps, seed: 1000 + s, batches: 3 }).gradient);
}

test("Rademacher directions are ±1, seeded and balanced", () => {
  const z = rademacher(7, 3, 10000);
  assert.ok(z.every((v) => v === 1 || v === -1));
  assert.deepEqual(rademacher(7, 3, 50), z.subarray(0, 50));
  assert.notDeepEqual(rademacher(7, 4, 50), z.subarray(0, 50));
  const mean = z.reduce((a, b) => a + b, 0) / z.length;
  assert.ok(Math.abs(mean) < 0.03, `mean ${mean}`);
});

test("SPSA is unbiased: the mean over 600 seeds is the true gradient", () => {
  const K = 3; // one pass over the three batches, so the batch offsets cancel in every estimate
  const est = estimates(K, 600);
  const spread = Math.sqrt(trueGrad.reduce((a, g) => a + g * g, 0));
  for (let i = 0; i < d; i++) {
    const mean = est.reduce((a, e) => a + e[i], 0) / est.length;
    // standard error of the mean ≈ ‖∇f‖/sqrt(K·600)
    assert.ok(Math.abs(mean - trueGrad[i]) < 5 * spread / Math.sqrt(K * 600), `coordinate ${i}: mean ${mean}, true ${trueGrad[i]}`);
  }
});

test("SPSA variance falls as 1/K and the estimate converges to the gradient", () => {
  const variance = (K: number): number => {
    const est = estimates(K, 150);
    let v = 0;
    for (const e of est) for (let i = 0; i < d; i++) v += (e[i] - trueGrad[i]) ** 2;
    return v / est.length;
  };
  const v3 = variance(3);
  const v48 = variance(48);
  const ratio = v3 / v48;
  assert.ok(ratio > 10 && ratio < 25, `variance ratio K=3 vs K=48 is ${ratio}, expected ≈16`);
  const g = spsaGradient(f, theta0, { directions: 3000, eps: 1e-3, seed: 5, batches: 3 }).gradient;
  assert.ok(correlation(g, trueGrad) > 0.98, `correlation ${correlation(g, trueGrad)}`);
});

test("finite differences give the gradient of the batch mean; running estimates at checkpoints", () => {
  const fd = finiteDifferenceGradient(f, theta0, [...Array(d).keys()], { eps: 1e-4, batches: 3 });
  for (let i = 0; i < d; i++) assert.ok(Math.abs(fd[i] - trueGrad[i]) < 1e-6, `coordinate ${i}: ${fd[i]} vs ${trueGrad[i]}`);
  const r = spsaGradient(f, theta0, { directions: 12, eps: 1e-3, seed: 9, batches: 3 }, [6, 12]);
  assert.deepEqual([...r.at.keys()], [6, 12]);
  assert.deepEqual(r.at.get(12), r.gradient);
  assert.equal(r.evaluations, 24);
});

test("bad SPSA settings are UsageErrors", () => {
  assert.throws(() => spsaGradient(f, theta0, { directions: 0, eps: 1e-3, seed: 1, batches: 1 }), (e: unknown) => e instanceof UsageError && /directions/.test((e as Error).message));
  assert.throws(() => spsaGradient(f, theta0, { directions: 2, eps: 0, seed: 1, batches: 1 }), /eps must be a positive number/);
  assert.throws(() => spsaGradient(f, theta0, { directions: 2, eps: 1e-3, seed: 1, batches: 0 }), /batches must be a positive integer/);
});
