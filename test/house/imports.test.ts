/**
 * @file The house rule "no import cycles between folders": every import of src/ (static, type-only and dynamic),
 * folded to its folder (src/<folder>/…; files directly in src/ are their own node), must form an acyclic graph.
 * A failure prints one cycle with a file that closes each of its edges.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p) : /\.ts$/.test(e.name) ? [p] : [];
  });
}

const folderOf = (file: string): string => {
  const rel = path.relative(SRC, file).split(path.sep);
  return rel.length > 1 ? rel[0]! : rel[0]!.replace(/\.ts$/, "");
};

test("no import cycles between the folders of src/", () => {
  const edges = new Map<string, Map<string, string>>(); // from -> to -> a file with that import
  for (const f of files(SRC)) {
    const text = fs.readFileSync(f, "utf8");
    const from = folderOf(f);
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)["'](\.{1,2}\/[^"']+)["']/g)) {
      const target = path.resolve(path.dirname(f), m[1]!.replace(/\.js$/, ".ts"));
      if (!target.startsWith(SRC)) continue;
      const to = folderOf(target);
      if (to === from) continue;
      if (!edges.has(from)) edges.set(from, new Map());
      if (!edges.get(from)!.has(to)) edges.get(from)!.set(to, path.relative(SRC, f));
    }
  }
  // depth-first search for a back edge
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  let cycle: string[] | undefined;
  const visit = (n: string): void => {
    state.set(n, "open");
    stack.push(n);
    for (const to of edges.get(n)?.keys() ?? []) {
      if (cycle) return;
      if (state.get(to) === "open") cycle = [...stack.slice(stack.indexOf(to)), to];
      else if (!state.has(to)) visit(to);
    }
    stack.pop();
    state.set(n, "done");
  };
  for (const n of edges.keys()) if (!state.has(n) && !cycle) visit(n);
  const why = cycle?.slice(1).map((to, i) => `${cycle![i]} → ${to} (${edges.get(cycle![i]!)!.get(to)})`).join("\n  ");
  assert.equal(cycle, undefined, `import cycle between folders:\n  ${why}`);
  assert.ok(edges.size > 5, "the scan found the imports");
});
