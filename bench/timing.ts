/** @file Timing loop of the benchmarks: calls/s after one warm-up call, over a time budget. */

/** Calls `fn(rep)` once to warm up, then until `budgetMs` has passed (at least `minReps` times); returns reps/s. */
export function rate(fn: (rep: number) => void, budgetMs: number, minReps = 1): number {
  fn(0);
  let reps = 0;
  const t0 = performance.now();
  let elapsed = 0;
  while (reps < minReps || elapsed < budgetMs) {
    fn(reps + 1);
    reps++;
    elapsed = performance.now() - t0;
  }
  return (reps * 1000) / elapsed;
}

/** `rate` for an asynchronous call (awaited one at a time). */
export async function rateAsync(fn: (rep: number) => Promise<void>, budgetMs: number, minReps = 1): Promise<number> {
  await fn(0);
  let reps = 0;
  const t0 = performance.now();
  let elapsed = 0;
  while (reps < minReps || elapsed < budgetMs) {
    await fn(reps + 1);
    reps++;
    elapsed = performance.now() - t0;
  }
  return (reps * 1000) / elapsed;
}
