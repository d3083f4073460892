// npm run stress: fire orders at a running server and check the outbox kept its promise.
import { randomUUID } from 'node:crypto';
import { Command } from 'commander';
import { fraction, positiveInt, transportChosen, transportMode, withTransport } from '../../internal/cli/args.ts';
import { followServerTransport } from '../../internal/app/transport-mode.ts';
import { exitWithFailure, orExit } from '../../internal/cli/exit.ts';
import { stressTest } from '../../internal/app/stress.ts';
import { createApiClient, ServerUnreachableError } from '../../internal/client/api-client.ts';
import { colorEnabled, loadConfig, type TransportMode } from '../../internal/config/config.ts';
import { createConsoleLogger } from '../../internal/log/logger.ts';
import { createProgress, formatStressReport } from '../../internal/stress/report.ts';

const options = new Command('stress-test')
  .description('fire concurrent POST /orders at a running server, wait for the relay, check the invariant')
  .option('--url <url>', 'the Order API (default: http://HOST:PORT from the environment, 127.0.0.1:8080)')
  .option('--transport <mode>', 'in-process, or nats: stock is read from the inventory service\'s database (default: TRANSPORT)', transportMode)
  .option('--orders <n>', 'orders to place', positiveInt, 50)
  .option('--concurrency <n>', 'requests in flight at once', positiveInt, 50)
  .option('--quantity <n>', 'quantity per order (1..1000)', positiveInt, 1)
  .option('--product <id...>', 'product id(s) to order (default: every product, in turn)')
  .option('--cancel-ratio <p>', 'share of the orders to cancel (0..1): half right after placing, half once settled', fraction, 0)
  .option('--no-wait', 'do not wait for the outbox to drain (and so skip the invariant check)')
  .option('--wait-timeout <ms>', 'how long to wait for the drain', positiveInt, 120_000)
  .option('--json', 'print one JSON result object instead of the report')
  .parse()
  .opts<{
    url?: string; transport?: TransportMode; orders: number; concurrency: number; quantity: number; product?: string[]; cancelRatio: number;
    wait: boolean; waitTimeout: number; json?: boolean;
  }>();

const config = orExit(() => loadConfig(withTransport(process.env, options.transport)), 'stress test could not start');
const url = options.url ?? `http://${config.host}:${config.port}`;
const color = !options.json && colorEnabled(process.stdout);
const interactive = !options.json;
// Only the database lines of TRANSPORT=nats (attaching to the inventory's database) use it.
const logger = createConsoleLogger({ level: config.logLevel === 'info' ? 'warn' : config.logLevel, color: colorEnabled(process.stderr), stream: process.stderr });
const progress = interactive
  ? createProgress(process.stderr, { total: options.orders, tty: Boolean(process.stderr.isTTY), color })
  : undefined;
const abort = new AbortController();
process.once('SIGINT', () => {
  process.stderr.write('\ninterrupted: no new orders; reporting what happened so far\n');
  abort.abort();
  process.once('SIGINT', () => process.exit(130));
});

try {
  const client = createApiClient(url);
  const followed = await followServerTransport(config, transportChosen(process.env, options.transport), client, process.env);
  if (followed.note) process.stderr.write(`${followed.note}\n`);
  const result = await stressTest(
    followed.config,
    followed.config.transport,
    {
      orders: options.orders,
      concurrency: options.concurrency,
      quantity: options.quantity,
      productIds: options.product ?? [],
      wait: options.wait,
      waitTimeoutMs: options.waitTimeout,
      userId: `stress-${randomUUID().slice(0, 8)}`,
      cancelRatio: options.cancelRatio,
    },
    {
      client,
      signal: abort.signal,
      onProgress: progress?.update,
      onPhase: interactive
        ? (message) => {
            progress?.finish();
            process.stderr.write(`${message}\n`);
          }
        : undefined,
    },
    logger,
  );
  progress?.finish();
  process.stdout.write(`${options.json ? JSON.stringify(result, null, 2) : formatStressReport(result, color)}\n`);
  process.exitCode = result.ok && !abort.signal.aborted ? 0 : 1;
} catch (error) {
  progress?.finish();
  if (error instanceof ServerUnreachableError) {
    const start = config.transport === 'nats' ? '`TRANSPORT=nats npm start` and `TRANSPORT=nats npm run inventory`' : '`npm start`';
    const message = `${error.message}: is the server running? Start it in another terminal with ${start}, or pass --url.`;
    process.stderr.write(`${message}\n`);
    if (options.json) process.stdout.write(`${JSON.stringify({ ok: false, error: { code: error.code, message } })}\n`);
    process.exitCode = 2;
  } else {
    exitWithFailure(error, 'stress test failed');
  }
}
