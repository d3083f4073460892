// npm test [-- filter …]: runs every *.test.ts against a real PostgreSQL.
import os from 'node:os';
import { Command } from 'commander';
import { colorEnabled, loadConfig } from '../../internal/config/config.ts';
import { createConsoleLogger } from '../../internal/log/logger.ts';
import { runTests } from '../../internal/testkit/runner.ts';
import { orExit } from '../../internal/cli/exit.ts';

const program = new Command('test')
  .argument('[filters...]', 'only test files whose path contains one of these')
  .option('--concurrency <n>', 'test files run at once', String(Math.max(2, os.availableParallelism())))
  .parse();

const config = orExit(() => loadConfig(), 'tests could not start');
const logger = createConsoleLogger({ level: 'warn', color: colorEnabled(process.stdout) });
const code = await runTests(
  config,
  {
    filters: program.args,
    concurrency: Number(program.opts<{ concurrency: string }>().concurrency),
    onSummary: (line) => console.log(line),
  },
  logger,
);
process.exit(code);
