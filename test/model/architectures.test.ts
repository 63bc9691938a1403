/**
 * llama / mistral / qwen2 (q/k/v bias) and untied classifiers through the HF writer and loader: the reloaded
 * model computes the same logits (bit-exact in F32, close in F16/BF16).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomLlama, BUILTIN_CONFIG } from "../../src/model/builtin.ts";
import { loadModel } from "../../src/model/load.ts";
import { saveHF } from "../../src/model/save.ts";
import { createRunState, forward } from "../../src/model/forward.ts";
import type { Model, ModelConfig } from "../../src/model/types.ts";

const tokens = [1, 40, 41, 42, 100, 7, 9, 250, 3, 17];

function logits(m: Model): Float32Array {
  return forward(m, createRunState(m, tokens.length), tokens, 0, true).slice();
}

for (const [arch, extra] of [
  ["llama", { tiedEmbeddings: false }],
  ["mistral", {}],
  ["qwen2", { qkvBias: true, tiedEmbeddings: false }],
] as Array<[ModelConfig["architecture"], Partial<ModelConfig>]>) {
  test(`${arch}: saveHF → loadModel gives the same logits (F32 exact, F16/BF16 close)`, async () => {
    const cfg: ModelConfig = { ...BUILTIN_CONFIG, nLayers: 2, architecture: arch, ...extra };
    const m = randomLlama(cfg, 5);
    const want = logits(m);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `wasprune-${arch}-`));
    for (const dtype of ["F32", "F16", "BF16"] as const) {
      const out = path.join(dir, dtype);
      saveHF(m, out, { dtype });
      const cfgJson = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
      assert.equal(cfgJson.model_type, arch);
      const back = await loadModel(out, { requireTokenizer: false });
      assert.equal(back.config.architecture, arch);
      assert.equal(back.config.qkvBias, !!cfg.qkvBias);
      assert.equal(back.config.tiedEmbeddings, cfg.tiedEmbeddings);
      const got = logits(back);
      const tol = dtype === "F32" ? 0 : dtype === "F16" ? 2e-2 : 1e-1;
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / (1 + Math.abs(want[i])));
      assert.ok(worst <= tol, `${dtype}: max relative logit difference ${worst} > ${tol}`);
    }
  });
}
