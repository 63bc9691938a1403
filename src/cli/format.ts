/** @file Plain-text tables and number formatting for the CLI. */
export type Cell = string | number | null | undefined;

export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return x.toExponential(digits - 1);
  return x.toFixed(a >= 100 ? Math.max(0, digits - 3) : digits);
}

export function table(header: string[], rows: Cell[][], opts: { align?: ("l" | "r")[] } = {}): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? "" : typeof c === "number" ? fmt(c) : c)));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? "").length)));
  const align = opts.align ?? header.map((_, i) => (i === 0 ? "l" : "r"));
  const line = (r: string[]) =>
    r.map((c, i) => (align[i] === "l" ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)].join("\n");
}

export function humanCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

export function humanBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(2)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}
