/**
 * Ships this node's log lines to `jade.logs.<node>` (kept an hour in the stream `JADE_LOGS`),
 * so `jade logs`, diagnostics and the dashboard read every node's logs from NATS. Plain
 * publishes, no acks: a log line must never slow the node down. Bounded: past
 * `logShippingBytesPerSecMax` (with a burst of as much), and while disconnected, lines are
 * dropped and counted (`jade_log_lines_dropped_total`); the terminal still gets them all.
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { onLogLine } from "../../runtime/log.ts";
import { RateLimiter, systemClock } from "../../runtime/rate-limit.ts";
import { subjects } from "../../runtime/subjects.ts";

/** A node logging this much per second is broken anyway; its lines must not also flood NATS. */
export const logShippingBytesPerSecMax = 256 * 1024;
/** Lines longer than this (a huge error) are cut: a log line is for reading. */
export const logLineBytesMax = 16 * 1024;

export class LogShipper {
  readonly #nc: NatsConnection;
  readonly #nodeId: string;
  readonly #connected: () => boolean;
  readonly #budget = new RateLimiter(logShippingBytesPerSecMax, logShippingBytesPerSecMax, systemClock);
  #dropped = 0;
  #stop: (() => void) | undefined;

  constructor(nc: NatsConnection, nodeId: string, connected: () => boolean) {
    this.#nc = nc;
    this.#nodeId = nodeId;
    this.#connected = connected;
  }

  /** Lines dropped so far (over the budget, or while disconnected). */
  get dropped(): number {
    return this.#dropped;
  }

  start(): void {
    this.#stop = onLogLine((line) => this.#ship(line));
  }

  stop(): void {
    this.#stop?.();
    this.#stop = undefined;
  }

  #ship(line: string): void {
    // Several nodes may share a process (tests): each ships the lines of its own logger.
    if (!this.#isOwn(line)) return;
    const data = line.length > logLineBytesMax ? `${line.slice(0, logLineBytesMax)}…\n` : line;
    if (!this.#connected() || this.#budget.delayMs(data.length) > 0) {
      this.#dropped++;
      return;
    }
    void this.#budget.take(data.length);
    try {
      this.#nc.publish(subjects.logs(this.#nodeId), data);
    } catch {
      this.#dropped++;
    }
  }

  #isOwn(line: string): boolean {
    try {
      return (JSON.parse(line) as { node?: unknown }).node === this.#nodeId;
    } catch {
      return false;
    }
  }
}
