// The local nats-server of TRANSPORT=nats without NATS_URL: started once, attached to by
// everyone else, outliving a crash of the process that started it, and a clear one-line
// error when it cannot be had.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { describeFailure } from '../cli/exit.ts';
import { StartupError, type StartupErrorCode } from '../errors/errors.ts';
import { createMemoryLogger, createSilentLogger } from '../log/logger.ts';
import { freePort } from '../testkit/ports.ts';
import { ROOT } from '../testkit/process.ts';
import { skipUnlessNats, startTestNatsServer } from '../testkit/nats.ts';
import { probeNats } from './probe.ts';
import { NATS_SERVER_MISSING_MESSAGE, openNatsServer, stopLocalNatsServer } from './server.ts';

const dataDirs: string[] = [];
after(async () => {
  // Whatever a failed test left running under its data directory.
  for (const dir of dataDirs) {
    await stopLocalNatsServer(dir).catch(() => undefined);
    await fs.rm(dir, { recursive: true, force: true });
  }
});

async function newDataDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outbox-nats-server-'));
  dataDirs.push(dir);
  return dir;
}

const silent = createSilentLogger();

function isStartupError(error: unknown, code: StartupErrorCode): error is StartupError {
  return error instanceof StartupError && error.code === code;
}

describe('openNatsServer without NATS_URL', () => {
  it('starts a local server; a second open attaches, and only the starter stops it', async (t) => {
    if (!(await skipUnlessNats(t))) return;
    const dataDir = await newDataDir();
    const port = await freePort();
    const logger = createMemoryLogger('info');

    const first = await openNatsServer({ port, dataDir }, logger);
    assert.deepEqual([first.kind, first.startedHere, first.url], ['local', true, `nats://127.0.0.1:${port}`]);
    const probe = await probeNats('127.0.0.1', port);
    assert.equal(probe.kind === 'nats' && probe.info.jetstream, true);
    await fs.access(path.join(dataDir, 'nats', 'jetstream'));

    const second = await openNatsServer({ port, dataDir }, logger);
    assert.deepEqual([second.kind, second.startedHere, second.url], ['local', false, first.url]);
    assert.ok(logger.records.some((r) => r.message === `attached to nats-server on 127.0.0.1:${port} (started by another process)`));
    await second.close();
    assert.equal((await probeNats('127.0.0.1', port)).kind, 'nats', 'an attached close() leaves the server running');

    await first.close();
    assert.equal((await probeNats('127.0.0.1', port)).kind, 'free', "the starter's close() stops it");
    assert.equal(await stopLocalNatsServer(dataDir), false, 'nothing left to stop');
  });

  it('several processes opening at once end with one server', async (t) => {
    if (!(await skipUnlessNats(t))) return;
    const dataDir = await newDataDir();
    const port = await freePort();
    const handles = await Promise.all([1, 2, 3, 4].map(() => openNatsServer({ port, dataDir }, silent)));
    assert.equal(handles.filter((h) => h.startedHere).length, 1);
    assert.equal(new Set(handles.map((h) => h.url)).size, 1);
    const log = await fs.readFile(path.join(dataDir, 'nats', 'nats-server.log'), 'utf8');
    assert.equal(log.match(/Starting nats-server/g)?.length, 1, 'one nats-server was ever started on the store');
    await Promise.all(handles.map((h) => h.close()));
    assert.equal((await probeNats('127.0.0.1', port)).kind, 'free');
  });

  it('never starts a second server on a store whose server runs on another port (nats-server 2.9 would let both write it)', async (t) => {
    if (!(await skipUnlessNats(t))) return;
    const dataDir = await newDataDir();
    const [port, otherPort] = [await freePort(), await freePort()];
    const first = await openNatsServer({ port, dataDir }, silent);
    try {
      const error = await openNatsServer({ port: otherPort, dataDir }, silent).then(
        () => assert.fail('it should not open'),
        (e: unknown) => e,
      );
      assert.ok(isStartupError(error, 'NATS_START_FAILED'));
      assert.match(error.message, new RegExp(`already runs on port ${port} \\(pid \\d+\\): set NATS_PORT=${port}, or stop it first$`));
      assert.equal((await probeNats('127.0.0.1', otherPort)).kind, 'free');
    } finally {
      await first.close();
    }
  });

  it('outlives a SIGKILL of the process that started it, with its stream intact', async (t) => {
    if (!(await skipUnlessNats(t))) return;
    const dataDir = await newDataDir();
    const port = await freePort();
    const starter = spawn(
      process.execPath,
      [
        '--import', 'tsx', '--input-type=module', '-e',
        `const { openNatsServer } = await import('./internal/nats/server.ts');
         const { createSilentLogger } = await import('./internal/log/logger.ts');
         const handle = await openNatsServer({ port: ${port}, dataDir: ${JSON.stringify(dataDir)} }, createSilentLogger());
         console.log('started here: ' + handle.startedHere);
         setInterval(() => {}, 1000);`,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((resolve) => starter.once('exit', resolve));
    const said = await new Promise<string>((resolve, reject) => {
      let text = '';
      starter.stdout!.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes('\n')) resolve(text.trim());
      });
      starter.once('exit', () => reject(new Error(`the starter exited early: ${text}`)));
    });
    assert.equal(said, 'started here: true');

    const nc = await connect({ servers: `nats://127.0.0.1:${port}` });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'SURVIVOR', subjects: ['survivor.>'] });
    await jetstream(nc).publish('survivor.one', 'kept', { msgID: 'm-1' });
    await nc.close();

    starter.kill('SIGKILL');
    await exited;
    assert.equal((await probeNats('127.0.0.1', port)).kind, 'nats', 'the broker is still there');

    const again = await openNatsServer({ port, dataDir }, silent);
    assert.equal(again.startedHere, false, 'the restarted service attaches to it');
    const nc2 = await connect({ servers: again.url });
    const info = await (await jetstreamManager(nc2)).streams.info('SURVIVOR');
    assert.equal(info.state.messages, 1);
    await nc2.close();

    assert.equal(await stopLocalNatsServer(dataDir), true);
    assert.equal((await probeNats('127.0.0.1', port)).kind, 'free');
  });
});

