/**
 * The local process driver: everything is a child process on 127.0.0.1.
 *   - N nats-servers clustered with JetStream (chaos/nats.ts: fixed ports, no_advertise);
 *   - per jade node and per NATS server a TCP fault proxy (chaos/proxy.ts); a node's
 *     `--nats` lists only its own proxies, so a partition isolates exactly that node;
 *   - M jade nodes: `node bin/jade.mjs start --nats <its proxies> --node-id nX --data DIR
 *     --stream-replicas 3`, ready when they print their `ready` line.
 * Faults and their heal:
 *   kill (node)       SIGKILL → restart with the same id and data dir
 *   kill (nats)       SIGKILL → restart that server with the same store and ports
 *   pause             SIGSTOP → SIGCONT
 *   partition         every proxy of the node: amount 1 = "blackhole" (bytes vanish, nothing
 *                     closes), otherwise "drop" (connections reset, new ones refused) → pass
 *   latency           every proxy of the node delays each chunk by `amount` ms → pass
 *   bandwidth         every proxy of the node caps each direction at `amount` bytes/s → pass
 *   memory-pressure   a hog child allocating and touching `amount` bytes (capped) → killed
 *   restart           SIGTERM, waits for the clean exit → start with the same id and data dir
 * A nats-server that exits on its own is started again at once, as systemd, compose's
 * `restart: unless-stopped` or Kubernetes would: nats-server 2.9.10 can panic while it recovers
 * a sealed object-store stream after a kill -9 (seen once in CI: nil pointer in
 * monitorCluster, 50 ms after start), and a cluster left one server short for the rest of the
 * run would test that, not the fault at hand. Each such restart is reported in the summary.
 * Temp dirs live under os.tmpdir(); stop() kills everything, even after failures.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { ClusterInfo, Fault, FaultDriver } from "./driver.ts";
import { startChaosNats, type ChaosNats, type ChaosNatsOptions } from "./nats.ts";
import { FaultProxy, type ProxyMode } from "./proxy.ts";
import { delay, freePort, progress, withTimeout } from "./util.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const jadeBin = path.join(repoRoot, "bin/jade.mjs");

/** A supervisor's restarts of a nats-server that keeps dying, and the pause before each. */
const natsRestartsMax = 5;
const natsRestartDelayMs = 1_000;

/** The memory hog never takes more than this, whatever the fault asks for. */
export const memoryPressureBytesMax = 512 * 1024 * 1024;

export interface LocalDriverOptions {
  /** Passed to every node as --node-dead-after-ms (default: the node's own, 8 s). */
  nodeDeadAfterMs?: number;
  /** Index worker threads per node (default 1: the CI machine has 2 cores for 3 nodes). */
  workers?: number;
  /** JADE_LOG_LEVEL of the nodes (their logs go to files under logDir). */
  logLevel?: string;
  readyTimeoutMs?: number;
}

interface NodeProc {
  id: string;
  dataDir: string;
  args: string[];
  proxies: FaultProxy[];
  child: ChildProcess | undefined;
  log: WriteStream;
  paused: boolean;
  /** Set when the driver kills or stops the process: any other exit is a crash. */
  exitRequested: boolean;
}

interface NatsProc {
  options: ChaosNatsOptions;
  server: ChaosNats | undefined;
  /** Killed by a fault (not to be restarted until its heal). */
  down: boolean;
}

/** A nats-server that exited without a fault asking for it, and was started again. */
export interface NatsCrash {
  server: string;
  at: string;
  code: number | null;
  signal: string | null;
}

/** A jade node that exited without the driver asking it to: a bug (a native abort, an unhandled error), never a fault's doing. */
export interface NodeCrash {
  node: string;
  at: string;
  code: number | null;
  signal: string | null;
  log: string;
}

