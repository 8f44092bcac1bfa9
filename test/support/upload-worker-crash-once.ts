/**
 * A stand-in for the upload thread's module (test/upload-thread.test.ts): the first thread
 * started with `JADE_TEST_CRASH_MARKER` naming a missing file creates it and exits at once, as
 * a thread that failed would; every later one is the real upload-worker.ts.
 */
import { existsSync, writeFileSync } from "node:fs";

const marker = process.env["JADE_TEST_CRASH_MARKER"];
if (marker === undefined) throw new Error("JADE_TEST_CRASH_MARKER is not set");
if (!existsSync(marker)) {
  writeFileSync(marker, "");
  process.exit(3);
}
await import("../../src/actors/replica/upload-worker.ts");
