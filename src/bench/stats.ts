// Percentiles for benchmark samples.

export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;

export interface Summary {
  runs: number;
  p50Ms: number;
  p90Ms: number;
}

export const summarize = (samples: number[]): Summary => ({
  runs: samples.length,
  p50Ms: round(percentile(samples, 50)),
  p90Ms: round(percentile(samples, 90)),
});
