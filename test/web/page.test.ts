/**
 * The page of `wasprune serve` in real Chromium (Debian's, scripts/install-chromium.sh; playwright-core):
 * stories260K dense, "Once upon a time", temperature 0, 200 steps gives exactly llama2.c's greedy text, on one
 * thread (on the relaxed-SIMD build the page picks, and on the baseline build) and on two (the GEMVs split with a Web Worker, cross-origin isolated); a page that is not isolated runs
 * on one thread and says why; the 2:4 and the CSR compressed models (pruned and compressed here by the library)
 * give exactly the Node library's text (the 2:4 one side by side with the dense one); WebGPU (Chromium's software adapter) gives the same
 * tokens when asked for, and is declined by name when not; errors (a corrupt file, a model too big for the
 * page, a model not served) are one readable message on the page.
 * WASPRUNE_SCREENSHOT=FILE saves the side-by-side page (the README's picture).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { compress, generate, loadModel, prune } from "../../src/api/index.ts";
import { servedModels, startServer } from "../../src/serve/server.ts";
import { chromiumMissing, launchChromium, openPage as open, type LaunchedBrowser } from "../helpers/browser.ts";
import { okCli } from "../helpers/cli.ts";
import { GREEDY_200, STORIES_BIN, STORIES_HF, STORIES_TOK, TINY_TRAIN } from "../helpers/shared.ts";

const missing = chromiumMissing();
const PROMPT = "Once upon a time";

/** The Node library's greedy text of the model at `dir` (its linear weights held as `weights` says). */
async function nodeText(dir: string, steps: number, weights?: "stored"): Promise<string> {
  const model = await loadModel(dir, weights ? { weights } : {});
  let text = "";
  for await (const tok of generate(model, { prompt: PROMPT, steps, temperature: 0 })) text += tok.text;
  return text;
}

/** A pruned copy of stories260K stored compressed (2:4 → sparse-24-bitmask, 0.5 → sparse-bitmask / CSR). */
async function compressedModel(tmp: string, sparsity: string): Promise<string> {
  const calib = fs.readFileSync(TINY_TRAIN, "utf8");
  const name = sparsity.replace(":", "of");
  const pruned = path.join(tmp, `pruned-${name}`);
  await prune(await loadModel(STORIES_HF), calib, { method: "wanda", sparsity, nsamples: 16, seqlen: 128, out: pruned });
  const out = path.join(tmp, `compressed-${name}`);
  await compress(await loadModel(pruned), out);
  return out;
}

