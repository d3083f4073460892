// The live dashboard. Everything it shows arrives over one Server-Sent Events stream
// (GET /dashboard/events): "snapshot" (the numbers, read from the database like GET /stats,
// with the signals to alert on) and "steps" (the log lines, batched). The buttons POST to
// /dashboard/*.
import { createChart } from './chart.js';
import { renderHealth } from './health.js';
import { LANGUAGES, translate } from './i18n.js';

const FEED_LINES = 14;
const LANE_GLOW_MS = 1200;
/** What "Make deliveries fail" asks for: enough failures to see retries, not so many that nothing gets through. */
const FAIL_RATE = 0.5;

const $ = (selector) => document.querySelector(selector);
const metric = (name) => document.querySelector(`[data-metric="${name}"]`);
const format = new Intl.NumberFormat('en-US');

let lang = pickLanguage();
let lastSnapshot;
let firstStock;
let capabilities = { lessons: false, faults: false, actionsAllowed: false };
/** The last button's outcome, kept as key and params so a language switch can redo it. */
let lastResult;
const chart = createChart($('#chart'), () => ({ max: t('chartMax'), ago: t('chartAgo'), now: t('chartNow') }));

function pickLanguage() {
  const asked = new URLSearchParams(location.search).get('lang') ?? localStorage.getItem('outbox-demo.lang');
  if (LANGUAGES.includes(asked)) return asked;
  return navigator.language?.toLowerCase().startsWith('zh') ? 'zh-TW' : 'en';
}

const t = (key, params) => translate(lang, key, params);

function applyLanguage() {
  document.documentElement.lang = lang;
  document.title = t('title');
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const button of document.querySelectorAll('[data-lang]')) {
    button.setAttribute('aria-pressed', String(button.dataset.lang === lang));
  }
  updateFaultButton();
  setConnection($('#connection').dataset.state);
  if (lastResult) showResult(lastResult);
  if (lastSnapshot) render(lastSnapshot);
  chart.draw();
}

function setConnection(state) {
  const el = $('#connection');
  el.dataset.state = state;
  el.textContent = t({ live: 'live', connecting: 'connecting', reconnecting: 'reconnecting', down: 'databaseDown' }[state]);
}

function setNumber(el, value) {
  if (!el) return;
  const changed = el.dataset.value !== String(value);
  el.dataset.value = String(value);
  el.textContent = format.format(value);
  if (changed && el.dataset.seen) {
    el.classList.remove('bump');
    void el.offsetWidth; // restart the animation
    el.classList.add('bump');
  }
  el.dataset.seen = '1';
}

function render(snapshot) {
  const { stats } = snapshot;
  setNumber(metric('orders-total'), stats.orders.total);
  setNumber(metric('orders-pending'), stats.orders.PENDING);
  setNumber(metric('orders-confirmed'), stats.orders.CONFIRMED);
  setNumber(metric('orders-rejected'), stats.orders.REJECTED);
  setNumber(metric('orders-cancelled'), stats.orders.CANCELLED ?? 0);
  setNumber(metric('backlog'), stats.outbox.pending);
  setNumber(metric('in-flight'), stats.outbox.inFlight);
  setNumber(metric('retrying'), stats.outbox.retrying);
  setNumber(metric('parked'), stats.outbox.parked ?? 0);
  setNumber(metric('applied'), stats.processed.applied);
  setNumber(metric('rejected-messages'), stats.processed.rejected);
  setNumber(metric('duplicates'), stats.duplicatesSkipped);
  setNumber(metric('processed'), stats.processed.applied + stats.processed.rejected);
  // Dead letters appear once the server has them.
  const dead = typeof stats.deadLetters === 'number';
  $('.dead-letters').hidden = !dead;
  if (dead) setNumber(metric('dead-letters'), stats.deadLetters);
  metric('backlog').classList.toggle('hot', stats.outbox.pending > 0);
  renderHealth($('#health'), stats, t, format);
  renderLanes(snapshot);
  // TRANSPORT=nats: the stock is the inventory service's; this database's products are a catalog.
  const brokerMode = stats.broker !== undefined;
  $('#flow').classList.toggle('broker-mode', brokerMode);
  $('#broker-flow').hidden = !brokerMode;
  if (brokerMode) renderBrokerHop(stats);
  else renderStock($('#stock'), stats.products);
  if (typeof snapshot.failRate === 'number') {
    capabilities.failRate = snapshot.failRate;
    updateFaultButton();
  }
}

