/**
 * A replica's snapshot is uploaded by the node's upload thread on its own connection, never on
 * the one its API answers on (a 300 MB upload would share that socket with every reply, and
 * its buffers the main thread's heap), in 1 MiB messages (decision 006). Read from
 * nats-server's own count of each connection's bytes (/connz).
 */
import { afterAll, describe, expect, it } from "vitest";
import { Harness, freePort, waitFor } from "./support/harness.ts";
import { jetstream } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { SnapshotStore, uploadChunkBytes } from "../src/nats/snapshots.ts";
import { names } from "../src/runtime/subjects.ts";

const harness = new Harness();
afterAll(() => harness.close());

interface Connz {
  connections: { name?: string; in_bytes: number }[];
}

describe("snapshot uploads", () => {
  it("go over the upload thread's connection, not the one the node's API answers on, in 1 MiB messages", async () => {
    const monitorPort = await freePort();
    const nats = await harness.nats(undefined, { monitorPort });
    const node = await harness.node([nats.url], { nodeId: "snap1" });
    const client = await harness.client(nats.url);
    const dimension = 64;
    const count = 4_000;
    await client.createCollection({ name: "bulk", dimension, metric: "l2", shards: 1, snapshot: { everyEntries: 1, intervalMs: 300 } });
    const vectorBytes = count * dimension * 4;
    for (let first = 0; first < count; first += 500) {
      const points = Array.from({ length: 500 }, (_, i) => ({ id: `p${first + i}`, vector: Array.from({ length: dimension }, (_, d) => Math.sin(first + i + d)) }));
      await client.upsert("bulk", { points });
    }
    const js = jetstream(await harness.connect(nats.url));
    const snapshots = new SnapshotStore(js, 1);
    const bytesIn = async (name: string): Promise<number> => {
      const connz = (await (await fetch(`http://127.0.0.1:${monitorPort}/connz`)).json()) as Connz;
      return connz.connections.find((c) => c.name === name)?.in_bytes ?? 0;
    };
    // The last snapshot holds every point: its upload alone carried more than their vectors.
    const last = await waitFor(
      async () => (await snapshots.all()).find((s) => s.complete && s.collection === "bulk" && s.seq >= count / 500),
      { what: "a complete snapshot of every point", timeoutMs: 60_000 },
    );
    // In messages of uploadChunkBytes (nats.js's default, 128 KiB, cost the node twice the CPU).
    const info = await (await new Objm(js).open(last.name)).info(names.snapshotObject);
    expect(info!.size).toBeGreaterThan(vectorBytes);
    expect(info!.chunks).toBe(Math.ceil(info!.size / uploadChunkBytes));
    // Uploaded from the main thread (as before the upload thread), this connection does not exist.
    expect(await bytesIn(`jade-${node.nodeId}-uploads`)).toBeGreaterThan(vectorBytes);
  });
});
