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
  /** Points in one upsert request; a log entry holds at most this many, so positions fit 16 bits. */
  pointsPerRequestMax: 10_000,
  idsPerRequestMax: 10_000,
  idBytesMax: 256,
  /** A point's payload, JSON-encoded. */
  payloadBytesMax: 64 * 1024,
  kMax: 1_000,
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
  searchTimeoutMsDefault: 5_000,
  searchTimeoutMsMax: 60_000,
  writeTimeoutMsDefault: 10_000,
} as const;

/** Log entries address points as sequence × 2^16 + position: see keyOf in log-entry.ts. */
export const positionsPerEntry = 1 << 16;
