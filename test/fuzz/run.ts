/**
 * `npm run fuzz -- --runs N --seed S`: a long fuzz run against a fresh node, with a
 * progress bar; prints the report and exits 1 on any failure (a broken property, a
 * changed reference collection, a duplicate reply, or memory not back within 10 %).
 */
import cliProgress from "cli-progress";
import { Command, InvalidArgumentError } from "commander";
import { runFuzz, type FuzzReport } from "./engine.ts";
import type { MemoryUsage } from "./inspector.ts";

const integer = (value: string): number => {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("must be a non-negative integer");
  return Number(value);
};

/** The end-of-run memory may exceed the start by at most this share (the issue's bound). */
export const memoryGrowthMax = 0.1;

const program = new Command()
  .name("fuzz")
  .description("property-based fuzzing of every API subject and of ingestion, against a real node")
  .option("--runs <n>", "requests to generate", integer, 100_000)
  .option("--seed <s>", "seed (printed by a failing run)", integer, Date.now() % 2 ** 31)
  .option("--ingest <n>", "ingestion records to publish before the requests", integer, 5_000)
  .option("--batch <n>", "requests per batch at most (sent concurrently)", integer, 16)
  .parse();

const o = program.opts<{ runs: number; seed: number; ingest: number; batch: number }>();
const bar = new cliProgress.SingleBar({ format: "fuzz [{bar}] {value}/{total} requests | {duration_formatted} | eta {eta_formatted}", hideCursor: true }, cliProgress.Presets.shades_classic);
let barStarted = false;
const report: FuzzReport = await runFuzz({
  seed: o.seed,
  requests: o.runs,
  batchMax: o.batch,
  ingestRecords: o.ingest,
  measureMemory: true,
  onProgress: (sent) => {
    if (!barStarted) bar.start(o.runs, 0);
    barStarted = true;
    bar.update(Math.min(sent, o.runs));
  },
  log: (line) => {
    if (barStarted) bar.stop();
    process.stderr.write(`${line}\n`);
  },
});
bar.stop();

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const m = report.memory!;
const usage = (u: MemoryUsage | undefined) => (u ? `rss ${mib(u.rss)} heap ${mib(u.heapUsed)} external ${mib(u.external)}` : "not measured");
const growth = m.end && m.warm ? m.end.rss / m.warm.rss - 1 : Number.NaN;
process.stdout.write(
  [
    `seed ${report.seed}: ${report.requestsSent} requests in ${report.batches} batches, ${(report.durationMs / 1000).toFixed(1)} s`,
    `codes: ${JSON.stringify(report.codes)}`,
    `families: ${Object.keys(report.families).length} (${JSON.stringify(report.families)})`,
    report.ingest ? `ingestion: ${report.ingest.records} records, ${report.ingest.pointsLanded} points landed, ${report.ingest.deadLetters} dead letters ${JSON.stringify(report.ingest.codes)}` : "ingestion: not run",
    `references unchanged: ${report.referencesUnchanged}; late or duplicate replies: ${report.extraReplies.length}`,
    `node memory after a full GC: cold ${usage(m.cold)}; warm (after ${m.warmupRequests} requests) ${usage(m.warm)}; end ${usage(m.end)}: rss ${(growth * 100).toFixed(1)} % from warm`,
    `  after a full GC every 5,000 requests (requests: rss/heap MiB): ${m.collected.map(([n, rss, heap]) => `${n}: ${(rss / 2 ** 20).toFixed(0)}/${(heap / 2 ** 20).toFixed(1)}`).join(", ")}`,
    `  rss under load (requests: MiB), peak ${mib(m.peakRssBytes)}: ${m.samples.map(([n, b]) => `${n}: ${(b / 2 ** 20).toFixed(0)}`).join(", ")}`,
  ].join("\n") + "\n",
);
const failures: string[] = [];
if (report.failure) failures.push(`property failed (seed ${report.seed}, path ${report.failure.path}):\n${report.failure.message}\nshrunk batch:\n  ${report.failure.requests.join("\n  ")}`);
if (report.ingest?.failure) failures.push(`ingestion failed (seed ${report.seed}):\n${report.ingest.failure.message}\nshrunk batch:\n  ${report.ingest.failure.records.join("\n  ")}`);
if (!report.referencesUnchanged) failures.push("the reference collections read differently after the run");
if (report.extraReplies.length > 0) failures.push(`requests with more than one reply: ${report.extraReplies.slice(0, 5).join(", ")}`);
if (!(growth <= memoryGrowthMax)) failures.push(`node memory grew ${(growth * 100).toFixed(1)} % (at most ${memoryGrowthMax * 100} %)`);
for (const f of failures) process.stdout.write(`\nFAIL ${f}\n`);
process.exitCode = failures.length > 0 ? 1 : 0;
