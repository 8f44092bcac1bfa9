/**
 * `npm run chaos`: the chaos harness on the local process driver.
 *
 *   npm run chaos                         CI-sized: 3 nats + 3 nodes, one round of the CI scenarios (a few minutes)
 *   npm run chaos -- --long               soak: every scenario, several rounds in random order, longer holds
 *   npm run chaos -- --seed 42            reproduce a run's random choices (the seed is printed)
 *   npm run chaos -- --scenarios a,b      only these scenarios (names in chaos/scenarios.ts)
 *   npm run chaos -- --rounds N           rounds of the scenario list
 *
 * A workload (chaos/workload.ts) and a transactional one (chaos/txn-workload.ts) run
 * throughout; after the last fault is healed the checker (chaos/checker.ts) verifies
 * acknowledged writes, deletes, counts and replica digests, and every transaction's group
 * against what its client was told. The JSON summary goes to chaos/results/<timestamp>.json
 * and stdout; the exit code is 1 when anything was lost, resurrected, corrupt, divergent,
 * unreadable, miscounted, hung, when a read saw part of a transaction or a transaction's
 * outcome broke what its client was told, or the cluster never settled.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { JadeClient } from "../src/client/client.ts";
import { checkConvergence, checkWrites, failoverTimes, settle, StatusMonitor } from "./checker.ts";
import type { ClusterInfo, Fault } from "./driver.ts";
import { LocalDriver } from "./local-driver.ts";
import { ciScenarios, scenarioByName, scenarios, type Promises, type Scenario, type ScenarioContext } from "./scenarios.ts";
import { now, progress, seededRandom, delay, waitFor, withTimeout } from "./util.ts";
import { Workload, type CollectionSpec } from "./workload.ts";
import { TxnWorkload } from "./txn-workload.ts";
import { errorMessage } from "../src/runtime/errors.ts";
import { isFinal, type MigrationState } from "../src/machines/migration/types.ts";

const chaosDir = path.dirname(fileURLToPath(import.meta.url));

const program = new Command()
  .name("chaos")
  .option("--long", "soak: every scenario, several rounds, longer holds", false)
  .option("--seed <n>", "seed of every random choice (default: random, printed)")
  .option("--scenarios <list>", "comma-separated scenario names")
  .option("--rounds <n>", "rounds of the scenario list")
  .option("--keep-logs", "keep the node and nats logs even when the run passes", false)
  .option("--verify-checker", "sabotage a few ids behind the workload's back and expect the checker to report exactly them", false)
  .parse();

const opts = program.opts<{ long: boolean; seed?: string; scenarios?: string; rounds?: string; keepLogs: boolean; verifyChecker: boolean }>();
const seed = opts.seed !== undefined ? Number(opts.seed) : Math.floor(Math.random() * 2 ** 31);
if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, got ${opts.seed}`);
const long = opts.long;
const rounds = opts.rounds !== undefined ? Number(opts.rounds) : long ? 3 : 1;
const names = opts.scenarios ? opts.scenarios.split(",").map((s) => s.trim()).filter(Boolean) : long ? scenarios.map((s) => s.name) : ciScenarios;
const chosen: Scenario[] = names.map(scenarioByName);
const holdScale = long ? 2 : 1;
const settleTimeoutMs = 120_000;
const runDeadlineMs = long ? 3 * 3_600_000 : 20 * 60_000;

const specs: CollectionSpec[] = [
  { name: "chaos_rf2", replicas: 2, shards: 3, dimension: 16, idPool: 600 },
  { name: "chaos_rf1", replicas: 1, shards: 2, dimension: 16, idPool: 300 },
];
/** The transactional workload's collection (chaos/txn-workload.ts): 4 shards, so a transaction spans most of them. */
const txnSpec = { collection: "chaos_txn", shards: 4, replicas: 2, dimension: 4, groupSize: 6, keepGroups: 3, timeoutMs: 5_000, writeIntervalMs: 50, readIntervalMs: 50 } as const;

