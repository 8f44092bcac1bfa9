/**
 * Points in columns: ids, one float32 array of every vector back to back, and payloads.
 * The write path carries points this way from the request to the log entry, so a bulk
 * write allocates per request, not per point (JSON requests are converted once, here).
 */
import { dimensionMismatch, parse, vectorError } from "./checks.ts";
import { float32FromBytes } from "./encoding.ts";
import { UpsertColumnsRequest, UpsertRequest, type Payload, type Point, type VectorInput, type WriteConsistency } from "./schemas.ts";
import { rowIssue, type VectorSpace } from "./vectors.ts";

export interface PointColumns {
  ids: string[];
  /** ids.length × dimension values. */
  vectors: Float32Array;
  /** One payload or null per id; undefined when no point has one. */
  payloads?: (Payload | null)[];
}

export interface WriteRequestOptions {
  consistency: WriteConsistency;
  requestId?: string;
  timeoutMs?: number;
  /** An upsert's: run it as a transaction, every shard or none. */
  atomic?: boolean;
}

/** A vector of a request as float32 values (a view of msgpack bytes when aligned). */
export function float32Of(vector: VectorInput): Float32Array {
  return vector instanceof Uint8Array ? float32FromBytes(vector) : Float32Array.from(vector);
}

/**
 * An upsert request body — `{points: […]}` or, in msgpack, columns `{ids, vectors, payloads?}` —
 * parsed and checked against the collection's space.
 */
export function parseUpsert(body: unknown, space: VectorSpace): { columns: PointColumns; options: WriteRequestOptions } {
  const columnar = typeof body === "object" && body !== null && !Array.isArray(body) && "ids" in body && !("points" in body);
  if (columnar) {
    const { ids, vectors, payloads, ...options } = parse(UpsertColumnsRequest, body);
    const values = float32FromBytes(vectors);
    if (values.length !== ids.length * space.dimension) {
      throw dimensionMismatch(space.dimension, values.length / ids.length, `vectors (${values.length} values for ${ids.length} ids)`);
    }
    const columns: PointColumns = { ids, vectors: values, payloads: payloads?.some((p) => p !== null) ? payloads : undefined };
    checkColumns(columns, space, (i) => `vectors[${i}]`);
    return { columns, options };
  }
  const { points, ...options } = parse(UpsertRequest, body);
  return { columns: columnsOf(points, space), options };
}

/** JSON points as columns, each vector checked against the space (the first bad one is the error). */
export function columnsOf(points: readonly Point[], space: VectorSpace): PointColumns {
  const columns = new ColumnsBuilder(space.dimension, points.length);
  points.forEach((point, i) => {
    const vector = point.vector instanceof Uint8Array ? float32FromBytes(point.vector) : point.vector;
    if (vector.length !== space.dimension) throw dimensionMismatch(space.dimension, vector.length, `points[${i}].vector`);
    columns.add(point.id, vector, 0, point.payload);
  });
  const built = columns.build();
  checkColumns(built, space, (i) => `points[${i}].vector`);
  return built;
}

/** Columns filled row by row (rows already checked), sized for at most `capacity` rows. */
export class ColumnsBuilder {
  readonly #dimension: number;
  readonly #ids: string[] = [];
  readonly #vectors: Float32Array;
  #payloads: (Payload | null)[] | undefined;

  constructor(dimension: number, capacity: number) {
    this.#dimension = dimension;
    this.#vectors = new Float32Array(capacity * dimension);
  }

  get length(): number {
    return this.#ids.length;
  }

  /** Adds the point `id` whose vector is `vectors[offset … offset + dimension)`. */
  add(id: string, vectors: ArrayLike<number>, offset: number, payload: Payload | undefined): void {
    const row = this.#ids.length;
    const dim = this.#dimension;
    if (vectors instanceof Float32Array) this.#vectors.set(vectors.subarray(offset, offset + dim), row * dim);
    else for (let j = 0; j < dim; j++) this.#vectors[row * dim + j] = vectors[offset + j]!;
    this.#ids.push(id);
    if (payload !== undefined) (this.#payloads ??= new Array<Payload | null>(row).fill(null))[row] = payload;
    else if (this.#payloads !== undefined) this.#payloads[row] = null;
  }

  build(): PointColumns {
    const n = this.#ids.length;
    const vectors = n * this.#dimension === this.#vectors.length ? this.#vectors : this.#vectors.slice(0, n * this.#dimension);
    return { ids: this.#ids, vectors, payloads: this.#payloads };
  }
}

/** Every vector against the collection's space; `where(i)` names the i-th in an error (and is called only then). */
export function checkColumns(columns: PointColumns, space: VectorSpace, where: (i: number) => string): void {
  const dim = space.dimension;
  for (let i = 0; i < columns.ids.length; i++) {
    const issue = rowIssue(columns.vectors, i * dim, space);
    if (issue) throw vectorError(issue, dim, where(i));
  }
}
