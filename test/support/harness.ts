/**
 * The one small harness every integration test uses: real nats-servers and
 * real nodes (in this process or as child processes) on free ports, temp dirs,
 * and cleanup of everything started, even when a test fails.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { JadeClient } from "../../src/client/client.ts";
import { startEmbeddedNats, type EmbeddedNats, type EmbeddedNatsOptions } from "../../src/nats/embedded.ts";
import { JadeNode, type NodeOptions } from "../../src/node.ts";
import type { NatsAuth } from "../../src/nats/auth.ts";
import { randomVectors, seededRandom } from "./random.ts";
import { delay } from "../../src/runtime/async.ts";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const jadeBin = path.join(repoRoot, "bin/jade.mjs");

/** Polls `check` until it returns a value other than undefined/false, or throws after the deadline. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = performance.now() + (options.timeoutMs ?? 30_000);
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as T;
    } catch (err) {
      lastError = err;
    }
    if (performance.now() > deadline) {
      throw new Error(`timed out waiting for ${options.what ?? "condition"}${lastError ? `: ${String(lastError)}` : ""}`);
    }
    await delay(options.intervalMs ?? 50);
  }
}

export interface ChildNode {
  process: ChildProcess;
  /** The line with `ready`. */
  readyLine: string;
  natsUrl: string;
  /** The HTTP base URL from the ready line ("" when the node serves no HTTP). */
  httpUrl: string;
  output: string[];
  kill9(): Promise<void>;
  stop(): Promise<void>;
  /** SIGSTOP / SIGCONT: a hung node. */
  pause(): void;
  resume(): void;
}

/**
 * Children still running when this test process exits (vitest ends a fork that timed out a test
 * without waiting for its hooks: a fuzz run's node was seen outliving it so) are SIGKILLed then.
 * `exit` handlers run synchronously, and `kill` is a synchronous system call.
 */
const liveChildren = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of liveChildren) child.kill("SIGKILL");
});

export class Harness {
  readonly #cleanups: (() => Promise<unknown>)[] = [];

  readonly #dirs: string[] = [];
  /** How each server of `natsCluster` was started: `natsKillAndRestart` starts it again so. */
  readonly #clusterOptions = new Map<EmbeddedNats, EmbeddedNatsOptions>();

