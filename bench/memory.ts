/**
 * Memory per vector for the benchmarks: the growth of anonymous RSS outside the V8 heap over a
 * build (every engine keeps its index in native memory). Garbage is collected before each
 * reading so a build's JS garbage (chunk copies, hnswlib's number[] rows) is not counted; the
 * V8 heap is left out because V8 resizes it on its own (it shrank by 15 MB during one usearch
 * build here), and file-backed pages because they are code and page cache (LanceDB's 160 MB
 * native library added 45 MB of them).
 */
import { readFileSync } from "node:fs";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";

v8.setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;

/** Rounds of garbage collection and waiting before an RSS reading. */
const settleRounds = 3;
const settleWaitMs = 50;

/** Anonymous resident memory (RssAnon of /proc/self/status); all of RSS where that is missing. */
function anonymousRss(): number {
  try {
    const kib = /^RssAnon:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    if (kib !== undefined) return Number(kib) * 1024;
  } catch {
    // not Linux: fall through
  }
  return process.memoryUsage.rss();
}

/**
 * Anonymous RSS less the V8 heap, once garbage is really gone: V8 frees ArrayBuffer backing
 * stores from a background sweeper after a collection, and native indexes in finalizers, so
 * one gc() is not enough (a single gc() left ~50 MB of dead Float32Arrays counted in a test).
 */
export async function settledNativeBytes(): Promise<number> {
  for (let round = 0; round < settleRounds; round++) {
    collectGarbage();
    await new Promise((resolve) => setTimeout(resolve, settleWaitMs));
  }
  return anonymousRss() - process.memoryUsage().heapTotal;
}
