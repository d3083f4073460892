// The relay: N worker loops that move events from the outbox to the consumer.
// Each loop is "claim → deliver each → delete the delivered → go again"; idle, it sleeps for
// the poll interval unless nudged. It owns no SQL: it is handed an OutboxStore.
// A worker claims only when a claim may find something no earlier claim looked for: after a
// nudge, a full claim, a hand-back, or its poll interval. Not "once more, just in case" after
// every delivery: at a steady trickle of orders that empty claim was one extra round trip per
// event, and every nudge that ran into a worker already on its way to claim cost another.
// Per-message mode shares a claim's events with idle sibling workers (dispatch.ts), so no
// event waits behind its claim-mates; a batch consumer takes a claim as one batch.
import { isAppError } from '../errors/errors.ts';
import type { Logger } from '../log/logger.ts';
import type { Claim, OutboxEvent, OutboxStore } from '../outbox/outbox.ts';
import { traceTag, tracesTag } from '../tracing/context.ts';
import { DispatchQueue, groupByAggregate, SharedClaim, type DispatchUnit } from './dispatch.ts';
import { LeaseDeadline } from './lease.ts';
import { Waker } from './waker.ts';

/** Delivers one event; resolves with a short outcome word once the consumer committed. */
export type Deliver = (event: OutboxEvent, workerName: string) => Promise<string>;

/**
 * Delivers a whole claim at once; one settled result per event, in order (a rejected one is
 * retried like a failed `Deliver`). Optional: without it, events go one by one. A batch that
 * falls back to delivering its events one at a time asks `mayStart()` before each: false means
 * the claim's lease has no room for another delivery (see lease.ts).
 */
export type DeliverBatch = (
  events: OutboxEvent[],
  workerName: string,
  mayStart: () => boolean,
) => Promise<PromiseSettledResult<string>[]>;

export interface RelayOptions {
  workers: number;
  pollIntervalMs: number;
  /** Deliveries an event gets before it is dead-lettered (default 5). */
  maxAttempts?: number;
  /** Worker names are `${namePrefix}${n}`: "Worker-1" … by default. */
  namePrefix?: string;
  /**
   * The longest one delivery can run: the consumer's statement timeout. A worker starts a
   * delivery only with this much lease left, plus a margin. Default: half the lease.
   */
  deliveryTimeoutMs?: number;
  /**
   * How long an event waits after a publish failed because the broker is unreachable
   * (TRANSPORT_UNAVAILABLE). Such a failure is not counted as an attempt. Default 2 s.
   */
  transportRetryMs?: number;
  /**
   * How long an event waits when the consumer deferred it (DEFERRED: an earlier event of its
   * aggregate is not applied yet). Not counted as an attempt. Default 1 s (RETRY_BASE_MS).
   */
  deferRetryMs?: number;
}

/**
 * Test and fault-injection hooks at the moments a crash would hurt most. They may pause
 * (a stalled worker) or kill the process (a crash in that window).
 */
export interface RelayHooks {
  afterClaim?(workerName: string, events: readonly OutboxEvent[]): void | Promise<void>;
  beforeDeliver?(workerName: string, event: OutboxEvent): void | Promise<void>;
  /** The consumer has committed; the outbox row is not deleted yet. */
  afterDeliver?(workerName: string, event: OutboxEvent): void | Promise<void>;
}

export interface RelayDeps {
  store: OutboxStore;
  deliver: Deliver;
  deliverBatch?: DeliverBatch;
  logger: Logger;
  hooks?: RelayHooks;
  /** Told about claims and deliveries as they happen (metrics); optional. */
  observer?: RelayObserver;
}

export interface RelayObserver {
  /** A claim that took `batchSize` events (empty claims are not reported). */
  onClaimed(workerName: string, batchSize: number): void;
  /** One delivery the consumer committed, how long the call took, and its outcome word. */
  onDelivered(workerName: string, ms: number, outcome?: string): void;
  /** One delivery that threw (not a deferral). */
  onFailed(workerName: string): void;
  /** One delivery the consumer deferred: an earlier event of its aggregate comes first. Not a failure. */
  onDeferred?(workerName: string): void;
  /** One event this worker moved to dead_letters. */
  onDeadLettered?(workerName: string): void;
}

const MAX_ERROR_BACKOFF_MS = 5_000;
const DEFAULT_MAX_ATTEMPTS = 5;
const DEFAULT_TRANSPORT_RETRY_MS = 2_000;
const DEFAULT_DEFER_RETRY_MS = 1_000;

