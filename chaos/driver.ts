/**
 * A fault driver runs a cluster and injects faults into it. Scenarios are
 * written once against this interface; the local process driver (child
 * processes on 127.0.0.1) and the compose driver (docker compose) implement it.
 */
import type { NatsAuth } from "../src/nats/auth.ts";

/** What a fault can target. */
export type Target = { kind: "node"; id: string } | { kind: "nats"; id: string };

export const FaultKind = {
  /** kill -9 (local) / docker compose kill */
  Kill: "kill",
  /** SIGSTOP (local) / docker compose pause: a hung process */
  Pause: "pause",
  /** TCP fault proxy between a node and NATS (local) / network disconnect (compose) */
  Partition: "partition",
  /** Added latency on the node ↔ NATS link, in ms */
  Latency: "latency",
  /** Bandwidth cap on the node ↔ NATS link, in bytes per second */
  Bandwidth: "bandwidth",
  /** Memory pressure on a node (a hog process / container memory limit) */
  MemoryPressure: "memory-pressure",
  /** A clean stop (SIGTERM / docker compose stop); the heal starts it again with the same id and data */
  Restart: "restart",
} as const;
export type FaultKind = (typeof FaultKind)[keyof typeof FaultKind];

export interface Fault {
  kind: FaultKind;
  target: Target;
  /** Latency ms, bandwidth bytes/s, or memory bytes, depending on the kind. */
  amount?: number;
}

export interface ClusterInfo {
  /** NATS URLs a client can connect to. */
  natsUrls: string[];
  /** How a client connects to a secured cluster (compose): TLS and the admin's credentials. */
  auth?: NatsAuth;
  nodes: string[];
  natsServers: string[];
}

export interface FaultDriver {
  readonly name: string;
  /** Starts NATS servers and jade nodes; resolves when every node is ready. */
  start(options: { nodes: number; natsServers: number }): Promise<ClusterInfo>;
  /** Injects a fault; returns a function that heals it (restart a killed process, resume, reconnect…). */
  inject(fault: Fault): Promise<() => Promise<void>>;
  /** Stops everything the driver started, even after failures. */
  stop(): Promise<void>;
}
