/**
 * Structured logs (pino). `JADE_LOG_LEVEL` sets the level; tests default to `error`. On a
 * terminal they are printed for people (pino-pretty); piped, or with `JADE_LOG_FORMAT=json`,
 * as JSON lines. Every line is also offered to the taps (`onLogLine`): a node ships its own
 * to `jade.logs.<node>` (actors/logs).
 */
import { Writable } from "node:stream";
import { pino, type Logger } from "pino";
import pretty from "pino-pretty";

export type { Logger };

const defaultLevel = process.env.JADE_LOG_LEVEL ?? (process.env.VITEST ? "error" : "info");

/** The level this process starts with (`JADE_LOG_LEVEL`): a node's own log.level setting. */
export const processLogLevel = defaultLevel;

type LogLineListener = (line: string) => void;
const listeners = new Set<LogLineListener>();

/** Every line the root logger writes (JSON, with its newline), while registered; returns the unregister. */
export function onLogLine(listener: LogLineListener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

const tap = new Writable({
  write(chunk: Buffer | string, _encoding, done) {
    if (listeners.size > 0) {
      const line = chunk.toString();
      for (const listener of listeners) listener(line);
    }
    done();
  },
});

function terminal(): pino.DestinationStream {
  const human = process.stderr.isTTY && process.env.JADE_LOG_FORMAT !== "json" && !process.env.VITEST;
  return human ? pretty({ destination: 2, sync: true, translateTime: "HH:MM:ss.l", ignore: "pid,hostname" }) : pino.destination(2);
}

/**
 * The level lines must reach to be written, settable at run time (`setLogLevel`: the cluster's
 * log.level). pino copies a level into each child logger when it is made, and the actors make
 * theirs at start, so the loggers themselves stay at trace and this one threshold decides.
 */
let threshold = levelValue(defaultLevel);

function levelValue(level: string): number {
  return pino.levels.values[level] ?? Number.POSITIVE_INFINITY;
}

/** Writes only lines at `level` or above from now on, in every logger of this process. */
export function setLogLevel(level: string): void {
  threshold = levelValue(level);
}

export const rootLogger: Logger = pino(
  {
    level: "trace",
    base: { pid: process.pid },
    hooks: {
      logMethod(args, method, level) {
        if (level >= threshold) method.apply(this, args);
      },
    },
  },
  pino.multistream([
    { stream: terminal(), level: "trace" },
    { stream: tap, level: "trace" },
  ]),
);

export function childLogger(bindings: Record<string, unknown>): Logger {
  return rootLogger.child(bindings);
}
