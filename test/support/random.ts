/** Seeded pseudo-random numbers (mulberry32), so failing tests reproduce. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` vectors of `dimension` values in [-1, 1), back to back. */
export function randomVectors(random: () => number, count: number, dimension: number): Float32Array {
  const vectors = new Float32Array(count * dimension);
  for (let i = 0; i < vectors.length; i++) vectors[i] = random() * 2 - 1;
  return vectors;
}
