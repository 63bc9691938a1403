/**
 * @file `wasprune serve`: the browser build's page (build/web/, located relative to this module: the checkout's
 * build/web from the sources, the package's dist/build/web compiled), its bundle and kernels, and the files of
 * the models given, over HTTP with the headers that make the page cross-origin isolated (COOP same-origin,
 * COEP require-corp, CORP same-origin: shared memory for the page's workers).
 *
 * Routes: `/` the page; `/<file>` a file of the build; `/models.json` the served models; `/models/<id>/<file>` a
 * model's file: for a Hugging Face directory any regular file in it, for a llama2.c .bin only that file and its
 * tokenizer. Bad paths are refused before the file system is touched: `..` or `.` segments (also encoded, e.g.
 * `%2e%2e`), encoded slashes or backslashes, NUL, and then any file whose real path (symlinks resolved) is
 * outside the model's directory. Listens on loopback unless told otherwise.
 */
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { MissingFileError, UsageError } from "../errors.js";
import { findTokenizer } from "../model/load.js";

/** The built page (scripts/build-web.mjs), beside the kernels. */
export const WEB_DIR = fileURLToPath(new URL("../../build/web/", import.meta.url));

export interface ServedModel {
  id: string;
  /** what the page shows: the model's last path component (or its hf: reference) */
  label: string;
  /** the page's URL of it: "/models/<id>/" (a directory) or "/models/<id>/<name>.bin" */
  url: string;
  /** a .bin's tokenizer file name (beside it) */
  tokenizer?: string;
  /** real path of the directory its files are served from */
  dir: string;
  /** a .bin model: the only files served; a directory: undefined (any file in it) */
  files?: Set<string>;
}

/** The models of the command line, checked (exist, a .bin or a directory, a .bin's tokenizer found). */
export function servedModels(paths: readonly string[], given: readonly string[] = paths): ServedModel[] {
  if (!paths.length) throw new UsageError("serve needs at least one model");
  // the page shows a model by its last path component (or its hf: reference); a repeated one gets its number
  const short = given.map((g) => (g.startsWith("hf:") ? g : path.basename(path.resolve(g))));
  const labels = short.map((s, i) => (short.indexOf(s) !== short.lastIndexOf(s) ? `${s} (${i + 1})` : s));
  return paths.map((p, i) => {
    if (!fs.existsSync(p)) throw new MissingFileError(`model ${p} does not exist`);
    const id = String(i);
    if (fs.statSync(p).isDirectory()) return { id, label: labels[i]!, url: `/models/${id}/`, dir: fs.realpathSync(p) };
    if (path.extname(p).toLowerCase() !== ".bin") throw new UsageError(`model ${p}: expected a llama2.c .bin file or a Hugging Face model directory`);
    const tok = findTokenizer(p, false, true)!;
    const name = path.basename(p);
    return { id, label: labels[i]!, url: `/models/${id}/${encodeURIComponent(name)}`, tokenizer: path.basename(tok), dir: fs.realpathSync(path.dirname(p)), files: new Set([name, path.basename(tok)]) };
  });
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".json": "application/json; charset=utf-8",
  ".wasm": "application/wasm", ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8", ".md": "text/plain; charset=utf-8",
};

const ISOLATION = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
  "X-Content-Type-Options": "nosniff",
  "Cache-Control": "no-cache",
};

/**
 * The path segments of a raw request path, decoded, or an error text: each segment percent-decoded once and
 * refused when it is empty, "." or "..", or holds "/", "\" or NUL (an encoded separator or traversal).
 */
export function safeSegments(rawPath: string): string[] | string {
  const parts = rawPath.split("/").slice(1);
  const out: string[] = [];
  for (const [i, raw] of parts.entries()) {
    let s: string;
    try {
      s = decodeURIComponent(raw);
    } catch {
      return `bad percent-encoding in ${JSON.stringify(raw)}`;
    }
    if (s === "" && i === parts.length - 1) continue; // a trailing slash
    if (s === "" || s === "." || s === "..") return `path segment ${JSON.stringify(raw)} is not allowed`;
    if (/[/\\\0]/.test(s)) return `path segment ${JSON.stringify(raw)} holds a separator or NUL`;
    out.push(s);
  }
  return out;
}

