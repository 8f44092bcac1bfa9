import type { StoredPoint } from "../../src/runtime/schemas.ts";

/** Points as `get` returns them, less their versions: for tests about what a point holds, not which write made it. */
export function unversioned(points: readonly StoredPoint[]): Omit<StoredPoint, "version">[] {
  return points.map(({ version: _version, ...point }) => point);
}