interface FaultRecord {
  scenario: string;
  round: number;
  target: string;
  /** Undefined for a procedure (rolling-restart). */
  fault?: Fault;
  injectedAt: string;
  healedAt: string | null;
  settledAfterHealMs: number | null;
  completeSearchesAfterMs: number | null;
  completeSearchesRf1AfterMs: number | null;
  rfRestoredAfterMs: number | null;
  searchesDuring: Record<string, number>;
  /** What the status samples and degraded searches said during the window, with counts. */
  degradedReasons: Record<string, number>;
  error?: string;
  settleFailure?: string;
  /**
   * Before a scenario promising nothing is copied: why the cluster was not quiet (a migration
   * still under way) when the wait for it ran out. Reported, not failed: the promise is judged
   * all the same, and a stuck migration that never moves cannot break it.
   */
  notQuietBefore?: string;
  /** The scenario's promises (scenarios.ts) that did not hold, each with what broke it. */
  promisesBroken?: string[];
}

const driver = new LocalDriver({ nodeDeadAfterMs: 8_000, workers: 1 });
let client: JadeClient | undefined;
let exiting = false;

// Last resort: whatever happens, no child outlives us.
process.on("exit", () => {
  for (const pid of driver.pids()) {
    try {
      process.kill(pid, "SIGCONT");
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (exiting) return;
    exiting = true;
    progress(`${signal}: stopping everything`);
    void driver.stop().finally(() => process.exit(130));
  });
}

async function main(): Promise<number> {
  const runStarted = performance.now();
  progress(`seed ${seed} · ${long ? "soak" : "CI"} · rounds ${rounds} · scenarios ${names.join(", ")}`);
  const info = await driver.start({ nodes: 3, natsServers: 3 });
  progress(`logs in ${driver.logDir}`);
  client = await JadeClient.connect({ servers: info.natsUrls, timeoutMs: 10_000, name: "jade-chaos", ...(info.auth ? { auth: info.auth } : {}) });
  const { workload, txns, monitor } = await startWorkload(client, info);
  const run = await runScenarios({ client, info, random: seededRandom(seed), holdScale, driver }, runStarted);

  progress("stopping the workload");
  await Promise.all([workload.stop(), txns.stop()]);
  await monitor.stop();
  attachFailoverTimes(run.windows, workload, monitor);

  progress("final settle (lag 0 everywhere)");
  const final = await settle(client, info.nodes, { timeoutMs: settleTimeoutMs, zeroLag: true });
  if (!final.ok) run.settleFailures.push(`final: ${final.reason}`);
  progress(final.ok ? `settled in ${final.tookMs} ms; checking` : `final settle failed: ${final.reason}; checking anyway`);
  const sabotaged = opts.verifyChecker ? await sabotage(client, workload) : undefined;
  const verdict = await check(client, workload, txns, run, sabotaged);
  const crashes = driver.nodeCrashes;
  const ok = verdict.ok && crashes.length === 0;
  const summary = {
    seed,
    mode: long ? "soak" : "ci",
    driver: driver.name,
    cluster: { nats: info.natsServers.length, nodes: info.nodes.length, collections: specs },
    durationMs: Math.round(performance.now() - runStarted),
    faults: run.faults,
    // Not jade's doing, but worth knowing: a nats-server that died on its own was started again (local-driver.ts).
    nats_server_crashes: driver.natsCrashes,
    // jade's doing: a node that exited with no fault asking it to (2026-12-07: usearch's load aborted two).
    node_crashes: crashes,
    ops: { ...opsOf(workload), transactions: { told: verdict.txns.told, reads: verdict.txns.reads, errors: verdict.txns.errors } },
    ...verdict.report,
    problems: { ...verdict.problems, nodeCrashes: crashes.length },
    logs: ok && !opts.keepLogs ? null : driver.logDir,
    ok,
  };
  await writeResults(summary, run.windows, workload, monitor);
  if (ok && !opts.keepLogs) await driver.removeLogs();
  return ok ? 0 : 1;
}

/** Waits for a coordinator and every node, creates the collections, starts the workload and the status monitor. */
async function startWorkload(c: JadeClient, info: ClusterInfo): Promise<{ workload: Workload; txns: TxnWorkload; monitor: StatusMonitor }> {
  await waitFor(async () => {
    const s = await c.clusterStatus();
    return s.coordinator !== null && info.nodes.every((id) => s.nodes.find((n) => n.id === id)?.live);
  }, { what: "a coordinator and every node live", timeoutMs: 60_000, intervalMs: 250 });
  const workload = new Workload(c, {
    collections: specs,
    seed,
    searchTimeoutMs: 2_000,
    writeIntervalMs: 40,
    searchIntervalMs: 100,
    writeAttempts: 8,
    writeTimeoutMs: 5_000,
    maxOps: 1_000_000,
    maxDurationMs: runDeadlineMs,
  });
  await workload.setup();
  const txns = new TxnWorkload(c, { ...txnSpec, seed, maxDurationMs: runDeadlineMs });
  await txns.setup();
  const placed = await settle(c, info.nodes, { timeoutMs: 60_000, zeroLag: false });
  if (!placed.ok) throw new Error(`collections never placed: ${placed.reason}`);
  const monitor = new StatusMonitor(c);
  monitor.start();
  workload.start();
  txns.start();
  progress("workload running");
  await delay(5_000);
  return { workload, txns, monitor };
}

interface FaultWindow {
  record: FaultRecord;
  injectedAt: number;
  windowEnd: number;
  promises: Promises | undefined;
}

interface ScenarioRun {
  faults: FaultRecord[];
  settleFailures: string[];
  windows: FaultWindow[];
}

/** Every round of the chosen scenarios (shuffled per round in a soak), until the run's deadline. */
async function runScenarios(ctx: ScenarioContext, runStarted: number): Promise<ScenarioRun> {
  const run: ScenarioRun = { faults: [], settleFailures: [], windows: [] };
  for (let round = 1; round <= rounds; round++) {
    const order = long ? [...chosen].sort(() => ctx.random() - 0.5) : chosen;
    for (const scenario of order) {
      if (performance.now() - runStarted > runDeadlineMs) break;
      let fault: Fault | undefined;
      try {
        fault = await scenario.fault?.(ctx);
      } catch (err) {
        progress(`${scenario.name}: could not pick a target: ${errorMessage(err)}`);
        continue;
      }
      const window = await runFault(ctx, scenario, fault, round, run.settleFailures);
      run.faults.push(window.record);
      run.windows.push(window);
    }
  }
  return run;
}

/** Injects one fault, holds it, heals it (or runs the scenario's procedure), waits for the cluster to settle, lets the workload run on. */
async function runFault(ctx: ScenarioContext, scenario: Scenario, fault: Fault | undefined, round: number, settleFailures: string[]): Promise<FaultWindow> {
  const target = fault ? `${fault.target.kind}:${fault.target.id}` : "cluster";
  const injectedAt = now();
  const record: FaultRecord = {
    scenario: scenario.name,
    round,
    target,
    ...(fault ? { fault } : {}),
    injectedAt: new Date(injectedAt).toISOString(),
    healedAt: null,
    settledAfterHealMs: null,
    completeSearchesAfterMs: null,
    completeSearchesRf1AfterMs: null,
    rfRestoredAfterMs: null,
    searchesDuring: {},
    degradedReasons: {},
  };
  progress(`round ${round} · ${scenario.name} → ${target}${fault?.amount !== undefined ? ` (${fault.amount})` : ""}`);
  // A promise that nothing is copied holds from a quiet cluster: a rebalance an earlier fault set
  // off would otherwise finish (or roll back) during this one and count against it.
  if (scenario.promises?.nothingCopied) {
    const quiet = await awaitQuiet(ctx.client);
    if (!quiet.ok) {
      record.notQuietBefore = quiet.reason!;
      progress(`${scenario.name}: before it, ${quiet.reason}; judging its promises all the same`);
    }
  }
  const copies = scenario.promises?.nothingCopied ? await copyState(ctx.client).catch((err: unknown) => (record.error = `state before: ${errorMessage(err)}`, undefined)) : undefined;
  try {
    if (fault) {
      const heal = await driver.inject(fault);
      await delay(scenario.holdMs * ctx.holdScale);
      await withTimeout(heal(), 120_000, `heal ${scenario.name}`);
    } else {
      await scenario.procedure!(ctx);
    }
    record.healedAt = new Date(now()).toISOString();
  } catch (err) {
    record.error = errorMessage(err);
    progress(`${scenario.name}: ${record.error}`);
  }
  const settled = await settle(ctx.client, ctx.info.nodes, { timeoutMs: settleTimeoutMs, zeroLag: false });
  record.settledAfterHealMs = settled.ok ? settled.tookMs : null;
  if (!settled.ok) {
    record.settleFailure = settled.reason ?? "unknown";
    settleFailures.push(`${scenario.name}: ${settled.reason}`);
    progress(`${scenario.name}: cluster did not settle within ${settleTimeoutMs} ms: ${settled.reason}`);
  } else {
    progress(`${scenario.name}: healed, settled in ${settled.tookMs} ms`);
  }
  if (copies) {
    const after = await copyState(ctx.client).catch((err: unknown) => (record.error = `state after: ${errorMessage(err)}`, undefined));
    if (after) record.promisesBroken = copyBreaches(copies, after);
  }
  // Let the workload run on the settled cluster for a moment: it marks the end of the window.
  await delay(5_000);
  return { record, injectedAt, windowEnd: now(), promises: scenario.promises };
}

/** How long a scenario waits for earlier faults' migrations: those of this run's small collections take seconds. */
const quietTimeoutMs = 60_000;

/** Waits until no migration is under way or planned and no shard has a learner (two polls in a row). */
async function awaitQuiet(c: JadeClient): Promise<{ ok: boolean; reason?: string }> {
  const started = performance.now();
  let reason = "not polled";
  for (let quietPolls = 0; performance.now() - started < quietTimeoutMs; await delay(500)) {
    try {
      const { migrations } = await withTimeout(c.admin<{ migrations: { id: string; state: MigrationState }[] }>("migrations", {}), 10_000, "migrations");
      const status = await withTimeout(c.clusterStatus(), 10_000, "cluster status");
      const running = migrations.find((m) => !isFinal(m.state));
      const learning = status.collections.flatMap((col) => col.shards.filter((sh) => sh.learners.length > 0).map((sh) => `${col.name}/${sh.shard}`));
      reason = running ? `migration ${running.id} is ${running.state}` : learning.length > 0 ? `${learning.join(", ")} has a learner` : "";
      if (reason === "" && ++quietPolls >= 2) return { ok: true };
      if (reason !== "") quietPolls = 0;
    } catch (err) {
      quietPolls = 0;
      reason = errorMessage(err);
    }
  }
  return { ok: false, reason: `the cluster was not quiet within ${quietTimeoutMs} ms: ${reason}` };
}

interface CopyState {
  epochs: Record<string, number>;
  migrations: string[];
  restored: { replica: string; source: string | undefined }[];
}

/**
 * The placement, migrations and restore sources. Tried a few times: with a nats-server down
 * (2.9.10's recovery panic, local-driver.ts) listing the migrations' keys can go unanswered
 * (`unavailable`), and a state that cannot be read must not abort the run.
 */
async function copyState(c: JadeClient): Promise<CopyState> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await copyStateOnce(c);
    } catch (err) {
      if (attempt >= copyStateAttemptsMax) throw err;
      await delay(1_000);
    }
  }
}