export class Relay {
  private stopping = false;
  private loops: Promise<void>[] = [];
  private readonly waker = new Waker();
  /** Claimed events waiting for a free worker of this process (per-message mode). */
  private readonly queue = new DispatchQueue();
  /**
   * Events may be claimable that no claim sent since has looked for: a nudge came (an event
   * committed), a claim came back full, events were handed back, or a claim failed. Cleared when
   * a claim is sent, since that claim sees every commit acknowledged before it. Every awake
   * worker reads it before it goes to sleep, so a nudge that finds no one asleep (everyone
   * mid-claim or delivering) is not lost.
   */
  private unclaimed = true;
  /**
   * A sleeper was woken to claim and no claim has been sent since: its claim will see whatever
   * commits in the meantime, so further nudges need not wake anyone else.
   */
  private claimerWoken = false;

  constructor(
    private readonly deps: RelayDeps,
    private readonly options: RelayOptions,
  ) {}

  get workerNames(): string[] {
    return Array.from({ length: this.options.workers }, (_, i) => `${this.options.namePrefix ?? 'Worker-'}${i + 1}`);
  }

  /** Whether the worker loops are running (started, not stopping). */
  get running(): boolean {
    return !this.stopping && this.loops.length > 0;
  }

  start(): void {
    this.stopping = false;
    this.unclaimed = true;
    this.claimerWoken = false;
    this.loops = this.workerNames.map((name) => this.loop(name));
  }

  /**
   * An event was just committed (or handed back): a worker claims now instead of at its next
   * poll. One sleeper is woken, unless one woken earlier has not sent its claim yet (that claim
   * will see this event too); with nobody asleep, the first worker to finish what it is doing
   * claims before it would sleep.
   */
  nudge(): void {
    this.unclaimed = true;
    if (!this.claimerWoken) this.claimerWoken = this.waker.wakeOne('claim');
  }

  /** Stops claiming, lets in-flight deliveries finish, hands back claimed-but-unstarted events. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.waker.wake();
    await Promise.all(this.loops);
    this.loops = [];
    // Events claimed but not started go back, each under its own claim's token.
    for (let unit = this.queue.take(); unit; unit = this.queue.take()) {
      await this.deliverUnit(unit.claim.claimer, unit).catch(() => undefined);
    }
  }

  /** One claim-and-deliver pass for `workerName`; returns how many events it claimed. For tests and tools. */
  async runOnce(workerName: string): Promise<number> {
    const { claimed, shared } = await this.claimAndDispatch(workerName);
    if (shared) {
      for (let unit = this.queue.takeOf(shared); unit; unit = this.queue.takeOf(shared)) await this.deliverUnit(workerName, unit);
      await shared.finished;
    }
    return claimed;
  }

  /**
   * Claims a batch. A batch consumer delivers it here and now, as one batch. Per message, its
   * events go to the local queue, one idle sibling is woken per extra unit, and the caller
   * goes on to take from the queue like everyone else.
   */
  private async claimAndDispatch(name: string): Promise<{ claimed: number; shared?: SharedClaim }> {
    const { leaseMs } = this.deps.store;
    const lease = LeaseDeadline.beforeClaim(leaseMs, this.options.deliveryTimeoutMs ?? Math.floor(leaseMs / 2));
    // This claim sees every event committed before it is sent: nobody else needs to look for them.
    this.unclaimed = false;
    this.claimerWoken = false;
    let claim: Claim;
    try {
      claim = await this.deps.store.claim(name);
    } catch (error) {
      this.unclaimed = true;
      throw error;
    }
    const claimed = claim.events.length;
    if (claimed === 0) return { claimed };
    // A full claim may have left more behind it; so may one that took over an event from a dead
    // worker (those are claimed one per claim, whatever waits behind them).
    if (claimed >= this.deps.store.batchSize || claim.events.some((e) => e.takenOver)) this.unclaimed = true;
    this.deps.observer?.onClaimed(name, claimed);
    if (this.deps.deliverBatch) {
      await this.deliverClaim(name, claim.token, claim.events, lease);
      return { claimed };
    }
    const log = this.deps.logger.child(name);
    log.info(`claimed ${claimed} event${claimed === 1 ? '' : 's'}${tracesTag(claim.events.map((e) => e.headers))}`);
    await this.deps.hooks?.afterClaim?.(name, claim.events);
    const deliverable = await this.withoutExhausted(name, log, claim.token, claim.events);
    if (deliverable.length === 0) return { claimed };
    const groups = groupByAggregate(deliverable);
    const shared = new SharedClaim(name, claim.token, lease, groups.length);
    this.queue.push(groups.map((events) => ({ claim: shared, events })));
    for (let i = 1; i < groups.length; i++) this.waker.wakeOne('work');
    return { claimed, shared };
  }

