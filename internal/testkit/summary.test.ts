// `npm test` ends with one line of totals. Real node test runs over small files written here:
// passing, skipped, todo, failing, and a file that crashes before its first test.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readTotals, reporterArgs, summaryLine } from './summary.ts';

let dir: string;
before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outbox-summary-test-'));
  await fs.writeFile(
    path.join(dir, 'a.test.mjs'),
    `import { describe, it } from 'node:test';
     describe('a suite', () => { it('passes', () => {}); it('skips', (t) => t.skip('not here')); it.todo('some day'); });
     it('passes too', () => {});`,
  );
  await fs.writeFile(path.join(dir, 'b.test.mjs'), `import { it } from 'node:test'; it('fails', () => { throw new Error('no'); });`);
  await fs.writeFile(path.join(dir, 'c.test.mjs'), `throw new Error('this file crashes');`);
});
after(() => fs.rm(dir, { recursive: true, force: true }));

function runNode(args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    // Without NODE_TEST_CONTEXT, which tells a node under `node --test` to report to its parent.
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const child = spawn(process.execPath, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout }));
  });
}

describe('the summary line', () => {
  it('counts what node counted, and node still prints its TAP with its own closing lines', async () => {
    const totalsPath = path.join(dir, 'totals.json');
    const { code, stdout } = await runNode(['--test', ...reporterArgs(totalsPath, false), 'a.test.mjs', 'b.test.mjs', 'c.test.mjs']);
    assert.equal(code, 1);
    assert.match(stdout, /^TAP version 13$/m);
    for (const closing of ['# tests 6', '# pass 2', '# fail 2', '# skipped 1', '# todo 1']) assert.match(stdout, new RegExp(`^${closing}$`, 'm'));
    const totals = await readTotals(totalsPath);
    assert.ok(totals);
    assert.deepEqual({ ...totals, durationMs: 0 }, { tests: 6, pass: 2, fail: 2, cancelled: 0, skipped: 1, todo: 1, durationMs: 0 });
    assert.ok(totals.durationMs > 0);
    assert.match(summaryLine(3, totals, 1), /^tests: 3 files, 6 tests, 2 passed, 2 failed, 1 skipped, 1 todo, \d+\.\d s$/);
  });

  it('reads like the issue asks, says cancelled ones, and says so when there are no totals', () => {
    const totals = { tests: 140, pass: 140, fail: 0, cancelled: 0, skipped: 0, todo: 0, durationMs: 171_234 };
    assert.equal(summaryLine(12, totals, 0), 'tests: 12 files, 140 tests, 140 passed, 0 failed, 0 skipped, 171.2 s');
    assert.equal(
      summaryLine(1, { ...totals, pass: 138, fail: 1, cancelled: 1 }, 1),
      'tests: 1 file, 140 tests, 138 passed, 2 failed (1 cancelled), 0 skipped, 171.2 s',
    );
    assert.equal(summaryLine(2, undefined, 130), 'tests: 2 files, no totals: the test runner ended early (exit code 130)');
  });

  it('has no totals to read when the run wrote none', async () => {
    assert.equal(await readTotals(path.join(dir, 'missing.json')), undefined);
    await fs.writeFile(path.join(dir, 'half.json'), '{"tests": ');
    assert.equal(await readTotals(path.join(dir, 'half.json')), undefined);
  });
});
