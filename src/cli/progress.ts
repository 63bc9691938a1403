/**
 * @file Progress for long work: a bar with ETA on a TTY (stderr), nothing in pipes or under --json.
 */
import cliProgress from "cli-progress";

export interface Progress {
  update(done: number, payload?: Record<string, string | number>): void;
  stop(): void;
}

const QUIET: Progress = { update() {}, stop() {} };

export function progress(label: string, total: number, opts: { json?: boolean; extra?: string } = {}): Progress {
  if (opts.json || !process.stderr.isTTY || process.env.CI) return QUIET;
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {percentage}% {value}/{total} | ETA {eta_formatted}${opts.extra ? " | " + opts.extra : ""}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  // the payload fields of `extra` start empty (else the bar shows "{run}" until the first update)
  const blank = Object.fromEntries([...(opts.extra ?? "").matchAll(/\{(\w+)\}/g)].map((m) => [m[1], ""]));
  bar.start(total, 0, blank);
  return {
    update: (done, payload) => bar.update(done, payload),
    stop: () => bar.stop(),
  };
}
