/**
 * A simulation worker thread (see pool.ts): runs the chunks of seeds it is sent, interleaved,
 * and answers with their failures; closes on `done`.
 */
import { parentPort } from "node:worker_threads";
import { runInterleaved, type FromWorker, type ToWorker } from "./pool.ts";

const port = parentPort;
if (!port) throw new Error("test/sim/worker.ts runs as a worker thread (see pool.ts)");
port.on("message", (m: ToWorker) => {
  if ("done" in m) {
    port.close();
    return;
  }
  void runInterleaved(m.seeds).then((failures) => port.postMessage({ failures, ran: m.seeds.length } satisfies FromWorker));
});
port.postMessage({ ready: true } satisfies FromWorker);
