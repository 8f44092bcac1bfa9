/**
 * Upload thread entry (upload-thread.ts): uploads the node's snapshot files with a NATS
 * connection of its own, paced by the node's upload budget, and answers each with its
 * snapshot or its error as a value (the replica that asked logs it).
 */
import os from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import * as Comlink from "comlink";
import nodeEndpoint from "comlink/dist/umd/node-adapter.js";
import { connectBulk, type BulkConnection } from "../../nats/connect.ts";
import { SnapshotStore } from "../../nats/snapshots.ts";
import { errorMessage, ErrorCode, JadeError, ok } from "../../runtime/errors.ts";
import { RateLimiter, systemClock } from "../../runtime/rate-limit.ts";
import type { UploadThreadApi, UploadThreadOptions } from "./upload-thread.ts";

if (parentPort === null) throw new Error("upload-worker.ts must run in a worker thread (see upload-thread.ts)");

/**
 * A lower CPU priority for this thread only (Linux keeps a nice value per thread): where searches
 * and an upload both want a core, searches mostly get it. Not backups' 19: uploads come with
 * every save during a long import, when both cores are busy, and at 19 (1.5 % of a busy core's
 * time) a 300 MB snapshot would take minutes and hold its shard's next save back that long.
 * Lowered with the first upload, not at start: starting (loading its modules, connecting) at
 * the node's priority, the thread is ready by the time the first save is.
 */
const uploadNice = 10;
let niced = false;

function lowerPriority(): void {
  if (niced) return;
  niced = true;
  try {
    os.setPriority(uploadNice);
  } catch {
    // Not permitted here (some containers): uploads run at normal priority.
  }
}

const options = workerData as UploadThreadOptions;
const budget = new RateLimiter(options.bytesPerSec, options.bytesPerSec, systemClock);
let connecting: Promise<BulkConnection> | undefined;

/** The thread's connection, made as it starts (and again by the next upload after a failed attempt). */
function connection(): Promise<BulkConnection> {
  connecting ??= connectBulk(options.servers, options.name, { auth: options.auth }).catch((err: unknown) => {
    connecting = undefined;
    throw err;
  });
  return connecting;
}

// Its failure is the first upload's to report.
connection().catch(() => undefined);

const api: UploadThreadApi = {
  async upload(request) {
    lowerPriority();
    try {
      const bulk = await connection();
      const store = new SnapshotStore(bulk.js, options.streamReplicas);
      return ok(await store.upload(request.collection, request.uid, request.shard, request.seq, request.file, (bytes) => budget.take(bytes)));
    } catch (err) {
      // A JadeError keeps its code; anything else (a lost connection, a file gone) is unavailable.
      const error = err instanceof JadeError ? err : new JadeError(ErrorCode.Unavailable, errorMessage(err));
      return { ok: false, error: error.toWire() };
    }
  },
  async close() {
    const bulk = await connecting?.catch(() => undefined);
    await bulk?.nc.close().catch(() => undefined);
  },
};

Comlink.expose(api, nodeEndpoint(parentPort));
