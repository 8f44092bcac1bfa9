/**
 * Following a background job (a backup or a restore) by its record: polled until it ends,
 * its progress told to `onProgress` on the way.
 */
import { delay } from "../runtime/async.ts";
import { ErrorCode, JadeError } from "../runtime/errors.ts";

interface JobRecord {
  id: string;
  state: string;
  error?: { code: string; message: string };
}

export interface JobWaitOptions<T> {
  /** Default 1 h. */
  timeoutMs?: number;
  /** Default 250 ms. */
  intervalMs?: number;
  onProgress?: (record: T) => void;
}

export async function waitForJob<T extends JobRecord>(list: () => Promise<T[]>, id: string, what: string, options: JobWaitOptions<T>): Promise<T> {
  const deadline = performance.now() + (options.timeoutMs ?? 3_600_000);
  for (;;) {
    // A job outlives a change of leader (its record is in KV): a moment without one is waited out.
    const records = await list().catch((err: unknown) => {
      if (err instanceof JadeError && err.retryable && performance.now() < deadline) return undefined;
      throw err;
    });
    if (records === undefined) {
      await delay(options.intervalMs ?? 250);
      continue;
    }
    const record = records.find((r) => r.id === id);
    if (!record) throw new JadeError(ErrorCode.NotFound, `no ${what} ${id}`);
    options.onProgress?.(record);
    if (record.state === "complete") return record;
    if (record.state === "failed") {
      const code = Object.values(ErrorCode).find((c) => c === record.error?.code) ?? ErrorCode.Internal;
      throw new JadeError(code, `${what} ${id} failed: ${record.error?.message ?? "no reason recorded"}`, { details: record });
    }
    if (performance.now() >= deadline) throw new JadeError(ErrorCode.Timeout, `${what} ${id} still running after ${Math.round((options.timeoutMs ?? 3_600_000) / 1000)} s`);
    await delay(options.intervalMs ?? 250);
  }
}
