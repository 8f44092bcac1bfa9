/**
 * A new leader resumes the unfinished migrations from KV `jade_migrations`, and a listing that
 * fails does not end it: CI once had a leader's one listing time out (a NATS server down), and a
 * migration stayed half done, its learner in the placement, for the rest of the run.
 */
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createActor, fromCallback, fromPromise, SimulatedClock } from "xstate";
import { TimeoutError } from "@nats-io/nats-core";
import { MigrationRunner, defaultMigrationSettings } from "../src/actors/control/migrations.ts";
import type { ListedKv } from "../src/nats/kv-keys.ts";
import { migrationMachine, type PersistedMigration, type PrepareOutput, type StepInput } from "../src/machines/migration.ts";
import { makeTransfer } from "../src/runtime/transfer.ts";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { PlacementStore } from "../src/actors/cluster/placement-store.ts";
import type { Membership } from "../src/actors/cluster/membership.ts";
import { waitFor } from "./support/harness.ts";

const transfer = makeTransfer({ collection: "c", uid: "u", shard: 0, from: "n1", to: "n2", reason: "move", createdAt: "2026-01-01T00:00:00.000Z" });

/** A record as a leader left it: the transfer catching up. */
async function catchingUpRecord(): Promise<string> {
  const machine = migrationMachine.provide({
    actors: {
      prepare: fromPromise<PrepareOutput, StepInput>(() => Promise.resolve({ epoch: 2, alreadyCutOver: false })),
      watchTarget: fromCallback(() => () => undefined),
    },
  });
  const actor = createActor(machine, {
    input: { transfer, catchUpLagMax: 0, stepTimeoutMs: 10_000, drainMs: 1_000, stallTimeoutMs: 60_000 },
    clock: new SimulatedClock(),
  }).start();
  actor.send({ type: "START", atMs: 0 });
  for (let i = 0; i < 10; i++) await Promise.resolve();
  const payload = actor.getPersistedSnapshot() as PersistedMigration;
  actor.stop();
  return JSON.stringify(payload);
}

/** The bucket, failing its first `failures` listings as an unanswered request does. */
function bucket(records: Map<string, string>, failures: number): ListedKv & { listings: number } {
  const kv = {
    listings: 0,
    async listKeys() {
      kv.listings++;
      if (kv.listings <= failures) throw new TimeoutError();
      return [...records.keys()];
    },
    async get(key: string) {
      const value = records.get(key);
      return value === undefined ? null : { operation: "PUT", revision: 1, string: () => value };
    },
    async put() {
      return 1;
    },
  };
  return kv as unknown as ListedKv & { listings: number };
}

function runner(kv: ListedKv): MigrationRunner {
  return new MigrationRunner({
    jsm: {} as JetStreamManager,
    kv,
    placements: {} as PlacementStore,
    membership: {} as Membership,
    nodeDeadAfterMs: 10_000,
    log: pino({ level: "silent" }),
    // The target is never looked at here: nothing but the resume runs.
    settings: { ...defaultMigrationSettings, watchIntervalMs: 3_600_000, stallTimeoutMs: 3_600_000, stepTimeoutMs: 3_600_000 },
    concurrentMax: () => 2,
  });
}

describe("resuming migrations", () => {
  it("lists again until it can, then resumes the unfinished one", async () => {
    const kv = bucket(new Map([[transfer.id, await catchingUpRecord()]]), 2);
    const migrations = runner(kv);
    try {
      await migrations.start();
      expect(kv.listings).toBe(3);
      expect(migrations.running().map((m) => [m.id, m.state])).toEqual([[transfer.id, "catchingUp"]]);
    } finally {
      migrations.stop();
    }
  });

  it("stops trying once the term ends", async () => {
    const kv = bucket(new Map([[transfer.id, await catchingUpRecord()]]), Infinity);
    const migrations = runner(kv);
    const resumed = migrations.start();
    await waitFor(() => kv.listings >= 1, { what: "a first listing" });
    migrations.stop();
    // A resume that kept trying would never settle: the test would time out.
    await resumed;
    expect(migrations.running()).toEqual([]);
  });
});
