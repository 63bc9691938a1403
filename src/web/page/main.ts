/**
 * @file The page of `wasprune serve`: the served models (/models.json), one engine worker per pane (./engine.ts),
 * model info, a prompt, generation streamed into `#output` (and `#output2` for the model compared with), tok/s in
 * `#tps`, `#status` (loading → ready → generating → done, or error). A deep link
 * `/?prompt=TEXT&steps=N&temperature=T&seed=S` starts generation once the models are loaded; `model`, `model2`
 * (ids or labels of served models, `model2=none` for one pane), `threads`, `topp`, `split` (GEMV split threshold
 * in weights), `device` (auto: WebGPU when navigator.gpu gives an adapter, else WASM; wasm; webgpu), `kernels`
 * (auto: the relaxed-SIMD build where the browser has relaxed SIMD, else the baseline; baseline; relaxed) and
 * `maxbytes` may be given too. Every error is one readable line in `#error`.
 */
import type { FromEngine, ModelEntry, ModelSummary, PageKernels, ToEngine } from "./protocol.js";

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el as T;
};

/** An error already shown on the page (not shown again where it is caught). */
class ShownError extends Error {}

function showError(message: string): ShownError {
  const el = $("error");
  el.hidden = false;
  el.textContent = el.textContent ? `${el.textContent}\n${message}` : message;
  return new ShownError(message);
}

const fmtInt = (n: number) => n.toLocaleString("en-US");
const fmtBytes = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} kB`);

interface Pane {
  engine?: Worker;
  entry?: ModelEntry;
  ids: { name: string; info: string; output: string; status: string; tps: string; run: string; pane: string };
  ready?: Promise<void>;
}

const panes: [Pane, Pane] = [
  { ids: { name: "nameA", info: "infoA", output: "output", status: "status", tps: "tps", run: "runA", pane: "paneA" } },
  { ids: { name: "nameB", info: "infoB", output: "output2", status: "status2", tps: "tps2", run: "runB", pane: "paneB" } },
];

function setStatus(p: Pane, s: string): void {
  $(p.ids.status).textContent = s;
}

function renderInfo(p: Pane, s: ModelSummary): void {
  $(p.ids.name).textContent = s.label;
  const rows: [string, string][] = [
    ["architecture", `${s.architecture}: ${s.dims}`],
    ["parameters", fmtInt(s.params)],
    ["linear zeros", `${(100 * s.linearSparsity).toFixed(2)} %`],
    ["formats", Object.entries(s.formats).map(([f, n]) => `${f} × ${n}`).join(", ")],
    ["held as", Object.entries(s.layouts).map(([f, n]) => `${f} × ${n}`).join(", ")],
    ["bytes", `${fmtBytes(s.bytes)} fetched (${s.dtype}), ${fmtBytes(s.memoryBytes)} in WASM memory, loaded in ${s.loadSeconds.toFixed(2)} s`],
    ["backend", s.backend],
  ];
  const dl = $(p.ids.info);
  dl.dataset.kernels = s.kernels;
  dl.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    return [dt, dd];
  }));
}

/** Start pane `p`'s engine on `entry`; resolves when the model is loaded (rejects with the engine's message). */
function load(p: Pane, entry: ModelEntry, device: "auto" | "wasm" | "webgpu", kernels: PageKernels, maxBytes?: number): Promise<void> {
  p.engine?.terminate();
  p.entry = entry;
  $(p.ids.pane).hidden = false;
  $(p.ids.name).textContent = entry.label;
  $(p.ids.output).textContent = "";
  setStatus(p, "loading");
  const engine = new Worker(new URL("./engine.js", import.meta.url), { type: "module" });
  p.engine = engine;
  p.ready = new Promise<void>((resolve, reject) => {
    engine.onerror = (e) => {
      const msg = `${entry.label}: the engine worker failed${e.message ? `: ${e.message}` : ""}`;
      setStatus(p, "error");
      reject(showError(msg));
    };
    engine.onmessage = (e: MessageEvent<FromEngine>) => {
      const m = e.data;
      if (m.type === "progress") $(p.ids.run).textContent = `${m.file}: ${fmtBytes(m.loaded)}${m.total ? ` of ${fmtBytes(m.total)}` : ""}`;
      else if (m.type === "loaded") {
        renderInfo(p, m.summary);
        $(p.ids.run).textContent = "";
        setStatus(p, "ready");
        resolve();
      } else if (m.type === "error") {
        setStatus(p, "error");
        reject(showError(`${entry.label}: ${m.message}`));
      }
    };
  });
  engine.postMessage({ type: "load", entry, maxBytes, device, kernels } satisfies ToEngine);
  return p.ready;
}

/** Generate on pane `p`; resolves when done. */
function run(p: Pane, req: Extract<ToEngine, { type: "generate" }>): Promise<void> {
  const engine = p.engine!;
  const out = $(p.ids.output);
  out.textContent = "";
  $(p.ids.tps).textContent = "–";
  setStatus(p, "generating");
  return new Promise<void>((resolve, reject) => {
    engine.onmessage = (e: MessageEvent<FromEngine>) => {
      const m = e.data;
      if (m.type === "text") {
        out.textContent += m.text;
        if (m.seconds > 0) $(p.ids.tps).textContent = (m.tokens / m.seconds).toFixed(1);
      } else if (m.type === "done") {
        const r = m.result;
        $(p.ids.tps).textContent = r.tokensPerSecond.toFixed(1);
        $(p.ids.run).textContent = `${r.generatedTokens} tokens in ${r.seconds.toFixed(3)} s on ${r.device === "wasm" ? "WASM" : "WebGPU"}; ${r.threads} thread${r.threads > 1 ? "s" : ""}` +
          (r.splitGemvs ? `, ${fmtInt(r.splitGemvs)} GEMVs split with a worker` : "") + (r.singleThreadReason ? ` (one thread: ${r.singleThreadReason})` : "");
        $(p.ids.run).dataset.threads = String(r.threads);
        $(p.ids.run).dataset.splits = String(r.splitGemvs);
        $(p.ids.run).dataset.device = r.device;
        setStatus(p, "done");
        resolve();
      } else if (m.type === "error") {
        setStatus(p, "error");
        reject(showError(`${p.entry?.label ?? "model"}: ${m.message}`));
      }
    };
    engine.postMessage(req);
  });
}

function num(v: string | null, fallback: number, what: string): number {
  if (v === null || v === "") return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${what}=${v} is not a number`);
  return n;
}

