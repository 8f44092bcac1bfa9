/**
 * No Kubernetes cluster runs here, so deploy/k8s is checked as far as it can be without one:
 * every manifest against the Kubernetes API's own schemas (kubernetes-models), the selectors
 * and probes the design relies on, and nats-server's acceptance of its configuration with
 * the secrets in place (made by openssl and `jade auth`, as docs/kubernetes.md makes them).
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Service } from "kubernetes-models/v1/Service";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { parseAllDocuments, parse } from "yaml";
import { describe, expect, it } from "vitest";
import { AuthDir } from "../src/nats/auth-dir.ts";
import { makeTestCerts } from "./support/certs.ts";
import { repoRoot } from "./support/harness.ts";

const dir = path.join(repoRoot, "deploy/k8s");
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: Record<string, unknown> & { selector?: Record<string, unknown> };
  data?: Record<string, string>;
}
const files = readdirSync(dir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
const manifests: Manifest[] = files.flatMap((f) => parseAllDocuments(readFileSync(path.join(dir, f), "utf8")).map((d) => d.toJSON() as Manifest));
const models: Record<string, new (data: never) => { validate(): void }> = {
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "apps/v1/StatefulSet": StatefulSet,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
};
const find = <T = Manifest>(kind: string, name: string) => manifests.find((m) => m.kind === kind && m.metadata.name === name) as T;

type PodSpec = { containers: { name: string; args: string[]; readinessProbe: { httpGet: { path: string } }; livenessProbe: { httpGet: { path: string } }; resources: unknown; volumeMounts: { name: string }[] }[]; volumes: { name: string }[] };
type Workload = Manifest & { spec: { serviceName: string; replicas: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec }; volumeClaimTemplates: { metadata: { name: string } }[] } };

describe("deploy/k8s", () => {
  it("every manifest is valid against the Kubernetes API schemas, and kustomization lists every file", () => {
    expect(manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual(
      ["ConfigMap/nats-config", "PodDisruptionBudget/jade", "PodDisruptionBudget/nats", "Service/jade", "Service/jade-http", "Service/nats", "StatefulSet/jade", "StatefulSet/nats"].sort(),
    );
    for (const m of manifests) {
      const Model = models[`${m.apiVersion}/${m.kind}`];
      expect(Model, `${m.apiVersion} ${m.kind}`).toBeDefined();
      expect(() => new Model!(m as never).validate(), `${m.kind}/${m.metadata.name}`).not.toThrow();
    }
    // The check can fail: a manifest with a wrong type is refused.
    const jade = find<Workload>("StatefulSet", "jade");
    expect(() => new StatefulSet({ ...jade, spec: { ...jade.spec, replicas: "three" } } as never).validate()).toThrow();
    const kustomization = parse(readFileSync(path.join(dir, "kustomization.yaml"), "utf8")) as { resources: string[] };
    expect(kustomization.resources.sort()).toEqual(files.sort());
  });

  it("runs 3 nats-servers and 3 nodes, each with a volume; services and budgets select their pods", () => {
    for (const name of ["nats", "jade"]) {
      const set = find<Workload>("StatefulSet", name);
      expect(set.spec.replicas).toBe(3);
      expect(set.spec.template.metadata.labels).toMatchObject(set.spec.selector.matchLabels);
      expect(set.spec.volumeClaimTemplates.map((v) => v.metadata.name)).toEqual(["data"]);
      // Every mounted volume exists; the headless service names the set.
      const pod = set.spec.template.spec;
      for (const m of pod.containers[0]!.volumeMounts) expect([...pod.volumes.map((v) => v.name), "data"], m.name).toContain(m.name);
      expect(find<Manifest & { spec: { clusterIP: string; selector: Record<string, string> } }>("Service", set.spec.serviceName).spec).toMatchObject({ clusterIP: "None", selector: set.spec.selector.matchLabels });
      const budget = find<Manifest & { spec: { maxUnavailable: number; selector: { matchLabels: Record<string, string> } } }>("PodDisruptionBudget", name);
      expect(budget.spec).toEqual({ maxUnavailable: 1, selector: set.spec.selector });
    }
    const http = find<Manifest & { spec: { selector: Record<string, string> } }>("Service", "jade-http");
    expect(http.spec.selector).toEqual(find<Workload>("StatefulSet", "jade").spec.selector.matchLabels);
  });

  it("a node starts secured, with the pod's name as node id, probed on /readyz and /healthz", () => {
    const container = find<Workload>("StatefulSet", "jade").spec.template.spec.containers[0]!;
    const arg = (flag: string) => container.args[container.args.indexOf(flag) + 1];
    expect(container.args[0]).toBe("start");
    expect(arg("--node-id")).toBe("$(POD_NAME)");
    expect(arg("--stream-replicas")).toBe("3");
    expect(arg("--nats")!.split(",")).toEqual(["nats://nats-0.nats:4222", "nats://nats-1.nats:4222", "nats://nats-2.nats:4222"]);
    expect(container.args).toContain("--http-api-keys");
    expect([arg("--tls-ca"), arg("--creds")]).toEqual(["/etc/jade-tls/ca.pem", "/etc/jade-auth/node.creds.json"]);
    expect(container.readinessProbe.httpGet.path).toBe("/readyz");
    expect(container.livenessProbe.httpGet.path).toBe("/healthz");
    expect(container.resources).toMatchObject({ requests: { cpu: "2", memory: "3Gi" } });
  });

  it("nats-server accepts its configuration with the secrets in place", async () => {
    const scratch = await mkdtemp(path.join(tmpdir(), "jade-k8s-"));
    try {
      // The pod's layout: /etc/nats/nats.conf, /etc/jade-tls/*, /etc/jade-auth/authorization.conf.
      const certs = await makeTestCerts(scratch);
      const auth = new AuthDir(path.join(scratch, "etc/jade-auth"));
      await auth.init();
      await mkdir(path.join(scratch, "etc/nats"), { recursive: true });
      const conf = find("ConfigMap", "nats-config").data!["nats.conf"]!
        .replaceAll('"/etc/jade-tls/server.pem"', JSON.stringify(certs.serverCertFile))
        .replaceAll('"/etc/jade-tls/server.key"', JSON.stringify(certs.serverKeyFile))
        .replaceAll('"/etc/jade-tls/ca.pem"', JSON.stringify(certs.caFile))
        .replace("store_dir: /data", `store_dir: ${JSON.stringify(path.join(scratch, "data"))}`);
      await writeFile(path.join(scratch, "etc/nats/nats.conf"), conf);
      const result = spawnSync("nats-server", ["-t", "-c", path.join(scratch, "etc/nats/nats.conf")], { encoding: "utf8", env: { ...process.env, POD_NAME: "nats-0" } });
      expect(result.stdout + result.stderr).toMatch(/is valid/);
      expect(result.status).toBe(0);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
});
