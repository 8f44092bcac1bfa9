/**
 * A new leader resumes migrations from their records in KV `jade_migrations`: it must read
 * the state of every record the machine writes, including the nested states of a running one.
 */
import { describe, expect, it } from "vitest";
import { createActor, fromCallback, fromPromise, SimulatedClock } from "xstate";
import { stateOfPayload } from "../src/actors/control/migrations.ts";
import { migrationMachine, migrationStateOf, type PersistedMigration, type PrepareOutput, type StepInput } from "../src/machines/migration.ts";
import { makeTransfer } from "../src/runtime/transfer.ts";

const transfer = makeTransfer({ collection: "c", uid: "u", shard: 0, from: "n1", to: "n2", reason: "move", createdAt: "2026-01-01T00:00:00.000Z" });
const input = { transfer, catchUpLagMax: 0, stepTimeoutMs: 10_000, drainMs: 1_000, stallTimeoutMs: 60_000 };

function actorWith(prepare: "hang" | "done") {
  const machine = migrationMachine.provide({
    actors: {
      prepare: fromPromise<PrepareOutput, StepInput>(() =>
        prepare === "hang" ? new Promise<never>(() => undefined) : Promise.resolve({ epoch: 2, alreadyCutOver: false }),
      ),
      watchTarget: fromCallback(() => () => undefined),
    },
  });
  return createActor(machine, { input, clock: new SimulatedClock() });
}

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

describe("persisted migration records", () => {
  it("reads planned, preparing and catchingUp (nested) records as the machine does", async () => {
    const planned = actorWith("hang").start();
    expect(stateOfPayload(planned.getPersistedSnapshot() as PersistedMigration)).toBe("planned");

    const preparing = actorWith("hang").start();
    preparing.send({ type: "START", atMs: 0 });
    expect(migrationStateOf(preparing.getSnapshot())).toBe("preparing");
    expect(stateOfPayload(preparing.getPersistedSnapshot() as PersistedMigration)).toBe("preparing");

    const catchingUp = actorWith("done").start();
    catchingUp.send({ type: "START", atMs: 0 });
    await settle();
    expect(migrationStateOf(catchingUp.getSnapshot())).toBe("catchingUp");
    const payload = catchingUp.getPersistedSnapshot() as PersistedMigration;
    expect(typeof (payload as { value: unknown }).value).toBe("object"); // nested: the case that once broke resuming
    expect(stateOfPayload(payload)).toBe("catchingUp");
  });

  it("reads a record the machine cannot restore as failed (final: never resumed)", () => {
    expect(stateOfPayload({ nonsense: true } as unknown as PersistedMigration)).toBe("failed");
  });
});
