/**
 * @file The targets of the benchmarks: each with its measured value, the bound it must reach (at least, or at
 * most for times and memory) and whether it is met, carried by `--json` and printed at the end of a run. Ratios
 * are measured side by side in one run.
 */
export interface Target {
  name: string;
  /** the measured value */
  value: number;
  /** the bound */
  target: number;
  /** "≥": value must reach the bound (speeds, ratios); "≤": stay under it (times, memory) */
  direction: "≥" | "≤";
  /** "x" for ratios, "%" for fractions of a ceiling */
  unit: "x" | "%" | "GFLOP/s" | "GiB" | "min";
  met: boolean;
}

export function target(name: string, value: number, at: number, unit: Target["unit"], direction: Target["direction"] = "≥"): Target {
  return { name, value, target: at, direction, unit, met: direction === "≥" ? value >= at : value <= at };
}

export function renderTarget(t: Target): string {
  const v = t.unit === "x" ? t.value.toFixed(2) : t.value.toFixed(1);
  const u = t.unit === "x" || t.unit === "%" ? t.unit : ` ${t.unit}`;
  return `${t.met ? "met   " : "MISSED"} ${t.name}: ${v}${u} (target ${t.direction} ${t.target}${u})`;
}
