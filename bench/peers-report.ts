/**
 * What the peers benchmark shows: a compact table on stdout for the run just made, and
 * bench/results/peers.md with its charts, one section per dataset (each dataset's latest run).
 */
import type { EngineName } from "./peers-engines.ts";
import type { EngineResult, PeersResult } from "./peers.ts";
import { barChart, recallQps, writeReport, type ChartFile, type ReportSection } from "./plot.ts";

const engineLabel: Record<EngineName, string> = { jadevectordb: "JadeVectorDB", usearch: "usearch", hnswlib: "hnswlib-node", lancedb: "LanceDB" };
const reportName = "peers";

const int = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 0 });
const fixed = (n: number, digits: number) => n.toFixed(digits);
const orDash = (n: number | null) => (n === null ? "–" : int(n));
const threadsText = (threads: number | "all") => (threads === "all" ? "own thread pool" : `${threads} thread${threads === 1 ? "" : "s"}`);

const summaryHeader = ["engine", "build s", "vec/s", "threads", "disk B/vec", "mem B/vec", "p50 ms", "p95 ms", "p99 ms", "QPS c=1", "QPS ×2", "recall@10", "others' cores"];

function summaryRow(e: EngineResult): string[] {
  const point = e.atDefaultEf;
  return [
    engineLabel[e.engine],
    fixed(e.build.seconds, 1),
    int(e.build.vectorsPerSecond),
    String(e.build.threads),
    int(e.bytesPerVector.disk),
    int(e.bytesPerVector.memory),
    fixed(point.latencyMs.p50, 3),
    fixed(point.latencyMs.p95, 3),
    fixed(point.latencyMs.p99, 3),
    int(point.qps),
    orDash(point.qpsParallel),
    fixed(point.recall, 4),
    `${fixed(e.build.otherCores, 1)} / ${fixed(e.sweepCpu.otherCores, 1)}`,
  ];
}

/** Rows of "ef | recall / QPS per engine". */
function sweepRows(result: PeersResult): { header: string[]; rows: string[][] } {
  const efs = [...new Set(result.engines.flatMap((e) => e.sweep.map((p) => p.ef)))].sort((a, b) => a - b);
  const header = ["ef", ...result.engines.map((e) => `${engineLabel[e.engine]} recall / QPS`)];
  const rows = efs.map((ef) => [
    String(ef),
    ...result.engines.map((e) => {
      const point = e.sweep.find((p) => p.ef === ef);
      return point === undefined ? "–" : `${fixed(point.recall, 4)} / ${int(point.qps)}`;
    }),
  ]);
  return { header, rows };
}

function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => "  " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), "  " + "-".repeat(widths.reduce((sum, w) => sum + w + 2, -2)), ...rows.map(line)].join("\n");
}

function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map((_, i) => (i === 0 ? "---" : "---:"))), ...rows.map(line)].join("\n");
}

function headline(result: PeersResult): string {
  const d = result.dataset;
  return `${d.name}: ${int(d.count)} × ${d.dimension}, ${int(d.queries)} queries, k=${result.k}, ef ${result.graph.efDefault}`;
}