const copyStateAttemptsMax = 6;

async function copyStateOnce(c: JadeClient): Promise<CopyState> {
  const status = await withTimeout(c.clusterStatus(), 10_000, "cluster status");
  const { migrations } = await withTimeout(c.admin<{ migrations: { id: string }[] }>("migrations", {}), 10_000, "migrations");
  return {
    epochs: Object.fromEntries(status.collections.map((col) => [col.name, col.epoch])),
    migrations: migrations.map((m) => m.id),
    restored: status.collections.flatMap((col) => col.shards.flatMap((s) => s.replicas.map((r) => ({ replica: `${col.name}/${s.shard}@${r.node}`, source: r.restored?.source })))),
  };
}

/** What copied a shard between two states: a placement change, a migration, a replica not restarted from its own checkpoint. */
function copyBreaches(before: CopyState, after: CopyState): string[] {
  const out: string[] = [];
  if (JSON.stringify(after.epochs) !== JSON.stringify(before.epochs)) out.push(`placement epochs ${JSON.stringify(before.epochs)} → ${JSON.stringify(after.epochs)}`);
  const started = after.migrations.filter((id) => !before.migrations.includes(id));
  if (started.length > 0) out.push(`migrations started: ${started.join(", ")}`);
  for (const r of after.restored) if (r.source !== "checkpoint") out.push(`${r.replica} restored from ${r.source ?? "nothing yet"}`);
  return out;
}

