// Load shapes for the benchmark: closed loop (N callers back to back) and open loop (a fixed
// arrival rate, whether or not earlier calls have finished: how real users behave).
import { percentile } from '../stress/stress.ts';

/** Runs `work(i)` for i = 0 … total-1 from `concurrency` loops, back to back. Returns elapsed ms. */
export async function closedLoop(total: number, concurrency: number, work: (i: number, loop: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, loop) => {
      while (next < total) await work(next++, loop);
    }),
  );
  return performance.now() - started;
}

/** Starts `work(i)` every 1000/rate ms for `durationMs`, without waiting; resolves when all have settled. */
export async function openLoop(rate: number, durationMs: number, work: (i: number) => Promise<unknown>): Promise<void> {
  const total = Math.round((rate * durationMs) / 1000);
  const started = performance.now();
  const inFlight: Promise<unknown>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    inFlight.push(work(i));
  }
  await Promise.all(inFlight);
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  count: number;
}

export function percentiles(samples: readonly number[]): Percentiles {
  const sorted = [...samples].sort((a, b) => a - b);
  if (sorted.length === 0) return { p50: NaN, p95: NaN, p99: NaN, count: 0 };
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99), count: sorted.length };
}

export function perSecond(count: number, ms: number): number {
  return ms > 0 ? (count / ms) * 1000 : 0;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every `everyMs` until it is true; false when `timeoutMs` passed first. */
export async function until(check: () => Promise<boolean>, timeoutMs: number, everyMs = 10): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (performance.now() > deadline) return false;
    await sleep(everyMs);
  }
}
