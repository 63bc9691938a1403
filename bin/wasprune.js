#!/usr/bin/env node
// The wasprune command: the compiled CLI (dist/, made by `npm run build`; the package ships it built).
// Development and tests run the TypeScript sources instead: bin/wasprune-dev.js (through tsx).
import { existsSync } from "node:fs";

const main = new URL("../dist/src/cli/main.js", import.meta.url);
if (!existsSync(main)) {
  console.error("error: wasprune is not built here (dist/src/cli/main.js is missing); run `npm run build`");
  process.exit(1);
}
await import(main.href);
