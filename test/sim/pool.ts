/**
 * Runs many seeds of the simulation: interleaved in this thread, or spread over worker threads
 * (one per core by default) so that the seeded test uses every core of the machine. A seed's
 * run is a pure function of the seed, so where it runs changes nothing but the wall time.
 *
 *   JADE_SIM_THREADS=<n>   worker threads (default: the cores available, at most 8; 1 = none)
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { SimResult } from "./config.ts";
import { runSimulation } from "./simulator.ts";
import { workerModule } from "../../src/runtime/worker-module.ts";

/** simulations run interleaved per thread (each has its own clock; they share only the event loop) */
export const CONCURRENCY = 8;
/** seeds handed to a worker at a time (small enough to balance the load at the end) */
const CHUNK = 25;

/** Messages between pool and worker. */
export type ToWorker = { seeds: number[] } | { done: true };
export type FromWorker = { ready: true } | { failures: SimResult[]; ran: number };

/** Run `seeds` in this thread, `concurrency` at a time; the failures, by seed. */
export async function runInterleaved(seeds: readonly number[], concurrency = CONCURRENCY): Promise<SimResult[]> {
  const failures: SimResult[] = [];
  let next = 0;
  const lane = async () => {
    while (next < seeds.length) {
      const seed = seeds[next++]!;
      const r = await runSimulation(seed);
      if (!r.ok) failures.push(r);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, seeds.length) }, lane));
  return failures.sort((a, b) => a.seed - b.seed);
}

export function defaultThreads(): number {
  const env = process.env.JADE_SIM_THREADS;
  if (env !== undefined) return Math.max(1, Math.trunc(Number(env)) || 1);
  return Math.min(8, Math.max(1, availableParallelism()));
}

/** How this module starts a worker: `.ts` under tsx / vitest (tsx hooks registered in the worker). */
function startWorker(): Worker {
  const { url, execArgv } = workerModule(import.meta.url, { ts: "./worker.ts", built: "./worker.js" });
  return new Worker(url, { execArgv });
}

/** Run `seeds` over `threads` worker threads (in this thread if 1); the failures, by seed. */
export async function runSeeds(seeds: readonly number[], threads = defaultThreads()): Promise<SimResult[]> {
  const count = Math.min(threads, Math.ceil(seeds.length / CHUNK));
  if (count <= 1) return runInterleaved(seeds);
  const failures: SimResult[] = [];
  let next = 0;
  let ran = 0;
  const workers = Array.from({ length: count }, startWorker);
  const feed = (w: Worker) => {
    const chunk = seeds.slice(next, next + CHUNK);
    next += chunk.length;
    w.postMessage((chunk.length > 0 ? { seeds: chunk } : { done: true }) satisfies ToWorker);
  };
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            w.on("message", (m: FromWorker) => {
              if ("failures" in m) {
                failures.push(...m.failures);
                ran += m.ran;
              }
              feed(w);
            });
            w.on("error", reject);
            w.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`simulation worker exited with code ${code}`))));
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  if (ran !== seeds.length) throw new Error(`simulation pool: ran ${ran} of ${seeds.length} seeds`);
  return failures.sort((a, b) => a.seed - b.seed);
}
