// Zero-setup NATS for TRANSPORT=nats: without NATS_URL, the first process starts a local
// `nats-server -js` with its store under DATA_DIR/nats, and later ones attach to it, the way
// they share the embedded PostgreSQL.
//
// The server runs as its own daemon (detached, own session, no pipes to us): a SIGKILLed
// order service leaves its broker and its stream intact, and the restarted service attaches.
// nats-server 2.9 does not lock its store directory, so two servers on one store would
// corrupt it: starting is serialised by a lock file, and a server already running on this
// store (per its pid file) is never doubled.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { StartupError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import { probeNats, type NatsInfo } from './probe.ts';

const execFileAsync = promisify(execFile);

export const NATS_SERVER_MISSING_MESSAGE =
  'TRANSPORT=nats needs nats-server — install it (Debian/Ubuntu: sudo apt-get install nats-server; ' +
  'macOS: brew install nats-server) or point NATS_URL at a running server';

/** Where Debian (root's /usr/sbin, not on a normal user's PATH) and others put the binary. */
const USUAL_PLACES = ['/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/opt/homebrew/bin'];

export interface NatsServerOptions {
  /** NATS_URL: use that server (or cluster: comma-separated URLs); start nothing. */
  natsUrl?: string;
  /** NATS_PORT: where the local server listens. */
  port: number;
  /** DATA_DIR: the local server's store, pid file and log go under DATA_DIR/nats. */
  dataDir: string;
  /** The address the local server binds (default 127.0.0.1: no one else on the network). */
  host?: string;
  /** Look for nats-server only in these folders (tests); default: PATH, then the usual places. */
  searchPath?: string[];
  /** How long to wait for the local server to answer (default 30 s). */
  startTimeoutMs?: number;
}

export interface NatsServerHandle {
  /** What to hand the NATS client. */
  url: string;
  /** external: NATS_URL; local: the server under DATA_DIR/nats (or one already on the port). */
  kind: 'local' | 'external';
  /** True when this process started the server, and so stops it on close(). */
  startedHere: boolean;
  /** Stops the server if this process started it (waiting until its store is flushed); else nothing. */
  close(): Promise<void>;
}

interface NatsPaths {
  dir: string;
  pidFile: string;
  logFile: string;
  lockFile: string;
}

function natsPaths(dataDir: string): NatsPaths {
  const dir = path.join(dataDir, 'nats');
  return {
    dir,
    pidFile: path.join(dir, 'nats-server.pid'),
    logFile: path.join(dir, 'nats-server.log'),
    lockFile: path.join(dir, 'start.lock'),
  };
}

/** Uses NATS_URL, attaches to the NATS server on host:port, or starts one there. */
export async function openNatsServer(options: NatsServerOptions, logger: Logger): Promise<NatsServerHandle> {
  if (options.natsUrl) {
    logger.info(`using NATS_URL (${redactUrls(options.natsUrl)})`);
    return { url: options.natsUrl, kind: 'external', startedHere: false, close: async () => {} };
  }
  const binary = await natsServerBinary(options.searchPath);
  if (!binary) throw new StartupError('NATS_SERVER_MISSING', NATS_SERVER_MISSING_MESSAGE);

  const host = options.host ?? '127.0.0.1';
  // A server bound to every address still answers on loopback.
  const dialHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const url = `nats://${dialHost.includes(':') ? `[${dialHost}]` : dialHost}:${options.port}`;
  const where = `${dialHost}:${options.port}`;
  const paths = natsPaths(options.dataDir);
  await fs.mkdir(paths.dir, { recursive: true });
  const timeoutMs = options.startTimeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;

  for (;;) {
    const probe = await probeNats(dialHost, options.port);
    if (probe.kind === 'nats') {
      requireJetStream(probe.info, where);
      logger.info(`attached to nats-server on ${where} (started by another process)`);
      return { url, kind: 'local', startedHere: false, close: async () => {} };
    }
    if (probe.kind === 'unreachable') {
      throw new StartupError('NATS_START_FAILED', `cannot reach ${where} to look for a nats-server (${probe.detail})`);
    }
    if (probe.kind === 'other') {
      throw new StartupError('NATS_START_FAILED', `port ${options.port} is in use by something that is not nats-server — set NATS_PORT (${probe.detail})`);
    }
    if (probe.kind === 'free') {
      const release = await tryStartLock(paths.lockFile);
      if (release) {
        try {
          // Under the lock: whoever held it before us may have started it meanwhile.
          if ((await probeNats(dialHost, options.port)).kind === 'free' && !(await storeInUse(paths, options.port))) {
            const pid = await startServer(binary, host, dialHost, options.port, paths, Date.now() + timeoutMs, logger);
            return { url, kind: 'local', startedHere: true, close: onceOnly(() => stopPid(pid, logger)) };
          }
        } finally {
          await release();
        }
      }
    }
    // Another process is starting it (it holds the lock, or its server is up but not yet answering).
    if (Date.now() > deadline) {
      throw new StartupError('NATS_START_FAILED', `no nats-server answered on ${where} within ${timeoutMs / 1000} s while another process was starting it (see ${paths.logFile})`);
    }
    await sleep(100);
  }
}

