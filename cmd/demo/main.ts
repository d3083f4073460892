// npm run demo: the whole story in one command, then exit 0 if every invariant held.
import { Command } from 'commander';
import { positiveInt } from '../../internal/cli/args.ts';
import { exitWithFailure, orExit } from '../../internal/cli/exit.ts';
import { runDemo } from '../../internal/app/demo.ts';
import { colorEnabled, loadConfig } from '../../internal/config/config.ts';
import { createConsoleLogger } from '../../internal/log/logger.ts';

const options = new Command('demo')
  .description('reset the demo data, start the API and workers, stress, replay, verdict, stop')
  .option('--orders <n>', 'orders for the stress step', positiveInt, 50)
  .option('--concurrency <n>', 'requests in flight at once', positiveInt, 50)
  .option('--replays <n>', 'processed messages to replay as duplicates', positiveInt, 3)
  .option('--port <port>', 'HTTP port for the API (default: any free port)', '0')
  .option('--yes', 'with DATABASE_URL set: yes, wipe the orders, outbox and dead letters in that database')
  .parse()
  .opts<{ orders: number; concurrency: number; replays: number; port: string; yes?: boolean }>();

const config = orExit(() => loadConfig({ ...process.env, PORT: options.port }), 'demo could not start');
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
