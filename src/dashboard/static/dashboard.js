/* global document, window, location, fetch, EventSource, URLSearchParams, confirm */
// The dashboard page: reads GET /api/state once, then follows GET /api/events (Server-Sent
// Events). Every figure from the server is written with textContent, never as HTML: members and
// error messages are arbitrary strings.
(function () {
  'use strict';

  const token = new URLSearchParams(location.search).get('token');
  const authHeaders = token ? { Authorization: `Bearer ${token}` } : {};
  const $ = (id) => document.getElementById(id);

  let history = [];
  let historyMs = 600000;
  const seen = { recomputed: 0, failed: 0 };

  // ---------- formatting ----------

  const int = (n) => (n === null || n === undefined ? '–' : Math.round(n).toLocaleString('en-US'));
  const decimal = (n) => n.toLocaleString('en-US', { maximumFractionDigits: 1 });
  function duration(ms) {
    if (ms === null || ms === undefined) return '–';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    // One decimal at most, none when whole: "2.3 s", "10 min".
    if (ms < 60000) return `${+(ms / 1000).toFixed(1)} s`;
    if (ms < 3600000) return `${+(ms / 60000).toFixed(1)} min`;
    return `${+(ms / 3600000).toFixed(1)} h`;
  }
  const clock = (ms) => new Date(ms).toLocaleTimeString('en-GB');
  // Local time, like every other time on the page.
  const since = (ms) => `${new Date(ms).toLocaleDateString('en-CA')} ${clock(ms)}`;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') node.textContent = v;
      else if (k === 'className') node.className = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  // ---------- figures ----------

  const FIGURES = {
    pending: int,
    inflight: int,
    delayed: int,
    dead: int,
    settling: int,
    overdue: int,
    expired: int,
    outbox: (n) => (n === null ? 'no table' : int(n)),
    oldestPendingMs: duration,
    waitP50Ms: duration,
    waitP99Ms: duration,
  };
  const LEVELS = { dead: 1, expired: 1, overdue: 1, delayed: 1 };

  function showFigures(f) {
    for (const [name, format] of Object.entries(FIGURES)) {
      const node = document.querySelector(`[data-figure="${name}"]`);
      if (!node || !(name in f)) continue;
      node.textContent = format(f[name]);
      node.dataset.level = LEVELS[name] && f[name] > 0 ? (name === 'dead' || name === 'expired' ? 'bad' : 'warn') : '';
    }
  }

  const figuresOfStats = (s) => ({ ...s, waitP50Ms: s.wait.p50Ms, waitP99Ms: s.wait.p99Ms });

  // ---------- tables ----------

  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }
  function barCell(value, max) {
    const span = el('span');
    span.style.width = `${max > 0 && value > 0 ? Math.max(1, (100 * value) / max) : 0}%`;
    return el('td', { className: 'bar' }, span);
  }

  function showTiers(tiers) {
    const max = Math.max(0, ...tiers.map((t) => t.pending));
    fill(
      $('tiers').tBodies[0],
      tiers.map((t) =>
        el(
          'tr',
          { 'data-tier': t.priority },
          el('td', { text: t.priority }),
          el('td', { className: 'num', text: int(t.pending) }),
          barCell(t.pending, max),
        ),
      ),
    );
  }

  function showTypes(types, scan) {
    const max = Math.max(0, ...types.map((t) => t.pending));
    fill(
      $('types').tBodies[0],
      types.map((t) =>
        el(
          'tr',
          { 'data-type': t.name },
          el('td', { className: 'member', text: t.priority ? t.name : `${t.name} (not registered here)` }),
          el('td', { className: 'num', text: int(t.pending) }),
          barCell(t.pending, max),
        ),
      ),
    );
    const note = $('types-note');
    note.hidden = scan.exact;
    note.textContent = scan.exact ? '' : `counted over ${int(scan.scanned)} of ${int(scan.total)} pending parents (a sample)`;
  }

  function showHottest(hottest) {
    const max = Math.max(0, ...hottest.map((h) => h.heat));
    fill(
      $('hottest').tBodies[0],
      hottest.map((h) =>
        el(
          'tr',
          { 'data-member': h.member },
          el('td', { className: 'member', text: h.member }),
          el('td', { text: h.priority }),
          el('td', { className: 'num', text: int(h.heat) }),
          barCell(h.heat, max),
        ),
      ),
    );
    $('hottest-empty').hidden = hottest.length > 0;
  }

  function showDead(dead, total) {
    fill(
      $('dead').tBodies[0],
      dead.map((d) => {
        const retry = el('button', { type: 'button', text: 'Retry', title: `give ${d.member} a fresh start` });
        const purge = el('button', { type: 'button', className: 'danger', text: 'Purge', title: `remove ${d.member} for good` });
        retry.addEventListener('click', () => act('retry', { members: [d.member] }, [retry, purge]));
        purge.addEventListener('click', () => {
          if (confirm(`Purge ${d.member}? It will not be recomputed until it is marked again.`)) {
            act('purge', { members: [d.member] }, [retry, purge]);
          }
        });
        return el(
          'tr',
          { 'data-member': d.member },
          el('td', { className: 'member', text: d.member }),
          el('td', { className: 'num', text: int(d.attempts) }),
          el('td', { className: 'num', text: int(d.heat) }),
          el('td', { text: d.at ? since(d.at) : '–' }),
          el('td', { className: 'error', text: d.error }),
          el('td', { className: 'buttons' }, retry, purge),
        );
      }),
    );
    $('dead-empty').hidden = dead.length > 0;
    $('dead-shown').textContent = total > dead.length ? `oldest ${dead.length} of ${int(total)}` : `${int(total)}`;
    $('retry-all').disabled = total === 0;
    $('purge-all').disabled = total === 0;
  }

  function showState(s) {
    $('namespace').textContent = s.namespace;
    document.title = `coalesce · ${s.namespace}`;
    historyMs = s.historyMs;
    for (const node of document.querySelectorAll('[data-window]')) node.textContent = `last ${duration(s.historyMs)}`;
    showFigures(figuresOfStats(s.stats));
    showTiers(s.tiers);
    showTypes(s.types, s.typeScan);
    showHottest(s.hottest);
    showDead(s.dead, s.stats.dead);
    $('runner').textContent = s.runner
      ? `runner ${s.runner.status} · ${int(s.runner.counts.ticks)} ticks, ${int(s.runner.counts.skipped)} skipped, ${int(s.runner.counts.failed)} failed`
      : 'no runner in this process';
    $('updated').textContent = `updated ${clock(s.at)}`;
  }

  // ---------- plots ----------

  const BACKLOG = [
    { key: 'pending', label: 'pending', color: '#2f6fdf' },
    { key: 'inflight', label: 'in flight', color: '#1f8a4c' },
    { key: 'delayed', label: 'retrying', color: '#b7791f' },
  ];
  const LAG = [
    { key: 'oldestPendingMs', label: 'oldest pending', color: '#c53030' },
    { key: 'waitP50Ms', label: 'wait p50', color: '#2f6fdf' },
    { key: 'waitP99Ms', label: 'wait p99', color: '#805ad5' },
  ];

  function legend(id, series) {
    $(id).replaceChildren(
      ...series.map((s) => {
        const swatch = el('i');
        swatch.style.background = s.color;
        return el('span', {}, swatch, s.label);
      }),
    );
  }

  function plot(id, series, format) {
    const now = history.length ? history[history.length - 1].at : Date.now();
    window.coalescePlot($(id), { points: history, series, format, now, windowMs: historyMs });
  }

  function drawPlots() {
    plot('plot-backlog', BACKLOG, decimal);
    plot('plot-lag', LAG, duration);
  }

  function addSample(point) {
    history.push(point);
    const from = point.at - historyMs;
    while (history.length && history[0].at < from) history.shift();
    if ('error' in point) {
      banner(`cannot read the namespace: ${point.error}`);
    } else {
      banner('');
      showFigures(point);
      $('updated').textContent = `updated ${clock(point.at)}`;
    }
    drawPlots();
  }

  // ---------- activity ----------

  function activity(a) {
    let text;
    if (a.type === 'recomputed') {
      seen.recomputed += 1;
      text = `${clock(a.at)}  recomputed ${a.member} in ${duration(a.durationMs)}${a.waitMs === null ? '' : `, waited ${duration(a.waitMs)}`}`;
    } else if (a.type === 'failed') {
      seen.failed += 1;
      const next = a.dead ? 'dead-lettered' : a.retryAt ? `retry at ${clock(a.retryAt)}` : 'will retry';
      text = `${clock(a.at)}  failed ${a.member} (attempt ${a.attempt}, ${next}): ${a.error}`;
    } else {
      $('last-drain').textContent =
        `${int(a.recomputed)} recomputed, ${int(a.failed)} failed in ${duration(a.durationMs)} at ${clock(a.at)}`;
      text = `${clock(a.at)}  drain: claimed ${int(a.claimed)}, recomputed ${int(a.recomputed)}, failed ${int(a.failed)}`;
    }
    showSeen();
    const list = $('activity');
    list.prepend(el('li', { 'data-type': a.type, text }));
    while (list.children.length > 50) list.lastElementChild.remove();
  }
  function showSeen() {
    $('count-recomputed').textContent = int(seen.recomputed);
    $('count-failed').textContent = int(seen.failed);
  }

  // ---------- talking to the server ----------

  function banner(text) {
    const node = $('banner');
    node.hidden = !text;
    node.textContent = text;
  }

  async function request(method, path, body) {
    const res = await fetch(path, {
      method,
      headers: { ...authHeaders, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await res.json().catch(() => ({ error: `${res.status} ${res.statusText}` }));
    if (!res.ok) throw new Error(data.error || `${res.status} ${res.statusText}`);
    return data;
  }

  async function loadState() {
    try {
      const s = await request('GET', '/api/state');
      history = s.history;
      showState(s);
      banner('');
      drawPlots();
    } catch (error) {
      banner(`cannot load the dashboard: ${error.message}`);
    }
  }

  async function act(verb, body, buttons) {
    for (const b of buttons) b.disabled = true;
    const result = $('action-result');
    try {
      const r = await request('POST', `/api/dead/${verb}`, body);
      const n = verb === 'retry' ? r.retried : r.purged;
      result.textContent = `${verb === 'retry' ? 'retried' : 'purged'} ${n} dead parent${n === 1 ? '' : 's'}`;
      await loadState();
    } catch (error) {
      result.textContent = `${verb} failed: ${error.message}`;
      for (const b of buttons) b.disabled = false;
    }
  }

  $('retry-all').addEventListener('click', () => {
    if (confirm('Retry every dead parent?')) act('retry', { all: true }, [$('retry-all')]);
  });
  $('purge-all').addEventListener('click', () => {
    if (confirm('Purge every dead parent? They will not be recomputed until marked again.'))
      act('purge', { all: true }, [$('purge-all')]);
  });

  function connect() {
    const conn = $('connection');
    const events = new EventSource(`/api/events${token ? `?token=${encodeURIComponent(token)}` : ''}`);
    let dropped = false;
    events.addEventListener('open', () => {
      conn.textContent = 'live';
      conn.dataset.state = 'live';
      // Whatever happened while the stream was down is in the state, not in the stream.
      if (dropped) loadState();
    });
    events.addEventListener('error', () => {
      dropped = true;
      conn.textContent = 'reconnecting';
      conn.dataset.state = 'down';
    });
    const on = (name, fn) => events.addEventListener(name, (e) => fn(JSON.parse(e.data)));
    on('sample', addSample);
    on('state', showState);
    on('recomputed', activity);
    on('failed', activity);
    on('drained', activity);
    on('skipped', (s) => {
      seen.recomputed += s.recomputed;
      seen.failed += s.failed;
      showSeen();
    });
  }

  let resizing;
  window.addEventListener('resize', () => {
    clearTimeout(resizing);
    resizing = setTimeout(drawPlots, 100);
  });
  legend('legend-backlog', BACKLOG);
  legend('legend-lag', LAG);
  loadState().then(connect);
})();
