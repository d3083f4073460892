// The single-flight cache of reader.ts for reads that never fail (they answer "unreachable"
// instead): one read in flight at a time, its result answering every caller for `cacheMs`.
export interface CachedRead<T> {
  /** `freshFrom` (epoch ms): only a read that started at or after it will do (?fresh=1). */
  read(freshFrom?: number): Promise<T>;
}

interface Read<T> {
  startedAt: number;
  settled: boolean;
  result: Promise<T>;
}

export function cachedRead<T>(load: () => Promise<T>, cacheMs: number, now: () => number = Date.now): CachedRead<T> {
  let latest: Read<T> | undefined;
  return {
    read(freshFrom) {
      const current = latest;
      // A read still running is shared however long it takes (it has its own timeout).
      const recentEnough = current !== undefined && (freshFrom === undefined || current.startedAt >= freshFrom);
      if (current && recentEnough && (!current.settled || now() - current.startedAt < cacheMs)) return current.result;
      const read: Read<T> = { startedAt: now(), settled: false, result: load() };
      read.result.then(() => (read.settled = true), () => (read.settled = true));
      latest = read;
      return read.result;
    },
  };
}
