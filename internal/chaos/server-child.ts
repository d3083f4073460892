// The real server as a child process, so chaos can SIGKILL it like a crash would. The same
// for the inventory service (TRANSPORT=nats): any entry point with a health URL.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../log/logger.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ServerChild {
  url: string;
  /** SIGKILL: no shutdown code runs, exactly like a crash. */
  kill(): Promise<void>;
  /** SIGTERM: the graceful stop. */
  stop(): Promise<void>;
}

export interface ChildOptions {
  /** The entry point (default the Order API, cmd/server/main.ts). */
  script?: string;
  /** Answers 200 once the child is up (default /health). */
  healthPath?: string;
  /** Who speaks in the forwarded log lines (default "Server"). */
  name?: string;
  /** Every line the child prints, uncolored (chaos counts some of them). */
  onLine?: (line: string) => void;
  /** The variable that carries `port` (default PORT; the inventory service reads INVENTORY_PORT). */
  portVariable?: string;
}

/** Starts `cmd/server/main.ts` (or `options.script`) with `env` on `port` and waits until its health URL answers. */
export async function startServerChild(
  port: number,
  env: Record<string, string>,
  logger: Logger,
  timeoutMs = 60_000,
  options: ChildOptions = {},
): Promise<ServerChild> {
  const script = options.script ?? 'cmd/server/main.ts';
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    env: { ...process.env, ...env, [options.portVariable ?? 'PORT']: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = logger.child(options.name ?? 'Server');
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => {
      if (!line.trim()) return;
      log.debug(line);
      options.onLine?.(line.replace(/\x1b\[[0-9;]*m/g, ''));
    });
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const health = `${url}${options.healthPath ?? '/health'}`;
  const what = options.name ?? 'the server';

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited during start-up (code ${child.exitCode})`);
    if (await fetch(health).then((r) => r.ok, () => false)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${what} did not become healthy within ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  const signal = async (name: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(name);
    await exited;
  };
  return { url, kill: () => signal('SIGKILL'), stop: () => signal('SIGTERM') };
}
