/**
 * CPU time per process and per thread from /proc (Linux), so a benchmark phase can say
 * where its CPU went: this process's main thread vs its other threads (index workers,
 * GC, libuv), the nats-server, a child node. CPU time is far less sensitive than wall
 * time to other load on a shared machine. Elsewhere than Linux every figure is 0.
 */
import { readFileSync } from "node:fs";

/** Kernel clock ticks per second (USER_HZ); 100 on every mainstream Linux. */
const ticksPerSecond = 100;

export interface ProcessCpu {
  /** The thread whose id is the process id: the JS main thread of a Node process. */
  mainMs: number;
  /** Every other thread of the process. */
  otherMs: number;
}

function threadMs(statText: string): number {
  // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
  const fields = statText.slice(statText.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
}

export function processCpu(pid: number | undefined): ProcessCpu {
  if (pid === undefined) return { mainMs: 0, otherMs: 0 };
  try {
    // The process line counts every thread, including threads that already ended (usearch starts
    // short-lived threads per multi-threaded call); the main thread's own line is its task entry.
    const totalMs = threadMs(readFileSync(`/proc/${pid}/stat`, "utf8"));
    const mainMs = threadMs(readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8"));
    return { mainMs, otherMs: Math.max(0, totalMs - mainMs) };
  } catch {
    return { mainMs: 0, otherMs: 0 };
  }
}

export type CpuSnapshot = Record<string, ProcessCpu>;

/** Snapshot of several named processes (pids that are undefined are skipped). */
export function cpuSnapshot(pids: Record<string, number | undefined>): CpuSnapshot {
  const snapshot: CpuSnapshot = {};
  for (const [name, pid] of Object.entries(pids)) if (pid !== undefined) snapshot[name] = processCpu(pid);
  return snapshot;
}

/** CPU ms (all threads) of the processes in `delta` whose name starts with one of `prefixes`. */
export function cpuMsOf(delta: CpuSnapshot, ...prefixes: string[]): number {
  return Object.entries(delta)
    .filter(([name]) => prefixes.some((prefix) => name.startsWith(prefix)))
    .reduce((sum, [, c]) => sum + c.mainMs + c.otherMs, 0);
}

/** after − before, per process. */
export function cpuDelta(before: CpuSnapshot, after: CpuSnapshot): CpuSnapshot {
  const delta: CpuSnapshot = {};
  for (const [name, a] of Object.entries(after)) {
    const b = before[name] ?? { mainMs: 0, otherMs: 0 };
    delta[name] = { mainMs: Math.max(0, a.mainMs - b.mainMs), otherMs: Math.max(0, a.otherMs - b.otherMs) };
  }
  return delta;
}

/** Busy CPU time of the whole machine (every process), ms, from /proc/stat; 0 elsewhere than Linux. */
export function machineBusyMs(): number {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal …
    const busy = (fields[0] ?? 0) + (fields[1] ?? 0) + (fields[2] ?? 0) + (fields[5] ?? 0) + (fields[6] ?? 0);
    return (busy * 1000) / ticksPerSecond;
  } catch {
    return 0;
  }
}

/** The child processes of `pid` (Linux; empty elsewhere or once it has ended). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Where the machine's CPU went during a phase: named processes' main and other threads, and the rest. */
export interface CpuPhase {
  wallMs: number;
  byProcess: CpuSnapshot;
  /** Busy time of every process not named (short-lived children such as a CLI import, other jobs). */
  restMs: number;
  machineMs: number;
}

/** Starts measuring; the returned function ends the phase. */
export function cpuPhase(pids: Record<string, number | undefined>): () => CpuPhase {
  const machine0 = machineBusyMs();
  const before = cpuSnapshot(pids);
  const t0 = performance.now();
  return () => {
    const byProcess = cpuDelta(before, cpuSnapshot(pids));
    const machineMs = machineBusyMs() - machine0;
    const namedMs = Object.values(byProcess).reduce((sum, c) => sum + c.mainMs + c.otherMs, 0);
    return { wallMs: Math.max(1, performance.now() - t0), byProcess, restMs: Math.max(0, machineMs - namedMs), machineMs };
  };
}