/** Failover figures of each fault window, from the workload's searches and the status samples; and the promises the workload can judge. */
function attachFailoverTimes(windows: FaultWindow[], workload: Workload, monitor: StatusMonitor): void {
  for (const { record, injectedAt, windowEnd, promises } of windows) {
    const during = (at: number) => at >= injectedAt && at <= windowEnd;
    if (promises?.completeSearches) {
      const incomplete = workload.searches.filter((s) => s.collection === specs[0]!.name && during(s.startedAt) && (s.outcome !== "answered" || s.hung));
      if (incomplete.length > 0) (record.promisesBroken ??= []).push(`${incomplete.length} incomplete searches of ${specs[0]!.name}, first: ${incomplete[0]!.outcome} ${incomplete[0]!.detail ?? ""}`);
    }
    if (promises?.noFailedWrites) {
      const failed = workload.writeFailures.filter((f) => during(f.at));
      if (failed.length > 0) (record.promisesBroken ??= []).push(`${failed.length} failed write attempts, first: ${failed[0]!.collection} ${failed[0]!.code}`);
    }
    const rf2 = failoverTimes(workload.searches, monitor.samples, "chaos_rf2", injectedAt, windowEnd);
    const rf1 = failoverTimes(workload.searches, monitor.samples, "chaos_rf1", injectedAt, windowEnd);
    record.completeSearchesAfterMs = rf2.completeSearchesAfterMs;
    record.completeSearchesRf1AfterMs = rf1.completeSearchesAfterMs;
    record.rfRestoredAfterMs = rf2.rfRestoredAfterMs;
    record.searchesDuring = rf2.searchesDuring;
    record.degradedReasons = rf2.degradedReasons;
  }
}

