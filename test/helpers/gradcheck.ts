/** @file Finite-difference gradient checks shared by the kernel and training tests. */
import assert from "node:assert/strict";

/** A writable array of numbers (Float32Array, Float64Array, ...). */
export type Values = { [i: number]: number; readonly length: number };

/** (loss(x + h) − loss(x − h)) / 2h with respect to x[i]: x[i] is perturbed in place and restored. */
export function centralDifference(x: Values, i: number, h: number, loss: () => number): number {
  const x0 = x[i]!;
  x[i] = x0 + h;
  const lp = loss();
  x[i] = x0 - h;
  const lm = loss();
  x[i] = x0;
  return (lp - lm) / (2 * h);
}

/** The whole gradient of loss with respect to x by central differences (float64). */
export function finiteDifferenceGradient(x: Values, h: number, loss: () => number): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) g[i] = centralDifference(x, i, h, loss);
  return g;
}

/** One parameter tensor to probe: the values the loss reads and the backward pass's gradient of them. */
export interface ProbedTensor {
  name: string;
  data: Values;
  grad: ArrayLike<number>;
}

/**
 * Checks `trials` entries of each tensor, drawn with `rand` (tensor by tensor, trial by trial), against central
 * differences of `loss` with step h: the error is relative to max(1e-3, max |grad| of the tensor) and must stay
 * below tol (the failure names the tensor and index). Returns the worst error.
 */
export function checkSampledGradients(
  tensors: Iterable<ProbedTensor>,
  o: { h: number; trials: number; tol: number; rand: () => number; loss: () => number },
): number {
  let worst = 0;
  for (const { name, data, grad } of tensors) {
    let scale = 1e-3;
    for (let i = 0; i < data.length; i++) scale = Math.max(scale, Math.abs(grad[i]!));
    for (let trial = 0; trial < o.trials; trial++) {
      const i = Math.floor(o.rand() * data.length);
      const fd = centralDifference(data, i, o.h, o.loss);
      const err = Math.abs(fd - grad[i]!) / scale;
      worst = Math.max(worst, err);
      assert.ok(err < o.tol, `${name}[${i}]: backward ${grad[i]}, finite difference ${fd} (rel. err ${err.toExponential(2)})`);
    }
  }
  return worst;
}
