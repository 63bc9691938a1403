/**
 * `wasprune prune` loads the queue libraries (bullmq, ioredis) only for a distributed prune: the CLI runs with a
 * module-resolve hook that refuses both, so a local prune on stories260K must finish, while the same command
 * with --queue must stop at the hook (the control: the hook does catch the queue's import). No Redis needed.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { CLI, STORIES_HF } from "../helpers/shared.ts";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-lazy-queue-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const HOOK = path.join(tmp, "refuse-queue.mjs");
fs.writeFileSync(HOOK, `
import { register } from "node:module";
register("data:text/javascript," + encodeURIComponent(\`
export async function resolve(specifier, context, next) {
  if (/^(bullmq|ioredis)(\\\\/|$)/.test(specifier)) throw new Error("refused: " + specifier + " imported by " + context.parentURL);
  return next(specifier, context);
}\`));
`);

function prune(out: string, ...extra: string[]) {
  const args = ["--import", pathToFileURL(HOOK).href, CLI, "prune", STORIES_HF, "--method", "magnitude", "--sparsity", "0.5", "--out", out, ...extra];
  return spawnSync(process.execPath, args, { encoding: "utf8", timeout: 60_000 });
}

test("prune without --queue never imports bullmq or ioredis; with --queue it does", () => {
  const out = path.join(tmp, "local");
  const r = prune(out);
  assert.equal(r.status, 0, `local prune under the hook:\n${r.stderr}`);
  assert.ok(fs.existsSync(path.join(out, "model.safetensors")), "the local prune wrote its model");
  const work = path.join(tmp, "work");
  fs.mkdirSync(work);
  const q = prune(path.join(tmp, "queued"), "--queue", "redis://127.0.0.1:1", "--work-dir", work);
  assert.notEqual(q.status, 0, "the distributed prune ran past the hook");
  assert.match(q.stderr, /refused: bullmq imported by file:.*src\/distributed\//);
});