  async tempDir(prefix = "jade-test-"): Promise<string> {
    const dir = await mkdtemp(path.join(tmpdir(), prefix));
    this.#dirs.push(dir);
    this.#cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  /** A nats-server with JetStream; `options`: TLS and an authorization file (test/security.e2e.test.ts), a monitoring port. */
  async nats(dataDir?: string, options: Pick<EmbeddedNatsOptions, "tls" | "authorizationFile" | "monitorPort"> = {}): Promise<EmbeddedNats> {
    const server = await startEmbeddedNats({ dataDir: dataDir ?? (await this.tempDir("jade-nats-")), ...options });
    this.#cleanups.push(() => server.kill());
    return server;
  }

  /**
   * A NATS cluster of `size` servers with JetStream, routed to each other on free
   * loopback ports. Resolves once every server is ready (JetStream may still be
   * electing its meta leader: nodes retry their setup until it is).
   */
  async natsCluster(size = 3, secure: Pick<EmbeddedNatsOptions, "tls" | "authorizationFile"> = {}): Promise<EmbeddedNats[]> {
    const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
    const routes = clusterPorts.map((p) => `nats://127.0.0.1:${p}`);
    const servers = await Promise.all(
      clusterPorts.map(async (port, i) => {
        const options = { dataDir: await this.tempDir(`jade-nats${i + 1}-`), serverName: `s${i + 1}`, cluster: { name: "jade", port, routes }, ...secure };
        const server = await startEmbeddedNats(options);
        this.#clusterOptions.set(server, options);
        this.#cleanups.push(() => server.kill());
        return server;
      }),
    );
    return servers;
  }

  /**
   * Kills a server of `natsCluster` with -9 and starts it again on its data and cluster port
   * (on a new client port); `onLog` hears every line the new process logs. Resolves once it
   * says it is ready: JetStream may still be replaying its metadata.
   */
  async natsKillAndRestart(server: EmbeddedNats, onLog?: (line: string) => void): Promise<EmbeddedNats> {
    const options = this.#clusterOptions.get(server);
    if (!options) throw new Error("bug: natsKillAndRestart takes a server natsCluster started");
    await server.kill();
    const again = await startEmbeddedNats({ ...options, ...(onLog ? { onLog } : {}) });
    this.#clusterOptions.set(again, options);
    this.#cleanups.push(() => again.kill());
    return again;
  }

  /** A plain NATS connection (a test's own KV, subscriptions, raw requests), closed with the harness. */
  async connect(url: string): Promise<NatsConnection> {
    const nc = await connect({ servers: url });
    this.#cleanups.push(() => nc.close());
    return nc;
  }

  async node(servers: string[], options: Partial<NodeOptions> = {}): Promise<JadeNode> {
    const node = await JadeNode.start({ servers, dataDir: await this.tempDir("jade-node-"), ...options });
    this.#cleanups.push(() => node.stop());
    return node;
  }

  /** One nats-server and one in-process node on it; returns a client of it. */
  async singleNode(options: Partial<NodeOptions> = {}): Promise<JadeClient> {
    const nats = await this.nats();
    await this.node([nats.url], options);
    return this.client(nats.url);
  }

  async client(servers: string | string[], auth?: NatsAuth): Promise<JadeClient> {
    const client = await JadeClient.connect({ servers, timeoutMs: 30_000, ...(auth ? { auth } : {}) });
    this.#cleanups.push(() => client.close());
    return client;
  }

  /** Runs `jade <args>` as a child process and resolves once it prints its `ready` line. */
  async spawnJade(args: string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ChildNode> {
    const child = spawn(process.execPath, [jadeBin, ...args], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, JADE_LOG_LEVEL: "warn", ...options.env },
    });
    const output: string[] = [];
    liveChildren.add(child);
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    void exited.then(() => liveChildren.delete(child));
    const kill = async (signal: NodeJS.Signals) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    };
    this.#cleanups.push(() => kill("SIGKILL"));
    createInterface({ input: child.stderr! }).on("line", (l) => output.push(l));
    const readyLine = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`jade ${args[0]} not ready:\n${output.slice(-20).join("\n")}`)), options.timeoutMs ?? 60_000);
      createInterface({ input: child.stdout! }).on("line", (line) => {
        output.push(line);
        if (line.includes("ready")) {
          clearTimeout(timer);
          resolve(line);
        }
      });
      // "close", not "exit": by then every line it printed has been read.
      child.once("close", (code) => {
        clearTimeout(timer);
        reject(new Error(`jade ${args[0]} exited with ${code} before ready:\n${output.slice(-20).join("\n")}`));
      });
    });
    const natsUrl = /nats=([^\s,]+)/.exec(readyLine)?.[1] ?? "";
    const httpUrl = /http=(\S+)/.exec(readyLine)?.[1] ?? "";
    return {
      process: child,
      readyLine,
      natsUrl,
      httpUrl,
      output,
      kill9: () => kill("SIGKILL"),
      stop: () => kill("SIGTERM"),
      pause: () => void child.kill("SIGSTOP"),
      resume: () => void child.kill("SIGCONT"),
    };
  }

  /** Stops everything this harness started, newest first. */
  async close(): Promise<void> {
    for (const cleanup of this.#cleanups.reverse()) {
      await cleanup().catch(() => undefined);
    }
    this.#cleanups.length = 0;
    // A child's own children (the nats-server of a `jade dev` killed with -9) outlive it: kill
    // whatever still runs on one of our directories, so a failed test leaves nothing behind.
    if (await killProcessesUsing(this.#dirs)) await Promise.all(this.#dirs.map((dir) => rm(dir, { recursive: true, force: true })));
    this.#dirs.length = 0;
  }
}

/** A free TCP port on the loopback interface (for NATS cluster routes, which must be known up front). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** `count` seeded random vectors as plain arrays (the API's JSON shape). */
export function randomPoints(count: number, dimension: number, seed: number): number[][] {
  const flat = randomVectors(seededRandom(seed), count, dimension);
  return Array.from({ length: count }, (_, i) => Array.from(flat.subarray(i * dimension, (i + 1) * dimension)));
}

/** SIGKILLs every process whose command line names one of `dirs` (Linux /proc); true if it found any. */
async function killProcessesUsing(dirs: readonly string[]): Promise<boolean> {
  if (dirs.length === 0) return false;
  let found = false;
  const pids = await readdir("/proc").catch(() => [] as string[]);
  for (const pid of pids) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (dirs.some((dir) => cmdline.includes(dir))) {
      found = true;
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // Gone already.
      }
    }
  }
  return found;
}
