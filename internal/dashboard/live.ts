// Live updates for the dashboard: one loop per server, not per viewer. While anyone watches,
// it reads the pipeline's numbers through the shared StatsReader (the same as GET /stats) and
// collects the new log steps, and pushes both to every viewer in one batch, a few times a
// second at most. Nobody watching: no timer, no queries.
import type { Logger } from '../log/logger.ts';
import type { StatsReader } from '../stats/reader.ts';
import type { Stats } from '../stats/stats.ts';
import type { LiveFeed, Step } from './feed.ts';

export interface Snapshot {
  /** Milliseconds since the epoch when the numbers were read. */
  at: number;
  stats: Stats;
  /** Leased events by worker, right now. */
  inFlightByWorker: Record<string, number>;
  /** This server's worker loops: the lanes of the picture. */
  workers: string[];
  /** The injected delivery failure rate, when fault injection exists. */
  failRate?: number;
}

export interface Viewer {
  send(event: 'snapshot' | 'steps' | 'problem', data: unknown): void;
  end(): void;
}

export interface LiveUpdates {
  /** Starts pushing to `viewer` (recent steps and a snapshot at once); returns "stop". */
  watch(viewer: Viewer): () => void;
  /** Ends every viewer's stream (server shutdown). */
  close(): void;
}

export interface LiveOptions {
  /** How often a batch may go out while something happens. */
  intervalMs?: number;
  /** How often the numbers are re-read when no step was logged (other processes' work). */
  idleRefreshMs?: number;
  /** Steps per batch at most; under a flood the newest win and the rest are counted. */
  maxStepsPerBatch?: number;
}

export interface LiveDeps {
  reader: StatsReader;
  feed: LiveFeed;
  workers: string[];
  logger: Logger;
  failRate?: () => number;
}

const RECENT_ON_CONNECT = 40;

export function createLiveUpdates(deps: LiveDeps, options: LiveOptions = {}): LiveUpdates {
  const intervalMs = options.intervalMs ?? 250;
  const idleRefreshMs = options.idleRefreshMs ?? 1_000;
  const maxSteps = options.maxStepsPerBatch ?? 200;
  const log = deps.logger.child('Dashboard');
  const viewers = new Set<Viewer>();
  let timer: NodeJS.Timeout | undefined;
  let sentSeq = deps.feed.lastSeq;
  let lastReadAt = 0;
  let busy = false;
  let databaseDown = false;

  /** `freshFrom`: new steps were logged, so numbers read before now would lag behind them. */
  async function snapshot(freshFrom?: number): Promise<Snapshot> {
    const stats = await deps.reader.read(freshFrom);
    const snap: Snapshot = { at: Date.now(), stats, inFlightByWorker: stats.inFlightByWorker, workers: deps.workers };
    if (deps.failRate) snap.failRate = deps.failRate();
    return snap;
  }

  function broadcast(event: Parameters<Viewer['send']>[0], data: unknown, to: Iterable<Viewer> = viewers): void {
    for (const viewer of to) viewer.send(event, data);
  }

  /** Reads the numbers, then calls `beforeSending` (if any), then sends them. */
  async function readAndSend(to?: Iterable<Viewer>, beforeSending?: () => void, freshFrom?: number): Promise<void> {
    let snap: Snapshot | undefined;
    try {
      snap = await snapshot(freshFrom);
      lastReadAt = Date.now();
      if (databaseDown) log.info('database answers again');
      databaseDown = false;
    } catch (error) {
      if (!databaseDown) log.warn(`cannot read the numbers (${(error as Error).message})`);
      databaseDown = true;
    }
    beforeSending?.();
    if (snap) broadcast('snapshot', snap, to);
    else broadcast('problem', { code: 'DATABASE_UNAVAILABLE' }, to);
  }

  function sendNewSteps(): void {
    if (deps.feed.lastSeq <= sentSeq) return;
    const steps = deps.feed.since(sentSeq, maxSteps);
    const skipped = deps.feed.lastSeq - sentSeq - steps.length;
    sentSeq = deps.feed.lastSeq;
    broadcast('steps', { steps, skipped });
  }

  async function tick(): Promise<void> {
    if (busy) return;
    busy = true;
    try {
      // Steps mean the numbers moved; otherwise look now and then for other processes' work.
      const moved = deps.feed.lastSeq > sentSeq;
      if (moved || Date.now() - lastReadAt >= idleRefreshMs) {
        // The steps are collected after the numbers were read. A worker logs each step before
        // its next write, so the numbers a viewer gets are ahead of its steps by at most each
        // worker's latest write, and a settled pipeline never shows before its last steps.
        await readAndSend(undefined, sendNewSteps, moved ? Date.now() : undefined);
      }
    } finally {
      busy = false;
    }
  }

  return {
    watch(viewer) {
      // The first viewer starts from now; anything older reaches it as "recent" below.
      if (viewers.size === 0) sentSeq = deps.feed.lastSeq;
      viewers.add(viewer);
      const recent: Step[] = deps.feed.since(0, RECENT_ON_CONNECT).filter((step) => step.seq <= sentSeq);
      viewer.send('steps', { steps: recent, skipped: 0 });
      void readAndSend([viewer]);
      timer ??= setInterval(() => void tick(), intervalMs);
      return () => {
        viewers.delete(viewer);
        if (viewers.size === 0 && timer) {
          clearInterval(timer);
          timer = undefined;
        }
      };
    },
    close() {
      if (timer) clearInterval(timer);
      timer = undefined;
      for (const viewer of viewers) viewer.end();
      viewers.clear();
    },
  };
}
