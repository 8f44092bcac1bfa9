/**
 * The migration's `watchTarget` effect: the target's progress, read from its heartbeats every
 * `watchIntervalMs`, and the liveness of both ends, judged as the coordinator judges death.
 */
import { fromCallback, type EventObject } from "xstate";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { WatchTargetInput, WatchTargetSentEvent } from "../../machines/migration.ts";
import { names } from "../../runtime/subjects.ts";
import type { Transfer } from "../../runtime/transfer.ts";
import type { Membership, ReplicaBeat } from "../cluster/membership.ts";
import type { PlacementStore } from "../cluster/placement-store.ts";

export interface WatchDeps {
  jsm: JetStreamManager;
  placements: PlacementStore;
  membership: Membership;
  nodeDeadAfterMs: number;
  catchUpLagMax: number;
  watchIntervalMs: number;
}

type SendBack = (event: WatchTargetSentEvent) => void;

export function watchTarget(deps: WatchDeps) {
  return fromCallback<EventObject, WatchTargetInput>(({ input, sendBack }) => {
    const look = watcher(deps, input.transfer, sendBack);
    const timer = setInterval(look, deps.watchIntervalMs);
    return () => clearInterval(timer);
  });
}

/** One look per tick; remembers what it already reported (source down, bytes copied). */
function watcher(deps: WatchDeps, t: Transfer, sendBack: SendBack): () => void {
  const { membership, nodeDeadAfterMs, catchUpLagMax } = deps;
  let sourceDown = false;
  let restoringBytes = 0;
  return () => {
    const stored = deps.placements.get(t.collection);
    // A dropped (or re-created) collection: the transfer has nothing left to move.
    if (!membership.isLive(t.to, nodeDeadAfterMs) || !stored || stored.record.uid !== t.uid) {
      sendBack({ type: "TARGET_DOWN" });
      return;
    }
    if (t.from && !sourceDown && !membership.isLive(t.from, nodeDeadAfterMs)) {
      sourceDown = true;
      sendBack({ type: "SOURCE_DOWN" });
    }
    const beat = membership.replicaBeat(t.to, t.uid, t.shard);
    if (beat?.state === "restoring" && beat.transferredBytes > restoringBytes) {
      restoringBytes = beat.transferredBytes;
      reportCopyProgress(deps, t, beat, sendBack);
    }
    // A serving or lagging target knows the log's end. A replaying one counts as progress
    // only while it shows lag: right after its restore it reports none until it has
    // asked the log, and that must never pass for caught up.
    const counts = beat && (beat.state === "serving" || beat.state === "lagging" || (beat.state === "replaying" && beat.lag > catchUpLagMax));
    if (counts) {
      sendBack({
        type: "TARGET_PROGRESS",
        appliedSeq: beat.appliedSeq,
        lastSeq: beat.appliedSeq + beat.lag,
        bytes: beat.transferredBytes,
        copyGoalBytes: beat.copyGoalBytes,
        atMs: Date.now(),
      });
    }
  };
}

/**
 * A target still copying: bytes are its progress (they keep the stall timer from firing on a
 * big shard), measured against the log's real end so it never looks caught up.
 */
function reportCopyProgress(deps: WatchDeps, t: Transfer, beat: ReplicaBeat, sendBack: SendBack): void {
  const { appliedSeq, transferredBytes: bytes, copyGoalBytes } = beat;
  void deps.jsm.streams
    .info(names.logStream(t.collection, t.shard))
    .then((info) => {
      if (info.state.last_seq > appliedSeq + deps.catchUpLagMax) {
        sendBack({ type: "TARGET_PROGRESS", appliedSeq, lastSeq: info.state.last_seq, bytes, copyGoalBytes, atMs: Date.now() });
      }
    })
    .catch(() => undefined);
}