export class LocalDriver implements FaultDriver {
  readonly name = "local";
  readonly #options: LocalDriverOptions;
  #root = "";
  #logDir = "";
  readonly #nats: NatsProc[] = [];
  readonly #nodes = new Map<string, NodeProc>();
  readonly #hogs = new Set<ChildProcess>();
  readonly #natsCrashes: NatsCrash[] = [];
  readonly #nodeCrashes: NodeCrash[] = [];
  #stopped = false;

  constructor(options: LocalDriverOptions = {}) {
    this.#options = options;
  }

  /** Where the nats-server and node logs are (kept after stop() for post-mortems). */
  get logDir(): string {
    return this.#logDir;
  }

  /** nats-servers that died on their own during the run (and were restarted). */
  get natsCrashes(): readonly NatsCrash[] {
    return this.#natsCrashes;
  }

  /** jade nodes that exited on their own (they are left down: the run fails). */
  get nodeCrashes(): readonly NodeCrash[] {
    return this.#nodeCrashes;
  }

  /** Where process `name` (a node or a nats-server) writes its output. */
  #logFile(name: string): string {
    return path.join(this.#logDir, `${name}.log`);
  }

  /** The process id of node `id` while it runs. */
  nodePid(id: string): number | undefined {
    const child = this.#node(id).child;
    return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
  }