  /**
   * Delivers one unit of a shared claim, each event only while that claim's lease can outlast
   * it. When it cannot (or the relay is stopping), this unit's rest and every unit of the
   * claim still waiting go back together. The last unit to settle deletes the claim's delivered
   * events.
   */
  private async deliverUnit(name: string, unit: DispatchUnit): Promise<void> {
    const { claim } = unit;
    const log = this.deps.logger.child(name);
    let settled = 1;
    try {
      for (const [index, event] of unit.events.entries()) {
        const why = this.whyNotStart(claim.lease);
        if (why) {
          const waiting = this.queue.takeAllOf(claim);
          settled += waiting.length;
          await this.handBack(log, claim.token, [...unit.events.slice(index), ...waiting.flatMap((u) => u.events)], why);
          break;
        }
        try {
          await this.deliverOne(name, log, claim.token, event, (outcome) => claim.recordDelivered(event.id, outcome, event.headers));
        } catch (error) {
          // deliverOne records a failed delivery itself; landing here means that recording
          // failed too. The unit's unstarted events go back now, not after the whole lease.
          const rest = unit.events.slice(index + 1);
          if (rest.length > 0) await this.handBack(log, claim.token, rest, 'a failure could not be recorded').catch(() => undefined);
          throw error;
        }
      }
    } finally {
      if (claim.settle(settled)) await claim.finalize(() => this.completeDelivered(this.deps.logger.child(claim.claimer), claim.token, claim.delivered, claim.outcomes, claim.traces));
    }
  }

  private async loop(name: string): Promise<void> {
    const log = this.deps.logger.child(name);
    let failures = 0;
    // Claim before looking at the queue: at start, after the poll interval, and when woken to
    // claim (the nudge that woke this worker counts on its claim).
    let claimFirst = true;
    while (!this.stopping) {
      try {
        if (!claimFirst) {
          const waiting = this.queue.take();
          if (waiting) {
            await this.deliverUnit(name, waiting);
            failures = 0;
            continue;
          }
        }
        if (claimFirst || this.unclaimed) {
          claimFirst = false;
          await this.claimAndDispatch(name);
          failures = 0;
          // Round again: deliver what it claimed, and look at `unclaimed` once more, since a
          // nudge that came while this claim was in flight may have found nobody to wake.
          continue;
        }
        // Nothing queued and nothing a claim has not looked for, checked just now with no await
        // in between, so no nudge can slip past: sleep until woken or the poll interval.
        // (stop() may have come while this worker was busy: it must not sleep then.)
        if (this.stopping) break;
        const why = await this.waker.sleep(this.options.pollIntervalMs);
        // Woken to claim, but another worker's claim may have covered it meanwhile.
        claimFirst = why === 'timeout' || (why === 'claim' && this.unclaimed);
      } catch (error) {
        // The database is down or the pool is exhausted: back off and try again, never crash.
        failures += 1;
        this.unclaimed = true;
        const wait = Math.min(100 * 2 ** failures, MAX_ERROR_BACKOFF_MS) * (0.5 + Math.random() / 2);
        log.warn(`cannot reach the outbox (${(error as Error).message}); retrying in ${Math.round(wait)} ms`);
        if (!this.stopping) await this.waker.sleep(wait);
      }
    }
  }

  private get maxAttempts(): number {
    return this.options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  }

  private async deliverClaim(name: string, token: string, events: OutboxEvent[], lease: LeaseDeadline): Promise<void> {
    const log = this.deps.logger.child(name);
    const hooks = this.deps.hooks ?? {};
    log.info(`claimed ${events.length} event${events.length === 1 ? '' : 's'}${tracesTag(events.map((e) => e.headers))}`);
    await hooks.afterClaim?.(name, events);
    const delivered: string[] = [];
    const outcomes: Record<string, number> = {};
    const traces: Array<Record<string, string> | undefined> = [];
    let deliverable = await this.withoutExhausted(name, log, token, events);
    let batched: PromiseSettledResult<string>[] | undefined;
    if (this.deps.deliverBatch && deliverable.length > 1) {
      const why = this.whyNotStart(lease);
      if (why) {
        await this.handBack(log, token, deliverable, why);
        deliverable = [];
      } else {
        batched = await settleBatch(this.deps.deliverBatch, deliverable, name, () => lease.allowsDelivery());
      }
    }
    for (const [index, event] of deliverable.entries()) {
      const why = batched ? undefined : this.whyNotStart(lease);
      if (why) {
        await this.handBack(log, token, deliverable.slice(index), why);
        break;
      }
      const started = performance.now();
      try {
        let outcome: string;
        if (batched) {
          outcome = settledValue(batched[index]);
        } else {
          await hooks.beforeDeliver?.(name, event);
          outcome = await this.deps.deliver(event, name);
        }
        await hooks.afterDeliver?.(name, event);
        this.deps.observer?.onDelivered(name, performance.now() - started, outcome);
        delivered.push(event.id);
        traces.push(event.headers);
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      } catch (error) {
        this.reportFailure(name, error);
        await this.handleFailure(name, log, token, event, error);
      }
    }
    await this.completeDelivered(log, token, delivered, outcomes, traces);
  }

