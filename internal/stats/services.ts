// TRANSPORT=nats: what GET /stats, GET /metrics and the dashboard read on the order service.
// Its own database's numbers (the shared StatsReader), plus the broker hop (JetStream streams
// and consumers) and the inventory service's GET /stats. Those two never fail and answer
// within their timeout, so neither a slow broker nor a stopped inventory service holds up or
// breaks the page: they show as unreachable.
import type { BrokerStatsReader } from './broker.ts';
import type { RemoteInventoryReader } from './inventory-remote.ts';
import type { StatsReader } from './reader.ts';

export function withBrokerHop(database: StatsReader, hop: { broker: BrokerStatsReader; inventory: RemoteInventoryReader }): StatsReader {
  return {
    async read(freshFrom) {
      const [stats, broker, inventoryService] = await Promise.all([database.read(freshFrom), hop.broker.read(), hop.inventory.read()]);
      return { ...stats, broker, inventoryService };
    },
  };
}
