// The three-node cluster of the test kit, as the "across machines" tests use it: a stream with
// three replicas keeps taking acknowledged publishes when a node dies, even its leader.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstream, jetstreamManager, type PubAck } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { natsAvailable, skipUnlessNats, startTestNatsCluster, type TestNatsCluster } from '../testkit/nats.ts';

let cluster: TestNatsCluster | undefined;
before(async () => {
  if (await natsAvailable()) cluster = await startTestNatsCluster(3);
});
after(async () => {
  await cluster?.stop();
});

/** Publishes until acknowledged, with the same message id each time (as the relay retries). */
async function publishUntilAcked(js: ReturnType<typeof jetstream>, subject: string, msgID: string, timeoutMs = 60_000): Promise<PubAck> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await js.publish(subject, msgID, { msgID, timeout: 2_000 });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

describe('a three-node NATS cluster', () => {
  it('an R3 stream keeps acknowledging publishes after its leader node is killed', async (t) => {
    if (!(await skipUnlessNats(t))) return;
    const { urls, nodes } = cluster!;
    const nc = await connect({ servers: urls });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: 'R3', subjects: ['r3.>'], num_replicas: 3 });
      const js = jetstream(nc);
      const before = await publishUntilAcked(js, 'r3.one', 'm-1');
      assert.equal(before.duplicate, false);

      const leader = (await jsm.streams.info('R3')).cluster?.leader;
      const victim = nodes.find((node) => node.name === leader);
      assert.ok(victim, `the stream's leader (${leader}) is one of our nodes`);
      await victim.kill();

      const afterKill = await publishUntilAcked(js, 'r3.two', 'm-2');
      assert.equal(afterKill.stream, 'R3');
      // A retry of the first message is still recognised by the new leader.
      assert.equal((await publishUntilAcked(js, 'r3.one', 'm-1')).duplicate, true);
      const info = await jsm.streams.info('R3');
      assert.equal(info.state.messages, 2);
      assert.notEqual(info.cluster?.leader, leader, 'another node leads now');

      await victim.restart();
      assert.equal((await publishUntilAcked(js, 'r3.three', 'm-3')).seq, 3);
    } finally {
      await nc.close();
    }
  });
});