function renderLanes(snapshot) {
  const lanes = $('#lanes');
  if (lanes.dataset.workers !== snapshot.workers.join(',')) {
    lanes.dataset.workers = snapshot.workers.join(',');
    lanes.replaceChildren(
      ...snapshot.workers.map((worker) => {
        const li = document.createElement('li');
        li.className = 'lane';
        li.dataset.worker = worker;
        li.innerHTML = `<span class="name"></span><span class="track"><span class="dot"></span></span>
          <span class="n" data-metric="lane-in-flight">0</span><span class="n delivered" data-metric="lane-delivered">0</span>`;
        const name = li.querySelector('.name');
        name.textContent = worker;
        name.dataset.color = workerColor(worker);
        return li;
      }),
    );
  }
  for (const li of lanes.children) {
    const worker = li.dataset.worker;
    const inFlight = snapshot.inFlightByWorker[worker] ?? 0;
    setNumber(li.querySelector('[data-metric="lane-in-flight"]'), inFlight);
    setNumber(li.querySelector('[data-metric="lane-delivered"]'), snapshot.stats.deliveriesByWorker[worker] ?? 0);
    li.classList.toggle('busy', inFlight > 0);
  }
  // With a broker, this database's inbox counts the replies (Replies-N), not the relay's deliveries.
  const others = snapshot.stats.broker ? [] : Object.entries(snapshot.stats.deliveriesByWorker).filter(([name]) => !snapshot.workers.includes(name));
  $('#others').textContent = others.length === 0 ? '' : `${t('others')}: ${others.map(([n, c]) => `${n} ${format.format(c)}`).join(' · ')}`;
}

/** The hop through NATS to the inventory service and back; each part says so when it does not answer. */
function renderBrokerHop(stats) {
  const { broker, inventoryService: inventory } = stats;
  for (const el of document.querySelectorAll('.node.nats .unreachable')) el.hidden = broker.reachable;
  const stream = (name) => (broker.reachable ? broker.streams.find((s) => s.name === name) : undefined);
  const consumer = (name) => (broker.reachable ? broker.consumers.find((c) => c.name === name) : undefined);
  showCount(metric('orders-stream-messages'), stream('ORDERS')?.messages);
  showCount(metric('inventory-stream-messages'), stream('INVENTORY')?.messages);
  for (const [prefix, name] of [['inventory-consumer', 'inventory'], ['order-consumer', 'order-service']]) {
    const c = consumer(name);
    showCount(metric(`${prefix}-pending`), c?.pending);
    showCount(metric(`${prefix}-ack-pending`), c?.ackPending);
    showCount(metric(`${prefix}-redelivered`), c?.redelivered);
  }
  $('.inventory-service .unreachable').hidden = inventory.reachable;
  showCount(metric('inventory-applied'), inventory.reachable ? inventory.consumed.processed.applied : undefined);
  showCount(metric('inventory-rejected'), inventory.reachable ? inventory.consumed.processed.rejected : undefined);
  showCount(metric('inventory-duplicates'), inventory.reachable ? inventory.consumed.duplicatesSkipped : undefined);
  showCount(metric('inventory-dead-letters'), inventory.reachable ? inventory.deadLetters : undefined);
  showCount(metric('reply-backlog'), inventory.reachable ? inventory.replyOutbox.pending : undefined);
  if (inventory.reachable) renderStock($('#inventory-stock'), inventory.products);
  else $('#inventory-stock').replaceChildren();
  setNumber(metric('settled-confirmed'), stats.orders.CONFIRMED);
  setNumber(metric('settled-rejected'), stats.orders.REJECTED);
  setNumber(metric('reply-duplicates'), stats.duplicatesSkipped);
  setNumber(metric('reply-dead-letters'), stats.deadLetters);
}

