/**
 * @file The adapter of the WebGPU tests. With no adapter a test says so (t.diagnostic and the console) and
 * skips — except when scripts/install-lavapipe.sh succeeded in this checkout (CI): then the adapter must exist
 * and the test fails.
 */
import type { TestContext } from "node:test";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { probeGpu, lavapipeInstalled, type GpuDevice } from "../../src/gpu/device.js";

/** The device, or undefined after reporting why there is none (failing when lavapipe was installed). */
export async function gpuOrSkip(t: TestContext): Promise<GpuDevice | undefined> {
  const p = await probeGpu();
  if (p.ok) {
    t.diagnostic(`WebGPU adapter: ${p.gpu.name}`);
    return p.gpu;
  }
  if (lavapipeInstalled()) throw new Error(`scripts/install-lavapipe.sh ran here but there is no WebGPU adapter: ${p.reason}`);
  const msg = `NO WEBGPU ADAPTER — WebGPU test not run: ${p.reason}`;
  t.diagnostic(msg);
  console.log(`# ${msg}`);
  t.skip(msg);
  return undefined;
}

/**
 * Like gpuOrSkip, for tests whose GPU work all runs in CLI child processes: the adapter is probed in a child
 * too, so this test process never loads Dawn (and cannot be taken down by its teardown at exit).
 */
export function gpuInChildOrSkip(t: TestContext): boolean {
  const probe = fileURLToPath(new URL("./probe-child.ts", import.meta.url));
  const r = spawnSync(process.execPath, ["--import", "tsx", probe], { encoding: "utf8", timeout: 60_000 });
  let p: { ok: boolean; name?: string; reason?: string };
  try {
    p = JSON.parse(r.stdout.trim().split("\n").pop() ?? "");
  } catch {
    p = { ok: false, reason: `the probe process failed (status ${r.status}): ${r.stderr.trim().split("\n").pop()}` };
  }
  if (p.ok) {
    t.diagnostic(`WebGPU adapter: ${p.name}`);
    return true;
  }
  if (lavapipeInstalled()) throw new Error(`scripts/install-lavapipe.sh ran here but there is no WebGPU adapter: ${p.reason}`);
  const msg = `NO WEBGPU ADAPTER — WebGPU test not run: ${p.reason}`;
  t.diagnostic(msg);
  console.log(`# ${msg}`);
  t.skip(msg);
  return false;
}

/** max |a − b| / max(max |b|, tiny): the relative error of a result against the reference. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / Math.max(m, 1e-30);
}
