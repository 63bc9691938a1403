#!/usr/bin/env node
// The wasprune command from the TypeScript sources, through tsx's ESM loader (a development dependency): what
// the tests run, so that they see the sources as edited. Not part of the package (bin/wasprune.js runs dist/).
import { register } from "tsx/esm/api";
register();
await import("../src/cli/main.ts");