describe('openNatsServer, when it cannot have a server', () => {
  it('no nats-server binary: NATS_SERVER_MISSING, printed as one line saying what to install', async () => {
    const emptyDir = await newDataDir();
    const error = await openNatsServer({ port: await freePort(), dataDir: emptyDir, searchPath: [emptyDir] }, silent).then(
      () => assert.fail('it should not open'),
      (e: unknown) => e,
    );
    assert.ok(isStartupError(error, 'NATS_SERVER_MISSING'));
    assert.equal(
      error.message,
      'TRANSPORT=nats needs nats-server — install it (Debian/Ubuntu: sudo apt-get install nats-server; macOS: brew install nats-server) or point NATS_URL at a running server',
    );
    assert.equal(error.message, NATS_SERVER_MISSING_MESSAGE);
    const failure = describeFailure(error, 'the order service could not start');
    assert.equal(failure.text, `the order service could not start: ${NATS_SERVER_MISSING_MESSAGE}`);
    assert.equal(failure.exitCode, 1);
  });

  it('a nats-server that dies while starting: NATS_START_FAILED with the reason from its log', async (t) => {
    if (!(await skipUnlessNats(t))) return;
    const dataDir = await newDataDir();
    await fs.mkdir(path.join(dataDir, 'nats'));
    await fs.writeFile(path.join(dataDir, 'nats', 'jetstream'), 'not a folder');
    const port = await freePort();
    const error = await openNatsServer({ port, dataDir }, silent).then(
      () => assert.fail('it should not open'),
      (e: unknown) => e,
    );
    assert.ok(isStartupError(error, 'NATS_START_FAILED'));
    assert.match(error.message, new RegExp(`^nats-server on 127.0.0.1:${port} did not start \\(exit code 1\\): \\[FTL\\] Can't start JetStream: storage directory is not a directory`));
    assert.equal(describeFailure(error, 'x').text.split('\n').length, 1, 'one line, no stack');
  });

  it('the port is taken by something that is not NATS: says so and names NATS_PORT', async (t) => {
    if (!(await skipUnlessNats(t))) return;
    const squatter = net.createServer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const { port } = squatter.address() as net.AddressInfo;
    try {
      const error = await openNatsServer({ port, dataDir: await newDataDir() }, silent).then(
        () => assert.fail('it should not open'),
        (e: unknown) => e,
      );
      assert.ok(isStartupError(error, 'NATS_START_FAILED'));
      assert.match(error.message, new RegExp(`^port ${port} is in use by something that is not nats-server — set NATS_PORT`));
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });

  it('a NATS server without JetStream on the port: says so instead of attaching', async (t) => {
    if (!(await skipUnlessNats(t))) return;
    const plain = await startTestNatsServer({ jetstream: false });
    try {
      const error = await openNatsServer({ port: plain.port, dataDir: await newDataDir() }, silent).then(
        () => assert.fail('it should not open'),
        (e: unknown) => e,
      );
      assert.ok(isStartupError(error, 'NATS_START_FAILED'));
      assert.match(error.message, /has no JetStream/);
    } finally {
      await plain.stop();
    }
  });
});

describe('openNatsServer with NATS_URL', () => {
  it('uses it, starts nothing, and hides a password in the log', async () => {
    const logger = createMemoryLogger('info');
    const url = 'nats://app:secret@nats-1.example:4222,nats://app:secret@nats-2.example:4222';
    const handle = await openNatsServer({ natsUrl: url, port: 1, dataDir: '/nonexistent', searchPath: [] }, logger);
    assert.deepEqual([handle.kind, handle.startedHere, handle.url], ['external', false, url]);
    await handle.close();
    assert.equal(logger.records.length, 1);
    assert.match(logger.records[0]!.message, /^using NATS_URL \(/);
    assert.doesNotMatch(logger.records[0]!.message, /secret/);
  });
});

describe('the test kit server', () => {
  it('kill() is a crash and restart() brings it back on the same port and store', async (t) => {
    if (!(await skipUnlessNats(t))) return;
    const server = await startTestNatsServer();
    try {
      let nc = await connect({ servers: server.url });
      await (await jetstreamManager(nc)).streams.add({ name: 'KEPT', subjects: ['kept.>'] });
      await jetstream(nc).publish('kept.one', 'x', { msgID: 'k-1' });
      await nc.close();

      await server.kill();
      assert.equal((await probeNats('127.0.0.1', server.port)).kind, 'free');
      await server.restart();
      nc = await connect({ servers: server.url });
      assert.equal((await (await jetstreamManager(nc)).streams.info('KEPT')).state.messages, 1);
      await nc.close();
    } finally {
      await server.stop();
    }
    await assert.rejects(fs.access(server.storeDir), 'stop() removes the store');
  });
});
