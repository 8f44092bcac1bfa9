/**
 * The upload thread (actors/replica/upload-thread.ts) against a real nats-server: what it
 * uploads reads back whole, a failed upload is an error with a code and the thread goes on, a
 * thread that stopped is started again by the next upload, and a closed one refuses uploads.
 */
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { jetstream } from "@nats-io/jetstream";
import { Harness } from "./support/harness.ts";
import { SnapshotStore } from "../src/nats/snapshots.ts";
import { UploadThread, type UploadThreadOptions } from "../src/actors/replica/upload-thread.ts";
import { ErrorCode, JadeError } from "../src/runtime/errors.ts";
import { workerModule } from "../src/runtime/worker-module.ts";

const harness = new Harness();
afterAll(() => harness.close());

async function setUp() {
  const nats = await harness.nats();
  const dir = await harness.tempDir();
  const store = new SnapshotStore(jetstream(await harness.connect(nats.url)), 1);
  const options: UploadThreadOptions = { servers: [nats.url], name: "test-uploads", streamReplicas: 1, bytesPerSec: 0 };
  const file = path.join(dir, "snapshot.bin");
  // Over two 1 MiB messages and a partial third.
  const bytes = randomBytes((5 << 20) / 2);
  await writeFile(file, bytes);
  return { dir, store, options, file, bytes };
}

async function readAll(store: SnapshotStore, name: string): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of store.read(name)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe("the upload thread", () => {
  it("uploads a file that reads back whole; a failed upload is an error value and the next one goes on", async () => {
    const { dir, store, options, file, bytes } = await setUp();
    const uploads = new UploadThread(options);
    try {
      const missing = uploads.upload({ collection: "c", uid: "u1", shard: 0, seq: 1, file: path.join(dir, "gone.bin") });
      await expect(missing).rejects.toSatisfy((err: unknown) => err instanceof JadeError && err.code === ErrorCode.Unavailable && /gone\.bin/.test(err.message));
      const ref = await uploads.upload({ collection: "c", uid: "u1", shard: 0, seq: 2, file });
      expect(ref.seq).toBe(2);
      expect((await readAll(store, ref.name)).equals(bytes)).toBe(true);
      // The failed upload left no bucket behind.
      expect((await store.all()).map((s) => s.seq)).toEqual([2]);
    } finally {
      await uploads.close();
    }
  });

  it("starts its thread again for the next upload after it stopped", async () => {
    const { dir, store, options, file, bytes } = await setUp();
    process.env["JADE_TEST_CRASH_MARKER"] = path.join(dir, "crashed");
    const uploads = new UploadThread(options, workerModule(import.meta.url, { ts: "./support/upload-worker-crash-once.ts", built: "./support/upload-worker-crash-once.js" }));
    try {
      await expect(uploads.upload({ collection: "c", uid: "u1", shard: 0, seq: 1, file })).rejects.toThrow(/upload thread stopped \(exit code 3\)/);
      const ref = await uploads.upload({ collection: "c", uid: "u1", shard: 0, seq: 1, file });
      expect((await readAll(store, ref.name)).equals(bytes)).toBe(true);
    } finally {
      delete process.env["JADE_TEST_CRASH_MARKER"];
      await uploads.close();
    }
  });

  it("refuses uploads once closed", async () => {
    const { options, file } = await setUp();
    const uploads = new UploadThread(options);
    await uploads.upload({ collection: "c", uid: "u1", shard: 0, seq: 1, file });
    await uploads.close();
    await expect(uploads.upload({ collection: "c", uid: "u1", shard: 0, seq: 2, file })).rejects.toSatisfy((err: unknown) => err instanceof JadeError && err.code === ErrorCode.Unavailable);
  });
});
