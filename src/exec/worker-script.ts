/**
 * @file Where a Node worker thread's entry point is, for the module that starts it: the worker file follows the
 * running module. From the sources (a `.ts` module, development and tests, run through tsx) it is the `.ts`
 * file beside it, and the thread needs tsx's loader (`--import`, resolved from here as an absolute file URL, so
 * any working directory works; worker threads do not inherit the main thread's loader); from the compiled
 * package (a `.js` module) it is the `.js` file beside it, run by plain Node. No other path is assumed.
 */
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

export interface WorkerScript {
  /** absolute path of the entry point */
  filename: string;
  /** the execArgv the thread needs (tsx's loader for a .ts entry, nothing for .js) */
  execArgv: string[];
  /** true when running from the TypeScript sources */
  typescript: boolean;
}

/**
 * The worker file `relative` (no extension, e.g. "../workers/worker") next to the module whose
 * `import.meta.url` is `from`, with the extension that module has.
 */
export function workerScript(from: string, relative: string): WorkerScript {
  const typescript = /\.[mc]?ts$/.test(new URL(from).pathname);
  const filename = fileURLToPath(new URL(`${relative}${typescript ? ".ts" : ".js"}`, from));
  if (!typescript) return { filename, execArgv: [], typescript };
  const tsx = pathToFileURL(createRequire(from).resolve("tsx")).href;
  return { filename, execArgv: ["--import", tsx], typescript };
}