export function printSummary(result: PeersResult): void {
  const load = result.machine.loadAverage;
  const lines = [
    "",
    `== peers — ${headline(result)} (load ${load.start[0]} → ${load.end[0]}, ${result.seconds} s)`,
    textTable(summaryHeader, result.engines.map(summaryRow)),
    "",
    "  recall@10 / QPS (one query at a time) by ef",
    textTable(sweepRows(result).header, sweepRows(result).rows),
    "",
  ];
  process.stdout.write(lines.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Markdown report

const method = `Every engine runs in the same Node process, one after the other, on the same vectors and
queries, with the same HNSW graph parameters (connectivity / M 16, expansion_add / efConstruction
128) and L2 distance. Headline figures are at ef (expansion_search) 64; the sweep repeats the
search at every ef.

- **build**: wall time to insert every vector (LanceDB: write the table, then build the index);
  *cpu cores* in the JSON is CPU time / wall time.
- **disk B/vec**: the saved index file (usearch, hnswlib) or the whole table directory (LanceDB,
  vectors + index) divided by the number of vectors.
- **mem B/vec**: growth of the process's anonymous RSS outside the V8 heap (every index lives
  in native memory; file-backed pages such as native library code are left out) from before
  the build to after it and 20 warm-up queries, garbage collected, per vector. It includes
  what an engine reserves ahead (usearch grows capacity in powers of two; LanceDB keeps
  caches and its loaded index). A coarse gauge, ±10 MB in repeated runs here (±100 B/vec at
  100k vectors): the allocator reuses and returns memory freed by earlier phases lazily.
- **latency, QPS c=1**: k = 10, queries one at a time, one thread, after 20 warm-up queries.
- **QPS ×2**: usearch: one batch call with 2 threads; LanceDB: 2 queries in flight;
  hnswlib-node has no parallel search in its binding (–).
- **recall@10**: share of the exact 10 nearest neighbours (usearch exactSearch) returned.
- **others' cores**: cores kept busy by other processes on the machine (from /proc/stat) during
  the build / during the ef sweep. This machine has 2 cores: above ~0.3 the engine's figures
  are depressed by the other load, and engines run at different times saw different load.
- usearch's JS binding takes expansion_search only at construction: the sweep loads the saved
  index into an Index constructed with each ef (the file holds the graph, not the expansion).`;

async function charts(result: PeersResult): Promise<ChartFile[]> {
  const name = result.dataset.name;
  const label = (e: EngineResult) => engineLabel[e.engine];
  const recall = await recallQps({
    title: `${name}: recall@10 vs queries/s (one at a time), by ef`,
    data: result.engines.flatMap((e) => e.sweep.map((p) => ({ engine: label(e), recall: p.recall, qps: p.qps, ef: p.ef }))),
  });
  const latency = await barChart({
    title: `${name}: search latency at ef ${result.graph.efDefault}, one query at a time`,
    category: { field: "engine", title: "engine" },
    value: { field: "ms", title: "latency (ms)" },
    group: "percentile",
    data: result.engines.flatMap((e) => (["p50", "p95", "p99"] as const).map((p) => ({ engine: label(e), percentile: p, ms: e.atDefaultEf.latencyMs[p] }))),
  });
  const build = await barChart({
    title: `${name}: build throughput`,
    category: { field: "engine", title: "engine" },
    value: { field: "vps", title: "vectors per second" },
    format: ",.0f",
    data: result.engines.map((e) => ({ engine: `${label(e)} (${threadsText(e.build.threads)})`, vps: e.build.vectorsPerSecond })),
  });
  return [
    { file: `peers-${name}-recall-qps.svg`, title: `${name}: recall vs QPS`, svg: recall },
    { file: `peers-${name}-latency.svg`, title: `${name}: latency percentiles`, svg: latency },
    { file: `peers-${name}-build.svg`, title: `${name}: build throughput`, svg: build },
  ];
}

function datasetMarkdown(result: PeersResult): string {
  const m = result.machine;
  const sweep = sweepRows(result);
  return [
    `${result.dataset.description}.`,
    "",
    `Run ${result.startedAt} (${result.seconds} s) on ${m.cpus} × ${m.cpuModel ?? "unknown CPU"}, Node ${m.node}; load average ${m.loadAverage.start.join(" ")} at the start, ${m.loadAverage.end.join(" ")} at the end. Ground truth ${result.groundTruth.cached ? "from cache" : `computed in ${result.groundTruth.seconds} s`}.`,
    "",
    markdownTable(summaryHeader, result.engines.map(summaryRow)),
    "",
    "Recall@10 / QPS (one query at a time) by ef:",
    "",
    markdownTable(sweep.header, sweep.rows),
    "",
    ...result.engines.map((e) => `- **${engineLabel[e.engine]}** (${e.package} ${e.version}): ${e.description}.`),
  ].join("\n");
}

/** Rewrites bench/results/peers.md and its charts from the given runs (one per dataset). */
export async function writePeersReport(dir: string, results: PeersResult[]): Promise<string[]> {
  const sections: ReportSection[] = [{ heading: "How this is measured", markdown: method }];
  for (const result of results) {
    sections.push({ heading: headline(result), markdown: datasetMarkdown(result), charts: await charts(result) });
  }
  return writeReport(dir, reportName, { title: "Peers: usearch, hnswlib-node and LanceDB on the same data", sections });
}
