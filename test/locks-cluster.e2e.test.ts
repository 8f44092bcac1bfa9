/**
 * Transaction point locks (actors/txn/locks.ts) on a bucket replicated over three real
 * nats-servers, four writers contending for forty points. `kv.get` is a direct get that any
 * replica answers, one behind at times: read so, a release saw the lock it had just deleted
 * still held (4 and 7 times in 240 transactions), and a stale first read could skip a delete,
 * leaving the lock to expire under waiting transactions. Every read is now the stream leader's.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { afterAll, describe, expect, it } from "vitest";
import { LockTable } from "../src/actors/txn/locks.ts";
import { listedKv } from "../src/nats/kv-keys.ts";
import { Harness, waitFor } from "./support/harness.ts";

const harness = new Harness();
afterAll(() => harness.close());

describe("point locks on three NATS servers", () => {
  it("releases on the first try, takes every lock in time, and leaves nothing behind", async () => {
    const [server] = await harness.natsCluster(3);
    const nc = await harness.connect(server!.url);
    // Right after the cluster formed: the meta leader may still be electing.
    const raw = await waitFor(() => new Kvm(nc).create("locks_probe", { history: 1, replicas: 3 }), { what: "the bucket" });
    const kv = listedKv(raw, await jetstreamManager(nc), "locks_probe");
    const locks = new LockTable(kv);
    const outcomes = { released: 0, releaseRetries: 0, failed: [] as string[] };
    const writer = async (w: number) => {
      for (let i = 0; i < 60; i++) {
        const txn = `t${w}.${i}`;
        const ids = Array.from({ length: 10 }, (_, j) => `id${(w * 7 + i * 3 + j) % 40}`);
        try {
          const keys = await locks.acquire("u", ids, txn, Date.now() + 30_000, Date.now() + 20_000);
          for (;;) {
            try {
              await locks.release(keys, txn);
              break;
            } catch {
              outcomes.releaseRetries++;
            }
          }
          outcomes.released++;
        } catch (err) {
          outcomes.failed.push(`${txn}: ${String(err)}`);
        }
      }
    };
    await Promise.all([0, 1, 2, 3].map(writer));
    expect(outcomes).toEqual({ released: 240, releaseRetries: 0, failed: [] });
    // Released locks leave no key, not even a delete marker.
    expect(await kv.listKeys()).toEqual([]);
  });
});
