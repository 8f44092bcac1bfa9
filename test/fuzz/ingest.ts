/**
 * Ingestion under fuzz: batches of records published to `jade.ingest.<collection>`
 * (good points and batches, batches with one bad point, bad points, bytes that are
 * not JSON, unknown collections and subjects, mutated records, and bad points aimed
 * at a reference collection). Once the work queue is empty, each record must have
 * gone where it should: good points land exactly as sent, every bad one has exactly
 * one dead letter with a documented code (never `internal`), and the references
 * are unchanged. A failing batch is shrunk like the API batches.
 */
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import fc from "fast-check";
import { isDeepStrictEqual } from "node:util";
import type { DeadLetter } from "../../src/actors/write/ingestion.ts";
import type { JadeClient } from "../../src/client/client.ts";
import { names, subjects } from "../../src/runtime/subjects.ts";
import { waitFor } from "../support/harness.ts";
import { nested, toJsonText, type Json } from "./body.ts";
import { encodeBody } from "./client.ts";
import { mutated } from "./mutations.ts";
import { documentedCodes } from "./properties.ts";
import type { FuzzRequest } from "./requests.ts";
import { payloadArb, vectorArb } from "./values.ts";
import { glanceReferences, type CollectionSpec, type World } from "./world.ts";

export interface IngestReport {
  records: number;
  pointsLanded: number;
  deadLetters: number;
  codes: Record<string, number>;
  failure?: { message: string; records: string[] };
}

/**
 * What must become of a record: which of its points land (`self` for a one-point record,
 * else positions in `points`), and which positions are dead-lettered (`all` for the record
 * as a whole; `any` for mutated records, of which only documented codes are asked).
 */
interface Expected {
  lands: "self" | number[];
  letters: (number | "all")[] | "any";
}

interface IngestRecord {
  subject: string;
  body: { json: Json } | { bytes: Uint8Array };
  expected: Expected;
  touchesReference: boolean;
}

type LandingPoint = { id: string; vector: number[]; payload?: Json };

/**
 * The bytes to publish, with the landing points' ids made unique to this publish: the
 * work queue applies records concurrently, so two records of one batch with the same id
 * would race, and a shrink attempt would meet the points of earlier attempts.
 */
function prepare(record: IngestRecord, tag: string): { bytes: Uint8Array; lands: LandingPoint[] } {
  if ("bytes" in record.body || record.expected.letters === "any") return { bytes: encodeBody(record.body), lands: [] };
  const json = record.body.json;
  if (record.expected.lands === "self") {
    const point = { ...(json as LandingPoint), id: `${tag}` };
    return { bytes: encodeBody({ json: point as unknown as Json }), lands: [point] };
  }
  const positions = record.expected.lands;
  const lands: LandingPoint[] = [];
  const points = ((json as { points: Json[] }).points ?? []).map((p, j) => {
    if (!positions.includes(j)) return p;
    const point = { ...(p as LandingPoint), id: `${tag}.${j}` };
    lands.push(point);
    return point as unknown as Json;
  });
  return { bytes: encodeBody({ json: { points } }), lands };
}

/** A good point; its id is replaced at publish time (see prepare). */
const goodPoint = (s: CollectionSpec): fc.Arbitrary<Json> =>
  fc.tuple(vectorArb(s), fc.option(payloadArb, { nil: undefined })).map(([vector, payload]): Json => (payload === undefined ? { id: "g", vector } : { id: "g", vector, payload }));

function badPointOf(s: CollectionSpec): fc.Arbitrary<Json> {
  const bad: Json[] = [
    { id: "", vector: Array.from({ length: s.dimension }, () => 1) },
    { id: "b", vector: Array.from({ length: s.dimension + 1 }, () => 1) },
    { id: "b", vector: [1e39, ...Array.from({ length: s.dimension - 1 }, () => 1)] },
    { id: "b\ud800", vector: Array.from({ length: s.dimension }, () => 1) },
    { id: "b", vector: Array.from({ length: s.dimension }, () => 1), payload: nested(17, 1, (inner) => ({ d: inner })) },
    { id: "b", vector: Array.from({ length: s.dimension }, () => 1), extra: true },
    "not a point",
  ];
  if (s.metric === "cosine") bad.push({ id: "b", vector: Array.from({ length: s.dimension }, () => 0) });
  if (s.quantization === "f16") bad.push({ id: "b", vector: [65505, ...Array.from({ length: s.dimension - 1 }, () => 1)] });
  return fc.constantFrom(...bad);
}

