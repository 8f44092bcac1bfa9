/**
 * Every defect the fuzzer (and the probing that started it) found, as a named request
 * with the reply it must get now. Each was accepted, answered `internal`, not answered,
 * or waited on for its whole deadline before the fix named in `was`. A few pin a rule of
 * API surface when it joined the fuzzer (their `was` says so): a rule the fuzzer's
 * invalid bodies rely on, which must not loosen unseen.
 */
import { Packr } from "msgpackr";
import type { CreateCollectionRequest } from "../../src/runtime/schemas.ts";
import { nestedJsonText } from "./body.ts";

export interface Regression {
  name: string;
  /** What the node did before the fix. */
  was: string;
  /** `<node>` is replaced by the node id, `<uid>` by the collection's uid. */
  subject: string;
  body: string | Uint8Array;
  /** The error code the reply must carry (`ok` for a success), and a pattern its message must match. */
  code: string;
  message?: RegExp;
  /** A JetStream publish (a stray shard-log entry): no reply; the shard must keep serving unchanged. */
  publish?: true;
}

/** The collection the cases write to: dimension 4, cosine, f32, 2 shards (created by the test). */
export const regressionCollection: CreateCollectionRequest = { name: "reg", dimension: 4, metric: "cosine", shards: 2 };
/** Two more for the l2 and f16 rules, the first with vector sharding (3 shards). */
export const regressionCollectionsMore: CreateCollectionRequest[] = [
  { name: "reg-l2", dimension: 2, metric: "l2", shards: 3, sharding: "vector", centroids: [[1, 0], [0, 1], [-1, -1]] },
  { name: "reg-h", dimension: 2, metric: "ip", shards: 1, index: { quantization: "f16" } },
];

const packr = new Packr({ useRecords: false });

