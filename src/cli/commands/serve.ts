/** @file `wasprune serve`: the browser page with the given models (src/serve/server.ts), until interrupted. */
import { servedModels, startServer } from "../../serve/server.js";
import { resolveModelPath } from "../open-model.js";

export async function serveCommand(models: string[], opts: { port: number; host: string; verbose?: boolean }): Promise<void> {
  const paths: string[] = [];
  for (const m of models) paths.push(await resolveModelPath(m));
  const served = servedModels(paths, models);
  const { server, url } = await startServer(served, { port: opts.port, host: opts.host, log: (l) => console.error(l) });
  console.log(`wasprune serve: ${url} (${served.map((m) => m.label).join(", ")}); Ctrl-C stops`);
  if (opts.host !== "127.0.0.1" && opts.host !== "localhost" && opts.host !== "::1") {
    console.error(`note: listening on ${opts.host}, not only on this machine's loopback`);
  }
  await new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve());
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
