/**
 * `source.pipe(transform)` does not pass a source's error on: the transform (and whatever reads
 * it) waits for ever, and the unhandled 'error' killed the node twice: a collection dropped while
 * a bucket backup read its log (found by the fuzz suite), and a checkpoint file deleted while its
 * upload opened it (found by the chaos suite).
 */
import type { Readable, Transform } from "node:stream";

/** Pipes `source` into `transform`, an error of the source destroying the transform with it. */
export function pipeInto(source: Readable, transform: Transform): Transform {
  source.once("error", (err) => transform.destroy(err));
  return source.pipe(transform);
}
