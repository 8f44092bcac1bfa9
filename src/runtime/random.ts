/** Seeded pseudo-random numbers and a string hash, shared by the code, the tests, chaos and the simulation. */

/** Seeded pseudo-random numbers (mulberry32): small, fast, and reproducible from a printed seed. */
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

/** The 32-bit FNV-1a hash of a string's UTF-16 code units: seeds for deterministic vectors and digests. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A uniform integer in [lo, hi], from `next` in [0, 1). */
export function randomInt(next: () => number, lo: number, hi: number): number {
  return lo + Math.floor(next() * (hi - lo + 1));
}

/** One element of a non-empty array. */
export function pickOne<T>(next: () => number, items: readonly T[]): T {
  return items[Math.floor(next() * items.length)]!;
}

/** A shuffled copy (Fisher–Yates). */
export function shuffled<T>(next: () => number, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The seeded generator with its helpers bound: what tests and the simulation draw from. */
export function seededRng(seed: number) {
  const next = seededRandom(seed);
  return {
    next,
    int: (lo: number, hi: number) => randomInt(next, lo, hi),
    pick: <T>(items: readonly T[]) => pickOne(next, items),
    shuffle: <T>(items: readonly T[]) => shuffled(next, items),
  };
}
