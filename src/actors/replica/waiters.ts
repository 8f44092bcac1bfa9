/**
 * Read-your-writes waiters: callers waiting for a replica to reach a sequence.
 * Bounded: past `waitersMax` a new wait is refused rather than queued forever.
 */
import { ErrorCode, JadeError } from "../../runtime/errors.ts";

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export const waitersMax = 10_000;

export class AppliedWaiters {
  #waiters = new Set<Waiter>();

  wait(seq: number, timeoutMs: number, onTimeout: () => Error): Promise<void> {
    if (this.#waiters.size >= waitersMax) {
      return Promise.reject(new JadeError(ErrorCode.RateLimited, "too many reads waiting for this replica"));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        seq,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(onTimeout());
        }, timeoutMs),
      };
      this.#waiters.add(waiter);
    });
  }

  progress(appliedSeq: number): void {
    for (const w of this.#waiters) {
      if (w.seq <= appliedSeq) {
        clearTimeout(w.timer);
        this.#waiters.delete(w);
        w.resolve();
      }
    }
  }

  rejectAll(reason: () => Error): void {
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(reason());
    }
    this.#waiters.clear();
  }
}
