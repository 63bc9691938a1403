/**
 * @file Models named `hf:ORG/NAME[@REVISION]` are fetched from a Hugging Face Hub endpoint into a local cache
 * and then loaded like any model directory. Only the files a LLaMA-family checkpoint needs are fetched:
 * config.json, the safetensors weights (single file, or the index and its shards) and the tokenizer files
 * that exist. Each file is streamed to `<file>.part` and renamed when complete and of the announced size, so
 * an interrupted download never leaves a file that looks finished; files already in the cache are not fetched
 * again. Endpoint: $WASPRUNE_HF_ENDPOINT or $HF_ENDPOINT (default https://huggingface.co); token: $HF_TOKEN.
 * Cache: $WASPRUNE_CACHE or ~/.cache/wasprune/hub.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { FormatError, MissingFileError, UsageError } from "../errors.js";

export interface HubRef {
  repo: string;
  revision: string;
}

const HUB_PREFIX = /^hf:(?:\/\/)?/;
const REPO_RE = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

export function isHubRef(spec: string): boolean {
  return HUB_PREFIX.test(spec);
}

export function parseHubRef(spec: string): HubRef {
  const body = spec.replace(HUB_PREFIX, "");
  const [repo, revision = "main"] = body.split("@");
  if (!REPO_RE.test(repo) || !/^[\w.\/-]+$/.test(revision)) {
    throw new UsageError(`${spec}: expected hf:ORG/NAME or hf:ORG/NAME@REVISION`);
  }
  return { repo, revision };
}

export function hubEndpoint(): string {
  return (process.env.WASPRUNE_HF_ENDPOINT ?? process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, "");
}

export function hubCacheDir(ref: HubRef): string {
  const root = process.env.WASPRUNE_CACHE ?? path.join(os.homedir(), ".cache", "wasprune", "hub");
  return path.join(root, `${ref.repo.replace("/", "--")}`, ref.revision.replace(/\//g, "--"));
}

/** written last: the list of files of a complete fetch */
const FETCHED = ".wasprune-fetched.json";
const OPTIONAL = ["tokenizer.json", "tokenizer.model", "tokenizer_config.json", "generation_config.json"];

export interface FetchProgress {
  (file: string, received: number, total: number | undefined): void;
}

/** Fetch what `ref` needs into the cache; returns the local directory. */
export async function fetchHubModel(ref: HubRef, onProgress?: FetchProgress): Promise<string> {
  const dir = hubCacheDir(ref);
  // a complete earlier fetch: no request at all
  const marker = path.join(dir, FETCHED);
  if (fs.existsSync(marker)) {
    const files = JSON.parse(fs.readFileSync(marker, "utf8")) as string[];
    if (files.every((f) => fs.existsSync(path.join(dir, f)))) return dir;
  }
  fs.mkdirSync(dir, { recursive: true });
  const base = `${hubEndpoint()}/${ref.repo}/resolve/${encodeURIComponent(ref.revision)}`;
  const fetched: string[] = [];
  const get = async (file: string, required: boolean) => {
    const ok = await fetchFile(`${base}/${file}`, path.join(dir, file), required, ref, onProgress);
    if (ok) fetched.push(file);
    return ok;
  };
  await get("config.json", true);
  if (await get("model.safetensors.index.json", false)) {
    const indexFile = path.join(dir, "model.safetensors.index.json");
    let shards: string[];
    try {
      const index = JSON.parse(fs.readFileSync(indexFile, "utf8")) as { weight_map?: Record<string, string> };
      shards = [...new Set(Object.values(index.weight_map ?? {}))].sort();
    } catch {
      throw new FormatError(indexFile, "is not valid JSON with a weight_map");
    }
    for (const s of shards) {
      if (s.includes("/") || s.includes("\\") || s.startsWith(".")) throw new FormatError(indexFile, `shard name "${s}" is not a plain file name`);
      await get(s, true);
    }
  } else {
    await get("model.safetensors", true);
  }
  for (const f of OPTIONAL) await get(f, false);
  fs.writeFileSync(`${marker}.part`, JSON.stringify(fetched));
  fs.renameSync(`${marker}.part`, marker);
  return dir;
}

/** Download `url` to `dest` (via dest.part); false when absent (404) and not required. Cached files are kept. */
async function fetchFile(url: string, dest: string, required: boolean, ref: HubRef, onProgress?: FetchProgress): Promise<boolean> {
  if (fs.existsSync(dest)) return true;
  const headers: Record<string, string> = {};
  if (process.env.HF_TOKEN) headers.authorization = `Bearer ${process.env.HF_TOKEN}`;
  let res: Response;
  try {
    res = await fetch(url, { headers, redirect: "follow" });
  } catch (e) {
    throw new MissingFileError(`hf:${ref.repo}@${ref.revision}: cannot reach ${url} (${(e as Error).message}); set WASPRUNE_HF_ENDPOINT or use a local path`);
  }
  if (res.status === 404) {
    await res.body?.cancel();
    if (required) throw new MissingFileError(`hf:${ref.repo}@${ref.revision}: ${path.basename(dest)} not found at ${url}`);
    return false;
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new MissingFileError(`hf:${ref.repo}@${ref.revision}: ${url} answered ${res.status} ${res.statusText}${res.status === 401 ? " (set HF_TOKEN for gated models)" : ""}`);
  }
  const total = res.headers.get("content-length") ? Number(res.headers.get("content-length")) : undefined;
  const part = `${dest}.part`;
  let received = 0;
  const body = Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>);
  body.on("data", (chunk: Buffer) => {
    received += chunk.length;
    onProgress?.(path.basename(dest), received, total);
  });
  await pipeline(body, fs.createWriteStream(part));
  if (total !== undefined && received !== total) {
    fs.rmSync(part, { force: true });
    throw new FormatError(path.basename(dest), `download from ${url} ended after ${received} of ${total} bytes`);
  }
  fs.renameSync(part, dest);
  return true;
}
