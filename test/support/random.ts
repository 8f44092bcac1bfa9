import { seededRandom } from "../../src/runtime/random.ts";

export { seededRandom };

/** `count` vectors of `dimension` values in [-1, 1), back to back. */
export function randomVectors(random: () => number, count: number, dimension: number): Float32Array {
  const vectors = new Float32Array(count * dimension);
  for (let i = 0; i < vectors.length; i++) vectors[i] = random() * 2 - 1;
  return vectors;
}
