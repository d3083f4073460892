// The pacer lets readers through one per turn of the event loop, in arrival order, so that
// whatever else is waiting (an order's request, a database reply) runs between two of them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createPacer } from './pacer.ts';

describe('readers pacer', () => {
  it('lets waiting readers through one per event-loop turn, in arrival order', async () => {
    const pacer = createPacer();
    let turn = 0;
    let ticking = true;
    const tick = () => {
      turn += 1;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const order: number[] = [];
    const turns = await Promise.all(
      [0, 1, 2, 3, 4].map((reader) =>
        pacer().then(() => {
          order.push(reader);
          return turn;
        }),
      ),
    );
    ticking = false;
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
    for (let i = 1; i < turns.length; i += 1) assert.ok(turns[i]! > turns[i - 1]!, `turns ${turns.join(', ')}`);
  });
});
