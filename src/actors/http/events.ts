/**
 * `GET /v1/events`: the dashboard's live feed as Server-Sent Events. One ticker per node, not
 * one per page: every `tickMs` the cluster status (and the leader's migrations) is computed
 * once and sent to every open page; every node's log lines (`jade.logs.>`) are forwarded as
 * they arrive, while at least one page listens. A page that does not keep up (more than
 * `pendingBytesMax` unsent) misses events rather than growing the node's memory.
 */
import type { ServerResponse } from "node:http";
import type { NatsConnection, Subscription } from "@nats-io/nats-core";
import type { Logger } from "../../runtime/log.ts";
import { subjects } from "../../runtime/subjects.ts";

/** How often the status is pushed. */
export const eventsTickMs = 1_000;
/** Pages at once per node: each costs a socket and a share of every tick. */
export const eventPagesMax = 64;
/** Bytes a page may have unsent before it misses events. */
const pendingBytesMax = 1024 * 1024;

export interface LiveSources {
  status(): Promise<unknown>;
  migrations(): Promise<unknown>;
}

export class LiveEvents {
  readonly #nc: NatsConnection;
  readonly #sources: LiveSources;
  readonly #log: Logger;
  readonly #pages = new Set<ServerResponse>();
  #ticker: NodeJS.Timeout | undefined;
  #logs: Subscription | undefined;
  #ticking = false;

  constructor(nc: NatsConnection, sources: LiveSources, log: Logger) {
    this.#nc = nc;
    this.#sources = sources;
    this.#log = log;
  }

  get full(): boolean {
    return this.#pages.size >= eventPagesMax;
  }

  /** Takes over a response: headers, then events until the page goes away or the node stops. */
  open(res: ServerResponse): void {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    res.write("retry: 2000\n\n");
    this.#pages.add(res);
    res.on("close", () => this.#close(res));
    if (this.#pages.size === 1) this.#start();
    void this.#tick();
  }

  /** Ends every page (the node is stopping). */
  closeAll(): void {
    for (const res of this.#pages) res.end();
    this.#pages.clear();
    this.#stop();
  }

  #close(res: ServerResponse): void {
    this.#pages.delete(res);
    if (this.#pages.size === 0) this.#stop();
  }

  #start(): void {
    this.#ticker = setInterval(() => void this.#tick(), eventsTickMs);
    this.#ticker.unref();
    this.#logs = this.#nc.subscribe(subjects.logsWildcard, { callback: (_err, msg) => this.#send("log", msg.string().trimEnd()) });
  }

  #stop(): void {
    clearInterval(this.#ticker);
    this.#ticker = undefined;
    this.#logs?.unsubscribe();
    this.#logs = undefined;
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#pages.size === 0) return;
    this.#ticking = true;
    try {
      const [status, migrations] = await Promise.allSettled([this.#sources.status(), this.#sources.migrations()]);
      if (status.status === "fulfilled") this.#send("status", JSON.stringify(status.value));
      this.#send("migrations", JSON.stringify(migrations.status === "fulfilled" ? migrations.value : { unavailable: String(migrations.reason) }));
    } catch (err) {
      this.#log.warn({ err }, "live events tick failed");
    } finally {
      this.#ticking = false;
    }
  }

  #send(event: string, data: string): void {
    const frame = `event: ${event}\ndata: ${data.replaceAll("\n", "\ndata: ")}\n\n`;
    for (const res of this.#pages) {
      if (res.writableLength > pendingBytesMax) continue;
      res.write(frame);
    }
  }
}