/**
 * Stops the local nats-server under `dataDir`, whoever started it (chaos restarts the broker
 * this way). False when none was running. Waits until it has exited and flushed its store.
 */
export async function stopLocalNatsServer(dataDir: string, logger?: Logger): Promise<boolean> {
  const pid = await readPid(natsPaths(dataDir).pidFile);
  if (pid === undefined || !(await isNatsServerProcess(pid))) return false;
  await stopPid(pid, logger);
  return true;
}

/** The nats-server to run: found on PATH, then in the usual places (or only in `searchPath`); undefined if none. */
export async function natsServerBinary(searchPath?: string[]): Promise<string | undefined> {
  // PATH is searched by the OS itself when we run it by name; asking for its version also
  // proves that it runs.
  if (!searchPath && (await versionOf('nats-server')) !== undefined) return 'nats-server';
  for (const dir of searchPath ?? USUAL_PLACES) {
    const candidate = path.join(dir, 'nats-server');
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function requireJetStream(info: NatsInfo, where: string): void {
  if (info.jetstream === true) return;
  throw new StartupError(
    'NATS_START_FAILED',
    `the nats-server on ${where} (${info.version ?? 'unknown version'}) has no JetStream: restart it with -js, or set NATS_PORT to start our own elsewhere`,
  );
}

/** Spawns the daemon and waits until it answers with JetStream on; returns its pid. */
async function startServer(
  binary: string, host: string, dialHost: string, port: number, paths: NatsPaths, deadline: number, logger: Logger,
): Promise<number> {
  const version = (await versionOf(binary)) ?? 'nats-server';
  // This run's lines only: the log file is appended to across runs.
  const logOffset = (await fs.stat(paths.logFile).catch(() => undefined))?.size ?? 0;
  // -sd is the parent of the store: nats-server keeps its streams in <sd>/jetstream.
  const args = ['-js', '-a', host, '-p', String(port), '-sd', paths.dir, '--pid', paths.pidFile, '-l', paths.logFile];
  logger.info(`starting ${version} on ${dialHost}:${port} (JetStream store in ${path.join(paths.dir, 'jetstream')})`);
  const child = spawn(binary, args, { detached: true, stdio: 'ignore' });
  child.unref();
  let ended: string | undefined;
  child.on('error', (error) => (ended = error.message));
  child.on('exit', (code, signal) => (ended = signal ? `killed by ${signal}` : `exit code ${code}`));

  for (;;) {
    const probe = await probeNats(dialHost, port);
    if (probe.kind === 'nats') {
      requireJetStream(probe.info, `${dialHost}:${port}`);
      logger.info(`nats-server is ready on ${dialHost}:${port} (pid ${child.pid}, log ${paths.logFile})`);
      return child.pid!;
    }
    if (ended !== undefined || probe.kind === 'other' || probe.kind === 'unreachable' || Date.now() > deadline) {
      if (ended === undefined) child.kill('SIGKILL');
      const why =
        ended ?? (probe.kind === 'other' ? `port ${port} was taken meanwhile (${probe.detail})`
        : probe.kind === 'unreachable' ? `cannot reach it (${probe.detail})`
        : 'it did not answer in time');
      const tail = await logTail(paths.logFile, logOffset);
      throw new StartupError(
        'NATS_START_FAILED',
        `nats-server on ${dialHost}:${port} did not start (${why})${tail ? `: ${tail}` : ''} (see ${paths.logFile})`,
      );
    }
    await sleep(50);
  }
}

/** SIGTERM (nats-server shuts down cleanly, flushing its store), then wait for the exit. */
async function stopPid(pid: number, logger?: Logger): Promise<void> {
  if (!isAlive(pid)) return;
  logger?.info(`stopping nats-server (pid ${pid})`);
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + 30_000;
  while (isAlive(pid)) {
    if (Date.now() > deadline) {
      logger?.warn(`nats-server (pid ${pid}) did not stop within 30 s of SIGTERM; killing it`);
      signal(pid, 'SIGKILL');
    }
    await sleep(25);
  }
  logger?.info('nats-server stopped');
}

/**
 * True when a nats-server from this store is alive but does not answer on `port`: on another
 * port it is an error (a second server on one store corrupts it); on ours it is still starting,
 * so the caller waits for it.
 */
async function storeInUse(paths: NatsPaths, port: number): Promise<boolean> {
  const pid = await readPid(paths.pidFile);
  if (pid === undefined || !(await isNatsServerProcess(pid))) return false;
  const itsPort = await portOf(pid);
  if (itsPort !== undefined && itsPort !== port) {
    throw new StartupError(
      'NATS_START_FAILED',
      `a nats-server using the store in ${paths.dir} already runs on port ${itsPort} (pid ${pid}): set NATS_PORT=${itsPort}, or stop it first`,
    );
  }
  return true;
}

/** The start lock, or undefined when another live process holds it (a dead holder's is removed). */
async function tryStartLock(lockFile: string): Promise<(() => Promise<void>) | undefined> {
  try {
    await fs.writeFile(lockFile, `${process.pid}\n`, { flag: 'wx' });
    return () => fs.rm(lockFile, { force: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const holder = await readPid(lockFile);
  const stat = await fs.stat(lockFile).catch(() => undefined);
  // Empty for a moment while its holder writes it; empty for long means the holder died then.
  const stale = holder === undefined ? stat !== undefined && Date.now() - stat.mtimeMs > 10_000 : !isAlive(holder);
  if (stale) await fs.rm(lockFile, { force: true });
  return undefined;
}

async function readPid(file: string): Promise<number | undefined> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Alive and not a zombie (an orphan whose reaper is slow still has a pid). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true; // no /proc (macOS): kill(0) is all we have
  }
}

/** The command line of `pid` as its words (from /proc, or `ps` where there is none). */
async function commandLine(pid: number): Promise<string[] | undefined> {
  const proc = await fs.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  if (proc !== undefined) return proc.split('\0').filter(Boolean);
  const ps = await execFileAsync('ps', ['-o', 'args=', '-p', String(pid)]).catch(() => undefined);
  return ps?.stdout.trim().split(/\s+/).filter(Boolean);
}

/** A pid file can outlive its server (a reboot), and the pid be reused: check the name before signalling. */
async function isNatsServerProcess(pid: number): Promise<boolean> {
  if (!isAlive(pid)) return false;
  const words = await commandLine(pid);
  return words !== undefined && words.length > 0 && path.basename(words[0]!).startsWith('nats-server');
}

async function portOf(pid: number): Promise<number | undefined> {
  const words = (await commandLine(pid)) ?? [];
  const at = words.findIndex((word) => word === '-p' || word === '--port');
  const port = at >= 0 ? Number(words[at + 1]) : 4222;
  return Number.isInteger(port) ? port : undefined;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

async function versionOf(binary: string): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync(binary, ['--version'], { timeout: 10_000 });
    return stdout.trim().replace(/^nats-server:\s*/, 'nats-server ') || 'nats-server';
  } catch {
    return undefined;
  }
}

async function isExecutable(file: string): Promise<boolean> {
  return fs.access(file, fs.constants.X_OK).then(() => true, () => false);
}

/** The errors of this run's log (or its last lines), on one line. */
async function logTail(logFile: string, offset: number): Promise<string> {
  const text = (await fs.readFile(logFile, 'utf8').catch(() => '')).slice(offset);
  const lines = text.split('\n').map((line) => line.trim()).filter(Boolean);
  const errors = lines.filter((line) => /\[(FTL|ERR)\]/.test(line));
  return (errors.length > 0 ? errors : lines).slice(-3).map((line) => line.replace(/^\[\d+\] \S+ \S+ /, '')).join(' | ');
}

/** NATS_URL may carry a user and password: show neither. */
function redactUrls(urls: string): string {
  return urls
    .split(',')
    .map((raw) => {
      try {
        const url = new URL(raw.trim());
        if (!url.username && !url.password) return raw.trim();
        url.username = '***';
        url.password = '';
        return url.toString();
      } catch {
        return raw.trim();
      }
    })
    .join(',');
}

function onceOnly(run: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= run());
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
