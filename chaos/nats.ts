/**
 * A clustered nats-server child for the chaos driver. It mirrors
 * src/nats/embedded.ts (same config: JetStream, max payload, fast ping
 * eviction) with two differences the faults need:
 *   - fixed client and cluster ports, so a server restarted with its store comes
 *     back where the nodes' proxies forward to;
 *   - `no_advertise: true`, so clients never learn the servers' real addresses
 *     from INFO gossip and reconnect around their fault proxy (a partition must
 *     really isolate a node).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { limits } from "../src/runtime/limits.ts";

export interface ChaosNatsOptions {
  name: string;
  dataDir: string;
  port: number;
  clusterPort: number;
  routes: string[];
  logFile: string;
  startTimeoutMs?: number;
}

export interface ChaosNats {
  name: string;
  url: string;
  port: number;
  process: ChildProcess;
  kill(): Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

export async function startChaosNats(options: ChaosNatsOptions): Promise<ChaosNats> {
  const storeDir = path.join(options.dataDir, "jetstream");
  await mkdir(storeDir, { recursive: true });
  const configPath = path.join(options.dataDir, "nats-server.conf");
  const config = [
    `server_name: ${JSON.stringify(options.name)}`,
    `host: "127.0.0.1"`,
    `port: ${options.port}`,
    `max_payload: ${limits.natsPayloadBytesMax}`,
    `ping_interval: "1s"`,
    `ping_max: 2`,
    `jetstream {`,
    `  store_dir: ${JSON.stringify(storeDir)}`,
    `}`,
    `cluster {`,
    `  name: "jade-chaos"`,
    `  host: "127.0.0.1"`,
    `  port: ${options.clusterPort}`,
    `  no_advertise: true`,
    `  routes: [${options.routes.map((r) => JSON.stringify(r)).join(", ")}]`,
    `}`,
  ];
  await writeFile(configPath, config.join("\n") + "\n");
  const child = spawn("nats-server", ["-c", configPath], { stdio: ["ignore", "ignore", "pipe"] });
  const log = createWriteStream(options.logFile, { flags: "a" });
  const timeoutMs = options.startTimeoutMs ?? 20_000;
  const tail: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`nats-server ${options.name} not ready after ${timeoutMs} ms`)), timeoutMs);
    function fail(err: Error) {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${err.message}\n${tail.join("\n")}`));
    }
    child.once("error", (err) => fail(err));
    child.once("exit", (code, signal) => fail(new Error(`nats-server ${options.name} exited early (code ${code}, signal ${signal})`)));
    createInterface({ input: child.stderr! }).on("line", (line) => {
      log.write(line + "\n");
      tail.push(line);
      if (tail.length > 40) tail.shift();
      if (line.includes("Server is ready")) {
        clearTimeout(timer);
        child.removeAllListeners("exit");
        child.removeAllListeners("error");
        resolve();
      }
    });
  });
  child.once("exit", () => log.end());
  return {
    name: options.name,
    url: `nats://127.0.0.1:${options.port}`,
    port: options.port,
    process: child,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited(child);
    },
  };
}
