// Real nats-server processes for tests: one on a free port with a temporary store, or a
// three-node JetStream cluster. Without the binary a test skips, except in CI (CI=true),
// where it fails: CI installs nats-server (.ci/run), so a skip there would hide a broken setup.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { browserTestSettings } from '../config/config.ts';
import { probeNats } from '../nats/probe.ts';
import { natsServerBinary } from '../nats/server.ts';
import { freePort } from './ports.ts';

export const NATS_MISSING_SKIP = 'nats-server not installed (apt-get install nats-server)';

let binary: Promise<string | undefined> | undefined;
const findBinary = () => (binary ??= natsServerBinary());

/** True when a nats-server binary can be run here. */
export async function natsAvailable(): Promise<boolean> {
  return (await findBinary()) !== undefined;
}

/**
 * At the top of a NATS test: true to go on; false after skipping `t` (no binary). With
 * CI=true a missing binary fails the test instead.
 */
export async function skipUnlessNats(t: { skip(message: string): void }): Promise<boolean> {
  if (await natsAvailable()) return true;
  // CI=true, read in config.ts: the same rule as the browser test's Chromium.
  if (browserTestSettings().required) assert.fail(`CI=true but ${NATS_MISSING_SKIP}`);
  t.skip(NATS_MISSING_SKIP);
  return false;
}

export interface TestNatsServer {
  url: string;
  port: number;
  storeDir: string;
  /** SIGTERM, wait, remove the store. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash; the store stays for restart(). */
  kill(): Promise<void>;
  /** Starts it again on the same port and store; resolves once it answers. */
  restart(): Promise<void>;
}

/** A `nats-server -js` on a free port with a temporary store; resolves once it answers. */
export async function startTestNatsServer(options: { jetstream?: boolean } = {}): Promise<TestNatsServer> {
  const port = await freePort();
  const storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'outbox-test-nats-'));
  const args = [...(options.jetstream === false ? [] : ['-js']), '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir];
  const node = await managedServer(args, port, path.join(storeDir, 'nats-server.log'), options.jetstream !== false).catch(
    async (error: unknown) => {
      await fs.rm(storeDir, { recursive: true, force: true });
      throw error;
    },
  );
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    async stop() {
      await node.end('SIGTERM');
      await fs.rm(storeDir, { recursive: true, force: true });
    },
    kill: () => node.end('SIGKILL'),
    restart: () => node.start(),
  };
}

export interface TestNatsNode {
  url: string;
  name: string;
  kill(): Promise<void>;
  restart(): Promise<void>;
}

export interface TestNatsCluster {
  urls: string[];
  nodes: TestNatsNode[];
  stop(): Promise<void>;
}

/**
 * `size` nats-server processes routed to each other with JetStream clustering; resolves once
 * a stream can be placed on all of them (the meta leader election takes seconds).
 */
export async function startTestNatsCluster(size = 3, timeoutMs = 60_000): Promise<TestNatsCluster> {
  const clientPorts: number[] = [];
  const routePorts: number[] = [];
  for (let i = 0; i < size; i += 1) {
    clientPorts.push(await freePort());
    routePorts.push(await freePort());
  }
  const baseDir = await fs.mkdtemp(path.join(os.tmpdir(), 'outbox-test-nats-cluster-'));
  const clusterName = `outbox-test-${randomBytes(3).toString('hex')}`;
  const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`);
  const servers: ManagedServer[] = [];
  const nodes: TestNatsNode[] = [];
  try {
    for (let i = 0; i < size; i += 1) {
      const name = `n${i + 1}`;
      const storeDir = path.join(baseDir, name);
      await fs.mkdir(storeDir);
      const args = [
        '-js', '-n', name, '--cluster_name', clusterName, '--cluster', routes[i]!,
        '--routes', routes.filter((_, j) => j !== i).join(','),
        '-a', '127.0.0.1', '-p', String(clientPorts[i]), '-sd', storeDir,
      ];
      const server = await managedServer(args, clientPorts[i]!, path.join(storeDir, 'nats-server.log'), true);
      servers.push(server);
      nodes.push({ url: `nats://127.0.0.1:${clientPorts[i]}`, name, kill: () => server.end('SIGKILL'), restart: () => server.start() });
    }
    const urls = nodes.map((node) => node.url);
    await untilJetStreamPlaces(urls, size, timeoutMs);
    return {
      urls,
      nodes,
      async stop() {
        await Promise.all(servers.map((server) => server.end('SIGTERM')));
        await fs.rm(baseDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await Promise.all(servers.map((server) => server.end('SIGKILL')));
    await fs.rm(baseDir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Until a stream with `replicas` copies can be created (and is removed again). JetStream
 * answering is not enough: until every peer has joined the meta group, creating an R3 stream
 * fails with "no suitable peers for placement" (10005).
 */
async function untilJetStreamPlaces(urls: string[], replicas: number, timeoutMs: number): Promise<void> {
  const nc = await connect({ servers: urls });
  try {
    const deadline = Date.now() + timeoutMs;
    const probe = `READY_${randomBytes(4).toString('hex')}`;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: 2_000 });
        await jsm.streams.add({ name: probe, subjects: [`${probe.toLowerCase()}.>`], num_replicas: replicas });
        await jsm.streams.delete(probe);
        return;
      } catch (error) {
        last = error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    throw new Error(`the NATS cluster could not place a stream on ${replicas} nodes within ${timeoutMs} ms: ${(last as Error)?.message}`);
  } finally {
    await nc.close();
  }
}

interface ManagedServer {
  start(): Promise<void>;
  /** Sends `signal` (if running) and waits for the exit. */
  end(signal: NodeJS.Signals): Promise<void>;
}

/** Every server child still running: killed if the test process exits without stopping them. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

async function managedServer(args: string[], port: number, logFile: string, jetstream: boolean): Promise<ManagedServer> {
  const bin = await findBinary();
  if (!bin) throw new Error(NATS_MISSING_SKIP);
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = async () => {
    assert.ok(!child, 'the nats-server is already running');
    const started = spawn(bin, [...args, '-l', logFile], { stdio: 'ignore' });
    child = started;
    running.add(started);
    let ended = false;
    exited = new Promise((resolve) =>
      started.once('exit', () => {
        ended = true;
        running.delete(started);
        if (child === started) child = undefined;
        resolve();
      }),
    );
    const deadline = Date.now() + 30_000;
    for (;;) {
      const probe = await probeNats('127.0.0.1', port);
      // Without -js the INFO line has no jetstream field at all.
      if (probe.kind === 'nats' && (probe.info.jetstream === true) === jetstream) return;
      if (ended || Date.now() > deadline) {
        started.kill('SIGKILL');
        const log = await fs.readFile(logFile, 'utf8').catch(() => '');
        throw new Error(`nats-server ${args.join(' ')} did not start:\n${log.split('\n').slice(-10).join('\n')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  await start();
  return {
    start,
    async end(signal) {
      if (child) child.kill(signal);
      await exited;
    },
  };
}
