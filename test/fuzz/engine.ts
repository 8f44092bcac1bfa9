/**
 * The fuzz run: a real nats-server and a real node (a child process, so its memory
 * is its own), the reference and scratch collections, then fast-check batches of
 * generated requests sent concurrently. A batch fails on the first property a reply
 * breaks, or when a batch that could have written to a reference collection left
 * it changed; fast-check then shrinks the batch to the smallest that still fails
 * (restoring the reference collections before each attempt) and the run reports the
 * seed, the path and the shrunk requests. At the end: the references must read
 * exactly as before, no request may have had a second reply, and the node's memory
 * is reported (and must be back within 10 % in a long run).
 */
import { readFile } from "node:fs/promises";
import { jetstream } from "@nats-io/jetstream";
import fc from "fast-check";
import { isDeepStrictEqual } from "node:util";
import type { JadeClient } from "../../src/client/client.ts";
import { Harness, waitFor } from "../support/harness.ts";
import { toJsonText } from "./body.ts";
import { FuzzClient } from "./client.ts";
import { runIngestion, type IngestReport } from "./ingest.ts";
import { Inspector, type MemoryUsage } from "./inspector.ts";
import { mutated } from "./mutations.ts";
import { poisonRequest } from "./poison.ts";
import { httpTargetOf } from "./http.ts";
import { violation } from "./properties.ts";
import { validRequest, type FuzzRequest } from "./requests.ts";
import { glanceReferences, readReferences, referencePoints, referenceSpecs, setUpWorld, type World } from "./world.ts";

export interface FuzzOptions {
  seed: number;
  /** Requests to generate (batches of 1 – batchMax, so about this many are sent). */
  requests: number;
  batchMax?: number;
  /** Ingestion records to publish (in batches), before the API requests. */
  ingestRecords?: number;
  /** Measure the node's memory (through the inspector, after full collections) when warm and at the end. */
  measureMemory?: boolean;
  /** Called after every batch with the requests sent so far. */
  onProgress?: (sent: number) => void;
  log?: (line: string) => void;
}

export interface FuzzReport {
  seed: number;
  requestsSent: number;
  batches: number;
  durationMs: number;
  families: Record<string, number>;
  /** Requests of each family answered ok: a family never accepted tests only its refusals. */
  accepted: Record<string, number>;
  codes: Record<string, number>;
  /** The first failure, after shrinking. */
  failure?: { message: string; path?: string; requests: string[] };
  referencesUnchanged: boolean;
  extraReplies: string[];
  /**
   * The node's memory (process.memoryUsage() of its main thread after a full garbage
   * collection, through the inspector): right after setup (`cold`); once warm (`warm`, after
   * `warmupRequests`: a Node process grows to its working size in its first few thousand
   * requests, then stays there); and after the run (`end`). `samples`: RSS every 100
   * batches as [requests, bytes], without collecting. Absent when not measured.
   */
  memory?: {
    cold: MemoryUsage;
    warmupRequests: number;
    warm?: MemoryUsage;
    end?: MemoryUsage;
    peakRssBytes: number;
    samples: [number, number][];
    /** After a full collection every 5,000 requests: [requests, rss, heapUsed]. */
    collected: [number, number, number][];
  };
  ingest?: IngestReport;
}

const nodeId = "fuzz-node";

/** How a request is shown in a failure report: subject, expectation and the start of its body. */
function describeRequest(r: FuzzRequest): string {
  const body = "json" in r.body ? toJsonText(r.body.json) : "bytes" in r.body ? `<${r.body.bytes.byteLength} bytes> ${Buffer.from(r.body.bytes.subarray(0, 120)).toString("hex")}` : `msgpack ${safeJson(r.body.msgpack)}`;
  return `[${r.expect}]${r.transport === "http" ? " (over HTTP)" : ""} ${r.subject} ${body.length > 600 ? `${body.slice(0, 600)}… (${body.length} chars)` : body}`;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? `<${v.byteLength} bytes>` : v));
  } catch {
    return "(unprintable)";
  }
}

/**
 * Requests before the warm memory reading: a fifth of the run. Measured over 100,000
 * requests (seed 21), the main heap after a full collection grew from 22.6 MiB at 5,000
 * requests to 25.0 MiB at 30,000 and then stayed within ±0.5 MiB: the warm-up is what
 * fills the node's working set, not a leak.
 */
function warmupRequestsOf(requests: number): number {
  return Math.floor(requests / 5);
}