  /**
   * Attempts are counted when claimed, so deliveries that killed the process count too: an
   * event that keeps crashing its worker stops here instead of looping forever.
   */
  private async withoutExhausted(name: string, log: Logger, token: string, events: readonly OutboxEvent[]): Promise<OutboxEvent[]> {
    const deliverable: OutboxEvent[] = [];
    for (const event of events) {
      if (event.attempts > this.maxAttempts) {
        await this.giveUp(name, log, token, event, `${event.attempts - 1} attempts did not succeed; last: ${event.lastError ?? 'unknown'}`);
      } else {
        deliverable.push(event);
      }
    }
    return deliverable;
  }

  /** One event through the per-message consumer; a failure is recorded under `token`. */
  private async deliverOne(name: string, log: Logger, token: string, event: OutboxEvent, onDelivered: (outcome: string) => void): Promise<void> {
    const hooks = this.deps.hooks ?? {};
    const started = performance.now();
    try {
      await hooks.beforeDeliver?.(name, event);
      const outcome = await this.deps.deliver(event, name);
      await hooks.afterDeliver?.(name, event);
      this.deps.observer?.onDelivered(name, performance.now() - started, outcome);
      onDelivered(outcome);
    } catch (error) {
      this.reportFailure(name, error);
      await this.handleFailure(name, log, token, event, error);
    }
  }

  private async completeDelivered(
    log: Logger, token: string, delivered: string[], outcomes: Record<string, number>, traces: ReadonlyArray<Record<string, string> | undefined>,
  ): Promise<void> {
    if (delivered.length === 0) return;
    // A crash between the consumer's commit and this delete means a redelivery later, which
    // the consumer recognises as a duplicate. That is the price of at-least-once, and it is safe.
    const { deleted, unblocked } = await this.deps.store.complete(delivered, token);
    // The next event of one of these orders may go now (issue 16): claim it, don't wait to poll.
    if (unblocked && !this.stopping) this.nudge();
    const summary = Object.entries(outcomes).map(([k, v]) => `${v} ${k}`).join(', ');
    if (deleted === delivered.length) {
      log.info(`delivered and deleted ${deleted} event${deleted === 1 ? '' : 's'} (${summary})${tracesTag(traces)}`);
    } else {
      log.warn(`delivered ${delivered.length} (${summary}) but deleted only ${deleted}: lease expired, another worker owns the rest${tracesTag(traces)}`);
    }
  }

  /** Why the next delivery must not start, if it must not. */
  private whyNotStart(lease: LeaseDeadline): string | undefined {
    if (this.stopping) return 'stopping';
    if (lease.allowsDelivery()) return undefined;
    return `lease ends in ${Math.max(0, Math.round(lease.leftMs()))} ms, a delivery may need ${lease.neededMs} ms`;
  }

  /**
   * Gives back events this claim will not start: attempt uncounted, available at once. Not after
   * a backoff: they were never tried, and most of them are usually not what made this worker
   * slow (other orders, other products), so a delay would hold healthy events back. If they do
   * wait for the same lock, the next claim's first delivery finds out within one statement
   * timeout, and that one event records a failed attempt and backs off. A claim's first
   * delivery always starts unless the claim itself was very slow (see neededFor in lease.ts),
   * so handing back does not go round in circles.
   */
  private async handBack(log: Logger, token: string, events: readonly OutboxEvent[], why: string): Promise<void> {
    const ids = events.map((e) => e.id);
    await this.deps.store.release(ids, token).catch(() => undefined);
    // Free again now: claimed again now, not at the next poll.
    if (!this.stopping) this.nudge();
    const line = `${why}: handed back ${ids.length} unstarted event${ids.length === 1 ? '' : 's'}`;
    if (this.stopping) log.info(line);
    else log.warn(line);
  }

