/**
 * The compose fault driver: the same scenarios against `compose.yml` (3 nats
 * servers, 3 jade nodes in containers). Needs a Docker engine with the compose
 * plugin; there is none on the development machines, so what it runs is kept in
 * one pure function (`composeCommands`) that the tests check.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { ClusterInfo, Fault, FaultDriver } from "./driver.ts";

const run = promisify(execFile);

export interface ComposeOptions {
  /** Path of compose.yml. */
  file: string;
  /** Compose project name (compose.yml's `name`). */
  project: string;
}

/** The docker commands that inject a fault and the ones that heal it. */
export function composeCommands(fault: Fault, options: ComposeOptions): { inject: string[][]; heal: string[][] } {
  const compose = ["docker", "compose", "-f", options.file, "-p", options.project];
  const service = fault.target.id;
  const container = `${options.project}-${service}-1`;
  const network = `${options.project}_jade`;
  switch (fault.kind) {
    case "kill":
      return { inject: [[...compose, "kill", "-s", "SIGKILL", service]], heal: [[...compose, "start", service]] };
    case "pause":
      return { inject: [[...compose, "pause", service]], heal: [[...compose, "unpause", service]] };
    case "restart":
      return { inject: [[...compose, "stop", service]], heal: [[...compose, "start", service]] };
    case "partition":
      return { inject: [["docker", "network", "disconnect", network, container]], heal: [["docker", "network", "connect", network, container]] };
    case "memory-pressure": {
      const bytes = Math.min(fault.amount ?? 256 * 1024 * 1024, 1024 * 1024 * 1024);
      // A hog inside the container, touching every page so the memory is really used; killed to heal.
      const hog = `const b=Buffer.alloc(${bytes},1);setInterval(()=>b[0]++,1000)`;
      return {
        inject: [[...compose, "exec", "-d", service, "node", "-e", hog]],
        heal: [[...compose, "exec", service, "pkill", "-f", "Buffer.alloc"]],
      };
    }
    case "latency":
    case "bandwidth":
      // Shaping needs `tc` (NET_ADMIN) inside the node image, which it does not carry.
      throw new Error(`the compose driver cannot inject ${fault.kind}: run that scenario with the local driver`);
  }
}

export class ComposeDriver implements FaultDriver {
  readonly name = "compose";
  readonly #options: ComposeOptions;

  constructor(options: ComposeOptions) {
    this.#options = options;
  }

  async start(options: { nodes: number; natsServers: number }): Promise<ClusterInfo> {
    if (options.nodes !== 3 || options.natsServers !== 3) throw new Error("compose.yml defines 3 nats servers and 3 nodes");
    await run("docker", ["compose", "-f", this.#options.file, "-p", this.#options.project, "up", "-d", "--build", "--wait"]);
    return {
      natsUrls: ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://127.0.0.1:4224"],
      nodes: ["jade1", "jade2", "jade3"],
      natsServers: ["nats1", "nats2", "nats3"],
      // What the `secrets` service made (deploy/compose/secrets.sh), seen from the host.
      auth: { tls: { caFile: "deploy/secrets/ca.pem" }, credsFile: "deploy/secrets/auth/admin.creds.json" },
    };
  }

  async inject(fault: Fault): Promise<() => Promise<void>> {
    const { inject, heal } = composeCommands(fault, this.#options);
    for (const [cmd, ...args] of inject) await run(cmd!, args);
    return async () => {
      for (const [cmd, ...args] of heal) await run(cmd!, args);
    };
  }

  async stop(): Promise<void> {
    await run("docker", ["compose", "-f", this.#options.file, "-p", this.#options.project, "down", "-v"]);
  }
}
