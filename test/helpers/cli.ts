/** @file Running the CLI as a user does, from the tests: asynchronously, and killed once a prune has checkpointed layers. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { CLI } from "./shared.js";

/** `wasprune ARGS` in a child process (killed after two minutes). */
export function runCli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => p.kill("SIGKILL"), 120_000);
    p.on("error", reject);
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

/** Its stdout, after asserting it exited 0. */
export async function okCli(args: string[]): Promise<string> {
  const r = await runCli(args);
  assert.equal(r.code, 0, `wasprune ${args.join(" ")}\n${r.err}`);
  return r.out;
}

/** Start `wasprune ARGS` (a prune into `out`) and SIGKILL it once `layers` layers are checkpointed; resolves when it is dead. */
export async function pruneKilledAfter(args: string[], out: string, layers = 2, pollMs = 20): Promise<void> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: "ignore" });
  const ck = path.join(out, ".wasprune-checkpoint");
  await new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      const n = fs.existsSync(ck) ? fs.readdirSync(ck).filter((f) => /^layer-\d+\.json$/.test(f)).length : 0;
      if (n >= layers) {
        clearInterval(t);
        child.kill("SIGKILL");
        resolve();
      }
    }, pollMs);
    child.on("exit", () => {
      clearInterval(t);
      reject(new Error("the prune finished before it could be killed"));
    });
  });
  await new Promise((r) => child.on("exit", r));
}
