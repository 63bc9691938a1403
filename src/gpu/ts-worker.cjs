// Entry point of a TypeScript worker thread (src/gpu/offload.ts): tsx, given to the worker with --import,
// transpiles require() of .ts there, but not a .ts entry point nor an eval'd one; so a .cjs file requires it.
require(require("node:worker_threads").workerData.entry);
