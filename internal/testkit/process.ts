// Runs the real entry points as child processes, the way a user would.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ChildRun {
  child: ChildProcess;
  /** Everything printed so far (stdout and stderr together). */
  output(): string;
  /** Only what went to stdout (e.g. a --json result while logs go to stderr). */
  stdout(): string;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
  /** Resolves once `pattern` has been printed; rejects if the process ends first or on timeout. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends `signal` and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `node --import tsx <script> …args` from the repository root with `env` added. */
export function runScript(script: string, args: string[], env: Record<string, string | undefined>): ChildRun {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  let stdoutText = '';
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    text += chunk.toString('utf8');
    for (const listener of listeners) listener();
  };
  child.stdout!.on('data', (chunk: Buffer) => {
    stdoutText += chunk.toString('utf8');
    onData(chunk);
  });
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));

  return {
    child,
    output: () => text,
    stdout: () => stdoutText,
    exited,
    waitFor(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = text.match(pattern);
          if (match) {
            cleanup();
            resolve(match);
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${pattern}; output so far:\n${text}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        exited.then(() => {
          if (listeners.has(check)) {
            cleanup();
            reject(new Error(`process exited before printing ${pattern}; output:\n${text}`));
          }
        });
        check();
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface ServerProcess {
  run: ChildRun;
  url: string;
}

/** `npm start` as a child on a free port; resolves once GET /health answers 200. */
export async function startServerProcess(env: Record<string, string | undefined>): Promise<ServerProcess> {
  const port = await freePort();
  const run = runScript('cmd/server/main.ts', [], { PORT: String(port), POLL_INTERVAL_MS: '100', ...env });
  const url = `http://127.0.0.1:${port}`;
  try {
    // A quiet server (LOG_LEVEL=warn) prints no banner, so readiness is asked over HTTP.
    await untilHealthy(url, run, 60_000);
  } catch (error) {
    await run.stop('SIGKILL');
    throw error;
  }
  return { run, url };
}

async function untilHealthy(url: string, run: ChildRun, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (run.child.exitCode !== null) throw new Error(`server exited during start-up:\n${run.output()}`);
    const ok = await fetch(`${url}/health`).then((r) => r.ok, () => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${url} not healthy after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A fresh folder for an embedded PostgreSQL (readable by the `postgres` user when we are root). */
export async function makeDataDir(prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  await fs.chmod(dir, 0o755);
  return dir;
}
