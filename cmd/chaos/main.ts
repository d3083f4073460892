// npm run chaos: crash the server (and PostgreSQL; with --transport nats the inventory service
// and nats-server too) under load, then prove nothing was lost.
import { Command, Option } from 'commander';
import { fraction, intAtLeast } from '../../internal/cli/args.ts';
import { exitWithFailure, orExit } from '../../internal/cli/exit.ts';
import { chaosRun } from '../../internal/app/chaos.ts';
import { formatChaosReport } from '../../internal/chaos/report.ts';
import { colorEnabled, loadConfig } from '../../internal/config/config.ts';
import { newSeed } from '../../internal/faults/random.ts';
import { createConsoleLogger } from '../../internal/log/logger.ts';

const options = new Command('chaos')
  .description('stress the real server while SIGKILLing it, restarting PostgreSQL and failing deliveries; then audit')
  .option('--orders <n>', 'orders to place', intAtLeast(1), 1000)
  .option('--concurrency <n>', 'clients placing orders at once', intAtLeast(1), 20)
  .addOption(new Option('--transport <mode>', 'in-process: the server alone; nats: order and inventory services over a nats-server').choices(['in-process', 'nats']).default('in-process'))
  .option('--kills <n>', 'times to SIGKILL and restart the server (nats: the order service)', intAtLeast(0), 5)
  .option('--inventory-kills <n>', 'nats: times to SIGKILL and restart the inventory service (default: as many as --kills)', intAtLeast(0))
  .option('--broker-restarts <n>', 'nats: times to restart nats-server (default 1)', intAtLeast(0))
  .option('--db-restarts <n>', 'times to restart PostgreSQL (embedded only)', intAtLeast(0), 0)
  .option('--fail-rate <p>', 'share of deliveries that fail on purpose (0..1)', fraction, 0)
  .option('--seed <n>', 'seed for every random choice, to repeat a run', intAtLeast(0))
  .option('--lease-ms <ms>', "how long a dead worker's claim blocks its events", intAtLeast(1000), 2000)
  .option('--settle-timeout <ms>', 'how long to wait for the drain at the end', intAtLeast(1000), 120_000)
  .option('--json', 'print one JSON result object instead of the table (logs go to stderr)')
  .option('--verbose', "show the server's own log lines")
  .option('--yes', 'with DATABASE_URL set: yes, wipe the orders, outbox and dead letters in that database')
  .parse()
  .opts<{
    orders: number; concurrency: number; transport: 'in-process' | 'nats'; kills: number; inventoryKills?: number; brokerRestarts?: number;
    dbRestarts: number; failRate: number; seed?: number;
    leaseMs: number; settleTimeout: number; json?: boolean; verbose?: boolean; yes?: boolean;
  }>();

const config = orExit(() => loadConfig(), 'chaos could not start');
const out = options.json ? process.stderr : process.stdout;
const color = colorEnabled(out);
const logger = createConsoleLogger({ level: options.verbose ? 'debug' : config.logLevel, color, stream: out });
const seed = options.seed ?? newSeed();

const abort = new AbortController();
process.on('SIGINT', () => {
  if (abort.signal.aborted) process.exit(130);
  logger.warn('interrupted: stopping the load, draining, auditing what was accepted (again to force)');
  abort.abort();
});

try {
  const result = await chaosRun(
    config,
    {
      orders: options.orders,
      concurrency: options.concurrency,
      transport: options.transport,
      kills: options.kills,
      inventoryKills: options.inventoryKills,
      brokerRestarts: options.brokerRestarts,
      dbRestarts: options.dbRestarts,
      failRate: options.failRate,
      seed,
      leaseMs: options.leaseMs,
      settleTimeoutMs: options.settleTimeout,
      yes: options.yes,
    },
    logger,
    abort.signal,
  );
  process.stdout.write(`${options.json ? JSON.stringify(result, null, 2) : formatChaosReport(result, color)}\n`);
  process.exitCode = result.ok ? 0 : 1;
} catch (error) {
  exitWithFailure(error, `chaos run failed (seed ${seed})`);
}
