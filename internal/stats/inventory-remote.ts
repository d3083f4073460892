// The order service's view of the inventory service (TRANSPORT=nats): its GET /stats, fetched
// with a short timeout through a single-flight cache. In that mode the stock lives only in the
// inventory's database; the order database's products table is only the catalog. Never
// rejects: a service that does not answer is "inventory service unreachable".
import { AppError } from '../errors/errors.ts';
import type { InventorySide } from '../stress/stress.ts';
import { cachedRead } from './cached.ts';
import type { InventoryStats } from './inventory.ts';

export type RemoteInventoryStats =
  | ({ reachable: true; from: string } & InventoryStats)
  | { reachable: false; from: string; error: 'inventory service unreachable'; detail: string };

export interface RemoteInventoryReader {
  read(): Promise<RemoteInventoryStats>;
}

export function createRemoteInventoryReader(
  baseUrl: string, options: { timeoutMs: number; cacheMs: number; /** ?fresh=1: not the inventory's cached numbers */ fresh?: boolean },
): RemoteInventoryReader {
  const from = `${baseUrl.replace(/\/+$/, '')}/stats`;
  const url = options.fresh ? `${from}?fresh=1` : from;
  async function load(): Promise<RemoteInventoryStats> {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(options.timeoutMs) });
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      const stats = (await res.json()) as InventoryStats;
      if (stats?.service !== 'inventory' || !Array.isArray(stats.products)) throw new Error('not the inventory service’s /stats');
      return { reachable: true, from, ...stats };
    } catch (error) {
      return { reachable: false, from, error: 'inventory service unreachable', detail: error instanceof Error ? error.message : String(error) };
    }
  }
  return cachedRead(load, options.cacheMs);
}

/**
 * The same numbers from the inventory service's GET /stats, for a process that must not read
 * the inventory's database: the order service's dashboard button (TRANSPORT=nats).
 */
export function remoteInventorySide(inventoryUrl: string, timeoutMs: number): InventorySide {
  // Fresh numbers: a before/after check must not compare against the service's own cache.
  const reader = createRemoteInventoryReader(inventoryUrl, { timeoutMs, cacheMs: 0, fresh: true });
  return {
    async read() {
      const stats = await reader.read();
      if (!stats.reachable) throw new AppError('CONFLICT', `the inventory service does not answer at ${stats.from} (${stats.detail}): is npm run inventory running?`);
      return {
        stock: Object.fromEntries(stats.products.map((p) => [p.id, p.stock])),
        handledBy: stats.consumed.deliveriesBy,
        duplicatesSkipped: stats.consumed.duplicatesSkipped,
        replyOutbox: stats.replyOutbox.pending,
        cancellationsApplied: stats.consumed.processed.cancelled,
      };
    },
  };
}