/** A number, or "–" when its source did not answer. */
function showCount(el, value) {
  if (typeof value === 'number') setNumber(el, value);
  else if (el) {
    el.textContent = '–';
    delete el.dataset.value;
  }
}

function renderStock(table, products) {
  firstStock ??= Object.fromEntries(products.map((p) => [p.id, p.stock]));
  const rows = products.map((p) => [p.id, p.stock, p.stock - (firstStock[p.id] ?? p.stock)]);
  const total = rows.reduce((sum, [, stock, delta]) => [sum[0] + stock, sum[1] + delta], [0, 0]);
  table.replaceChildren(
    ...[...rows, [t('stockTotal'), total[0], total[1], true]].map(([id, stock, delta, isTotal]) => {
      const tr = document.createElement('tr');
      if (isTotal) tr.className = 'total';
      else tr.dataset.product = id;
      tr.innerHTML = '<th></th><td class="stock-n"></td><td class="delta"></td>';
      tr.children[0].textContent = id;
      tr.children[1].textContent = format.format(stock);
      tr.children[1].dataset.value = String(stock);
      tr.children[2].textContent = delta === 0 ? '' : `${delta > 0 ? '+' : '−'}${format.format(Math.abs(delta))}`;
      return tr;
    }),
  );
}

// Same palette as the terminal: Worker-N takes the logger's N-th color.
const WORKER_COLORS = ['green', 'blue', 'yellow', 'magenta', 'cyan', 'greenBright', 'blueBright'];
function workerColor(worker) {
  const n = /^Worker-(\d+)$/.exec(worker);
  return n ? WORKER_COLORS[Number(n[1]) % WORKER_COLORS.length] : 'white';
}

function addSteps({ steps, skipped }) {
  const feed = $('#feed');
  if (skipped > 0) feed.append(line({ time: '', speaker: '…', color: 'gray', level: 'info', kind: 'info', message: `+${format.format(skipped)}` }));
  for (const step of steps) {
    feed.append(line(step));
    react(step);
  }
  while (feed.children.length > FEED_LINES) feed.firstElementChild.remove();
}

function line(step) {
  const li = document.createElement('li');
  li.className = `step kind-${step.kind} level-${step.level}`;
  li.dataset.kind = step.kind;
  const time = document.createElement('span');
  time.className = 'time';
  time.textContent = step.time;
  const speaker = document.createElement('span');
  speaker.className = 'speaker';
  speaker.dataset.color = step.color;
  speaker.textContent = `[${step.speaker}]`;
  const message = document.createElement('span');
  message.className = 'message';
  message.textContent = step.message;
  li.append(time, speaker, message);
  return li;
}

/** Steps light up the picture: an accepted order flashes the first arrow, a claim its lane… */
function react(step) {
  const flash = (el, className = 'flash') => {
    if (!el) return;
    el.classList.remove(className);
    void el.offsetWidth;
    el.classList.add(className);
  };
  if (step.kind === 'accepted' || step.kind === 'cancelled') flash($('[data-arrow="api"]'));
  if (step.kind === 'claimed' || step.kind === 'delivered' || step.kind === 'retried') {
    flash($('[data-arrow="claim"]'));
    const lane = document.querySelector(`.lane[data-worker="${CSS.escape(step.speaker)}"]`);
    if (lane) {
      lane.classList.add('active');
      clearTimeout(lane.glowTimer);
      lane.glowTimer = setTimeout(() => lane.classList.remove('active'), LANE_GLOW_MS);
    }
  }
  if (step.kind === 'applied' || step.kind === 'rejected' || step.kind === 'duplicate') {
    flash($('[data-arrow="deliver"]'));
    flash($('[data-arrow="commit"]'));
  }
  if (step.kind === 'duplicate') flash(metric('duplicates'), 'bump');
}

