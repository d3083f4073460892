// npm run demo: the whole story in one command, then exit 0 if every invariant held.
import { Command } from 'commander';
import { positiveInt, transportMode, withTransport } from '../../internal/cli/args.ts';
import { exitWithFailure, orExit } from '../../internal/cli/exit.ts';
import { runDemo } from '../../internal/app/demo.ts';
import { colorEnabled, loadConfig, type TransportMode } from '../../internal/config/config.ts';
import { createConsoleLogger } from '../../internal/log/logger.ts';

const options = new Command('demo')
  .description('reset the demo data, start the API and workers, stress, replay, verdict, stop')
  .option('--orders <n>', 'orders for the stress step', positiveInt, 50)
  .option('--concurrency <n>', 'requests in flight at once', positiveInt, 50)
  .option('--replays <n>', 'processed messages to replay as duplicates', positiveInt, 3)
  .option('--transport <mode>', 'in-process, or nats: a local nats-server and both services, over JetStream (default: TRANSPORT)', transportMode)
  .option('--port <port>', 'HTTP port for the API (default: any free port)', '0')
  .option('--yes', 'with DATABASE_URL (INVENTORY_DATABASE_URL, NATS_URL) set: yes, wipe the demo data there')
  .parse()
  .opts<{ orders: number; concurrency: number; replays: number; transport?: TransportMode; port: string; yes?: boolean }>();

// The inventory service's HTTP port too is any free one: the demo reads its database directly.
const env = { ...withTransport(process.env, options.transport), PORT: options.port, INVENTORY_PORT: '0' };
const config = orExit(() => loadConfig(env), 'demo could not start');
const color = colorEnabled(process.stdout);
const logger = createConsoleLogger({ level: config.logLevel, color });

const abort = new AbortController();
const onSignal = () => {
  if (abort.signal.aborted) process.exit(130);
  process.stdout.write('\ninterrupted: finishing in-flight work and stopping (again to force)\n');
  abort.abort();
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

try {
  const result = await runDemo(
    config,
    { ...options, color, print: (text) => process.stdout.write(`${text}\n`), signal: abort.signal },
    logger,
  );
  process.exitCode = result.ok ? 0 : 1;
} catch (error) {
  exitWithFailure(error, 'demo failed');
}
