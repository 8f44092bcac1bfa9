/**
 * Snapshot uploads run on a worker thread of their own (upload-worker.ts), with their own NATS
 * connection, as backups do (actors/backup/thread.ts). On the main thread an upload cost the
 * searches more than its CPU: every 1 MiB chunk allocates a few MiB of buffers (the file read,
 * nats.js's object store and its outbound copy), and V8 counts those young buffers against the
 * old generation's limit. At 32 MiB/s the main isolate (34 MB of heap) ran a full mark-compact
 * every ~90 ms for as long as an upload lasted: 203 of them in 19 s of uploads at 300,000 × 128
 * (1.3 s of pauses, 8–20 ms each, and marking on the helper threads), and the searches that
 * overlapped an upload read p95 27–33 ms against 5.6–7.2 ms between them. The thread's isolate
 * holds a few MB, so its collections are short and hold up no search.
 * One thread serves every upload of the node: started with the node, so the first upload does not
 * wait for it (a thread under tsx takes a second or two), and again by the next upload after it
 * stopped.
 */
import { Worker } from "node:worker_threads";
import * as Comlink from "comlink";
import nodeEndpoint from "comlink/dist/umd/node-adapter.js";
import { withDeadline } from "../../runtime/async.ts";
import { ErrorCode, JadeError, type Reply } from "../../runtime/errors.ts";
import { workerModule, type WorkerModule } from "../../runtime/worker-module.ts";
import type { NatsAuth } from "../../nats/auth.ts";
import type { SnapshotRef } from "../../nats/snapshots.ts";

export interface UploadThreadOptions {
  /** For the thread's own connection, named `name`. */
  servers: string[];
  auth?: NatsAuth | undefined;
  name: string;
  streamReplicas: number;
  /** The node's upload budget: every upload of the node shares it. */
  bytesPerSec: number;
}

/** One snapshot file to upload as the shared snapshot of a shard at `seq` (nats/snapshots.ts). */
export interface UploadRequest {
  collection: string;
  uid: string;
  shard: number;
  seq: number;
  file: string;
}

export interface UploadThreadApi {
  upload(request: UploadRequest): Promise<Reply<SnapshotRef>>;
  /** Closes the thread's connection (in-flight uploads fail). */
  close(): Promise<void>;
}

/** What replicas upload through (ReplicaDeps.uploader). */
export interface SnapshotUploader {
  upload(request: UploadRequest): Promise<SnapshotRef>;
}

interface Running {
  worker: Worker;
  remote: Comlink.Remote<UploadThreadApi>;
  /** Rejects once the thread stops, whatever the reason. */
  exited: Promise<never>;
}

/** A stopping node waits this long for the thread to close its connection, then ends it anyway. */
const closeTimeoutMs = 5_000;

const uploadWorker = workerModule(import.meta.url, { ts: "./upload-worker.ts", built: "./upload-worker.js" });

export class UploadThread implements SnapshotUploader {
  readonly #options: UploadThreadOptions;
  readonly #entry: WorkerModule;
  #running: Running | undefined;
  #closed = false;

  /** `entry` is the thread's module: upload-worker.ts, or a test's stand-in. */
  constructor(options: UploadThreadOptions, entry: WorkerModule = uploadWorker) {
    this.#options = options;
    this.#entry = entry;
  }

  /** Starts the thread (and its connection) ahead of the first upload. */
  start(): void {
    if (!this.#closed && !this.#running) this.#start();
  }

  /** Uploads the file; rejects with the upload's error (a JadeError keeps its code). */
  async upload(request: UploadRequest): Promise<SnapshotRef> {
    if (this.#closed) throw new JadeError(ErrorCode.Unavailable, "the node is stopping: no snapshot is uploaded");
    const { remote, exited } = this.#running ?? this.#start();
    const reply = await Promise.race([remote.upload(request), exited]);
    if (!reply.ok) throw JadeError.fromWire(reply.error);
    return reply.result;
  }

  /** Ends the thread and its connection; uploads in flight fail, later ones are refused. */
  async close(): Promise<void> {
    this.#closed = true;
    const running = this.#running;
    if (!running) return;
    await withDeadline(running.remote.close(), closeTimeoutMs, () => new Error("the upload thread did not close")).catch(() => undefined);
    running.remote[Comlink.releaseProxy]();
    await running.worker.terminate();
  }

  #start(): Running {
    const { url, execArgv } = this.#entry;
    const worker = new Worker(url, { execArgv, name: this.#options.name, workerData: this.#options });
    const exited = new Promise<never>((_, reject) => {
      const stopped = (err: JadeError) => {
        if (this.#running?.worker === worker) this.#running = undefined;
        reject(err);
      };
      worker.once("error", (err) => stopped(new JadeError(ErrorCode.Unavailable, `the upload thread failed: ${err.message}`, { cause: err })));
      worker.once("exit", (code) => stopped(new JadeError(ErrorCode.Unavailable, `the upload thread stopped (exit code ${code})`)));
    });
    // Nobody may be waiting when the thread stops between uploads.
    exited.catch(() => undefined);
    const running = { worker, remote: Comlink.wrap<UploadThreadApi>(nodeEndpoint(worker)), exited };
    this.#running = running;
    return running;
  }
}