type Sabotaged = { lost: string; resurrected: string; corrupt: string };

/** Checks writes and convergence; with --verify-checker, ok means the checker reported exactly the sabotage. */
async function check(c: JadeClient, workload: Workload, txns: TxnWorkload, run: ScenarioRun, sabotaged: Sabotaged | undefined) {
  const writes = await checkWrites(c, workload, specs);
  const txnCheck = await txns.check();
  const idsOf = (name: string) => (name === txnSpec.collection ? txns.ids() : [...workload.histories.get(name)!.keys()]);
  const convergence = await checkConvergence(c, idsOf, [...specs.map((s) => s.name), txnSpec.collection]).catch((err) => ({
    digests: [],
    divergent_shards: [{ collection: "*", shard: -1, replicas: [], differingIds: [], error: errorMessage(err) }],
  }));
  const hungSearches = workload.searches.filter((s) => s.hung);
  const problems = {
    lost: writes.lost.length,
    resurrected: writes.resurrected.length,
    corrupt: writes.corrupt.length,
    unreadable: writes.unreadable.length,
    miscounted: writes.counts.filter((c) => !c.ok).length,
    divergent: convergence.divergent_shards.length,
    hung: hungSearches.length,
    // A read that showed part of a transaction's group; a group not as its transactions' clients were told.
    halfTransactionReads: txnCheck.halfReads.length,
    transactionsBroken: txnCheck.broken.length,
    unsettled: run.settleFailures.length,
    faultErrors: run.faults.filter((f) => f.error).length,
    promisesBroken: run.faults.filter((f) => (f.promisesBroken?.length ?? 0) > 0).length,
  };
  let ok = Object.values(problems).every((n) => n === 0);
  let checkerVerification: Record<string, unknown> | undefined;
  if (sabotaged) {
    // The checker must report exactly the sabotaged ids (and the counts they skew), nothing else.
    const got = {
      lost: writes.lost.map((v) => v.id),
      resurrected: writes.resurrected.map((v) => v.id),
      corrupt: writes.corrupt.map((v) => v.id),
    };
    const expectedCountSkew = writes.counts.every((c) => !c.ok && c.count !== null);
    ok =
      JSON.stringify(got) === JSON.stringify({ lost: [sabotaged.lost], resurrected: [sabotaged.resurrected], corrupt: [sabotaged.corrupt] }) &&
      expectedCountSkew &&
      problems.divergent === 0 &&
      problems.hung === 0 &&
      problems.halfTransactionReads === 0 &&
      problems.transactionsBroken === 0;
    checkerVerification = { sabotaged, reported: got, countSkewDetected: expectedCountSkew, detectedExactly: ok };
  }
  const report = {
    checked: { ids: writes.idsChecked, ids_with_indeterminate_writes: writes.idsWithIndeterminateWrites, counts: writes.counts },
    lost: writes.lost,
    resurrected: writes.resurrected,
    corrupt: writes.corrupt,
    unreadable: writes.unreadable,
    divergent_shards: convergence.divergent_shards,
    transactions: { groups: txnCheck.groups, half_reads: txnCheck.halfReads.slice(0, 50), broken: txnCheck.broken.slice(0, 50) },
    hung_searches: hungSearches.slice(0, 50).map((s) => ({ ...s, startedAt: new Date(s.startedAt).toISOString(), tookMs: Math.round(s.endedAt - s.startedAt), endedAt: undefined })),
    settle_failures: run.settleFailures,
    digests: convergence.digests,
    problems,
    ...(checkerVerification ? { checker_verification: checkerVerification } : {}),
  };
  return { ok, report, problems, txns: txnCheck };
}

