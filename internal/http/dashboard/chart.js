// A small canvas chart: outbox backlog (line) and deliveries per second (bars), one point per
// second over the last two minutes. Fed from the snapshots the server pushes; nothing polled.

const WINDOW_S = 120;

/** `labels()` gives the axis words in the page's language: { max, ago, now }. */
export function createChart(canvas, labels) {
  /** second → { backlog: highest backlog seen in that second, total: deliveries so far } */
  const seconds = new Map();

  function add(snapshot, totalDelivered) {
    const second = Math.floor(snapshot.at / 1000);
    const entry = seconds.get(second) ?? { backlog: 0, total: totalDelivered };
    entry.backlog = Math.max(entry.backlog, snapshot.stats.outbox.pending);
    entry.total = Math.max(entry.total, totalDelivered);
    seconds.set(second, entry);
    for (const key of seconds.keys()) if (key < second - WINDOW_S - 1) seconds.delete(key);
  }

  /** The last WINDOW_S seconds up to `nowSecond`, gaps carried over from the second before. */
  function series(nowSecond) {
    const points = [];
    let previous;
    for (let s = nowSecond - WINDOW_S; s <= nowSecond; s += 1) {
      const entry = seconds.get(s);
      const total = entry?.total ?? previous?.total;
      const backlog = entry ? entry.backlog : (previous?.backlog ?? 0);
      // A reset (the demo's) makes totals fall; that is not a negative rate.
      const rate = total !== undefined && previous?.total !== undefined ? Math.max(0, total - previous.total) : 0;
      points.push({ backlog, rate });
      previous = { total, backlog };
    }
    return points.slice(1);
  }

  function draw() {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const style = getComputedStyle(canvas);
    const colors = {
      backlog: style.getPropertyValue('--backlog').trim() || 'orange',
      rate: style.getPropertyValue('--rate').trim() || 'green',
      grid: style.getPropertyValue('--grid').trim() || '#444',
      text: style.getPropertyValue('--muted').trim() || '#aaa',
    };
    const points = series(Math.floor(Date.now() / 1000));
    const pad = { left: 8, right: 8, top: 28, bottom: 24 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const maxBacklog = niceMax(Math.max(...points.map((p) => p.backlog)));
    const maxRate = niceMax(Math.max(...points.map((p) => p.rate)));
    const step = plotW / points.length;

    ctx.strokeStyle = colors.grid;
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i += 1) {
      const y = pad.top + (plotH * i) / 4;
      ctx.beginPath();
      ctx.moveTo(pad.left, y);
      ctx.lineTo(pad.left + plotW, y);
      ctx.stroke();
    }

    ctx.fillStyle = colors.rate;
    points.forEach((p, i) => {
      const h = (p.rate / maxRate) * plotH;
      if (h > 0) ctx.fillRect(pad.left + i * step + 1, pad.top + plotH - h, Math.max(1, step - 2), h);
    });

    ctx.strokeStyle = colors.backlog;
    ctx.lineWidth = 3;
    ctx.beginPath();
    points.forEach((p, i) => {
      const x = pad.left + i * step + step / 2;
      const y = pad.top + plotH - (p.backlog / maxBacklog) * plotH;
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();

    ctx.font = '16px system-ui, sans-serif';
    ctx.fillStyle = colors.backlog;
    ctx.textAlign = 'left';
    const words = labels();
    ctx.fillText(`${words.max} ${maxBacklog}`, pad.left, 18);
    ctx.fillStyle = colors.rate;
    ctx.textAlign = 'right';
    ctx.fillText(`${words.max} ${maxRate}/s`, pad.left + plotW, 18);
    ctx.fillStyle = colors.text;
    ctx.textAlign = 'left';
    ctx.fillText(words.ago, pad.left, height - 4);
    ctx.textAlign = 'right';
    ctx.fillText(words.now, pad.left + plotW, height - 4);
  }

  return { add, draw };
}

/** A round axis top at or above `value` (at least 10), so the scale does not jitter. */
function niceMax(value) {
  if (value <= 10) return 10;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const m of [1, 2, 5, 10]) if (m * magnitude >= value) return m * magnitude;
  return 10 * magnitude;
}