export interface ServeOptions {
  port?: number;
  host?: string;
  /** a log line per refused request (default: none) */
  log?: (line: string) => void;
}

/** Start serving; resolves with the server and its URL once it listens. */
export async function startServer(models: ServedModel[], opts: ServeOptions = {}): Promise<{ server: http.Server; url: string }> {
  if (!fs.existsSync(path.join(WEB_DIR, "index.html"))) throw new MissingFileError(`the page is not built (${WEB_DIR}index.html is missing): run \`npm run build\``);
  const webDir = fs.realpathSync(WEB_DIR);
  const app = new Set(fs.readdirSync(webDir).filter((f) => fs.statSync(path.join(webDir, f)).isFile()));
  const catalog = JSON.stringify(models.map(({ id, label, url, tokenizer }) => ({ id, label, url, ...(tokenizer ? { tokenizer } : {}) })));
  const server = http.createServer((req, res) => {
    const send = (status: number, body: string, type = "text/plain; charset=utf-8") => {
      res.writeHead(status, { ...ISOLATION, "Content-Type": type, "Content-Length": Buffer.byteLength(body) });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    const refuse = (status: number, why: string) => {
      opts.log?.(`${status} ${req.method} ${req.url}: ${why}`);
      send(status, `${status}: ${why}\n`);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return refuse(405, `method ${req.method} is not served`);
    const raw = (req.url ?? "/").split("?")[0]!;
    if (!raw.startsWith("/")) return refuse(400, "the path is not absolute");
    const segs = safeSegments(raw);
    if (typeof segs === "string") return refuse(403, segs);
    const file = (dir: string, rel: string[]) => {
      const target = path.join(dir, ...rel);
      let real: string;
      try {
        real = fs.realpathSync(target);
      } catch {
        return refuse(404, `${rel.join("/")} not found`);
      }
      if (real !== dir && !real.startsWith(dir + path.sep)) return refuse(403, `${rel.join("/")} is outside the served directory`);
      const st = fs.statSync(real);
      if (!st.isFile()) return refuse(404, `${rel.join("/")} is not a file`);
      res.writeHead(200, { ...ISOLATION, "Content-Type": TYPES[path.extname(real).toLowerCase()] ?? "application/octet-stream", "Content-Length": st.size });
      if (req.method === "HEAD") return res.end();
      fs.createReadStream(real).on("error", () => res.destroy()).pipe(res);
    };
    if (segs.length === 0) return file(webDir, ["index.html"]);
    if (segs.length === 1 && segs[0] === "models.json") return send(200, catalog, TYPES[".json"]);
    if (segs.length === 1 && app.has(segs[0]!)) return file(webDir, segs);
    if (segs[0] === "models" && segs.length >= 3) {
      const m = models.find((x) => x.id === segs[1]);
      if (!m) return refuse(404, `no model ${segs[1]}`);
      const rel = segs.slice(2);
      if (m.files && !(rel.length === 1 && m.files.has(rel[0]!))) return refuse(403, `${rel.join("/")} is not a file of this model`);
      return file(m.dir, rel);
    }
    return refuse(404, `${raw} not found`);
  });
  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(e.code === "EADDRINUSE" ? new UsageError(`--port ${opts.port}: already in use on ${host}`) : e.code === "EADDRNOTAVAIL" ? new UsageError(`--host ${host}: not an address of this machine`) : e));
    server.listen(opts.port ?? 8080, host, resolve);
  });
  const addr = server.address() as { port: number };
  return { server, url: `http://${host.includes(":") ? `[${host}]` : host}:${addr.port}/` };
}