export const regressions: readonly Regression[] = [
  {
    name: "1e39 in a cosine f32 vector",
    was: "stored as Infinity: that point came back first, at distance 0, for every query",
    subject: "jade.v1.reg.upsert",
    body: '{"points":[{"id":"a","vector":[1e39,0.5,0.5,0.5]}]}',
    code: "invalid_argument",
    message: /^points\[0\]\.vector\[0\]: 1e\+39 is not a finite float32/,
  },
  {
    name: "3.4028236e38 rounds to Infinity in float32",
    was: "accepted",
    subject: "jade.v1.reg.upsert",
    body: '{"points":[{"id":"ok","vector":[0.1,0.1,0.1,0.1]},{"id":"a","vector":[0.5,-3.4028236e38,0.5,0.5]}]}',
    code: "invalid_argument",
    message: /^points\[1\]\.vector\[1\]: /,
  },
  {
    name: "zero vector in a cosine collection",
    was: "accepted (cosine of a zero vector is undefined)",
    subject: "jade.v1.reg.upsert",
    body: '{"points":[{"id":"z","vector":[0,0,0,0]}]}',
    code: "invalid_argument",
    message: /zero vector/,
  },
  {
    name: "all-subnormal cosine vector",
    was: "accepted",
    subject: "jade.v1.reg.upsert",
    body: '{"points":[{"id":"z","vector":[1e-39,0,-1e-40,0]}]}',
    code: "invalid_argument",
    message: /smallest normal f32/,
  },
  {
    name: "zero query vector in a cosine collection",
    was: "answered with meaningless distances",
    subject: "jade.v1.reg.search",
    body: '{"vector":[0,0,0,0],"k":3}',
    code: "invalid_argument",
    message: /^vector: is a zero vector/,
  },
  {
    name: "l2 vector whose distances overflow float32",
    was: "accepted; its hits came back with \"distance\": null",
    subject: "jade.v1.reg-l2.upsert",
    body: '{"points":[{"id":"far","vector":[1e20,1e20]}]}',
    code: "invalid_argument",
    message: /squared length .* above 2\^125/,
  },
  {
    name: "65505 in an f16 collection",
    was: "stored as Infinity in the f16 graph",
    subject: "jade.v1.reg-h.upsert",
    body: '{"points":[{"id":"h","vector":[65505,1]}]}',
    code: "invalid_argument",
    message: /outside ±65504/,
  },
  {
    name: "payload key __proto__",
    was: "silently dropped by the schema (and renamed __proto_ by msgpack)",
    subject: "jade.v1.reg.upsert",
    body: '{"points":[{"id":"p","vector":[1,1,1,1],"payload":{"__proto__":{"color":"red"}}}]}',
    code: "invalid_argument",
    message: /key "__proto__" is reserved/,
  },
  {
    name: "payload number 1e999",
    was: "stored as Infinity, returned as null",
    subject: "jade.v1.reg.upsert",
    body: '{"points":[{"id":"p","vector":[1,1,1,1],"payload":{"x":1e999}}]}',
    code: "invalid_argument",
    message: /payload\.x: Infinity is not a finite number/,
  },
  {
    name: "payload nested 20,000 levels",
    was: "internal: Maximum call stack size exceeded",
    subject: "jade.v1.reg.upsert",
    body: `{"points":[{"id":"d","vector":[1,1,1,1],"payload":${nestedJsonText(20_000)}}]}`,
    code: "invalid_argument",
    message: /nests deeper than 16 levels/,
  },
  {
    name: "id with a lone surrogate",
    was: "stored as U+FFFD, so get of the same id found nothing",
    subject: "jade.v1.reg.upsert",
    body: '{"points":[{"id":"\\ud800","vector":[1,2,1,1]}]}',
    code: "invalid_argument",
    message: /^points\[0\]\.id: contains a lone UTF-16 surrogate/,
  },
  {
    name: "id with NUL",
    was: "accepted",
    subject: "jade.v1.reg.upsert",
    body: '{"points":[{"id":"a\\u0000b","vector":[1,2,1,1]}]}',
    code: "invalid_argument",
    message: /control character U\+0000/,
  },
  {
    name: "requestId with CR LF",
    was: "no reply for 10 s (JetStream publish retried with a broken header), then unavailable",
    subject: "jade.v1.reg.upsert",
    body: '{"points":[{"id":"r","vector":[1,2,1,1]}],"requestId":"a\\r\\nX: y"}',
    code: "invalid_argument",
    message: /^requestId: must be printable ASCII/,
  },
  {
    name: "session token past the end of the log",
    was: "waited the whole timeout, then a partial result",
    subject: "jade.v1.reg.search",
    body: '{"vector":[0.1,0.9,0.5,0.5],"k":3,"consistency":"session","token":{"0":999999},"timeoutMs":30000}',
    code: "invalid_argument",
    message: /past the end of its log/,
  },
  {
    name: "session token naming a shard the collection lacks",
    was: "ignored",
    subject: "jade.v1.reg.count",
    body: '{"consistency":"session","token":{"7":1}}',
    code: "invalid_argument",
    message: /shard 7 does not exist/,
  },
  {
    name: "session token key 007",
    was: "ignored (never equal to a shard's key)",
    subject: "jade.v1.reg.get",
    body: '{"ids":["a"],"consistency":"session","token":{"007":5}}',
    code: "invalid_argument",
    message: /"007" is not a shard number/,
  },
  {
    name: "filter on __proto__",
    was: "the schema dropped the key, so the filter matched every point",
    subject: "jade.v1.reg.count",
    body: '{"filter":{"__proto__":1}}',
    code: "invalid_argument",
    message: /"__proto__" is reserved/,
  },
  {
    name: "nprobe above the shard count",
    was: "silently probed every shard",
    subject: "jade.v1.reg-l2.search",
    body: '{"vector":[1,1],"k":3,"nprobe":9}',
    code: "invalid_argument",
    message: /nprobe: 9 is more than the collection's 3 shards/,
  },
  {
    name: "body that is not UTF-8",
    was: "decoded with U+FFFD in place of the bad bytes",
    subject: "jade.v1.reg.get",
    body: Uint8Array.from([...new TextEncoder().encode('{"ids":["'), 0xff, 0xfe, ...new TextEncoder().encode('"]}')]),
    code: "invalid_argument",
    message: /not UTF-8/,
  },
  {
    name: "create with a null vector in its k-means sample (found by the fuzzer, seed 20261202)",
    was: "internal: Cannot read properties of null (reading 'length'): the new custom vector check let the create request's own refinement run on the invalid sample",
    subject: "jade.v1.collections.create",
    body: '{"name":"reg-null","dimension":1,"metric":"ip","shards":3,"sharding":"auto","sample":[[1],[1],[1],[1],[1],null,[1],[1]]}',
    code: "invalid_argument",
    message: /^sample\[5\]: must be an array of numbers, got null/,
  },
  {
    name: "admin move of shard 1e15",
    was: "not range-checked: looked up in the placement, then not_found",
    subject: "jade.v1.admin.move",
    body: '{"collection":"reg","shard":1e15,"from":"x","to":"y"}',
    code: "invalid_argument",
    message: /^shard: /,
  },
  {
    name: "coordinator subject with a body that is not JSON",
    was: "internal: Unexpected token",
    subject: "jade.coordinator.drain",
    body: "not json",
    code: "invalid_argument",
    message: /malformed JSON/,
  },
  {
    name: "coordinator subject naming no operation",
    was: '{"ok":true} without a result',
    subject: "jade.coordinator.bogus",
    body: "{}",
    code: "invalid_argument",
    message: /unknown coordinator subject/,
  },
  {
    name: "restore to both an instant and sequences (backup API, decision 008)",
    was: "no defect: pinned when backups and restores joined the fuzzer",
    subject: "jade.v1.admin.restore",
    body: '{"live":"reg","as":"reg-copy","toTime":"2026-12-05T08:00:00+01:00","toSeq":[{"shard":0,"seq":1}]}',
    code: "invalid_argument",
    message: /give toTime or toSeq, not both/,
  },
  {
    // Of a collection that does not exist: had the rule loosened, the request would stop at not_found, before writing anything.
    name: "backup to a relative directory (backup API, decision 008)",
    was: "no defect: pinned when backups and restores joined the fuzzer",
    subject: "jade.coordinator.backup.create",
    body: '{"collections":["reg-none"],"to":{"dir":"relative/dir"}}',
    code: "invalid_argument",
    message: /must be an absolute path/,
  },
  {
    name: "transaction with an op that is neither upsert nor delete (decision 013)",
    was: "no defect: pinned when transactions joined the fuzzer",
    subject: "jade.v1.reg.transaction",
    body: '{"ops":[{"op":"frob","ids":["keep-1"]}]}',
    code: "invalid_argument",
    message: /^ops\[0\]/,
  },
  {
    name: "transaction whose condition gives both a version and exists",
    was: "no defect: pinned when transactions joined the fuzzer",
    subject: "jade.v1.reg.transaction",
    body: '{"ops":[{"op":"delete","ids":["keep-1"]}],"conditions":[{"id":"keep-1","version":1,"exists":true}]}',
    code: "invalid_argument",
    message: /exactly one/,
  },
  {
    name: "transaction record id that is no KV key (admin.txns)",
    was: "no defect: pinned when transaction records joined the fuzzer (an id becomes part of a KV key)",
    subject: "jade.v1.admin.txns.get",
    body: '{"id":"open.>"}',
    code: "invalid_argument",
    message: /transaction id/,
  },
  {
    name: "abort of a transaction nobody ran",
    was: "no defect: pinned when transaction records joined the fuzzer",
    subject: "jade.v1.admin.txns.abort",
    body: '{"id":"t-none"}',
    code: "not_found",
  },
  {
    name: "replica request that is not msgpack",
    was: "internal: Data read, but end of buffer not reached",
    subject: "jade.replica.<node>.reg.0.search",
    body: Uint8Array.from([1, 2, 3]),
    code: "invalid_argument",
    message: /not msgpack/,
  },
  {
    name: "replica search without its search field",
    was: "internal: TypeError reading the missing field",
    subject: "jade.replica.<node>.reg.0.search",
    body: packr.pack({ uid: "<uid>", minSeq: 0, timeoutMs: 1000 }),
    code: "invalid_argument",
    message: /needs its "search" field/,
  },
  {
    name: "replica count with a filter that is not a filter",
    was: "internal: the worker's predicate compiler threw",
    subject: "jade.replica.<node>.reg.0.count",
    body: packr.pack({ uid: "<uid>", minSeq: 0, timeoutMs: 1000, count: { filter: { op: "and", clauses: 5 } } }),
    code: "invalid_argument",
    message: /clauses must be an array/,
  },
  {
    name: "stray garbage in a shard log",
    was: "every replica failed to decode it and restarted into it again: the shard stopped serving",
    subject: "jade.log.reg.0",
    body: Uint8Array.from([0xc1, 0x00, 0xff]),
    code: "ok",
    publish: true,
  },
  {
    name: "stray shard-log entry with NaN vectors",
    was: "applied: NaN in the graph",
    subject: "jade.log.reg.1",
    body: packr.pack({ k: "u", i: ["nan"], p: [null], d: 4, v: new Uint8Array(Float32Array.from([NaN, 1, 1, 1]).buffer) }),
    code: "ok",
    publish: true,
  },
];
