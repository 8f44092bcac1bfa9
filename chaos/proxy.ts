/**
 * A TCP fault proxy (node:net) between a jade node and one NATS server's client
 * port. It listens on 127.0.0.1:<free port> and only ever forwards to a loopback
 * target. Modes, switchable at any time:
 *   - pass:       bytes flow unchanged;
 *   - partition:  "drop" destroys every open connection and refuses new ones at once
 *                 (the peer sees a reset); "blackhole" keeps connections open but
 *                 silently discards every byte both ways and accepts new connections
 *                 that never reach the server (the peer only notices by timeouts);
 *   - latency:    each chunk is delayed by N ms, order preserved (per direction);
 *   - bandwidth:  a token bucket caps each direction at N bytes/s (shared by all
 *                 connections through this proxy).
 * Switching from latency/bandwidth back to pass releases queued bytes in order; healing
 * a partition closes the connections that lived through it (their byte streams lost
 * data), so clients reconnect cleanly.
 */
import net from "node:net";
import { delay } from "../src/runtime/async.ts";

export type ProxyMode =
  | { kind: "pass" }
  | { kind: "partition"; style: "drop" | "blackhole" }
  | { kind: "latency"; ms: number }
  | { kind: "bandwidth"; bytesPerSecond: number };

/** Bytes queued in one direction before the source socket is paused (backpressure). */
const queueHighWaterBytes = 4 * 1024 * 1024;

/** A virtual-time token bucket: each chunk reserves its transmission slot. */
class Throttle {
  #nextFreeMs = 0;
  /** How long to wait before sending `bytes` at `rate` bytes/s (reserves the slot). */
  reserve(bytes: number, rate: number): number {
    const t = performance.now();
    const start = Math.max(t, this.#nextFreeMs);
    // One second of burst, like a bucket of `rate` tokens.
    this.#nextFreeMs = start + (bytes / rate) * 1000;
    const burstMs = 1000;
    return Math.max(0, this.#nextFreeMs - t - burstMs);
  }
  reset(): void {
    this.#nextFreeMs = 0;
  }
}

interface Pipe {
  queue: { chunk: Buffer; at: number }[];
  queuedBytes: number;
  pumping: boolean;
}

export class FaultProxy {
  readonly target: { host: string; port: number };
  #server: net.Server | undefined;
  #port = 0;
  #mode: ProxyMode = { kind: "pass" };
  readonly #sockets = new Set<net.Socket>();
  readonly #throttles = { up: new Throttle(), down: new Throttle() };
  #closed = false;
  /** Connections accepted, for the summary. */
  connections = 0;

  constructor(targetPort: number, targetHost = "127.0.0.1") {
    if (!/^127\./.test(targetHost)) throw new Error(`the fault proxy only forwards to loopback, not ${targetHost}`);
    this.target = { host: targetHost, port: targetPort };
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.#port}`;
  }

  get mode(): ProxyMode {
    return this.#mode;
  }

  async listen(port = 0): Promise<void> {
    const server = net.createServer({ pauseOnConnect: true }, (client) => this.#accept(client));
    server.on("error", () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    this.#server = server;
    this.#port = (server.address() as net.AddressInfo).port;
  }

  setMode(mode: ProxyMode): void {
    const previous = this.#mode;
    this.#mode = mode;
    // Bytes were discarded mid-stream: those connections are dead (as TCP would have timed them out).
    const wasPartitioned = previous.kind === "partition" && mode.kind !== "partition";
    this.#throttles.up.reset();
    this.#throttles.down.reset();
    if ((mode.kind === "partition" && mode.style === "drop") || wasPartitioned) {
      for (const socket of this.#sockets) socket.destroy();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
    socket.on("error", () => undefined);
  }

  #accept(client: net.Socket): void {
    this.connections++;
    this.#track(client);
    const mode = this.#mode;
    if (this.#closed || (mode.kind === "partition" && mode.style === "drop")) {
      client.destroy();
      return;
    }
    if (mode.kind === "partition" && mode.style === "blackhole") {
      // Accepted, never connected upstream: the client waits for an INFO that never comes.
      client.resume();
      client.on("data", () => undefined);
      return;
    }
    const upstream = net.connect({ host: this.target.host, port: this.target.port });
    this.#track(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const closeBoth = () => {
      // In a black hole a real network does not carry the close either.
      const m = this.#mode;
      if (m.kind === "partition" && m.style === "blackhole") return;
      client.destroy();
      upstream.destroy();
    };
    client.once("close", closeBoth);
    upstream.once("close", closeBoth);
    upstream.once("connect", () => {
      this.#pipe(client, upstream, this.#throttles.up);
      this.#pipe(upstream, client, this.#throttles.down);
      client.resume();
    });
  }

  #pipe(from: net.Socket, to: net.Socket, throttle: Throttle): void {
    const pipe: Pipe = { queue: [], queuedBytes: 0, pumping: false };
    from.on("data", (chunk: Buffer) => {
      const m = this.#mode;
      if (m.kind === "partition") return; // dropped on the floor
      pipe.queue.push({ chunk, at: performance.now() });
      pipe.queuedBytes += chunk.length;
      if (pipe.queuedBytes > queueHighWaterBytes) from.pause();
      if (!pipe.pumping) void this.#pump(pipe, from, to, throttle);
    });
  }

  async #pump(pipe: Pipe, from: net.Socket, to: net.Socket, throttle: Throttle): Promise<void> {
    pipe.pumping = true;
    try {
      while (pipe.queue.length > 0 && !to.destroyed) {
        const head = pipe.queue[0]!;
        const m = this.#mode;
        if (m.kind === "partition") {
          // Bytes in flight when the partition starts are lost too.
          pipe.queue.length = 0;
          pipe.queuedBytes = 0;
          break;
        }
        if (m.kind === "latency") {
          const wait = head.at + m.ms - performance.now();
          if (wait > 0) {
            await delay(Math.min(wait, 1_000));
            continue; // re-read the mode: it may have changed while we waited
          }
        }
        if (m.kind === "bandwidth") {
          const wait = throttle.reserve(head.chunk.length, m.bytesPerSecond);
          if (wait > 0) await delay(Math.min(wait, 5_000));
        }
        pipe.queue.shift();
        pipe.queuedBytes -= head.chunk.length;
        if (pipe.queuedBytes <= queueHighWaterBytes && from.isPaused()) from.resume();
        if (!to.write(head.chunk)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              to.off("drain", done);
              to.off("close", done);
              resolve();
            };
            to.once("drain", done);
            to.once("close", done);
          });
        }
      }
    } finally {
      pipe.pumping = false;
      if (from.isPaused() && pipe.queuedBytes <= queueHighWaterBytes && !from.destroyed) from.resume();
    }
  }
}
