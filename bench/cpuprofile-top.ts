/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): self time by function and by
 * module (package, src/ file, node internals), and inclusive time of chosen functions.
 *
 *   npx tsx bench/cpuprofile-top.ts PROFILE.cpuprofile [--top 30] [--inclusive name,name…] [--from s] [--to s]
 *
 * --from/--to keep the samples of a window (seconds from the profile's start), e.g. only a
 * benchmark's search phase of a profile that also holds its ingest.
 */
import { readFileSync } from "node:fs";
import { Command } from "commander";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const program = new Command()
  .argument("<profile>")
  .option("--top <n>", "rows", (v) => Number(v), 30)
  .option("--inclusive <names>", "comma-separated function names to report inclusive time for", "")
  .option("--from <s>", "first second of the window, from the profile's start", (v) => Number(v), 0)
  .option("--to <s>", "last second of the window", (v) => Number(v), Number.POSITIVE_INFINITY)
  .parse(process.argv);
const opts = program.opts<{ top: number; inclusive: string; from: number; to: number }>();
const profile = JSON.parse(readFileSync(program.args[0]!, "utf8")) as Profile;

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Self time per node from samples × time deltas (µs), within the window.
const selfUs = new Map<number, number>();
let atUs = 0;
profile.samples.forEach((id, i) => {
  const deltaUs = profile.timeDeltas[i] ?? 0;
  atUs += deltaUs;
  if (atUs < opts.from * 1e6 || atUs > opts.to * 1e6) return;
  selfUs.set(id, (selfUs.get(id) ?? 0) + deltaUs);
});
const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);

function moduleOf(url: string, name: string): string {
  if (url === "") return name.startsWith("(") ? name : "(native/builtin)";
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const src = /\/work\/main\/(.+)$/.exec(url.replace(/^file:\/\//, ""));
  if (src) return src[1]!;
  if (url.startsWith("node:")) return "node:" + url.slice(5).split("/")[0]!;
  return url;
}

const byFunction = new Map<string, number>();
const byModule = new Map<string, number>();
for (const [id, us] of selfUs) {
  const f = byId.get(id)!.callFrame;
  const where = f.url ? `${moduleOf(f.url, f.functionName)}:${f.lineNumber + 1}` : "";
  const key = `${f.functionName || "(anonymous)"} ${where}`;
  byFunction.set(key, (byFunction.get(key) ?? 0) + us);
  const mod = moduleOf(f.url, f.functionName);
  byModule.set(mod, (byModule.get(mod) ?? 0) + us);
}

const pct = (us: number) => `${((100 * us) / totalUs).toFixed(1).padStart(5)} %`;
const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
const wall = (profile.endTime - profile.startTime) / 1000;
process.stdout.write(`profile ${program.args[0]}: ${(wall / 1000).toFixed(1)} s wall, ${(totalUs / 1e6).toFixed(1)} s sampled\n`);
const idleUs = [...selfUs].filter(([id]) => byId.get(id)!.callFrame.functionName === "(idle)").reduce((s, [, us]) => s + us, 0);
process.stdout.write(`busy (not idle): ${((totalUs - idleUs) / 1e6).toFixed(1)} s\n\nself time by module:\n`);
for (const [mod, us] of [...byModule].sort((a, b) => b[1] - a[1]).slice(0, opts.top)) process.stdout.write(`  ${ms(us)} ${pct(us)}  ${mod}\n`);
process.stdout.write(`\nself time by function:\n`);
for (const [fn, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, opts.top)) process.stdout.write(`  ${ms(us)} ${pct(us)}  ${fn}\n`);

const wanted = opts.inclusive.split(",").filter(Boolean);
if (wanted.length > 0) {
  process.stdout.write(`\ninclusive time (a sample counts once per named function on its stack):\n`);
  for (const name of wanted) {
    let us = 0;
    for (const [id, self] of selfUs) {
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        if (byId.get(cur)!.callFrame.functionName === name) {
          us += self;
          break;
        }
      }
    }
    process.stdout.write(`  ${ms(us)} ${pct(us)}  ${name}\n`);
  }
}
