#!/usr/bin/env node
// The wasprune command: the CLI is TypeScript, run through tsx's ESM loader (a dependency).
import { register } from "tsx/esm/api";
register();
await import("../src/cli/main.ts");