function recordArb(world: World): fc.Arbitrary<IngestRecord> {
  const targets = world.ingest;
  const ref = world.references[0]!;
  const record = (subject: string, json: Json, expected: Expected, touchesReference = false): IngestRecord => ({ subject, body: { json }, expected, touchesReference });
  return fc.constantFrom(...targets).chain((s) => {
    const to = subjects.ingest(s.name);
    return fc.oneof(
      { weight: 4, arbitrary: goodPoint(s).map((p) => record(to, p, { lands: "self", letters: [] })) },
      { weight: 3, arbitrary: fc.array(goodPoint(s), { minLength: 1, maxLength: 5 }).map((points) => record(to, { points }, { lands: points.map((_, j) => j), letters: [] })) },
      {
        weight: 3,
        arbitrary: fc.tuple(fc.array(goodPoint(s), { maxLength: 4 }), badPointOf(s), fc.nat()).map(([points, bad, at]) => {
          const index = at % (points.length + 1);
          const all: Json[] = [...points];
          all.splice(index, 0, bad);
          return record(to, { points: all }, { lands: all.map((_, j) => j).filter((j) => j !== index), letters: [index] });
        }),
      },
      { weight: 2, arbitrary: badPointOf(s).map((bad) => record(to, bad, { lands: [], letters: ["all"] })) },
      {
        weight: 2,
        arbitrary: fc
          .oneof(fc.constantFrom("", "{", "null", "[1,2]", '{"points": []}', '{"points": 5}').map((t) => new TextEncoder().encode(t)), fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => Uint8Array.from([0xff, ...b])))
          .map((bytes): IngestRecord => ({ subject: to, body: { bytes }, expected: { lands: [], letters: ["all"] }, touchesReference: false })),
      },
      {
        weight: 1,
        arbitrary: fc.tuple(fc.constantFrom("jade.ingest.fz-none", "jade.ingest.a.b", "jade.ingest.bad$name"), goodPoint(s)).map(([subject, p]) => record(subject, p, { lands: [], letters: ["all"] })),
      },
      { weight: 1, arbitrary: badPointOf(ref).map((bad) => record(subjects.ingest(ref.name), bad, { lands: [], letters: ["all"] }, true)) },
      {
        weight: 3,
        arbitrary: mutated(goodPoint(s).map((p): FuzzRequest => ({ family: "ingest", subject: to, body: { json: p }, expect: "any", transport: "publish", touchesReference: false }))).map(
          (r): IngestRecord => ({ subject: r.subject, body: { bytes: encodeBody(r.body) }, expected: { lands: [], letters: "any" }, touchesReference: false }),
        ),
      },
    );
  });
}

function describeRecord(r: IngestRecord): string {
  const text = "json" in r.body ? toJsonText(r.body.json) : `<${r.body.bytes.byteLength} bytes> ${Buffer.from(r.body.bytes.subarray(0, 64)).toString("hex")}`;
  return `${r.subject} ${text.length > 400 ? `${text.slice(0, 400)}…` : text} → ${JSON.stringify(r.expected.letters)}`;
}

async function deadLettersAfter(jsm: JetStreamManager, afterSeq: number): Promise<DeadLetter[]> {
  const last = (await jsm.streams.info(names.dlqStream)).state.last_seq;
  const letters: DeadLetter[] = [];
  for (let seq = afterSeq + 1; seq <= last; seq++) {
    const m = await jsm.streams.getMessage(names.dlqStream, { seq });
    if (m) letters.push(m.json<DeadLetter>());
  }
  return letters;
}

