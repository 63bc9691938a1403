/**
 * @file A model's files in a browser, from any of the sources a page has: a URL (a directory ending in "/", or a
 * file), `File`s (picked, dropped, or a folder's `FileList`), a `FileSystemDirectoryHandle`, or `ArrayBuffer`s
 * by file name. All become one `ModelFiles`: read a file by name (undefined when there is no such file), with
 * a byte budget checked before a file is read (Content-Length, File.size), so that a model too big for the
 * page is refused by name instead of exhausting the tab.
 */
import { MissingFileError, UsageError } from "../errors.js";
import { concatBytes } from "../tokenizer/bytes.js";

/** Bytes of the named files; `names` lists them when the source can be listed (not a URL). */
export interface ModelFiles {
  /** what the user gave, for messages */
  readonly label: string;
  /** the file names, when the source can list them */
  readonly names?: readonly string[];
  /** the weights file the source names itself (a URL or a single File of a .bin) */
  readonly main?: string;
  read(name: string): Promise<Uint8Array | undefined>;
  /** bytes read so far */
  readonly bytesRead: number;
}

/** What `loadModel` accepts in a browser. */
export type BrowserModelSource =
  | string
  | URL
  | File
  | readonly File[]
  | FileList
  | FileSystemDirectoryHandle
  | { [name: string]: ArrayBuffer | Uint8Array };

export interface FilesOptions {
  /** bytes the page may read for one model at most (default 2 GiB: the bytes and their float32 copy both live in the tab) */
  maxBytes?: number;
  /** progress of each file read */
  onProgress?: (file: string, loaded: number, total?: number) => void;
}

export const DEFAULT_MAX_BYTES = 2 * 1024 ** 3;

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;

/** A budget of bytes shared by the files of one model. */
function budget(label: string, max: number) {
  let used = 0;
  return {
    get used() {
      return used;
    },
    take(file: string, bytes: number): void {
      if (used + bytes > max) {
        throw new UsageError(`${label}: ${file} is ${mb(bytes)}; with the ${mb(used)} read before it the model takes more than the ${mb(max)} this page may hold (maxBytes)`);
      }
      used += bytes;
    },
  };
}

function isFileSystemDirectoryHandle(v: unknown): v is FileSystemDirectoryHandle {
  return typeof FileSystemDirectoryHandle !== "undefined" && v instanceof FileSystemDirectoryHandle;
}

function isFileList(v: unknown): v is FileList {
  return typeof FileList !== "undefined" && v instanceof FileList;
}

/** The files of `source` (nothing is read yet). */
export async function modelFiles(source: BrowserModelSource, opts: FilesOptions = {}): Promise<ModelFiles> {
  const max = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  if (typeof source === "string" || source instanceof URL) return urlFiles(new URL(String(source), globalThis.location?.href), max, opts);
  if (typeof File !== "undefined" && source instanceof File) return fileFiles([source], source.name, max, opts, source.name);
  if (isFileList(source) || Array.isArray(source)) {
    const files = Array.from(source as ArrayLike<File>);
    if (!files.length) throw new UsageError("no files were given");
    return fileFiles(files, files.length === 1 ? files[0]!.name : `${files.length} files`, max, opts);
  }
  if (isFileSystemDirectoryHandle(source)) {
    const files: File[] = [];
    for await (const [, h] of (source as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries()) {
      if (h.kind === "file") files.push(await (h as FileSystemFileHandle).getFile());
    }
    return fileFiles(files, source.name, max, opts);
  }
  if (source && typeof source === "object") {
    const entries = Object.entries(source as Record<string, ArrayBuffer | Uint8Array>);
    if (!entries.length || !entries.every(([, v]) => v instanceof ArrayBuffer || v instanceof Uint8Array)) {
      throw new UsageError("a model source in a browser is a URL, File(s), a FileSystemDirectoryHandle, or { name: ArrayBuffer } of its files");
    }
    const map = new Map(entries.map(([k, v]) => [k, v instanceof Uint8Array ? v : new Uint8Array(v)]));
    const b = budget("the given buffers", max);
    return {
      label: "the given buffers",
      names: [...map.keys()],
      async read(name) {
        const bytes = map.get(name);
        if (bytes) b.take(name, bytes.length);
        return bytes;
      },
      get bytesRead() {
        return b.used;
      },
    };
  }
  throw new UsageError("a model source in a browser is a URL, File(s), a FileSystemDirectoryHandle, or { name: ArrayBuffer } of its files");
}

function fileFiles(files: File[], label: string, max: number, opts: FilesOptions, main?: string): ModelFiles {
  // a folder picked with <input webkitdirectory> names files "folder/name": the last part is the name
  const byName = new Map(files.map((f) => [f.name.slice(f.name.lastIndexOf("/") + 1), f]));
  const b = budget(label, max);
  return {
    label,
    names: [...byName.keys()],
    main: main ?? [...byName.keys()].find((n) => /\.bin$/i.test(n) && !/^tok.*\.bin$/i.test(n) && n !== "tokenizer.bin"),
    async read(name) {
      const f = byName.get(name);
      if (!f) return undefined;
      b.take(name, f.size);
      const bytes = new Uint8Array(await f.arrayBuffer());
      opts.onProgress?.(name, bytes.length, bytes.length);
      return bytes;
    },
    get bytesRead() {
      return b.used;
    },
  };
}

/** A URL naming a directory ("…/") or a file (its directory holds the rest). */
function urlFiles(url: URL, max: number, opts: FilesOptions): ModelFiles {
  const isDir = url.pathname.endsWith("/");
  const dir = isDir ? url : new URL("./", url);
  const main = isDir ? undefined : decodeURIComponent(url.pathname.slice(url.pathname.lastIndexOf("/") + 1));
  const label = url.href;
  const b = budget(label, max);
  return {
    label,
    main,
    async read(name) {
      const at = new URL(encodeURIComponent(name), dir);
      let res: Response;
      try {
        res = await fetch(at);
      } catch (e) {
        throw new MissingFileError(`${at.href}: could not be fetched (${(e as Error).message})`);
      }
      if (res.status === 404) return undefined;
      if (!res.ok) throw new MissingFileError(`${at.href}: HTTP ${res.status} ${res.statusText}`);
      const total = Number(res.headers.get("content-length") ?? NaN);
      if (Number.isFinite(total)) b.take(name, total);
      const bytes = await readBody(res, name, Number.isFinite(total) ? total : undefined, opts, (n) => {
        if (!Number.isFinite(total)) b.take(name, n);
      });
      return bytes;
    },
    get bytesRead() {
      return b.used;
    },
  };
}

/** A response's body, streamed with progress (`onChunk` counts bytes of a body of unknown length). */
async function readBody(res: Response, name: string, total: number | undefined, opts: FilesOptions, onChunk: (n: number) => void): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    onChunk(value.length);
    parts.push(value);
    loaded += value.length;
    opts.onProgress?.(name, loaded, total);
  }
  return parts.length === 1 ? parts[0]! : concatBytes(parts);
}
