/**
 * Perplexity protocols (src/eval/protocol.ts): window boundaries and stride accounting checked by hand, the
 * per-sequence "count from" of perplexity against full-sequence NLLs, and `eval --protocol windows` as a user
 * types it on WikiText-2 and TinyStories.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { UsageError } from "../../src/errors.ts";
import { evalSequences, protocolFromOptions, windowSpans } from "../../src/eval/protocol.ts";
import { perplexity } from "../../src/eval/perplexity.ts";
import { paragraphSequences } from "../../src/eval/text.ts";
import { loadModel } from "../../src/model/load.ts";
import { CLI, SHARED, STORIES_BIN, TINY_VALID } from "../helpers/shared.ts";
import { openExecutor } from "../../src/workers/index.ts";

const WIKI = path.join(SHARED, "data/wikitext-2-raw-test/wikitext-2-raw-test.txt");
const counted = (spans: { start: number; end: number; countFrom: number }[]) => spans.reduce((a, s) => a + s.end - s.start - s.countFrom, 0);

test("windows: floor(n/ctx) non-overlapping windows, tail dropped, ctx-1 predictions each", () => {
  assert.deepEqual(windowSpans(10, 4), [{ start: 0, end: 4, countFrom: 1 }, { start: 4, end: 8, countFrom: 1 }]);
  assert.equal(counted(windowSpans(10, 4)), 6);
  assert.deepEqual(windowSpans(8, 4).map((s) => s.end), [4, 8]); // exact fit: no tail
  assert.deepEqual(windowSpans(3, 4), []);
  assert.equal(windowSpans(1000, 10, undefined, 3).length, 3);
});

test("stride (Hugging Face): windows at 0, S, 2S…, only tokens past the previous end count, the tail is kept", () => {
  assert.deepEqual(windowSpans(10, 4, 2), [
    { start: 0, end: 4, countFrom: 1 }, // tokens 1..3
    { start: 2, end: 6, countFrom: 2 }, // tokens 4, 5
    { start: 4, end: 8, countFrom: 2 }, // 6, 7
    { start: 6, end: 10, countFrom: 2 }, // 8, 9; reaches n: last window
  ]);
  assert.deepEqual(windowSpans(10, 4, 3), [
    { start: 0, end: 4, countFrom: 1 }, { start: 3, end: 7, countFrom: 1 }, { start: 6, end: 10, countFrom: 1 },
  ]);
  // stride = ctx: the windows protocol with the short tail kept (its first token is context only)
  assert.deepEqual(windowSpans(10, 4, 4), [
    { start: 0, end: 4, countFrom: 1 }, { start: 4, end: 8, countFrom: 1 }, { start: 8, end: 10, countFrom: 1 },
  ]);
  // every token but the first is predicted exactly once when stride < ctx, whatever n, ctx, stride
  for (let n = 1; n <= 40; n++)
    for (let ctx = 2; ctx <= 9; ctx++)
      for (let stride = 1; stride < ctx; stride++) {
        const hits = new Array<number>(n).fill(0);
        for (const s of windowSpans(n, ctx, stride)) {
          assert.ok(s.end - s.start <= ctx && s.countFrom >= 1);
          for (let t = s.start + s.countFrom; t < s.end; t++) hits[t]!++;
        }
        assert.deepEqual(hits, [0, ...new Array<number>(n - 1).fill(1)], `n ${n} ctx ${ctx} stride ${stride}`);
      }
});

test("protocol options: conflicting flags are refused with the command's flag names", () => {
  const bad = (o: Parameters<typeof protocolFromOptions>[0], prefix: string, re: RegExp) =>
    assert.throws(() => protocolFromOptions(o, prefix), (e: unknown) => e instanceof UsageError && re.test(e.message));
  bad({ protocol: "paragraphs", stride: 4, ctx: 8 }, "", /^--stride applies to --protocol windows/);
  bad({ protocol: "windows", paragraphs: 4, ctx: 8 }, "eval-", /^--eval-paragraphs applies to --eval-protocol paragraphs; .*--eval-max-windows/);
  bad({ protocol: "windows", stride: 9, ctx: 8 }, "", /^--stride 9 is larger than --ctx 8/);
  bad({ protocol: "windows", maxWindows: 0, ctx: 8 }, "", /^--max-windows must be a positive integer/);
  bad({ protocol: "chunks", ctx: 8 }, "", /^--protocol chunks: expected one of paragraphs, windows/);
  assert.deepEqual(protocolFromOptions({ protocol: "windows", stride: 4, ctx: 8 }), { protocol: "windows", ctx: 8, stride: 4, maxWindows: undefined });
});

test("evalSequences: windows cut one tokenization of the whole text (one BOS, at the start); paragraphs unchanged", async () => {
  const model = await loadModel(STORIES_BIN);
  const tok = model.tokenizer!;
  const text = fs.readFileSync(TINY_VALID, "utf8").slice(0, 20_000);
  const all = tok.encode(text, { bos: true });
  const w = evalSequences(tok, text, { protocol: "windows", ctx: 100 }, 512);
  assert.equal(w.textTokens, all.length);
  assert.equal(w.sequences.length, Math.floor(all.length / 100));
  assert.deepEqual(w.sequences.flat(), all.slice(0, 100 * w.sequences.length));
  assert.equal(w.sequences.filter((s) => s.includes(tok.bosId)).length, 1);
  assert.equal(w.sequences[0]![0], tok.bosId);
  // CRLF line ends read as LF
  assert.deepEqual(evalSequences(tok, text.replace(/\n/g, "\r\n"), { protocol: "windows", ctx: 100 }, 512).sequences, w.sequences);
  // ctx is capped at the model's context
  assert.equal(evalSequences(tok, text, { protocol: "windows", ctx: 4096 }, 512).protocol.ctx, 512);
  const p = evalSequences(tok, text, { protocol: "paragraphs", ctx: 512, paragraphs: 10 }, 512);
  assert.deepEqual(p.sequences, paragraphSequences(tok, text, 10, 512));
  assert.deepEqual(p.countFrom, new Array(10).fill(1));
  assert.throws(() => evalSequences(tok, "Once upon a time", { protocol: "windows", ctx: 64 }, 512), /has 5 tokens, fewer than one window of --ctx 64/);
});

test("perplexity counts only predictions from countFrom: = the full-sequence NLL minus the context's", async () => {
  const model = await loadModel(STORIES_BIN);
  const tok = model.tokenizer!;
  const seq = tok.encode(fs.readFileSync(TINY_VALID, "utf8").slice(0, 1500), { bos: true }).slice(0, 300);
  const exec = openExecutor(model.wasm, 1);
  const full = await perplexity(model, [seq], exec);
  const tail = await perplexity(model, [seq], exec, undefined, [120]);
  const head = await perplexity(model, [seq.slice(0, 120)], exec);
  assert.equal(full.tokens, 299);
  assert.equal(tail.tokens, 300 - 120);
  const total = (r: typeof full) => r.meanNll * r.tokens;
  assert.ok(Math.abs(total(full) - total(head) - total(tail)) < 1e-6 * total(full), `${total(full)} vs ${total(head)} + ${total(tail)}`);
  // default countFrom 1 is the paragraph protocol, bit for bit
  assert.equal((await perplexity(model, [seq], exec, undefined, [1])).meanNll, full.meanNll);
  assert.equal((await perplexity(model, [seq.slice(0, 5)], exec, undefined, [5])).tokens, 0);
});

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test("eval --protocol windows on WikiText-2 test: window counts, stride accounting, the same on 2 threads", async () => {
  const base = ["eval", STORIES_BIN, "--text", WIKI, "--protocol", "windows", "--ctx", "256", "--max-windows", "6", "--json"];
  const a = cli([...base, "--threads", "1"]);
  const tok = (await loadModel(STORIES_BIN)).tokenizer!;
  assert.equal(a.textTokens, tok.encode(fs.readFileSync(WIKI, "utf8").replace(/\r\n/g, "\n"), { bos: true }).length);
  assert.deepEqual([a.protocol, a.ctx, a.windows, a.sequences, a.tokens, a.stride], ["windows", 256, 6, 6, 6 * 255, null]);
  assert.ok(a.perplexity > 20, `out of domain: ${a.perplexity}`);
  const b = cli([...base, "--threads", "2"]);
  assert.equal(b.meanNll, a.meanNll);
  const s = cli([...base, "--stride", "64", "--threads", "1"]);
  assert.deepEqual([s.windows, s.tokens, s.stride], [6, 255 + 5 * 64, 64]);
  // in-domain text: far lower
  const t = cli(["eval", STORIES_BIN, "--text", TINY_VALID, "--protocol", "windows", "--ctx", "256", "--max-windows", "6", "--json", "--threads", "1"]);
  assert.ok(t.perplexity < 10 && t.perplexity * 3 < a.perplexity, `${t.perplexity} vs ${a.perplexity}`);
});

test("prune --eval-protocol windows and bench methods take the protocol", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wasprune-protocol-"));
  try {
    const p = cli(["prune", STORIES_BIN, "--method", "magnitude", "--sparsity", "0.5", "--nsamples", "4", "--calib", TINY_VALID,
      "--eval", WIKI, "--eval-protocol", "windows", "--ctx", "128", "--eval-max-windows", "4", "--out", path.join(dir, "m"), "--json", "--threads", "1"]);
    assert.deepEqual([p.perplexity.protocol, p.perplexity.windows, p.perplexity.dense.tokens, p.perplexity.pruned.tokens], ["windows", 4, 4 * 127, 4 * 127]);
    assert.notEqual(p.perplexity.pruned.perplexity, p.perplexity.dense.perplexity);
    const b = cli(["bench", "methods", STORIES_BIN, "--calib", TINY_VALID, "--nsamples", "4", "--eval", TINY_VALID, "--eval-protocol", "windows",
      "--ctx", "128", "--eval-max-windows", "4", "--eval-stride", "64", "--methods", "magnitude", "--patterns", "0.5", "--schedules", "sequential",
      "--correction", "off", "--json", "--threads", "1"]);
    assert.deepEqual([b.protocol.protocol, b.protocol.stride, b.dense.tokens, b.rows.length], ["windows", 64, 127 + 3 * 64, 1]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const r = spawnSync(process.execPath, [CLI, "prune", STORIES_BIN, "--out", "/nonexistent/x", "--eval", TINY_VALID, "--eval-protocol", "windows", "--eval-paragraphs", "3"], { encoding: "utf8" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /^error: --eval-paragraphs applies to --eval-protocol paragraphs/);
});
