/**
 * Memory of a child node, read through the V8 inspector (the node is started with
 * `--inspect=127.0.0.1:0`): a full garbage collection first, then
 * `process.memoryUsage()`. Without the collection, RSS under a fuzz load swings by
 * ±70 MiB with the garbage of 8 MiB bodies and says nothing about leaks.
 */
import WebSocket from "ws";
import { waitFor } from "../support/harness.ts";

export interface MemoryUsage {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export class Inspector {
  readonly #socket: WebSocket;
  readonly #pending = new Map<number, (result: unknown) => void>();
  #next = 1;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.on("message", (data) => {
      const message = JSON.parse(String(data)) as { id?: number; result?: unknown };
      if (message.id === undefined) return;
      this.#pending.get(message.id)?.(message.result);
      this.#pending.delete(message.id);
    });
  }

  /** Connects to the inspector a child announced on stderr ("Debugger listening on ws://…"). */
  static async connect(output: string[]): Promise<Inspector> {
    const url = await waitFor(() => output.map((l) => /Debugger listening on (ws:\/\/\S+)/.exec(l)?.[1]).find(Boolean), { what: "the inspector's address" });
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("error", reject);
    });
    return new Inspector(socket);
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#next++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.#socket.send(JSON.stringify({ id, method, params }));
    });
  }

  /** process.memoryUsage() of the node's main thread right after two full collections. */
  async memoryAfterGc(): Promise<MemoryUsage> {
    await this.call("HeapProfiler.collectGarbage");
    await this.call("HeapProfiler.collectGarbage");
    const result = (await this.call("Runtime.evaluate", { expression: "JSON.stringify(process.memoryUsage())", returnByValue: true })) as { result: { value: string } };
    return JSON.parse(result.result.value) as MemoryUsage;
  }

  close(): void {
    this.#socket.close();
  }
}