  /** Child pids (for the last-resort synchronous kill on process exit). */
  pids(): number[] {
    const pids: number[] = [];
    for (const n of this.#nats) if (n.server?.process.pid) pids.push(n.server.process.pid);
    for (const n of this.#nodes.values()) if (n.child?.pid) pids.push(n.child.pid);
    for (const h of this.#hogs) if (h.pid) pids.push(h.pid);
    return pids;
  }

  async start(options: { nodes: number; natsServers: number }): Promise<ClusterInfo> {
    this.#root = await mkdtemp(path.join(tmpdir(), "jade-chaos-"));
    this.#logDir = await mkdtemp(path.join(tmpdir(), "jade-chaos-logs-"));
    const clientPorts: number[] = [];
    const clusterPorts: number[] = [];
    for (let i = 0; i < options.natsServers; i++) {
      clientPorts.push(await freePort());
      clusterPorts.push(await freePort());
    }
    const routes = clusterPorts.map((p) => `nats://127.0.0.1:${p}`);
    for (let i = 0; i < options.natsServers; i++) {
      const name = `s${i + 1}`;
      const natsOptions: ChaosNatsOptions = {
        name,
        dataDir: path.join(this.#root, name),
        port: clientPorts[i]!,
        clusterPort: clusterPorts[i]!,
        routes,
        logFile: this.#logFile(name),
      };
      this.#nats.push({ options: natsOptions, server: undefined, down: false });
    }
    await Promise.all(this.#nats.map((n) => this.#startNats(n)));
    progress(`nats cluster up: ${this.#nats.map((n) => `${n.options.name}=${n.server!.url}`).join(" ")}`);

    const ids = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
    for (const [i, id] of ids.entries()) {
      const proxies: FaultProxy[] = [];
      // Each node prefers a different server, as on separate machines.
      for (let j = 0; j < this.#nats.length; j++) {
        const target = this.#nats[(i + j) % this.#nats.length]!;
        const proxy = new FaultProxy(target.options.port);
        await proxy.listen();
        proxies.push(proxy);
      }
      const dataDir = path.join(this.#root, id);
      await mkdir(dataDir, { recursive: true });
      const args = ["start", "--nats", proxies.map((p) => p.url).join(","), "--node-id", id, "--data", dataDir, "--stream-replicas", "3"];
      args.push("--workers", String(this.#options.workers ?? 1));
      if (this.#options.nodeDeadAfterMs !== undefined) args.push("--node-dead-after-ms", String(this.#options.nodeDeadAfterMs));
      const log = createWriteStream(this.#logFile(id), { flags: "a" });
      log.on("error", () => undefined);
      this.#nodes.set(id, { id, dataDir, args, proxies, child: undefined, log, paused: false, exitRequested: false });
    }
    await Promise.all(ids.map((id) => this.#spawnNode(this.#nodes.get(id)!)));
    progress(`jade nodes ready: ${ids.join(", ")}`);
    return { natsUrls: this.natsUrls(), nodes: ids, natsServers: this.#nats.map((n) => n.options.name) };
  }

  natsUrls(): string[] {
    return this.#nats.map((n) => `nats://127.0.0.1:${n.options.port}`);
  }

  async #spawnNode(node: NodeProc): Promise<void> {
    if (this.#stopped) throw new Error("driver stopped");
    const child = spawn(process.execPath, [jadeBin, ...node.args], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, JADE_LOG_LEVEL: this.#options.logLevel ?? "info" },
    });
    node.child = child;
    node.paused = false;
    node.exitRequested = false;
    node.log.write(`--- chaos: spawned ${node.id} pid ${child.pid} at ${new Date().toISOString()}\n`);
    createInterface({ input: child.stderr! }).on("line", (l) => node.log.write(l + "\n"));
    const timeoutMs = this.#options.readyTimeoutMs ?? 90_000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node ${node.id} not ready after ${timeoutMs} ms (log: ${this.#logFile(node.id)})`)), timeoutMs);
      createInterface({ input: child.stdout! }).on("line", (line) => {
        node.log.write(line + "\n");
        if (line.includes("ready")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        const at = new Date().toISOString();
        node.log.write(`--- chaos: ${node.id} pid ${child.pid} exited code ${code} signal ${signal} at ${at}\n`);
        if (!node.exitRequested && !this.#stopped) {
          const log = this.#logFile(node.id);
          this.#nodeCrashes.push({ node: node.id, at, code, signal, log });
          progress(`node ${node.id} exited on its own (code ${code}, signal ${signal}; log ${log})`);
        }
        reject(new Error(`node ${node.id} exited (code ${code}, signal ${signal}) before ready (log: ${this.#logFile(node.id)})`));
      });
    });
  }

  async #killNode(node: NodeProc): Promise<void> {
    const child = node.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    node.exitRequested = true;
    child.kill("SIGKILL");
    await withTimeout(exited, 10_000, `exit of ${node.id}`).catch(() => undefined);
  }

  /** SIGTERM and wait for the node's clean exit (it checkpoints its shards and announces its departure). */
  async #stopNode(node: NodeProc): Promise<void> {
    const child = node.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    node.exitRequested = true;
    child.kill("SIGTERM");
    await withTimeout(exited, 60_000, `clean exit of ${node.id}`);
  }

  #node(id: string): NodeProc {
    const node = this.#nodes.get(id);
    if (!node) throw new Error(`no node ${id}`);
    return node;
  }

  #natsProc(id: string): NatsProc {
    const n = this.#nats.find((x) => x.options.name === id);
    if (!n) throw new Error(`no nats server ${id}`);
    return n;
  }

  /** Starts a nats-server and restarts it whenever it exits on its own. */
  async #startNats(n: NatsProc): Promise<void> {
    const server = await startChaosNats(n.options);
    n.server = server;
    server.process.once("exit", (code, signal) => {
      if (this.#stopped || n.down || n.server !== server) return;
      this.#natsCrashes.push({ server: n.options.name, at: new Date().toISOString(), code, signal });
      n.server = undefined;
      const crashes = this.#natsCrashes.filter((c) => c.server === n.options.name).length;
      if (crashes > natsRestartsMax) return progress(`nats-server ${n.options.name} exited on its own ${crashes} times: left down`);
      progress(`nats-server ${n.options.name} exited on its own (code ${code}, signal ${signal}; log ${n.options.logFile}): starting it again`);
      void delay(natsRestartDelayMs)
        .then(() => (this.#stopped || n.down ? undefined : this.#startNats(n)))
        .catch((err: unknown) => progress(`nats-server ${n.options.name} did not start again: ${String(err)}`));
    });
  }

  #setProxies(node: NodeProc, mode: ProxyMode): void {
    for (const proxy of node.proxies) proxy.setMode(mode);
  }

  async inject(fault: Fault): Promise<() => Promise<void>> {
    const { target } = fault;
    if (fault.kind === "kill" && target.kind === "nats") {
      const n = this.#natsProc(target.id);
      n.down = true;
      await n.server?.kill();
      n.server = undefined;
      return async () => {
        n.down = false;
        await this.#startNats(n);
      };
    }
    if (target.kind !== "node") throw new Error(`fault ${fault.kind} needs a node target`);
    const node = this.#node(target.id);
    switch (fault.kind) {
      case "kill":
        await this.#killNode(node);
        return () => this.#spawnNode(node);
      case "restart":
        await this.#stopNode(node);
        return () => this.#spawnNode(node);
      case "pause":
        node.child?.kill("SIGSTOP");
        node.paused = true;
        return async () => {
          node.child?.kill("SIGCONT");
          node.paused = false;
        };
      case "partition":
        this.#setProxies(node, { kind: "partition", style: fault.amount === 1 ? "blackhole" : "drop" });
        return async () => this.#setProxies(node, { kind: "pass" });
      case "latency":
        this.#setProxies(node, { kind: "latency", ms: fault.amount ?? 200 });
        return async () => this.#setProxies(node, { kind: "pass" });
      case "bandwidth":
        this.#setProxies(node, { kind: "bandwidth", bytesPerSecond: fault.amount ?? 64 * 1024 });
        return async () => this.#setProxies(node, { kind: "pass" });
      case "memory-pressure": {
        const hog = await this.#spawnHog(Math.min(fault.amount ?? 256 * 1024 * 1024, memoryPressureBytesMax));
        return async () => {
          const exited = new Promise<void>((r) => hog.once("exit", () => r()));
          if (hog.exitCode === null && hog.signalCode === null) hog.kill("SIGKILL");
          await withTimeout(exited, 10_000, "hog exit").catch(() => undefined);
          this.#hogs.delete(hog);
        };
      }
      default:
        throw new Error(`unknown fault ${String((fault as Fault).kind)}`);
    }
  }

  /** A child that allocates `bytes` in 16 MiB buffers, writes every page, prints `held`, then sleeps (at most 10 min). */
  async #spawnHog(bytes: number): Promise<ChildProcess> {
    const script = `
      const chunks = []; const size = 16 * 1024 * 1024; let held = 0;
      while (held < ${bytes}) { const b = Buffer.allocUnsafe(size); for (let i = 0; i < size; i += 4096) b[i] = i & 255; chunks.push(b); held += size; }
      process.stdout.write("held " + held + "\\n");
      setTimeout(() => process.exit(0), 600000);`;
    const hog = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "ignore"] });
    this.#hogs.add(hog);
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        createInterface({ input: hog.stdout! }).on("line", (l) => l.startsWith("held") && resolve());
        hog.once("exit", (code) => reject(new Error(`memory hog exited with ${code}`)));
      }),
      30_000,
      "memory hog",
    );
    return hog;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const hog of this.#hogs) hog.kill("SIGKILL");
    this.#hogs.clear();
    await Promise.all(
      [...this.#nodes.values()].map(async (node) => {
        if (node.paused) node.child?.kill("SIGCONT");
        await this.#killNode(node);
        for (const proxy of node.proxies) await proxy.close().catch(() => undefined);
        node.log.end();
      }),
    );
    await Promise.all(this.#nats.map((n) => n.server?.kill().catch(() => undefined)));
    if (this.#root) await rm(this.#root, { recursive: true, force: true }).catch(() => undefined);
  }

  /** Deletes the log dir (after a clean run). */
  async removeLogs(): Promise<void> {
    if (this.#logDir) await rm(this.#logDir, { recursive: true, force: true }).catch(() => undefined);
  }
}
