// The line `npm test` ends with: files, tests, passed, failed, skipped, seconds. Node's own
// report (TAP, or spec on a terminal) is printed as before; a second reporter
// (summary-reporter.mjs) hands the totals to this module through a file.
import fs from 'node:fs/promises';

const REPORTER = new URL('./summary-reporter.mjs', import.meta.url).href;

export interface TestTotals {
  tests: number;
  pass: number;
  fail: number;
  cancelled: number;
  skipped: number;
  todo: number;
  durationMs: number;
}

/**
 * Node's reporter to stdout as it would choose by itself (spec on a terminal, TAP otherwise,
 * so CI still reads node's closing lines), plus the summary reporter into `totalsPath`.
 */
export function reporterArgs(totalsPath: string, terminal: boolean): string[] {
  return [
    `--test-reporter=${terminal ? 'spec' : 'tap'}`, '--test-reporter-destination=stdout',
    `--test-reporter=${REPORTER}`, `--test-reporter-destination=${totalsPath}`,
  ];
}

/** What the summary reporter wrote, or undefined when the run ended before it could. */
export async function readTotals(totalsPath: string): Promise<TestTotals | undefined> {
  let raw: Record<string, number>;
  try {
    raw = JSON.parse(await fs.readFile(totalsPath, 'utf8'));
  } catch {
    return undefined;
  }
  if (typeof raw.tests !== 'number') return undefined;
  const n = (key: string) => (typeof raw[key] === 'number' ? raw[key] : 0);
  return {
    tests: n('tests'), pass: n('pass'), fail: n('fail'), cancelled: n('cancelled'),
    skipped: n('skipped'), todo: n('todo'), durationMs: n('duration_ms'),
  };
}

/** e.g. "tests: 12 files, 140 tests, 139 passed, 1 failed, 0 skipped, 171.2 s". */
export function summaryLine(files: number, totals: TestTotals | undefined, exitCode: number): string {
  const fileCount = `${files} file${files === 1 ? '' : 's'}`;
  if (!totals) return `tests: ${fileCount}, no totals: the test runner ended early (exit code ${exitCode})`;
  // Node counts a cancelled test (a timeout, or its file crashed) apart from a failed one.
  const failed = totals.fail + totals.cancelled;
  return (
    `tests: ${fileCount}, ${totals.tests} tests, ${totals.pass} passed, ` +
    `${failed} failed${totals.cancelled > 0 ? ` (${totals.cancelled} cancelled)` : ''}, ${totals.skipped} skipped, ` +
    `${totals.todo > 0 ? `${totals.todo} todo, ` : ''}${(totals.durationMs / 1000).toFixed(1)} s`
  );
}
