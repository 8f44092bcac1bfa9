/**
 * The import rule of docs/decisions/005: nothing imports upward. Every relative import in
 * src/ is checked against the table of which folder may import which, so a file that
 * reaches into a higher layer fails here instead of growing a loop.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { expect, it } from "vitest";

const srcDir = resolve(import.meta.dirname, "../src");

/** Layer of a file: its folder under src/ (actors/<domain> counts as one layer). */
function layerOf(file: string): string {
  const parts = relative(srcDir, file).split("/");
  if (parts.length === 1) return parts[0]!.replace(/\.ts$/, "");
  if (parts[0] === "actors") return `actors/${parts[1]}`;
  return parts[0]!;
}

const base = ["runtime"];
/** Who may import whom, besides itself. `node` and `index` (the composition roots) may import anything. */
const allowed: Record<string, string[]> = {
  runtime: [],
  machines: base,
  nats: base,
  "actors/vector-index": base,
  "actors/cluster": [...base, "nats", "machines"],
  "actors/replica": [...base, "nats", "machines", "actors/cluster", "actors/vector-index"],
  "actors/read": [...base, "nats", "machines", "actors/cluster", "actors/vector-index", "actors/replica"],
  "actors/write": [...base, "nats", "machines", "actors/cluster", "actors/vector-index", "actors/replica"],
  "actors/backup": [...base, "nats", "actors/cluster", "actors/replica", "actors/vector-index"],
  "actors/txn": [...base, "nats", "machines", "actors/cluster", "actors/replica", "actors/write"],
  "actors/control": [...base, "nats", "machines", "actors/cluster", "actors/backup", "actors/config", "actors/txn"],
  // Metrics see plain figures only (the node hands them over), so every actor may report to them.
  "actors/metrics": [...base, "machines"],
  "actors/logs": [...base, "nats"],
  // API keys: a KV view and the pure scope rules.
  "actors/keys": [...base, "nats"],
  // The cluster's settings: a KV view and the pure patch rules.
  "actors/config": [...base, "nats"],
  "actors/api": [...base, "nats", "actors/cluster", "actors/replica", "actors/read", "actors/write", "actors/control", "actors/backup", "actors/metrics", "actors/keys", "actors/config", "actors/txn"],
  // HTTP serves the API's handlers (the same ones NATS requests run) and the admin bodies' schemas.
  "actors/http": [...base, "machines", "actors/api", "actors/replica", "actors/control", "actors/metrics", "actors/keys", "actors/config"],
  client: [...base, "nats"],
  // The CLI starts nodes and reads the defaults of the actors it configures.
  cli: [...base, "nats", "client", "node", "actors/replica", "actors/read", "actors/control", "actors/http", "actors/keys", "actors/config"],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith(".ts") ? [path] : [];
  });
}

function relativeImports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specifiers = [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^;]*?from\s+"(\.[^"]+)"/g)].map((m) => m[1]!);
  const dynamic = [...text.matchAll(/import\(\s*"(\.[^"]+)"\s*\)/g)].map((m) => m[1]!);
  // Worker entry points are loaded by URL (new Worker(new URL("./worker.ts", …))): same rule.
  const urls = [...text.matchAll(/new URL\(\s*"(\.[^"]+\.ts)"/g)].map((m) => m[1]!);
  return [...specifiers, ...dynamic, ...urls].map((s) => resolve(dirname(file), s));
}

it("no file in src/ imports from a layer above its own", () => {
  const violations: string[] = [];
  const files = sourceFiles(srcDir);
  for (const file of files) {
    const from = layerOf(file);
    if (from === "node" || from === "index") continue;
    const may = allowed[from];
    if (!may) {
      violations.push(`${relative(srcDir, file)}: layer ${from} is not in the table`);
      continue;
    }
    for (const target of relativeImports(file)) {
      const to = layerOf(target);
      if (to !== from && !may.includes(to)) violations.push(`${relative(srcDir, file)} imports ${relative(srcDir, target)} (${from} → ${to})`);
    }
  }
  expect(files.length).toBeGreaterThan(50);
  expect(violations).toEqual([]);
});

it("the rule catches an upward import", () => {
  // The checker itself must be able to fail: runtime may import nothing but runtime.
  expect(layerOf(join(srcDir, "runtime/subjects.ts"))).toBe("runtime");
  expect(allowed.runtime).not.toContain(layerOf(join(srcDir, "actors/api/gateway.ts")));
  expect(allowed["actors/control"]).not.toContain(layerOf(join(srcDir, "actors/replica/replica.ts")));
});
