/** Run as a child process by gpuInChildOrSkip (helpers.ts): prints {ok, name | reason} as one JSON line. */
import { probeGpu } from "../../src/gpu/device.js";

const p = await probeGpu();
if (p.ok) {
  console.log(JSON.stringify({ ok: true, name: p.gpu.name }));
  p.gpu.destroy();
} else {
  console.log(JSON.stringify({ ok: false, reason: p.reason }));
}
