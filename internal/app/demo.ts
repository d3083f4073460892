// `npm run demo`: the whole lesson in one run. Fresh data, the API and five workers in this
// process, 50 concurrent orders, the drain, three duplicates replayed, a verdict, a clean stop.
import { Chalk } from 'chalk';
import { createApiClient } from '../client/api-client.ts';
import type { Config } from '../config/config.ts';
import { countOtherSessions } from '../db/pool.ts';
import { createInventoryConsumer } from '../inventory/consumer.ts';
import type { Logger } from '../log/logger.ts';
import type { BrokerReplayResult } from '../replay/broker-replay.ts';
import { runReplay, type ReplayResult } from '../replay/replay.ts';
import { formatReplayReport } from '../replay/report.ts';
import { formatStressReport } from '../stress/report.ts';
import { runStressTest, type StressResult } from '../stress/stress.ts';
import { refuseToWipeUnlessConfirmed, resetDemoData } from './reset.ts';
import { connectDatabase, startServer, type RunningServer } from './wiring.ts';
import { SEED_STOCK } from '../inventory/stock.ts';
import { StartupError } from '../errors/errors.ts';
import { runNatsDemo } from './demo-nats.ts';

export interface DemoOptions {
  orders: number;
  concurrency: number;
  replays: number;
  color: boolean;
  /** Where reports and headings go (logs go to the logger). */
  print: (text: string) => void;
  signal?: AbortSignal;
  /** --yes: may wipe the database in DATABASE_URL. */
  yes?: boolean;
}

export interface DemoResult {
  stress: StressResult | null;
  replay: ReplayResult | BrokerReplayResult | null;
  ok: boolean;
}

export async function runDemo(config: Config, options: DemoOptions, logger: Logger): Promise<DemoResult> {
  // TRANSPORT=nats: two services and a broker (demo-nats.ts); below, the in-process lesson.
  if (config.transport === 'nats') return runNatsDemo(config, options, logger);
  const c = new Chalk({ level: options.color ? 2 : 0 });
  const heading = (text: string) => options.print(`\n${c.bold.inverse(` ${text} `)}`);
  const log = logger.child('Demo');
  const result: DemoResult = { stress: null, replay: null, ok: false };
  refuseToWipeUnlessConfirmed(config, options.yes ?? false, 'npm run demo');

  heading('1/4 Start: PostgreSQL, fresh demo data, the Order API and its workers');
  const db = await connectDatabase(config, logger, 'demo', 4);
  let server: RunningServer | undefined;
  try {
    const others = await countOtherSessions(db.pool, 'outbox-demo:relay');
    if (others > 0) {
      throw new StartupError(
        'REFUSED',
        'another outbox-demo server is relaying this database; stop it first (the demo resets the data), ' +
          'or give the demo its own: DATA_DIR=.data-demo npm run demo',
      );
    }
    await resetDemoData(db.pool);
    log.info(`demo data reset: no orders, empty outbox, no dead letters, no processed messages, ${SEED_STOCK} of every product`);
    server = await startServer(config, logger);
    if (options.signal?.aborted) return result;

    heading(`2/4 Stress: ${options.orders} orders at once through POST /orders`);
    result.stress = await runStressTest(
      {
        orders: options.orders,
        concurrency: options.concurrency,
        quantity: 1,
        productIds: [],
        wait: true,
        waitTimeoutMs: 60_000,
        userId: 'demo',
      },
      { client: createApiClient(server.url), signal: options.signal, onPhase: (m) => log.info(m) },
    );
    heading('3/4 The drain: how the five workers shared the work, and the invariant');
    options.print(formatStressReport(result.stress, options.color));
    if (options.signal?.aborted) return result;

    heading(`4/4 Replay: ${options.replays} processed messages delivered again as duplicates`);
    const consumer = createInventoryConsumer({ pool: db.pool, logger });
    const relay = server.relay;
    result.replay = await runReplay(
      { count: options.replays, messageIds: [], fresh: false, freshProductId: 'widget', waitTimeoutMs: 15_000 },
      { pool: db.pool, consumer, logger, serverRunning: true, nudge: () => relay.nudge(), leaseMs: config.leaseMs },
    );
    options.print(formatReplayReport(result.replay, options.color));

    result.ok = result.stress.ok && result.replay.ok;
    options.print(
      result.ok
        ? `\n${c.green.bold('✓ Verdict: every order accepted was processed exactly once, stock matches the confirmed orders, the outbox is empty, and every duplicate was skipped.')}`
        : `\n${c.red.bold('✗ Verdict: an invariant did not hold; see the reports above.')}`,
    );
    return result;
  } finally {
    await server?.close();
    await db.close();
    log.info('stopped everything');
  }
}
