// Durations in settings and flags: a whole number and a unit, e.g. "30s", "15m", "24h", "7d".
// A unit is always required: a bare "7" could be 7 ms or 7 days, and a retention that is
// wrong by that factor deletes what must be kept.

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export const DURATION_FORMAT = 'a whole number and a unit (ms, s, m, h, d), e.g. 30s, 15m, 24h or 7d';

/** "24h" → 86,400,000; undefined when `raw` is not a duration. */
export function parseDuration(raw: string): number | undefined {
  const match = /^(\d+)\s*(ms|s|m|h|d)$/.exec(raw.trim().toLowerCase());
  if (!match) return undefined;
  const ms = Number(match[1]) * UNITS[match[2]!]!;
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** 604,800,000 → "7d"; the largest unit that divides evenly, for logs and banners. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
