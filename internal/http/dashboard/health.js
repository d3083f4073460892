// The Health panel: the signals of the README's "What to alert on" table, each painted green,
// amber or red against its threshold. The thresholds live here and nowhere else in the page;
// keep the `warn` values equal to that table. `bad` (red) is the page-someone level.

/** A value is amber above `warn` and red above `bad` (both optional, both exclusive). */
export const THRESHOLDS = {
  /** outbox_oldest_event_age_seconds: alert above 60 s; red once events have waited 5 min. */
  outboxOldestEventSeconds: { warn: 60, bad: 300 },
  /** postgres_oldest_transaction_age_seconds: alert above 5 min; red above 1 h. */
  oldestTransactionSeconds: { warn: 300, bad: 3600 },
  /** postgres_xmin_horizon_age_xids: the same alert, counted in transactions. */
  xminHorizonXids: { warn: 1_000_000 },
  /** outbox_dead_letters_waiting: any dead letter is an alert. */
  deadLetters: { warn: 0 },
  /** outbox_dead_letter_oldest_age_seconds: page when one has waited an hour. */
  deadLetterOldestSeconds: { bad: 3600 },
  /** orders_pending_too_long (the server's PENDING_ORDER_ALERT_MS decides "too long"). */
  ordersPendingTooLong: { warn: 0 },
  /** orders_oldest_pending_age_seconds: an order stuck an hour is as bad as a dead letter. */
  oldestPendingOrderSeconds: { bad: 3600 },
  /**
   * outbox_dead_tuples: no alert of its own in the README (it follows an old transaction);
   * a queue table this small that carries this many dead rows has vacuum held back.
   */
  outboxDeadTuples: { warn: 10_000, bad: 100_000 },
};

const LEVELS = ['ok', 'warn', 'bad'];

function levelOf(value, { warn, bad } = {}) {
  if (bad !== undefined && value > bad) return 'bad';
  if (warn !== undefined && value > warn) return 'warn';
  return 'ok';
}

function worst(...levels) {
  return LEVELS[Math.max(...levels.map((level) => LEVELS.indexOf(level)))];
}

/** "0 s", "0.4 s", "42 s", "5 min 20 s", "2 h 5 min", in the page's language. */
export function formatDuration(seconds, t) {
  if (seconds < 10) {
    const tenths = Math.floor(seconds * 10) / 10;
    return t('seconds', { n: Number.isInteger(tenths) ? tenths : tenths.toFixed(1) });
  }
  if (seconds < 100) return t('seconds', { n: Math.floor(seconds) });
  const parts = [];
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  if (hours > 0) parts.push(t('hours', { n: hours }), minutes > 0 ? t('minutes', { n: minutes }) : '');
  else parts.push(t('minutes', { n: minutes }), seconds % 60 >= 1 ? t('seconds', { n: Math.floor(seconds % 60) }) : '');
  return parts.filter(Boolean).join(' ');
}

/** Each tile of the panel: what it shows, read from a snapshot's stats. */
function readSignals(stats, t, format) {
  const s = stats.signals;
  const estimated = new Set(stats.estimated ?? []);
  const duration = (seconds) => formatDuration(seconds, t);
  const count = (n) => format.format(n);
  const T = THRESHOLDS;
  return {
    'outbox-oldest': {
      value: s.outboxOldestEventAgeSeconds,
      text: duration(s.outboxOldestEventAgeSeconds),
      detail: '',
      rule: t('alertAbove', { limit: duration(T.outboxOldestEventSeconds.warn) }),
      level: levelOf(s.outboxOldestEventAgeSeconds, T.outboxOldestEventSeconds),
      hint: t('outboxOldestHint'),
    },
    transaction: {
      value: s.oldestTransactionAgeSeconds,
      text: duration(s.oldestTransactionAgeSeconds),
      // Short transactions come and go all the time (the workers'); name a holder worth a look.
      detail: s.oldestTransactionHeldBy && s.oldestTransactionAgeSeconds >= 1 ? t('heldBy', { who: s.oldestTransactionHeldBy }) : t('noOldTransaction'),
      rule: `${t('alertAbove', { limit: duration(T.oldestTransactionSeconds.warn) })} · ${t('slowsClaim')}`,
      level: worst(levelOf(s.oldestTransactionAgeSeconds, T.oldestTransactionSeconds), levelOf(s.xminHorizonAgeXids, T.xminHorizonXids)),
      hint: t('transactionHint', { xids: count(s.xminHorizonAgeXids) }),
    },
    'dead-letters': {
      value: stats.deadLetters,
      text: count(stats.deadLetters),
      estimated: estimated.has('deadLetters'),
      detail: stats.deadLetters > 0 ? t('oldestWaited', { age: duration(s.deadLetterOldestAgeSeconds) }) : '',
      rule: t('alertAbove', { limit: count(T.deadLetters.warn) }),
      level: worst(levelOf(stats.deadLetters, T.deadLetters), levelOf(s.deadLetterOldestAgeSeconds, T.deadLetterOldestSeconds)),
      hint: t('deadLettersHint'),
    },
    'pending-too-long': {
      label: t('pendingTooLong', { limit: duration(s.pendingOrderThresholdSeconds) }),
      value: s.ordersPendingTooLong,
      text: count(s.ordersPendingTooLong),
      estimated: estimated.has('signals.ordersPendingTooLong'),
      detail: s.ordersPendingTooLong > 0 ? t('oldestWaited', { age: duration(s.oldestPendingOrderAgeSeconds) }) : '',
      rule: t('alertAbove', { limit: count(T.ordersPendingTooLong.warn) }),
      level: worst(levelOf(s.ordersPendingTooLong, T.ordersPendingTooLong), levelOf(s.oldestPendingOrderAgeSeconds, T.oldestPendingOrderSeconds)),
      hint: t('pendingTooLongHint'),
    },
    'dead-tuples': {
      value: s.outboxDeadTuples,
      text: count(s.outboxDeadTuples),
      estimated: estimated.has('signals.outboxDeadTuples'),
      detail: '',
      rule: t('watchAbove', { limit: count(T.outboxDeadTuples.warn) }),
      level: levelOf(s.outboxDeadTuples, T.outboxDeadTuples),
      hint: t('deadTuplesHint'),
    },
  };
}

/** Fills the panel's tiles ([data-signal] in `panel`) from a snapshot's stats. */
export function renderHealth(panel, stats, t, format) {
  panel.hidden = !stats.signals;
  if (!stats.signals) return;
  const signals = readSignals(stats, t, format);
  for (const tile of panel.querySelectorAll('[data-signal]')) {
    const signal = signals[tile.dataset.signal];
    if (!signal) continue;
    tile.dataset.state = signal.level;
    const value = tile.querySelector('.value');
    value.dataset.value = String(signal.value);
    value.textContent = signal.estimated ? `≈ ${signal.text}` : signal.text;
    value.classList.toggle('estimated', Boolean(signal.estimated));
    if (signal.label) tile.querySelector('.label').textContent = signal.label;
    tile.querySelector('.detail').textContent = signal.detail;
    tile.querySelector('.rule').textContent = signal.rule;
    tile.title = [signal.hint, signal.estimated ? t('isEstimate') : ''].filter(Boolean).join('\n');
  }
}