function opsOf(workload: Workload) {
  return {
    upserts_acked: workload.writes.upsertsAcked,
    points_upserted_acked: workload.writes.pointsUpsertedAcked,
    deletes_acked: workload.writes.deletesAcked,
    ids_deleted_acked: workload.writes.idsDeletedAcked,
    write_attempts_failed: workload.writes.attemptsFailed,
    writes_retried_then_acked: workload.writes.retriedThenAcked,
    writes_indeterminate: workload.writes.indeterminate,
    write_errors: Object.fromEntries(workload.writeErrors),
    searches: workload.searchCounts(),
  };
}

/** The summary to chaos/results/ and stdout; the raw timeline next to the node logs, for post-mortems. */
async function writeResults(
  summary: { ok: boolean; logs: string | null; problems: Record<string, number> },
  windows: FaultWindow[],
  workload: Workload,
  monitor: StatusMonitor,
): Promise<void> {
  await writeFile(
    path.join(driver.logDir, "timeline.json"),
    JSON.stringify({ faults: windows.map((w) => ({ scenario: w.record.scenario, target: w.record.target, injectedAt: w.injectedAt, windowEnd: w.windowEnd })), searches: workload.searches, status: monitor.samples }),
  ).catch(() => undefined);
  const resultsDir = path.join(chaosDir, "results");
  await mkdir(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `${new Date().toISOString().replace(/[:]/g, "-")}.json`);
  await writeFile(file, JSON.stringify(summary, null, 2) + "\n");
  process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
  progress(`summary written to ${path.relative(process.cwd(), file)} · ${summary.ok ? "OK" : `FAILED ${JSON.stringify(summary.problems)}`} · logs ${summary.logs ?? "removed"}`);
}

/**
 * --verify-checker: writes behind the workload's back (consistency all, so every
 * replica applies them alike): on chaos_rf2 deletes an acked-live id (→ lost, count one
 * low) and rewrites another with its own version but another vector (→ corrupt); on
 * chaos_rf1 re-upserts an acked-deleted id (→ resurrected, count one high).
 */
async function sabotage(c: JadeClient, workload: Workload): Promise<Sabotaged> {
  const [rf2, rf1] = [specs[0]!, specs[1]!];
  const settled = (name: string) => [...workload.histories.get(name)!.entries()].filter(([, h]) => h.indeterminate.length === 0);
  const live = settled(rf2.name).filter(([, h]) => h.acked?.kind === "live");
  const deleted = settled(rf1.name).find(([, h]) => h.acked?.kind === "deleted");
  if (live.length < 2 || !deleted) throw new Error("--verify-checker: the workload wrote too little to sabotage");
  const [lostId] = live[0]!;
  const [corruptId, corruptHistory] = live[1]!;
  const [resurrectedId] = deleted;
  const version = (corruptHistory.acked as { version: number }).version;
  await c.delete(rf2.name, { ids: [lostId], consistency: "all" });
  await c.upsert(rf2.name, {
    points: [{ id: corruptId, vector: Array.from({ length: rf2.dimension }, () => 0.25), payload: { v: version } }],
    consistency: "all",
  });
  await c.upsert(rf1.name, {
    points: [{ id: resurrectedId, vector: Array.from({ length: rf1.dimension }, () => 0.5), payload: { v: 0 } }],
    consistency: "all",
  });
  progress(`--verify-checker: sabotaged lost=${rf2.name}/${lostId} corrupt=${rf2.name}/${corruptId} resurrected=${rf1.name}/${resurrectedId}`);
  return { lost: lostId, resurrected: resurrectedId, corrupt: corruptId };
}

let code = 1;
try {
  code = await main();
} catch (err) {
  progress(`chaos run failed: ${(err as Error).stack ?? String(err)}`);
  progress(`logs kept in ${driver.logDir}`);
  code = 1;
} finally {
  await client?.close().catch(() => undefined);
  await driver.stop().catch(() => undefined);
}
process.exit(code);
