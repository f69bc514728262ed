/** A small deterministic PRNG so a failure names a seed that reproduces it (an LCG; uniform in [0, 1)). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A copy of `xs` in the order a Fisher–Yates shuffle driven by `r` gives. */
export const shuffle = <T>(xs: T[], r: () => number): T[] => {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
};
