/**
 * hf:ORG/NAME models are fetched from a Hub endpoint into the cache and loaded. The network is closed here, so a
 * local HTTP server on loopback serves ../shared/models/stories260K-hf with the Hub's URL layout
 * (/ORG/NAME/resolve/REV/FILE).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import type { AddressInfo } from "node:net";
import { CLI, GREEDY_200, STORIES_HF } from "../helpers/shared.ts";

const requests: string[] = [];
let truncate = false;
const server = http.createServer((req, res) => {
  requests.push(req.url ?? "");
  const m = /^\/test\/stories260K\/resolve\/main\/([\w.-]+)$/.exec(req.url ?? "");
  const file = m && path.join(STORIES_HF, m[1]);
  if (!file || !fs.existsSync(file)) {
    res.writeHead(404).end("not found");
    return;
  }
  const data = fs.readFileSync(file);
  res.writeHead(200, { "content-length": String(data.length) });
  if (truncate && m![1] === "model.safetensors") {
    res.write(data.subarray(0, 1000));
    res.destroy();
    return;
  }
  res.end(data);
});
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
after(() => server.close());
const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

function cli(args: string[], cache: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, WASPRUNE_HF_ENDPOINT: endpoint, WASPRUNE_CACHE: cache } });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => resolve({ code, out, err }));
  });
}

test("generate from hf:test/stories260K: fetched into the cache, same greedy text, not fetched twice", async () => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-hub-"));
  const args = ["generate", "hf:test/stories260K", "--prompt", "Once upon a time", "--temperature", "0", "--steps", "200"];
  const r = await cli(args, cache);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trimEnd(), GREEDY_200);
  const dir = path.join(cache, "test--stories260K", "main");
  for (const f of ["config.json", "model.safetensors", "tokenizer.model"]) assert.ok(fs.existsSync(path.join(dir, f)), f);
  const before = requests.length;
  assert.equal((await cli(args, cache)).code, 0);
  assert.equal(requests.length, before, "a cached model is not fetched again");
});

test("hub errors: unknown repo, interrupted download (nothing left that looks finished), bad reference", async () => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-hub-"));
  const missing = await cli(["inspect", "hf:test/nope"], cache);
  assert.notEqual(missing.code, 0);
  assert.match(missing.err, /^error: hf:test\/nope@main: config\.json not found at http/);
  truncate = true;
  const cut = await cli(["inspect", "hf:test/stories260K"], cache);
  truncate = false;
  assert.notEqual(cut.code, 0);
  assert.equal(cut.err.trim().split("\n").length, 1, cut.err);
  assert.ok(!fs.existsSync(path.join(cache, "test--stories260K", "main", "model.safetensors")));
  const bad = await cli(["inspect", "hf:not a repo"], cache);
  assert.match(bad.err, /expected hf:ORG\/NAME/);
  // after the failure, a new attempt completes
  assert.equal((await cli(["inspect", "hf:test/stories260K"], cache)).code, 0);
});
