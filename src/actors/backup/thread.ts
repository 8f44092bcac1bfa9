/**
 * A backup's copying and digesting run on a worker thread of their own (worker.ts), with their
 * own NATS connection. On the main thread they cost searches more than their CPU: at 1M × 128-d
 * and 16 MiB/s the node's main thread went from 0.18 to 0.26–0.40 cores busy while the machine
 * still had 0.3–0.45 cores idle, and search QPS at concurrency 8 fell 15–35 % (searches queue
 * behind the main thread: gateway, router and replicas live there). The main thread keeps what
 * is the coordinator's: the plan (the cut, what each shard copies) and its holds, the job's
 * record and heartbeat, and the manifest.
 */
import { Worker } from "node:worker_threads";
import * as Comlink from "comlink";
import nodeEndpoint from "comlink/dist/umd/node-adapter.js";
import { ErrorCode, JadeError, type Reply } from "../../runtime/errors.ts";
import type { CollectionConfig } from "../../runtime/schemas.ts";
import type { BackupLocation, BackupManifest, Progress } from "../../runtime/backup-schemas.ts";
import type { BackupPlan, TakenBackup } from "./create.ts";
import { workerModule } from "../../runtime/worker-module.ts";
import type { NatsAuth } from "../../nats/auth.ts";

export interface BackupThreadRequest {
  /** For the thread's own connection. */
  servers: string[];
  auth?: NatsAuth;
  streamReplicas: number;
  id: string;
  configs: CollectionConfig[];
  /** What to copy, planned (and held) on the main thread. */
  plan: BackupPlan;
  location: BackupLocation;
  /** The manifests of the base chain, oldest first (kept at `location` too); empty for a full backup. */
  base: BackupManifest[];
  bytesPerSec: number;
  scratchDir: string;
}

export interface BackupThreadEvents {
  /** The job's progress so far (sent a few times a second). */
  progress(progress: Progress): void | Promise<void>;
}

export interface BackupThreadApi {
  /** The backup taken (every file written and checked), or why not: an error as a value, with its code. */
  take(request: BackupThreadRequest, events: BackupThreadEvents): Promise<Reply<TakenBackup>>;
}

/**
 * Takes a backup on a worker thread started for it; rejects with the job's error (its code
 * kept). `signal` ends the thread (the node is stopping): the job fails, and the next leader's
 * sweep removes what it wrote.
 */
export async function takeBackupOnThread(request: BackupThreadRequest, events: BackupThreadEvents, signal: AbortSignal): Promise<TakenBackup> {
  signal.throwIfAborted();
  const { url, execArgv } = workerModule(import.meta.url, { ts: "./worker.ts", built: "./worker.js" });
  const worker = new Worker(url, { execArgv, name: `jade-backup-${request.id}` });
  const end = () => void worker.terminate();
  signal.addEventListener("abort", end, { once: true });
  const exited = new Promise<never>((_, reject) => {
    worker.once("error", (err) => reject(new JadeError(ErrorCode.Unavailable, `the backup thread failed: ${err.message}`, { cause: err })));
    worker.once("exit", (code) => reject(new JadeError(ErrorCode.Unavailable, `the backup thread stopped (exit code ${code})`)));
  });
  const remote = Comlink.wrap<BackupThreadApi>(nodeEndpoint(worker));
  try {
    const reply = await Promise.race([remote.take(request, Comlink.proxy(events)), exited]);
    if (!reply.ok) throw JadeError.fromWire(reply.error);
    return reply.result;
  } finally {
    signal.removeEventListener("abort", end);
    remote[Comlink.releaseProxy]();
    await worker.terminate();
  }
}