function connect() {
  const events = new EventSource('/dashboard/events');
  events.addEventListener('open', () => setConnection('live'));
  events.addEventListener('error', () => setConnection('reconnecting'));
  events.addEventListener('problem', () => setConnection('down'));
  events.addEventListener('steps', (e) => addSteps(JSON.parse(e.data)));
  events.addEventListener('snapshot', (e) => {
    const snapshot = JSON.parse(e.data);
    lastSnapshot = snapshot;
    setConnection('live');
    render(snapshot);
    const total = Object.values(snapshot.stats.deliveriesByWorker).reduce((a, b) => a + b, 0);
    chart.add(snapshot, total);
    chart.draw();
  });
}

async function loadCapabilities() {
  try {
    capabilities = await (await fetch('/dashboard/capabilities')).json();
  } catch {
    return;
  }
  $('#actions').hidden = !capabilities.lessons;
  $('#faults').hidden = !capabilities.faults;
  for (const button of document.querySelectorAll('#actions button')) button.disabled = !capabilities.actionsAllowed;
  if (!capabilities.actionsAllowed) showResult({ key: 'remoteOnly', tone: '' });
  updateFaultButton();
}

function updateFaultButton() {
  const button = $('#faults');
  button.dataset.i18n = capabilities.failRate > 0 ? 'stopFail' : 'makeFail';
  button.textContent = t(button.dataset.i18n);
  button.classList.toggle('on', capabilities.failRate > 0);
}

function showResult(result) {
  lastResult = result;
  const el = $('#action-result');
  el.className = `result ${result.tone}`;
  el.textContent = t(result.key, result.params);
  if (result.done) el.dataset.done = result.done;
  else delete el.dataset.done;
}

async function act(button, path, body, describe) {
  const buttons = document.querySelectorAll('#actions button');
  for (const b of buttons) b.disabled = true;
  showResult({ key: 'running', tone: '' });
  try {
    // JSON, same origin: the server refuses anything else that would change state (guard.ts).
    const res = await fetch(path, {
      method: 'POST',
      mode: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    });
    const data = await res.json();
    if (!res.ok) {
      if (res.status === 403) showResult({ key: 'forbidden', tone: 'bad' });
      else showResult({ key: 'error', params: { message: data.error?.message ?? res.status }, tone: 'bad' });
      return;
    }
    const [key, params, ok] = describe(data);
    showResult({ key, params, tone: ok ? 'good' : 'bad', done: button.id });
  } catch (error) {
    showResult({ key: 'error', params: { message: error.message }, tone: 'bad' });
  } finally {
    for (const b of buttons) b.disabled = !capabilities.actionsAllowed;
  }
}

$('#place-orders').addEventListener('click', (e) =>
  act(e.currentTarget, '/dashboard/orders', { count: 50 }, (r) =>
    r.ok
      ? ['ordersDone', { accepted: r.accepted, confirmed: r.confirmed, rejected: r.rejected, ms: Math.round(r.msAfterLastAccept ?? 0) }, true]
      : ['ordersProblem', { accepted: r.accepted, failed: r.failed, problems: r.problems.join('; ') }, false],
  ),
);
$('#replay').addEventListener('click', (e) =>
  act(e.currentTarget, '/dashboard/replay', { count: 3 }, (r) =>
    r.replayed === 0
      ? ['replayNothing', {}, false]
      : [r.ok ? 'replayDone' : 'replayProblem', { skipped: r.skipped, replayed: r.replayed, unchanged: String(r.stockUnchanged) }, r.ok],
  ),
);
$('#faults').addEventListener('click', (e) => {
  const rate = capabilities.failRate > 0 ? 0 : FAIL_RATE;
  return act(e.currentTarget, '/dashboard/faults', { failRate: rate }, (r) => {
    capabilities.failRate = r.failRate;
    updateFaultButton();
    return r.failRate > 0 ? ['failOn', { percent: Math.round(r.failRate * 100) }, true] : ['failOff', {}, true];
  });
});
for (const button of document.querySelectorAll('[data-lang]')) {
  button.addEventListener('click', () => {
    lang = button.dataset.lang;
    localStorage.setItem('outbox-demo.lang', lang);
    applyLanguage();
  });
}

// Keep the chart moving (and the lanes' glow honest) even when nothing arrives.
setInterval(() => chart.draw(), 1000);
window.addEventListener('resize', () => chart.draw());

applyLanguage();
connect();
loadCapabilities();
