/**
 * Memory of a child node, read through the V8 inspector (the node is started with
 * `--inspect=127.0.0.1:0`): a full garbage collection of the main thread and of every
 * index worker (through the NodeWorker domain), then `process.memoryUsage()`. Without
 * the collections, RSS under a fuzz load swings by ±70 MiB with the garbage of 8 MiB
 * bodies and says nothing about leaks.
 */
import WebSocket from "ws";
import { waitFor } from "../support/harness.ts";
import { delay } from "../../src/runtime/async.ts";

export interface MemoryUsage {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

interface ProtocolMessage {
  id?: number;
  method?: string;
  result?: unknown;
  params?: { sessionId?: string; message?: string };
}

export class Inspector {
  readonly #socket: WebSocket;
  /** Replies awaited, by `<session>:<id>` (the main thread's session is ""). */
  readonly #pending = new Map<string, (result: unknown) => void>();
  /** Sessions of the attached worker threads. */
  readonly #workers = new Set<string>();
  #next = 1;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.on("message", (data) => this.#receive(JSON.parse(String(data)) as ProtocolMessage, ""));
  }

  #receive(message: ProtocolMessage, session: string): void {
    if (message.method === "NodeWorker.attachedToWorker" && message.params?.sessionId) this.#workers.add(message.params.sessionId);
    else if (message.method === "NodeWorker.detachedFromWorker" && message.params?.sessionId) this.#workers.delete(message.params.sessionId);
    else if (message.method === "NodeWorker.receivedMessageFromWorker" && message.params?.sessionId && message.params.message) {
      this.#receive(JSON.parse(message.params.message) as ProtocolMessage, message.params.sessionId);
    } else if (message.id !== undefined) {
      const key = `${session}:${message.id}`;
      this.#pending.get(key)?.(message.result);
      this.#pending.delete(key);
    }
  }

  /** Connects to the inspector a child announced on stderr ("Debugger listening on ws://…"). */
  static async connect(output: string[]): Promise<Inspector> {
    const url = await waitFor(() => output.map((l) => /Debugger listening on (ws:\/\/\S+)/.exec(l)?.[1]).find(Boolean), { what: "the inspector's address" });
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("error", reject);
    });
    const inspector = new Inspector(socket);
    await inspector.call("NodeWorker.enable", { waitForDebuggerOnStart: false });
    return inspector;
  }

  /** A protocol call on the main thread, or (with `session`) on one worker thread. */
  call(method: string, params: Record<string, unknown> = {}, session = ""): Promise<unknown> {
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#pending.set(`${session}:${id}`, resolve);
      const message = JSON.stringify({ id, method, params });
      if (session === "") this.#socket.send(message);
      else this.#socket.send(JSON.stringify({ id: this.#next++, method: "NodeWorker.sendMessageToWorker", params: { sessionId: session, message } }));
    });
  }

  /** process.memoryUsage() right after full collections of every thread's heap. */
  async memoryAfterGc(): Promise<MemoryUsage> {
    for (const session of ["", ...this.#workers]) {
      await this.call("HeapProfiler.collectGarbage", {}, session);
      await this.call("HeapProfiler.collectGarbage", {}, session);
    }
    const result = (await this.call("Runtime.evaluate", { expression: "JSON.stringify(process.memoryUsage())", returnByValue: true })) as { result: { value: string } };
    return JSON.parse(result.result.value) as MemoryUsage;
  }

  /**
   * The median of three readings a second apart, each after a full collection: the index
   * workers' own heaps are not collected from here, and a single reading of RSS still
   * varies by about ±20 MiB with their garbage.
   */
  async settledMemory(): Promise<MemoryUsage> {
    const readings: MemoryUsage[] = [];
    for (let i = 0; i < 3; i++) {
      if (i > 0) await delay(1_000);
      readings.push(await this.memoryAfterGc());
    }
    return readings.sort((a, b) => a.rss - b.rss)[1]!;
  }

  close(): void {
    this.#socket.close();
  }
}
