/**
 * Failpoints (as TiKV's fail-rs and FoundationDB's buggify): named places in a protocol where a
 * node started with `JADE_FAILPOINTS=<name>[,<name>…]` stops for good, so a test can kill -9 it
 * at exactly that step, which no timing can hit reliably. Read once at start; with the variable
 * unset (every real deployment) a failpoint is one Set lookup.
 */
export const Failpoint = {
  /** A transaction's gateway after its prepares are appended and noted, before its commit point. */
  TxnBeforeDecide: "txn.before-decide",
  /** A transaction's gateway after its commit point, before its markers. */
  TxnBeforeMarkers: "txn.before-markers",
} as const;
export type Failpoint = (typeof Failpoint)[keyof typeof Failpoint];

const active = new Set((process.env["JADE_FAILPOINTS"] ?? "").split(",").map((name) => name.trim()).filter(Boolean));

/** Resolves at once, or never when `name` is active (after saying so on stderr, for the test that waits for it). */
export function failpoint(name: Failpoint): Promise<void> {
  if (!active.has(name)) return Promise.resolve();
  process.stderr.write(`failpoint ${name} reached\n`);
  return new Promise(() => undefined);
}
