// `npm test`: one PostgreSQL for the whole run (embedded in a temporary folder, or the server
// in DATABASE_URL), then node's test runner over every *.test.ts. Each test file creates and
// drops its own database on that server (see testkit/database.ts).
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/config.ts';
import { ensureEmbeddedPostgres } from '../db/embedded.ts';
import type { Logger } from '../log/logger.ts';
import { freePort } from './ports.ts';
import { readTotals, reporterArgs, summaryLine } from './summary.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** A test that hangs fails after this long instead of holding CI until it is killed. */
const TEST_TIMEOUT_MS = 600_000;

export interface TestRunOptions {
  /** Only files whose path contains one of these (all when empty). */
  filters: string[];
  concurrency: number;
  /** Gets the one-line summary (files, tests, passed, failed, skipped, seconds) at the very end. */
  onSummary?: (line: string) => void;
}

export async function runTests(config: Pick<Config, 'databaseUrl'>, options: TestRunOptions, logger: Logger): Promise<number> {
  const files = (await findTestFiles()).filter(
    (file) => options.filters.length === 0 || options.filters.some((f) => file.includes(f)),
  );
  if (files.length === 0) {
    logger.error(`no test files match ${options.filters.join(', ')}`);
    return 1;
  }

  let adminUrl = config.databaseUrl;
  let cleanup = async () => {};
  if (!adminUrl) {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'outbox-test-pg-'));
    await fs.chmod(dataDir, 0o755);
    const embedded = await ensureEmbeddedPostgres(dataDir, await freePort(), logger.child('DB'));
    adminUrl = embedded.adminUrl;
    cleanup = async () => {
      await embedded.stop();
      await fs.rm(dataDir, { recursive: true, force: true });
    };
  }

  let totalsDir: string | undefined;
  let exitCode = 1;
  try {
    totalsDir = await fs.mkdtemp(path.join(os.tmpdir(), 'outbox-test-totals-'));
    const totalsPath = path.join(totalsDir, 'totals.json');
    exitCode = await new Promise<number>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          '--import', 'tsx', '--test', `--test-concurrency=${options.concurrency}`, `--test-timeout=${TEST_TIMEOUT_MS}`,
          ...reporterArgs(totalsPath, Boolean(process.stdout.isTTY)), ...files,
        ],
        { cwd: ROOT, stdio: 'inherit', env: { ...process.env, TEST_ADMIN_DATABASE_URL: adminUrl } },
      );
      // Ctrl-C reaches the test process too (same process group); wait for it to end so the
      // temporary PostgreSQL is still stopped and removed below instead of being left running.
      const ignore = () => {};
      process.on('SIGINT', ignore);
      process.on('SIGTERM', () => child.kill('SIGTERM'));
      child.on('error', reject);
      child.on('close', (code, signal) => {
        process.off('SIGINT', ignore);
        resolve(code ?? (signal ? 130 : 1));
      });
    });
    return exitCode;
  } finally {
    await cleanup();
    const totals = totalsDir ? await readTotals(path.join(totalsDir, 'totals.json')) : undefined;
    if (totalsDir) await fs.rm(totalsDir, { recursive: true, force: true });
    options.onSummary?.(summaryLine(files.length, totals, exitCode));
  }
}

async function findTestFiles(): Promise<string[]> {
  const found: string[] = [];
  for (const top of ['internal', 'cmd']) {
    const entries = await fs.readdir(path.join(ROOT, top), { recursive: true });
    for (const entry of entries) {
      if (entry.endsWith('.test.ts')) found.push(path.join(top, entry));
    }
  }
  return found.sort();
}