async function main(): Promise<void> {
  const q = new URLSearchParams(location.search);
  const isolated = globalThis.crossOriginIsolated === true;
  const cores = navigator.hardwareConcurrency || 1;
  const maxThreads = isolated ? Math.min(2, cores) : 1;
  ($("threads") as HTMLInputElement).max = String(maxThreads);
  const threadsInput = $<HTMLInputElement>("threads");
  // as asked: the library runs on one thread where it must, and says why
  threadsInput.value = String(num(q.get("threads"), maxThreads, "threads"));
  $("env").textContent = isolated ? `Cross-origin isolated: ${cores} cores, up to ${maxThreads} threads.` : "Not cross-origin isolated: one thread.";
  for (const [id, key] of [["prompt", "prompt"], ["steps", "steps"], ["temperature", "temperature"], ["seed", "seed"], ["topP", "topp"]] as const) {
    const v = q.get(key);
    if (v !== null) ($(id) as HTMLInputElement).value = v;
  }
  const res = await fetch("models.json");
  if (!res.ok) throw new Error(`models.json: HTTP ${res.status} (is this page served by wasprune serve?)`);
  const models = (await res.json()) as ModelEntry[];
  if (!models.length) throw new Error("the server serves no model");
  const find = (v: string | null, dflt: ModelEntry | undefined): ModelEntry | undefined => {
    if (v === null) return dflt;
    if (v === "" || v === "none") return undefined;
    const m = models.find((x) => x.id === v || x.label === v);
    if (!m) throw new Error(`model ${JSON.stringify(v)} is not served here (served: ${models.map((x) => x.label).join(", ")})`);
    return m;
  };
  const selA = $<HTMLSelectElement>("modelA");
  const selB = $<HTMLSelectElement>("modelB");
  for (const m of models) {
    selA.add(new Option(m.label, m.id));
    selB.add(new Option(m.label, m.id));
  }
  const maxBytes = q.has("maxbytes") ? num(q.get("maxbytes"), 0, "maxbytes") : undefined;
  const device = q.get("device") ?? "auto";
  if (device !== "auto" && device !== "wasm" && device !== "webgpu") throw new Error(`device=${device}: expected auto, wasm or webgpu`);
  const kernels = q.get("kernels") ?? "auto";
  if (kernels !== "auto" && kernels !== "baseline" && kernels !== "relaxed") throw new Error(`kernels=${kernels}: expected auto, baseline or relaxed`);
  const a = find(q.get("model"), models[0]);
  const b = find(q.get("model2"), models[1]);
  selA.value = a!.id;
  selB.value = b?.id ?? "";
  const loadAll = async () => {
    const jobs = [load(panes[0], models.find((m) => m.id === selA.value)!, device, kernels, maxBytes)];
    const bEntry = models.find((m) => m.id === selB.value);
    if (bEntry) jobs.push(load(panes[1], bEntry, device, kernels, maxBytes));
    else {
      panes[1].engine?.terminate();
      panes[1].engine = undefined;
      $(panes[1].ids.pane).hidden = true;
    }
    await Promise.all(jobs);
  };
  const go = $<HTMLButtonElement>("go");
  const generateAll = async () => {
    const field = (id: string) => ($(id) as HTMLInputElement).value;
    const req: Extract<ToEngine, { type: "generate" }> = {
      type: "generate",
      prompt: field("prompt"),
      steps: num(field("steps"), 256, "steps"),
      temperature: num(field("temperature"), 1, "temperature"),
      topP: num(field("topP"), 0.9, "top-p"),
      seed: num(field("seed"), 42, "seed"),
      threads: num(field("threads"), 1, "threads"),
      ...(q.has("split") ? { splitWeights: num(q.get("split"), 0, "split") } : {}),
    };
    go.disabled = true;
    try {
      // one after the other: both panes share the machine's cores, so their tok/s stay comparable
      for (const p of panes) if (p.engine) await run(p, req);
    } finally {
      go.disabled = false;
    }
  };
  go.onclick = () => void generateAll().catch(() => {});
  selA.onchange = selB.onchange = () => void loadAll().catch(() => {});
  await loadAll();
  go.disabled = false;
  if (q.has("prompt")) await generateAll();
}

main().catch((e: unknown) => {
  setStatus(panes[0], "error");
  if (!(e instanceof ShownError)) showError(e instanceof Error ? e.message : String(e));
});
