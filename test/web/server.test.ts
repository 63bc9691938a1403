/**
 * `wasprune serve`'s server (src/serve/server.ts) over real HTTP on loopback: the page, the bundle and the
 * model's files with the isolation headers; the catalog; paths outside a model's directory refused (`..`,
 * encoded `%2e%2e` and slashes, a symlink out, a file of a .bin model's folder that is not the model's); the CLI
 * starts it on loopback and prints its URL.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { servedModels, startServer, safeSegments } from "../../src/serve/server.ts";
import { CLI, STORIES_BIN, STORIES_HF } from "../helpers/shared.ts";

/** A raw GET (the path as given, not normalized by a URL parser). */
function get(port: number, rawPath: string, method = "GET"): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path: rawPath, method }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (d: Buffer) => parts.push(d));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on("error", reject);
    req.end();
  });
}

test("serve: page, bundle, catalog and model files with COOP/COEP; traversal and symlinks out refused", async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-serve-"));
  const hf = path.join(tmp, "hf");
  fs.mkdirSync(hf);
  for (const f of fs.readdirSync(STORIES_HF)) fs.copyFileSync(path.join(STORIES_HF, f), path.join(hf, f));
  fs.writeFileSync(path.join(tmp, "secret.txt"), "not for the page");
  fs.symlinkSync(path.join(tmp, "secret.txt"), path.join(hf, "link-out.txt"));
  fs.symlinkSync(path.join(hf, "config.json"), path.join(hf, "link-in.json"));
  const models = servedModels([STORIES_BIN, hf]);
  const { server, url } = await startServer(models, { port: 0 });
  t.after(() => {
    server.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  assert.equal((server.address() as { address: string }).address, "127.0.0.1", "loopback by default");
  const port = (server.address() as { port: number }).port;

  const page = await get(port, "/");
  assert.equal(page.status, 200);
  assert.match(String(page.body), /<pre id="output">/);
  for (const [k, v] of [["cross-origin-opener-policy", "same-origin"], ["cross-origin-embedder-policy", "require-corp"], ["cross-origin-resource-policy", "same-origin"]]) {
    assert.equal(page.headers[k], v, k);
  }
  const wasm = await get(port, "/kernels.wasm");
  assert.equal(wasm.status, 200);
  assert.equal(wasm.headers["content-type"], "application/wasm");
  assert.deepEqual([...wasm.body.subarray(0, 4)], [0, 0x61, 0x73, 0x6d]);
  assert.equal((await get(port, "/wasprune.js")).headers["content-type"], "text/javascript; charset=utf-8");

  const catalog = JSON.parse(String((await get(port, "/models.json")).body)) as { id: string; label: string; url: string; tokenizer?: string }[];
  assert.deepEqual(catalog, [
    { id: "0", label: "stories260K.bin", url: "/models/0/stories260K.bin", tokenizer: "tok512.bin" },
    { id: "1", label: "hf", url: "/models/1/" },
  ]);
  const bin = await get(port, "/models/0/stories260K.bin");
  assert.equal(bin.status, 200);
  assert.equal(bin.body.length, fs.statSync(STORIES_BIN).size);
  assert.equal((await get(port, "/models/0/tok512.bin")).status, 200);
  assert.equal((await get(port, "/models/0/stories260K.bin", "HEAD")).headers["content-length"], String(fs.statSync(STORIES_BIN).size));
  assert.equal(String((await get(port, "/models/1/config.json")).body), fs.readFileSync(path.join(hf, "config.json"), "utf8"));
  assert.equal((await get(port, "/models/1/link-in.json")).status, 200, "a symlink inside the directory is served");
  assert.equal((await get(port, "/models/1/nothing.json")).status, 404);
  assert.equal((await get(port, "/models/7/config.json")).status, 404);

  const refused: [string, number, RegExp][] = [
    ["/models/1/../../secret.txt", 403, /"\.\." is not allowed/],
    ["/models/1/%2e%2e/secret.txt", 403, /"%2e%2e" is not allowed/],
    ["/models/1/%2E%2E%2Fsecret.txt", 403, /holds a separator/],
    ["/models/1/..%2f..%2fsecret.txt", 403, /holds a separator/],
    ["/models/1//etc/passwd", 403, /is not allowed/],
    ["/models/1/%2Fetc%2Fpasswd", 403, /holds a separator/],
    ["/models/1/link-out.txt", 403, /outside the served directory/],
    ["/models/0/README.md", 403, /not a file of this model/],
    ["/models/1/%ZZ", 403, /bad percent-encoding/],
    ["/../etc/passwd", 403, /is not allowed/],
  ];
  for (const [p, status, why] of refused) {
    const r = await get(port, p);
    assert.equal(r.status, status, p);
    assert.match(String(r.body), why, p);
    assert.doesNotMatch(String(r.body), /not for the page|root:/, p);
  }
  assert.equal((await get(port, "/", "POST")).status, 405);
});

test("safeSegments decodes once and refuses traversal, separators and NUL", () => {
  assert.deepEqual(safeSegments("/models/0/a%20b.bin"), ["models", "0", "a b.bin"]);
  assert.deepEqual(safeSegments("/models/1/"), ["models", "1"]);
  assert.match(String(safeSegments("/a/%00b")), /separator or NUL/);
  assert.match(String(safeSegments("/a/./b")), /not allowed/);
  assert.deepEqual(safeSegments("/a/%252e%252e"), ["a", "%2e%2e"]);
});

test("CLI: wasprune serve listens on loopback, prints its URL and serves; bad models are one error line", async () => {
  const child = spawn(process.execPath, [CLI, "serve", STORIES_BIN, "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += String(d);
        const m = /wasprune serve: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.once("exit", (code) => reject(new Error(`serve exited (${code}) before listening: ${out}`)));
    });
    const port = Number(new URL(url).port);
    assert.equal((await get(port, "/models/0/stories260K.bin")).status, 200);
    assert.equal((await get(port, "/models/0/%2e%2e/%2e%2e/README.md")).status, 403);
  } finally {
    child.kill("SIGTERM");
  }
  const bad = spawn(process.execPath, [CLI, "serve", "/no/such/model.bin", "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  bad.stderr.on("data", (d) => (err += String(d)));
  const code = await new Promise<number | null>((r) => bad.once("exit", r));
  assert.equal(code, 1);
  assert.equal(err.trim(), "error: model /no/such/model.bin does not exist");
});
