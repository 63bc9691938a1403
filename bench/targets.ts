/**
 * @file The targets of the benchmarks (issue 13): each with its measured value and whether it is met, carried
 * by `--json` and printed at the end of a run. Ratios are measured side by side in one run.
 */
export interface Target {
  name: string;
  /** the measured value */
  value: number;
  /** the value it must reach (≥) */
  target: number;
  /** "x" for ratios, "%" for fractions of a ceiling */
  unit: "x" | "%" | "GFLOP/s";
  met: boolean;
}

export function target(name: string, value: number, at: number, unit: Target["unit"]): Target {
  return { name, value, target: at, unit, met: value >= at };
}

export function renderTarget(t: Target): string {
  const v = t.unit === "x" ? t.value.toFixed(2) : t.value.toFixed(1);
  return `${t.met ? "met   " : "MISSED"} ${t.name}: ${v}${t.unit === "GFLOP/s" ? " GFLOP/s" : t.unit} (target ≥ ${t.target}${t.unit === "GFLOP/s" ? " GFLOP/s" : t.unit})`;
}