  private reportFailure(name: string, error: unknown): void {
    if (isAppError(error, 'DEFERRED')) this.deps.observer?.onDeferred?.(name);
    else this.deps.observer?.onFailed(name);
  }

  /** Gives an event back for `delayMs` without counting the attempt (it was not its fault), then says so. */
  private async giveBackUncounted(log: Logger, token: string, event: OutboxEvent, lastError: string, delayMs: number, say: () => void): Promise<void> {
    const kept = await this.deps.store.retryUncounted(event, token, lastError, delayMs).catch(() => false);
    say();
    if (!kept) log.warn(`${event.messageId}: not recorded (lease lost or database away); it comes back when its lease ends`);
  }

  private async handleFailure(name: string, log: Logger, token: string, event: OutboxEvent, error: unknown): Promise<void> {
    const message = error instanceof Error ? error.message : String(error);
    // Early, not failed: its predecessor (in backoff, or on another worker) must be applied
    // first. Nothing was wrong with it, so the attempt does not count and no number of
    // deferrals dead-letters it; it is simply given back for a little while.
    if (isAppError(error, 'DEFERRED')) {
      const delayMs = this.options.deferRetryMs ?? DEFAULT_DEFER_RETRY_MS;
      const line = `deferred: ${message} (${event.messageId}); attempt not counted, again in ${(delayMs / 1000).toFixed(1)} s${traceTag(event.headers)}`;
      return this.giveBackUncounted(log, token, event, `deferred: ${message}`, delayMs, () => log.info(line));
    }
    // A poison message can never succeed, so retrying it only delays the events behind it.
    if (isAppError(error, 'POISON_MESSAGE')) return this.giveUp(name, log, token, event, `poison message: ${message}`);
    // The broker being away is an outage, like the database being away: the event is not at
    // fault, so the attempt does not count and no outage, however long, dead-letters it.
    if (isAppError(error, 'TRANSPORT_UNAVAILABLE')) {
      const delayMs = this.options.transportRetryMs ?? DEFAULT_TRANSPORT_RETRY_MS;
      const line = `could not publish ${event.messageId}: ${message}; attempt not counted, again in ${(delayMs / 1000).toFixed(1)} s`;
      return this.giveBackUncounted(log, token, event, message, delayMs, () => log.warn(line));
    }
    if (event.attempts >= this.maxAttempts) {
      return this.giveUp(name, log, token, event, `failed ${event.attempts} times; last: ${message}`);
    }
    try {
      const delay = await this.deps.store.retryLater(event, token, message);
      const when = delay === undefined ? 'lease lost' : `retry in ${(delay / 1000).toFixed(1)} s`;
      log.warn(`delivery failed for ${event.messageId} (attempt ${event.attempts}/${this.maxAttempts}): ${message}; ${when}${traceTag(event.headers)}`);
    } catch (storeError) {
      // Could not even record the failure: the lease will expire and the event comes back.
      log.warn(`delivery failed for ${event.messageId}: ${message}; not recorded (${(storeError as Error).message})${traceTag(event.headers)}`);
    }
  }

  private async giveUp(name: string, log: Logger, token: string, event: OutboxEvent, why: string): Promise<void> {
    try {
      const moved = await this.deps.store.deadLetter(event, token, why);
      if (moved) this.deps.observer?.onDeadLettered?.(name);
      if (moved) log.warn(`DEAD-LETTERED message ${event.messageId}: ${why}${traceTag(event.headers)}`);
      else log.warn(`could not dead-letter ${event.messageId}: lease lost to another worker`);
    } catch (storeError) {
      log.warn(`could not dead-letter ${event.messageId} (${(storeError as Error).message}); its lease will expire and it comes back`);
    }
  }
}

/** A batch that fails as a whole fails each of its events (each is retried later). */
async function settleBatch(
  deliverBatch: DeliverBatch,
  events: OutboxEvent[],
  name: string,
  mayStart: () => boolean,
): Promise<PromiseSettledResult<string>[]> {
  try {
    return await deliverBatch(events, name, mayStart);
  } catch (error) {
    return events.map(() => ({ status: 'rejected', reason: error }));
  }
}

function settledValue(result: PromiseSettledResult<string> | undefined): string {
  if (result === undefined) throw new Error('the batch consumer returned no result for this event');
  if (result.status === 'rejected') throw result.reason;
  return result.value;
}