async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
  return kb === undefined ? 0 : Number(kb) * 1024;
}

/** One API request in this many that HTTP can carry goes to the REST mirror instead of NATS. */
const httpOneIn = 4;

function requestArb(world: World): fc.Arbitrary<FuzzRequest> {
  const valid = validRequest(world);
  return fc
    .tuple(fc.oneof({ weight: 9, arbitrary: valid }, { weight: 9, arbitrary: mutated(valid) }, { weight: 2, arbitrary: poisonRequest(world) }), fc.nat(httpOneIn - 1))
    .map(([request, pick]) => (pick === 0 && httpTargetOf(request) ? { ...request, transport: "http" as const } : request));
}

/** Drops and re-creates the reference collections after a failure changed them, so shrinking starts from the same state. */
async function restoreReferences(client: JadeClient, world: World): Promise<void> {
  for (const s of referenceSpecs) {
    await client.dropCollection(s.name).catch(() => undefined);
    const config = await client.createCollection(s.create);
    world.uids.set(s.name, config.uid);
    await client.upsert(s.name, { points: referencePoints(s), consistency: "all" });
  }
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const log = options.log ?? (() => undefined);
  const harness = new Harness();
  const started = performance.now();
  try {
    const nats = await harness.nats();
    const node = await harness.spawnJade(["start", "--nats", nats.url, "--data", await harness.tempDir("jade-fuzz-node-"), "--node-id", nodeId, "--http-port", "0"], {
      env: options.measureMemory ? { NODE_OPTIONS: `${process.env["NODE_OPTIONS"] ?? ""} --inspect=127.0.0.1:0`.trim() } : {},
    });
    const client = await harness.client(nats.url);
    // Backups the requests name go below this directory, and nowhere else (backups.ts).
    const world = await setUpWorld(client, nodeId, await harness.tempDir("jade-fuzz-backups-"));
    const pid = node.process.pid!;
    const baseline = await readReferences(client, world);
    let glance = await glanceReferences(client, world);
    const fuzz = new FuzzClient(client.nc, jetstream(client.nc), node.httpUrl);
    const inspector = options.measureMemory ? await Inspector.connect(node.output) : undefined;
    const memory: FuzzReport["memory"] = inspector ? { cold: await inspector.memoryAfterGc(), warmupRequests: warmupRequestsOf(options.requests), peakRssBytes: 0, samples: [], collected: [] } : undefined;
    log(`node ${nodeId} ready (pid ${pid}); seed ${options.seed}`);
    // Ingestion first: the warm memory reading, taken during the requests, then includes what
    // its 8 MiB records leave in the allocator, and the end compares like with like.
    const ingest = options.ingestRecords ? await runIngestion(client, world, { seed: options.seed, records: options.ingestRecords, log }) : undefined;

    const families: Record<string, number> = {};
    const accepted: Record<string, number> = {};
    const codes: Record<string, number> = {};
    let sent = 0;
    let batches = 0;
    let shrinking = false;
    let poisoned = false;
    /** The batch in flight when the node process exited (a crash: nothing else stops it during a run). */
    let died: { requests: string[]; sentBefore: number } | undefined;
    /** The last catalog and admin requests with their answers: a crash in a background job (a backup, a restore) starts from one. */
    const recentAdmin: string[] = [];
    const dead = () => node.process.exitCode !== null || node.process.signalCode !== null;
    const batchMax = options.batchMax ?? 16;
    const property = fc.asyncProperty(fc.array(requestArb(world), { minLength: 1, maxLength: batchMax }), async (batch) => {
      // numRuns over-counts batches (fast-check favours short arrays): past the target, runs are empty.
      if (!shrinking && sent >= options.requests) return;
      if (poisoned) {
        await restoreReferences(client, world);
        glance = await glanceReferences(client, world);
        poisoned = false;
      }
      const outcomes = await Promise.all(batch.map((r) => fuzz.send(r)));
      if (dead()) {
        died ??= { requests: batch.map(describeRequest), sentBefore: sent };
        shrinking = true;
        throw new Error("the node process exited");
      }
      if (!shrinking) {
        sent += batch.length;
        batches += 1;
        for (const [i, r] of batch.entries()) {
          families[r.family] = (families[r.family] ?? 0) + 1;
          if (r.transport === "http") families["http"] = (families["http"] ?? 0) + 1;
          const reply = outcomes[i]!.reply as { ok?: boolean; error?: { code?: string } } | undefined;
          const code = outcomes[i]!.unsendable ? "unsendable" : reply?.ok === true ? "ok" : (reply?.error?.code ?? "none");
          codes[code] = (codes[code] ?? 0) + 1;
          if (code === "ok") accepted[r.family] = (accepted[r.family] ?? 0) + 1;
          if (/^jade\.(v1\.(admin|collections)|n\.[^.]+\.v1\.(admin|collections)|coordinator)\./.test(r.subject)) recentAdmin.push(`${describeRequest(r).slice(0, 300)} -> ${code}`);
        }
        recentAdmin.splice(0, recentAdmin.length - 40);
        if (memory && inspector) {
          if (memory.warm === undefined && sent >= memory.warmupRequests) memory.warm = await inspector.settledMemory();
          if (sent >= (memory.collected.length + 1) * 5_000) {
            const usage = await inspector.memoryAfterGc();
            memory.collected.push([sent, usage.rss, usage.heapUsed]);
          }
          if (batches % 100 === 0) {
            const rss = await rssBytes(pid);
            memory.peakRssBytes = Math.max(memory.peakRssBytes, rss);
            memory.samples.push([sent, rss]);
          }
        }
        options.onProgress?.(sent);
      }
      const broken = batch.map((r, i) => ({ r, why: violation(r, outcomes[i]!) })).filter((b) => b.why !== undefined);
      // From the first failure on, every run is fast-check shrinking it.
      if (broken.length > 0) {
        shrinking = true;
        throw new Error(broken.map((b) => `${b.why}\n    ${describeRequest(b.r)}`).join("\n"));
      }
      if (batch.some((r) => r.touchesReference)) {
        const now = await glanceReferences(client, world);
        if (!isDeepStrictEqual(now, glance)) {
          poisoned = true;
          shrinking = true;
          throw new Error(`a reference collection changed:\n    before ${JSON.stringify(glance).slice(0, 800)}\n    after  ${JSON.stringify(now).slice(0, 800)}`);
        }
      }
    });
    const details = await fc.check(property, {
      seed: options.seed,
      numRuns: Math.max(1, Math.ceil(options.requests / 3)),
    });
    const report: FuzzReport = {
      seed: options.seed,
      requestsSent: sent,
      batches,
      durationMs: 0,
      families,
      accepted,
      codes,
      referencesUnchanged: false,
      extraReplies: [],
      memory,
    };
    if (ingest) report.ingest = ingest;
    if (died) {
      // Shrinking a dead node's batches says nothing: what matters is what was in flight, and what the node said last.
      const exit = `exit code ${String(node.process.exitCode)}, signal ${String(node.process.signalCode)}`;
      const output = node.output.filter((l) => !l.startsWith('{"level":')).slice(-30).join("\n    ");
      report.failure = {
        message:
          `the node process exited (${exit}) while this batch was in flight, after ${died.sentBefore} requests (a background job one of them or an earlier request started may be the cause); its last output:\n    ${output}\n` +
          `  the last catalog and admin requests before:\n    ${recentAdmin.join("\n    ")}`,
        requests: died.requests,
      };
      report.referencesUnchanged = true;
      await waitFor(() => fuzz.open === 0, { timeoutMs: 120_000, what: "every reply window to close" });
      fuzz.close();
      inspector?.close();
      report.durationMs = performance.now() - started;
      return report;
    }
    if (details.failed) {
      const batch = (details.counterexample?.[0] ?? []) as FuzzRequest[];
      report.failure = { message: String((details.errorInstance as Error | undefined)?.message ?? details.errorInstance), path: details.counterexamplePath ?? undefined, requests: batch.map(describeRequest) };
      if (poisoned) await restoreReferences(client, world);
    }
    report.referencesUnchanged = isDeepStrictEqual(await readReferences(client, world), baseline) || report.failure !== undefined;
    // Every reply window closes (its wait, then 2 s in which a duplicate would be counted).
    await waitFor(() => fuzz.open === 0, { timeoutMs: 120_000, what: "every reply window to close" });
    report.extraReplies = [...fuzz.extraReplies];
    fuzz.close();
    if (memory && inspector) {
      // The pool collections are what the run created after its warm reading; it started without them.
      for (const name of world.pool) await client.dropCollection(name).catch(() => undefined);
      memory.end = await inspector.settledMemory();
      inspector.close();
    }
    report.durationMs = performance.now() - started;
    return report;
  } finally {
    await harness.close();
  }
}
