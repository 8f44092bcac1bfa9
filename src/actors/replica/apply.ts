/** Applying shard-log records to a replica's index; a throttled catch-up goes in budgeted chunks. */
import type { ApplyResult, LogRecord } from "../vector-index/api.ts";
import type { ReplicaParts, ReplicaProgress } from "./types.ts";

/** Applies log records (see `transferBytesPerSecMax` for when they are throttled). */
export async function applyRecords(replica: ReplicaParts, records: LogRecord[], signal: AbortSignal): Promise<ApplyResult> {
  const { deps, index, progress } = replica;
  const throttled = replica.role().throttled;
  let result: ApplyResult | undefined;
  for (const chunk of throttled ? chunksOf(records, deps.settings.transferChunkBytesMax) : [records]) {
    const bytes = chunk.reduce((sum, r) => sum + r.data.byteLength, 0);
    if (throttled) await deps.transfer.take(bytes, signal);
    result = await index.apply(chunk);
    for (const entry of result.rejected ?? []) {
      replica.log.error({ seq: entry.seq, reason: entry.reason }, "skipped a shard-log entry that no writer could have made");
    }
    progress.transferredBytes += bytes;
    progress.consumedSeq = result.appliedSeq;
    noteIndex(progress, result);
  }
  return result!;
}

/** What the index answered an apply, load or stats with: its points, and what its graph has still to absorb. */
export function noteIndex(progress: ReplicaProgress, index: { count: number; pendingRows?: number; freshBytes?: number }): void {
  progress.count = index.count;
  progress.pendingRows = index.pendingRows ?? 0;
  progress.freshBytes = index.freshBytes ?? 0;
}

/** Splits records into runs of at most `bytesMax` (a record larger than that is a run of its own). */
function chunksOf(records: LogRecord[], bytesMax: number): LogRecord[][] {
  const chunks: LogRecord[][] = [];
  let current: LogRecord[] = [];
  let bytes = 0;
  for (const record of records) {
    if (current.length > 0 && bytes + record.data.byteLength > bytesMax) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(record);
    bytes += record.data.byteLength;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
