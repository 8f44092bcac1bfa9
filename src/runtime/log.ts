/** Structured logs (pino). `JADE_LOG_LEVEL` sets the level; tests default to `error`. */
import { pino, type Logger } from "pino";

export type { Logger };

const defaultLevel = process.env.JADE_LOG_LEVEL ?? (process.env.VITEST ? "error" : "info");

export const rootLogger: Logger = pino({ level: defaultLevel, base: { pid: process.pid } }, pino.destination(2));

export function childLogger(bindings: Record<string, unknown>): Logger {
  return rootLogger.child(bindings);
}