/** What is wrong with the record's fate, or undefined. */
function fateIssue(record: IngestRecord, lands: LandingPoint[], letters: DeadLetter[], landed: Map<string, { vector?: number[]; payload?: unknown }>): string | undefined {
  for (const letter of letters) {
    if (letter.error.code === "internal") return `dead-lettered as internal: ${letter.error.message}`;
    if (!documentedCodes.has(letter.error.code)) return `dead letter with undocumented code ${letter.error.code}`;
  }
  if (record.expected.letters === "any") return undefined;
  const positions = letters.map((l) => l.index ?? "all").sort();
  const wanted = [...record.expected.letters].sort();
  if (!isDeepStrictEqual(positions, wanted)) return `dead letters at ${JSON.stringify(positions)}, expected ${JSON.stringify(wanted)}`;
  for (const p of lands) {
    const got = landed.get(p.id);
    if (!got) return `point ${p.id} did not land`;
    // As sent: through JSON (so -0 is 0), then float32.
    const sent = (JSON.parse(toJsonText(p.vector)) as number[]).map(Math.fround);
    if (!isDeepStrictEqual(got.vector, sent)) return `point ${p.id} landed with vector ${JSON.stringify(got.vector)}, sent ${JSON.stringify(sent)}`;
    if (!isDeepStrictEqual(got.payload ?? null, p.payload === undefined ? null : JSON.parse(toJsonText(p.payload)))) return `point ${p.id} landed with payload ${JSON.stringify(got.payload)}`;
  }
  return undefined;
}

export async function runIngestion(client: JadeClient, world: World, options: { seed: number; records: number; log: (line: string) => void }): Promise<IngestReport> {
  const js: JetStreamClient = jetstream(client.nc);
  const jsm = await jetstreamManager(client.nc);
  const report: IngestReport = { records: 0, pointsLanded: 0, deadLetters: 0, codes: {} };
  const glance = await glanceReferences(client, world);
  let published = 0;
  let shrinking = false;
  const property = fc.asyncProperty(fc.array(recordArb(world), { minLength: 1, maxLength: 24 }), async (batch) => {
    // numRuns over-counts batches (fast-check favours short arrays): past the target, runs are empty.
    if (!shrinking && report.records >= options.records) return;
    const dlqBefore = (await jsm.streams.info(names.dlqStream)).state.last_seq;
    const prepared = batch.map((r) => prepare(r, `ing-${options.seed}-${published++}`));
    const seqs = await Promise.all(prepared.map(async (p, i) => (await js.publish(batch[i]!.subject, p.bytes)).seq));
    await waitFor(async () => (await jsm.streams.info(names.ingestStream)).state.messages === 0, { timeoutMs: 60_000, what: "the ingest work queue to drain" });
    const letters = await deadLettersAfter(jsm, dlqBefore);
    const bySeq = new Map<number, DeadLetter[]>();
    for (const letter of letters) bySeq.set(letter.ingestSeq, [...(bySeq.get(letter.ingestSeq) ?? []), letter]);
    const landed = new Map<string, { vector?: number[]; payload?: unknown }>();
    for (const s of world.ingest) {
      const ids = prepared.filter((_, i) => batch[i]!.subject === subjects.ingest(s.name)).flatMap((p) => p.lands.map((l) => l.id));
      if (ids.length === 0) continue;
      const { points } = await client.get(s.name, { ids, withVectors: true, consistency: "strong" });
      for (const p of points) landed.set(p.id, p);
    }
    if (!shrinking) {
      report.records += batch.length;
      report.deadLetters += letters.length;
      for (const l of letters) report.codes[l.error.code] = (report.codes[l.error.code] ?? 0) + 1;
      report.pointsLanded += landed.size;
    }
    const broken = batch.map((r, i) => ({ r, why: fateIssue(r, prepared[i]!.lands, bySeq.get(seqs[i]!) ?? [], landed) })).filter((b) => b.why !== undefined);
    if (broken.length > 0) {
      shrinking = true;
      throw new Error(broken.map((b) => `${b.why}\n    ${describeRecord(b.r)}`).join("\n"));
    }
    if (batch.some((r) => r.touchesReference) && !isDeepStrictEqual(await glanceReferences(client, world), glance)) {
      shrinking = true;
      throw new Error("a reference collection changed after ingestion");
    }
  });
  const details = await fc.check(property, { seed: options.seed, numRuns: Math.max(1, Math.ceil(options.records / 3)) });
  if (details.failed) {
    const batch = (details.counterexample?.[0] ?? []) as IngestRecord[];
    report.failure = { message: String((details.errorInstance as Error | undefined)?.message ?? details.errorInstance), records: batch.map(describeRecord) };
  }
  options.log(`ingestion: ${report.records} records, ${report.pointsLanded} points landed, ${report.deadLetters} dead letters`);
  return report;
}
