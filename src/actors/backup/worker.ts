/**
 * Backup thread entry (thread.ts): takes one backup with a NATS connection of its own, paced
 * by its budget, and answers with its manifest or its error as a value.
 */
import os from "node:os";
import { parentPort } from "node:worker_threads";
import * as Comlink from "comlink";
import nodeEndpoint from "comlink/dist/umd/node-adapter.js";
import { connectBulk } from "../../nats/connect.ts";
import { SnapshotStore } from "../../nats/snapshots.ts";
import { errorMessage, ErrorCode, JadeError, ok, type Reply } from "../../runtime/errors.ts";
import { childLogger } from "../../runtime/log.ts";
import { RateLimiter, systemClock } from "../../runtime/rate-limit.ts";
import type { Progress } from "../../runtime/backup-schemas.ts";
import { takeBackup, type TakenBackup } from "./create.ts";
import { backupFiles } from "./store.ts";
import type { BackupThreadApi, BackupThreadEvents, BackupThreadRequest } from "./thread.ts";

if (parentPort === null) throw new Error("worker.ts must run in a worker thread (see thread.ts)");

/**
 * The lowest CPU priority, for this thread only (Linux keeps a nice value per thread: checked,
 * the other threads of the process stay at 0): where searches and the backup both want a core,
 * searches get it, and the backup takes what they leave.
 */
const backupNice = 19;
try {
  os.setPriority(backupNice);
} catch {
  // Not permitted here (some containers): the backup runs at normal priority.
}

/** How often the thread reports progress to the job's record (which is written once a second). */
const progressEveryMs = 250;

const api: BackupThreadApi = {
  async take(request: BackupThreadRequest, events: BackupThreadEvents): Promise<Reply<TakenBackup>> {
    const log = childLogger({ actor: "backup-thread", backup: request.id });
    const progress: Progress = { bytesDone: 0, bytesTotal: 0, shardsDone: 0, shardsTotal: 0 };
    // Not awaited: progress is advisory, and a lost report is followed by the next.
    const send = () => void Promise.resolve(events.progress({ ...progress })).catch(() => undefined);
    const report = setInterval(send, progressEveryMs);
    let bulk;
    try {
      bulk = await connectBulk(request.servers, `jade-backup-${request.id}`, { auth: request.auth });
      const budget = new RateLimiter(request.bytesPerSec, request.bytesPerSec, systemClock);
      const filesOf = (id: string) => backupFiles(request.location, id, bulk!.objm, request.streamReplicas);
      const taken = await takeBackup(
        { js: bulk.js, jsm: bulk.jsm, snapshots: new SnapshotStore(bulk.js, request.streamReplicas), throttle: (bytes) => budget.take(bytes), scratchDir: request.scratchDir, log },
        { id: request.id, configs: request.configs, base: request.base.map((manifest) => ({ manifest, files: filesOf(manifest.id) })), files: filesOf(request.id), progress },
        request.plan,
      );
      return ok(taken);
    } catch (err) {
      // What the job's record says: a JadeError keeps its code; anything else (a lost connection, a full disk) is unavailable.
      const error = err instanceof JadeError ? err : new JadeError(ErrorCode.Unavailable, errorMessage(err));
      return { ok: false, error: error.toWire() };
    } finally {
      clearInterval(report);
      send();
      await bulk?.nc.close().catch(() => undefined);
    }
  },
};

Comlink.expose(api, nodeEndpoint(parentPort));
