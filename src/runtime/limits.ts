/**
 * Every queue, batch and request has a bound (TigerBeetle style). These are the
 * documented limits of API v1 (docs/api.md repeats them); units are last in names.
 */
export const limits = {
  /** Largest NATS message the embedded server accepts (and so the largest request). */
  natsPayloadBytesMax: 8 * 1024 * 1024,
  collectionNameBytesMax: 64,
  dimensionMax: 4096,
  shardsMax: 64,
  replicasMax: 5,
  /** Replicas a departure record lists (actors/cluster/departures.ts): ~120 bytes each, so one record stays within a NATS message. */
  replicasPerNodeMax: 10_000,
  /** Points in one upsert request; a log entry holds at most this many, so positions fit 16 bits. */
  pointsPerRequestMax: 10_000,
  idsPerRequestMax: 10_000,
  idBytesMax: 256,
  /** `requestId` of a write: it becomes part of a JetStream `Nats-Msg-Id` header, so printable ASCII only. */
  requestIdBytesMax: 128,
  /** A point's payload, JSON-encoded. */
  payloadBytesMax: 64 * 1024,
  /** Nesting of objects and arrays in a payload (the payload object itself is level 1). */
  payloadDepthMax: 16,
  /** Keys in a payload, counted over every level. */
  payloadKeysMax: 1_024,
  payloadKeyBytesMax: 256,
  /** Items of one array in a payload: also bounds what one filter clause scans per point. */
  payloadArrayItemsMax: 4_096,
  kMax: 1_000,
  /** Scopes of one API key (collections it names, or `*`). */
  keyScopesMax: 64,
  /** API keys a cluster keeps: every node holds all of them in memory. */
  keysMax: 10_000,
  /** KV reads in flight on one node for presented key ids its watch has not delivered (see KeyStore.authenticate). */
  keyMissReadsInFlightMax: 16,
  /** Transactions one shard may hold staged at once, as a backup's manifest records them (decision 013). */
  txnsStagedMax: 10_000,
  /** Ops (upserts and deletes of points) of one transaction; its points are within pointsPerRequestMax in all. */
  txnOpsMax: 64,
  /** Conditions of one transaction. */
  txnConditionsMax: 1_000,
  /** How long a transaction may take from its first lock to its decision, by default and at most. */
  txnTimeoutMsDefault: 5_000,
  txnTimeoutMsMax: 60_000,
  /** Records one `admin.txns.list` answers, by default and at most (newest first). */
  txnListDefault: 100,
  txnListMax: 1_000,
  /** Records one listing reads at most to find its matches (records are kept a day); past it the answer says `more`. */
  txnListScanMax: 10_000,
  /**
   * A shard's read reply names a commit this long after its commit time, so a router can
   * check the transaction's other shards of the read reflect it (decision 013, "Reads"): an
   * eventual or session read sees all of a transaction or none while the touched shards'
   * replicas lag each other by less than this.
   */
  txnReadWindowMs: 10_000,
  /**
   * A transaction staged on a shard this long is named "stale" in read replies: its commit may
   * be older than the read window on another shard, so the router reads its record.
   */
  txnStagedStaleMs: 5_000,
  /** Staged transactions, and recent commits, one read reply names at most (the oldest staged and newest commits first). */
  txnReadReportMax: 64,
  /** Times a router asks shards again for one read before it gives up on the transactions that keep landing. */
  txnReadRoundsMax: 3,
  /** Vectors in a vector-sharding training sample (create request; the 8 MiB request limit also applies). */
  shardingSampleVectorsMax: 10_000,
  /** Numbers (vectors × dimension) in a training sample: bounds k-means work at create time. */
  shardingSampleValuesMax: 1_000_000,
  /**
   * k-means work per Lloyd iteration (training vectors × shards × dimension): a larger
   * sample is strided down to fit, so training at create time stays around a second at worst.
   */
  kmeansWorkPerIterationMax: 8_000_000,
  /** Depth of nested $and/$or in a filter. */
  filterDepthMax: 8,
  filterClausesMax: 256,
  inListMax: 1_024,
  /** A filter's field path addresses payload keys, so it has at most as many segments as a payload has levels. */
  filterPathSegmentsMax: 16,
  searchTimeoutMsDefault: 5_000,
  searchTimeoutMsMax: 60_000,
  writeTimeoutMsDefault: 10_000,
  /** How long `backup.verify` may take (it re-reads every file; deep, it restores the backup too). */
  backupVerifyMsMax: 3_600_000,
  /** A collection's point-in-time window: 30 days of log at most. */
  pointInTimeMsMax: 30 * 24 * 3_600_000,
} as const;

// Relations between limits, checked once at load (TigerBeetle style).
assertLimit(limits.payloadKeyBytesMax <= limits.payloadBytesMax, "a payload key fits in a payload");
assertLimit(limits.filterPathSegmentsMax === limits.payloadDepthMax, "a filter path reaches every payload level, and no deeper");
// A commit out of the window was staged everywhere at least the window before: past the stale age even with clocks half the difference apart.
assertLimit(limits.txnReadWindowMs >= 2 * limits.txnStagedStaleMs, "a transaction whose commit left the read window is stale where it is still staged");
assertLimit(limits.searchTimeoutMsDefault <= limits.searchTimeoutMsMax, "the default read deadline is allowed");
assertLimit(limits.writeTimeoutMsDefault <= limits.searchTimeoutMsMax, "the default write deadline is allowed");
assertLimit(limits.payloadBytesMax < limits.natsPayloadBytesMax, "one point's payload fits in a request");
assertLimit(limits.txnListDefault <= limits.txnListMax && limits.txnListMax <= limits.txnListScanMax, "a listing's default fits its maximum, which its scan can fill");

function assertLimit(holds: boolean, relation: string): void {
  if (!holds) throw new Error(`limits.ts: broken relation: ${relation}`);
}

/** Log entries address points as sequence × 2^16 + position: see keyOf in log-entry.ts. */
export const positionsPerEntry = 1 << 16;
assertLimit(limits.pointsPerRequestMax <= positionsPerEntry, "every point of one request gets its own position in a log entry");

/**
 * How long a node may be silent (no heartbeat received) before routers and clients stop
 * asking it: the routers' default `failureTimeoutMs` and the client's bound, one value so a
 * client never keeps sending to a node every router already routes around.
 */
export const nodeSilentMsDefault = 3_000;
export const heartbeatIntervalMsDefault = 1_000;
assertLimit(nodeSilentMsDefault >= 2 * heartbeatIntervalMsDefault, "a node is judged silent only after missing two heartbeats");
