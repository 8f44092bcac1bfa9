/**
 * Progress bars on stderr for the long phases of the dataset generator and the peers
 * benchmark, so stdout stays a clean table. Without a TTY (output sent to a log) a bar prints
 * one line every notTtyIntervalMs instead of redrawing.
 */
import cliProgress from "cli-progress";

const notTtyIntervalMs = 10_000;
const tickerIntervalMs = 1_000;
const labelWidth = 16;

function bar(format: string): cliProgress.SingleBar {
  return new cliProgress.SingleBar(
    { format, stream: process.stderr, hideCursor: true, noTTYOutput: true, notTTYSchedule: notTtyIntervalMs },
    cliProgress.Presets.shades_classic,
  );
}

/**
 * Lets a bar redraw during long synchronous work (a native add loop): without a TTY, bars draw
 * only from a timer, which cannot fire while the loop holds the event loop.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A bar from 0 to `total`; update(done) moves it, stop() ends the line. */
export function progressBar(label: string, total: number): cliProgress.SingleBar {
  const progress = bar(`  ${label.padEnd(labelWidth)} [{bar}] {percentage}% | {value}/{total} | eta {eta_formatted}`);
  progress.start(total, 0);
  return progress;
}

/** Runs `work` with a bar that it advances through its callback; the bar stops however work ends. */
export async function withProgress<T>(label: string, total: number, work: (advance: (done: number) => void) => T | Promise<T>): Promise<T> {
  const progress = progressBar(label, total);
  try {
    return await work((done) => progress.update(done));
  } finally {
    progress.stop();
  }
}

/**
 * For a phase whose progress cannot be observed (a native call that reports nothing): shows
 * the elapsed time, once a second, until `work` settles.
 */
export async function withTicker<T>(label: string, work: () => Promise<T>): Promise<T> {
  const ticker = bar(`  ${label.padEnd(labelWidth)} running for {duration_formatted}`);
  ticker.start(1, 0);
  const timer = setInterval(() => ticker.update(0), tickerIntervalMs);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    ticker.update(1);
    ticker.stop();
  }
}