describe("the page in Chromium", { skip: missing, concurrency: false, timeout: 600_000 }, () => {
  let tmp = "";
  let base = "";
  let close = async () => {};
  let browser: LaunchedBrowser;
  const node: Record<string, string> = {};

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-page-"));
    const c24 = await compressedModel(tmp, "2:4");
    const csr = await compressedModel(tmp, "0.5");
    node.c24 = await nodeText(c24, 200);
    node.csr = await nodeText(csr, 200);
    // upstream's W4A8 as wasprune writes it (int-quantized, dynamic int8 activations declared)
    const w4a8 = path.join(tmp, "w4a8");
    await okCli(["quantize", STORIES_HF, "--scheme", "w4g64", "--method", "rtn", "--activations", "int8", "--out", w4a8]);
    node.w4a8 = await nodeText(w4a8, 100, "stored");
    const corrupt = path.join(tmp, "corrupt");
    fs.mkdirSync(corrupt);
    fs.writeFileSync(path.join(corrupt, "stories260K.bin"), fs.readFileSync(STORIES_BIN).subarray(0, fs.statSync(STORIES_BIN).size - 100));
    fs.copyFileSync(STORIES_TOK, path.join(corrupt, "tok512.bin"));
    const { server, url } = await startServer(servedModels([STORIES_BIN, c24, csr, path.join(corrupt, "stories260K.bin"), w4a8]), { port: 0 });
    base = url;
    browser = await launchChromium();
    close = async () => {
      await browser.close();
      server.close();
    };
  });
  after(async () => {
    await close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const greedy = { prompt: PROMPT, steps: 200, temperature: 0, seed: 42 };

  test("stories260K dense, one thread: exactly llama2.c's greedy text, tok/s, the model shown", async () => {
    const r = await open(browser, base, { ...greedy, model: 0, model2: "none", threads: 1 });
    assert.equal(r.error, "");
    assert.equal(r.status, "done");
    assert.equal(r.output, GREEDY_200);
    assert.ok(r.tps > 0, `tok/s ${r.tps}`);
    assert.equal(r.run.threads, "1");
    assert.equal(r.run.device, "wasm");
    assert.match(r.info, /llama: dim 64, hidden 172, 5 layers/);
    assert.match(r.info, /parameters260,032/);
    assert.match(r.info, /formatsdense × 35/);
    // Chromium has relaxed SIMD: the page loads the relaxed build (FMA, the int8 dot), as Node 24 does
    assert.match(r.info, /backendWASM relaxed SIMD \(no WebGPU: [^)]+\); cross-origin isolated/);
    const base1 = await open(browser, base, { ...greedy, model: 0, model2: "none", threads: 1, kernels: "baseline" });
    assert.equal(base1.error, "");
    assert.equal(base1.output, GREEDY_200);
    assert.match(base1.info, /backendWASM SIMD \(no WebGPU: [^)]+\); cross-origin isolated/);
  });

  test("two threads (GEMVs split with a Web Worker) give the same text; not isolated: one thread, said why", async () => {
    const r = await open(browser, base, { ...greedy, model: 0, model2: "none", threads: 2, split: 0 });
    assert.equal(r.error, "");
    assert.equal(r.output, GREEDY_200);
    assert.equal(r.run.threads, "2");
    assert.ok(Number(r.run.splits) > 1000, `GEMVs split: ${r.run.splits}`);
    const plain = await open(browser, base, { ...greedy, model: 0, model2: "none", threads: 2, split: 0 }, { isolated: false });
    assert.equal(plain.error, "");
    assert.equal(plain.output, GREEDY_200);
    assert.equal(plain.run.threads, "1");
    assert.match(plain.run.text, /one thread: the page is not cross-origin isolated/);
    assert.match(plain.info, /not cross-origin isolated: one thread/);
  });

  test("dense and 2:4 compressed side by side, and CSR compressed: exactly the Node library's text", async () => {
    const r = await open(browser, base, { ...greedy, model: 0, model2: 1, threads: 1 }, { two: true, screenshot: process.env.WASPRUNE_SCREENSHOT });
    assert.equal(r.error, "");
    assert.equal(r.status, "done");
    assert.equal(r.status2, "done");
    assert.equal(r.output, GREEDY_200);
    assert.equal(r.output2, node.c24);
    assert.notEqual(node.c24, GREEDY_200);
    assert.match(r.info2, /formats[^]*2:4 × 35/);
    assert.match(r.info2, /linear zeros50\.00 %/);
    const csr = await open(browser, base, { ...greedy, model: 2, model2: "none", threads: 1 });
    assert.equal(csr.error, "");
    assert.equal(csr.output, node.csr);
    assert.match(csr.info, /formats[^]*csr × \d+/);
  });

  test("a W4A8 model (int-quantized, as upstream stores it) runs on the integer kernels with int8 activations: the Node library's text", async () => {
    // the relaxed build's int8 dot (auto) and the baseline's int16 path give the same integer sums
    for (const [device, kernels] of [["wasm", "auto"], ["auto", "auto"], ["wasm", "baseline"]] as const) {
      const r = await open(browser, base, { ...greedy, steps: 100, model: 4, model2: "none", threads: 1, device, kernels });
      const what = `device=${device} kernels=${kernels}`;
      assert.equal(r.error, "", what);
      assert.equal(r.output, node.w4a8, what);
      assert.match(r.info, /formatsint4 g64, int-quantized, int8 activations × 30, int4 channel, int-quantized, int8 activations × 5/);
      assert.match(r.info, /held asint4 g64 a8 × 30, int4 channel a8 × 5/, what);
      assert.match(r.info, kernels === "auto" ? /backendWASM relaxed SIMD/ : /backendWASM SIMD[ ;]/, what);
    }
  });

  test("errors are one readable message on the page: corrupt file, too big for the page, not served, an unknown build", async () => {
    const corrupt = await open(browser, base, { ...greedy, model: 3, model2: "none" });
    assert.equal(corrupt.status, "error");
    assert.match(corrupt.error, /^stories260K\.bin \(4\): stories260K\.bin: file is 1056440 bytes but its header \(dim=64, hidden_dim=172, n_layers=5, n_heads=8, n_kv_heads=4, vocab_size=512, seq_len=512\) implies 1056540 bytes$/);
    const big = await open(browser, base, { ...greedy, model: 0, model2: "none", maxbytes: 100_000 });
    assert.equal(big.status, "error");
    assert.match(big.error, /stories260K\.bin is 1\.1 MB; .* more than the 0\.1 MB this page may hold \(maxBytes\)/);
    const none = await open(browser, base, { ...greedy, model: "nope" });
    assert.equal(none.status, "error");
    const build = await open(browser, base, { ...greedy, model: 0, kernels: "avx2" });
    assert.equal(build.status, "error");
    assert.equal(build.error, "kernels=avx2: expected auto, baseline or relaxed");
    assert.match(none.error, /^model "nope" is not served here \(served: stories260K\.bin \(1\), compressed-2of4, compressed-0\.5, stories260K\.bin \(4\), w4a8\)$/);
  });

  test("WebGPU: the software adapter is declined by name; device=webgpu runs the linear layers there, same tokens", async () => {
    const gpu = await launchChromium(["--enable-unsafe-webgpu"]);
    try {
      const auto = await open(gpu, base, { prompt: PROMPT, steps: 8, temperature: 0, model: 0, model2: "none", threads: 1 });
      assert.equal(auto.run.device, "wasm");
      assert.match(auto.info, /no WebGPU: the adapter \([^)]*\) is a software one/);
      const r = await open(gpu, base, { prompt: PROMPT, steps: 8, temperature: 0, model: 0, model2: "none", threads: 1, device: "webgpu" });
      assert.equal(r.error, "");
      assert.equal(r.status, "done");
      assert.notEqual(r.run.device, "wasm");
      assert.match(r.info, /backendWebGPU: .*36 linear layers/);
      assert.equal(r.output, GREEDY_200.slice(0, r.output.length));
      assert.equal(r.output, "Once upon a time, there was a");
    } finally {
      await gpu.close();
    }
  });
});
