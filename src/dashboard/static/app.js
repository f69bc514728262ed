// Harness Activity: a plain script over the collector's JSON API. Every piece of
// user-controlled text (projects, labels, tools, errors) goes in with
// textContent, never as HTML; the page runs under a CSP without inline scripts.
'use strict';

(() => {
  const REFRESH_MS = 15000;
  const $ = (id) => document.getElementById(id);
  const state = { auto: true, timer: 0, inFlight: false, again: false, charts: {}, stream: null, live: false, lastRefresh: 0, soon: 0, waitTicker: 0 };

  /** Creates an element with text and attributes (no HTML parsing, ever). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const nf = new Intl.NumberFormat('en-US');
  const fmtInt = (n) => (n === null || n === undefined ? '–' : nf.format(Math.round(n)));
  const fmtTokens = (n) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : fmtInt(n));
  const fmtCost = (n) => (n === null || n === undefined ? '–' : n >= 100 ? `$${n.toFixed(0)}` : n >= 1 ? `$${n.toFixed(2)}` : `$${n.toFixed(4)}`);
  const fmtPct = (r) => (r === null || r === undefined ? '–' : `${(r * 100).toFixed(r === 1 || r === 0 ? 0 : 1)}%`);
  const fmtDur = (ms) => {
    if (ms === null || ms === undefined) return '–';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  };
  const fmtTime = (iso) => {
    if (!iso) return '–';
    const d = new Date(iso);
    return d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  };
  const tokensOf = (s) => s.input_tokens + s.output_tokens + s.cache_creation_input_tokens + s.cache_read_input_tokens;

  // ---- filters, reflected in the URL so a view can be shared -------------------
  function readFilters() {
    const q = new URLSearchParams(location.search);
    // Grafana's link passes its "All" as `.*`: that is no filter here.
    const v = (k) => (q.get(k) === '.*' || q.get(k) === '$__all' ? '' : q.get(k) || '');
    return { source: v('source'), project: v('project'), label: v('label'), range: q.get('range') || '7d' };
  }
  function writeFilters(f) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v && !(k === 'range' && v === '7d')) q.set(k, v);
    const url = `${location.pathname}${q.toString() ? `?${q}` : ''}`;
    history.replaceState(null, '', url);
  }
  function apiQuery(f, extra) {
    const q = new URLSearchParams();
    if (f.source) q.set('source', f.source);
    if (f.project) q.set('project', f.project);
    if (f.label) q.set('label', f.label);
    for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
    return q.toString();
  }

  async function getJson(path) {
    const res = await fetch(path, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
    if (res.status === 401) throw Object.assign(new Error('unauthorized'), { status: 401 });
    if (!res.ok) throw Object.assign(new Error(`HTTP ${res.status}`), { status: res.status });
    return res.json();
  }

  function fillSelect(select, values, current) {
    const keep = select.value || current;
    select.replaceChildren(h('option', { value: '' }, 'all'), ...values.map((v) => h('option', { value: v }, v)));
    if (keep && !values.includes(keep)) select.append(h('option', { value: keep }, keep));
    select.value = keep || '';
  }

  // ---- rendering ---------------------------------------------------------------
  function setText(id, text) {
    $(id).textContent = text;
  }

  function renderTiles(s) {
    setText('t-tasks', fmtInt(s.today.tasks));
    setText('t-tasks-sub', `${fmtInt(s.today.succeeded)} succeeded · ${fmtInt(s.today.failed)} failed`);
    setText('t-rate', fmtPct(s.today.success_rate));
    setText('t-rate-sub', `7 days: ${fmtPct(s.last_7d.success_rate)} of ${fmtInt(s.last_7d.tasks)}`);
    const rate = s.today.success_rate;
    $('t-rate').dataset.tone = rate === null ? '' : rate >= 0.9 ? 'good' : rate >= 0.7 ? 'warn' : 'bad';
    setText('t-ralph', fmtInt(s.active.ralph));
    setText('t-active-sub', `${fmtInt(s.active.total)} active session${s.active.total === 1 ? '' : 's'} in all`);
    setText('t-tokens', fmtTokens(s.today.tokens));
    setText('t-tokens-sub', `in ${fmtTokens(s.today.input_tokens)} · out ${fmtTokens(s.today.output_tokens)} · cache ${fmtTokens(s.today.cache_read_input_tokens + s.today.cache_creation_input_tokens)}`);
    setText('t-cost', fmtCost(s.today.cost_usd));
    setText('t-cost-sub', `7 days: ${fmtCost(s.last_7d.cost_usd)}`);
    setText('t-rejects', `${fmtInt(s.ingest.rejects)} rejected`);
    $('t-rejects').dataset.tone = s.ingest.rejects > 0 ? 'warn' : 'good';
    setText('t-ingest-sub', `${fmtInt(s.ingest.events)} events · ${fmtInt(s.ingest.duplicates)} duplicates ignored`);
  }

  function table(el, head, rows, empty) {
    const thead = h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : '' }, c.label))));
    const body = rows.length
      ? rows.map((r) => h('tr', {}, r.map((cell, i) => (cell instanceof Node ? h('td', { class: head[i].num ? 'num' : '' }, cell) : h('td', { class: head[i].num ? 'num' : '' }, cell)))))
      : [h('tr', {}, h('td', { colspan: head.length, class: 'none' }, empty))];
    el.replaceChildren(thead, h('tbody', {}, body));
  }

  function outcome(s) {
    if (s.active) return h('span', { class: 'badge running', title: 'started, not completed' }, '● running');
    if (s.success === true) return h('span', { class: 'badge ok' }, '✓ success');
    if (s.success === false) return h('span', { class: 'badge fail' }, '✗ failed');
    return h('span', { class: 'badge idle' }, '– no outcome');
  }

  function renderBreakdowns(s) {
    const cols = (name) => [{ label: name }, { label: 'Tasks', num: true }, { label: 'Success', num: true }, { label: 'Tokens', num: true }, { label: 'Cost', num: true }];
    // A project or label opens this page filtered by it (its sessions below, each linked).
    const filtered = (key, v) => {
      if (v === '(none)') return v;
      const q = new URLSearchParams(location.search);
      q.set(key, v);
      return h('a', { class: 'filter-link', href: `/?${q}`, 'data-filter': key, 'data-value': v }, v);
    };
    const row = (key) => (r) => [filtered(key, r[key]), fmtInt(r.tasks), fmtPct(r.success_rate), fmtTokens(r.tokens), fmtCost(r.cost_usd)];
    table($('by-project'), cols('Project'), s.by_project.map(row('project')), 'No projects in this range.');
    table($('by-label'), cols('Label'), s.by_label.map(row('label')), 'No labels in this range.');
    table(
      $('top-tools'),
      [{ label: 'Tool' }, { label: 'Calls', num: true }, { label: 'Failures', num: true }, { label: 'Avg time', num: true }],
      s.top_tools.map((t) => [t.tool, fmtInt(t.calls), fmtInt(t.failures), t.avg_duration_ms === null ? '–' : fmtDur(t.avg_duration_ms)]),
      'No tool calls in this range.',
    );
  }

  /** A session's cost with where it came from: Claude Code's own figure, our estimate (≈), or none (unpriced). */
  function costCell(s) {
    const unpriced = s.unpriced_requests > 0 ? ` ${s.unpriced_requests} request(s) of an unpriced model: their cost is unknown.` : '';
    if (s.cost_source === 'none') return h('span', { class: 'cost cost-none', 'data-cost-source': 'none', title: `No price known.${unpriced}` }, s.unpriced_requests > 0 ? 'unpriced' : '–');
    if (s.cost_source === 'estimate') return h('span', { class: 'cost cost-estimate', 'data-cost-source': 'estimate', title: `Estimated from the price table (Claude Code's own figure not received).${unpriced}` }, `≈${fmtCost(s.cost_usd)}${unpriced ? '+?' : ''}`);
    return h('span', { class: 'cost cost-claude', 'data-cost-source': s.cost_source || 'claude_code', title: `Claude Code's own figure.${unpriced}` }, `${fmtCost(s.cost_usd)}${unpriced ? '+?' : ''}`);
  }

  function renderSessions(data) {
    setText('sessions-count', data.total > data.sessions.length ? `(latest ${data.sessions.length} of ${fmtInt(data.total)})` : `(${fmtInt(data.total)})`);
    table(
      $('sessions'),
      [{ label: 'Source' }, { label: 'Project' }, { label: 'Label' }, { label: 'Task' }, { label: 'Started' }, { label: 'Duration', num: true }, { label: 'Tool calls', num: true }, { label: 'Tokens', num: true }, { label: 'Cost', num: true }, { label: 'Outcome' }, { label: 'Error' }],
      data.sessions.map((s) => [
        s.source || '–',
        s.project || '–',
        s.label || '–',
        // Each row opens its session's page (its own URL: shareable, Back returns here).
        h('a', { class: 'session-link', href: `/sessions/${encodeURIComponent(s.id)}`, title: `open session ${s.id}` }, s.task_id || (s.claude_session_id ? s.claude_session_id.slice(0, 8) : s.id.replace(/^[a-z]+:/, '').slice(0, 12))),
        fmtTime(s.started_at),
        fmtDur(s.duration_ms),
        fmtInt(s.tool_calls_count),
        fmtTokens(tokensOf(s)),
        costCell(s),
        outcome(s),
        s.error ? h('span', { class: 'error', title: s.error }, s.error.length > 80 ? `${s.error.slice(0, 80)}…` : s.error) : '',
      ]),
      'No sessions match these filters.',
    );
  }

  const SOURCE_COLORS = { ralph: '#2563eb', interactive: '#059669', api: '#d97706', cron: '#7c3aed', backfill: '#6b7280', unknown: '#9ca3af' };

  function renderCharts(daily, days) {
    if (typeof uPlot === 'undefined') return;
    const start = Date.parse(`${daily.from}T00:00:00Z`) / 1000;
    const xs = Array.from({ length: days }, (_, i) => start + i * 86400);
    const idx = new Map(xs.map((x, i) => [new Date(x * 1000).toISOString().slice(0, 10), i]));
    const sources = [...new Set(daily.days.map((d) => d.source))].sort();
    const tasks = sources.map((src) => {
      const ys = xs.map(() => 0);
      for (const d of daily.days) if (d.source === src && idx.has(d.date)) ys[idx.get(d.date)] += d.tasks;
      return ys;
    });
    const tokens = xs.map(() => 0);
    const cost = xs.map(() => 0);
    for (const d of daily.days) {
      const i = idx.get(d.date);
      if (i === undefined) continue;
      tokens[i] += d.input_tokens + d.output_tokens + d.cache_creation_input_tokens + d.cache_read_input_tokens;
      cost[i] += d.cost_usd;
    }
    const width = (el) => Math.max(280, el.clientWidth - 8);
    const axisDate = { stroke: '#4b5563', grid: { stroke: '#e5e7eb' }, values: (u, v) => v.map((t) => new Date(t * 1000).toISOString().slice(5, 10)) };
    const draw = (key, el, opts, data) => {
      if (state.charts[key]) state.charts[key].destroy();
      el.replaceChildren();
      state.charts[key] = new uPlot({ width: width(el), height: 220, ...opts }, data, el);
    };
    const barsPath = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.6, 40] }) : undefined;
    draw(
      'tasks',
      $('chart-tasks'),
      {
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
        axes: [axisDate, { stroke: '#4b5563', grid: { stroke: '#e5e7eb' }, size: 50 }],
        series: [{}, ...sources.map((s) => ({ label: s, stroke: SOURCE_COLORS[s] || '#374151', width: 2, fill: `${SOURCE_COLORS[s] || '#374151'}22`, points: { show: true } }))],
      },
      [xs, ...tasks],
    );
    draw(
      'usage',
      $('chart-usage'),
      {
        scales: { x: { time: true, range: (u, min, max) => [min - 43200, max + 43200] }, tok: { range: (u, min, max) => [0, Math.max(1, max)] }, usd: { range: (u, min, max) => [0, Math.max(0.01, max)] } },
        axes: [axisDate, { scale: 'tok', stroke: '#4b5563', grid: { stroke: '#e5e7eb' }, size: 64, values: (u, v) => v.map(fmtTokens) }, { scale: 'usd', side: 1, stroke: '#b45309', grid: { show: false }, size: 64, values: (u, v) => v.map((x) => `$${x.toFixed(2)}`) }],
        series: [{}, { label: 'tokens', scale: 'tok', stroke: '#2563eb', width: 2, paths: barsPath, fill: '#2563eb44' }, { label: 'cost (USD)', scale: 'usd', stroke: '#b45309', width: 2, points: { show: true } }],
      },
      [xs, tokens, cost],
    );
  }

  function banner(kind, parts) {
    const b = $('banner');
    if (!kind) {
      b.hidden = true;
      b.replaceChildren();
      return;
    }
    b.dataset.kind = kind;
    b.replaceChildren(...parts);
    b.hidden = false;
  }

  // ---- the refresh loop: one request round at a time ---------------------------
  async function refresh() {
    if (state.inFlight) return;
    state.inFlight = true;
    const f = readFilters();
    const days = f.range === '1d' ? 1 : f.range === '30d' ? 30 : 7;
    try {
      const [filters, summary, sessions, daily, waiting] = await Promise.all([
        getJson('/api/filters'),
        getJson(`/api/summary?${apiQuery(f, { since: `${days}d` })}`),
        getJson(`/api/sessions?${apiQuery(f, { since: `${days}d`, limit: '50' })}`),
        getJson(`/api/daily?${apiQuery(f, { days: String(Math.max(days, 7)) })}`),
        getJson('/api/waiting').catch(() => ({ waiting: [] })),
      ]);
      fillSelect($('f-source'), filters.sources, f.source);
      fillSelect($('f-project'), filters.projects, f.project);
      fillSelect($('f-label'), filters.labels, f.label);
      banner(null);
      $('empty').hidden = summary.ingest.events > 0;
      renderTiles(summary);
      renderBreakdowns(summary);
      renderSessions(sessions);
      renderCharts(daily, Math.max(days, 7));
      renderWaiting(waiting.waiting, f);
      setUpdated();
      document.body.dataset.state = 'ready';
    } catch (err) {
      if (err.status === 401) {
        banner('auth', [h('strong', {}, 'Unauthorized. '), 'This collector requires a token: open this page once as ', h('code', {}, `${location.origin}/?token=…`), '.']);
      } else {
        banner('down', [h('strong', {}, 'Collector unreachable. '), `The last refresh failed (${err.message}). Retrying every ${REFRESH_MS / 1000} s.`]);
      }
      setText('updated', `Failed at ${new Date().toLocaleTimeString()}`);
      document.body.dataset.state = 'error';
    } finally {
      state.inFlight = false;
      state.lastRefresh = Date.now();
      if (state.again) {
        state.again = false;
        soon();
      }
    }
  }

  function setUpdated() {
    const how = !state.auto ? ' · paused' : state.live ? ' · live' : ` · every ${REFRESH_MS / 1000} s`;
    setText('updated', `Updated ${new Date().toLocaleTimeString()}${how}`);
    $('updated').dataset.live = state.auto && state.live ? 'on' : 'off';
  }

  /** Sessions blocked on a person now (any machine), longest wait first; the page's filters apply. */
  function renderWaiting(list, f) {
    const rows = list.filter((w) => (!f.source || w.source === f.source) && (!f.project || w.project === f.project) && (!f.label || w.label === f.label));
    $('waiting-panel').hidden = rows.length === 0;
    setText('waiting-count', `(${rows.length})`);
    $('waiting-list').replaceChildren(
      ...rows.map((w) =>
        h(
          'li',
          {},
          h('a', { href: `/sessions/${encodeURIComponent(w.id)}` }, w.task_id || w.label || (w.claude_session_id ? w.claude_session_id.slice(0, 8) : w.id)),
          ` · ${w.kind === 'permission_prompt' || w.kind === 'permission_request' ? 'permission' : w.kind === 'idle_prompt' ? 'waiting for input' : w.kind}${w.tool_name ? ` (${w.tool_name})` : ''} · ${[w.project, w.source, w.user && w.host ? `${w.user}@${w.host}` : w.host].filter(Boolean).join(' · ')} · `,
          h('strong', { class: 'waited', 'data-waited-ms': String(w.waited_ms) }, `waited ${fmtDur(w.waited_ms)}`),
        ),
      ),
    );
    // The waits keep growing between refreshes (the stream is quiet while nobody answers):
    // counted on from the collector's figure with this page's clock, so clock skew does not matter.
    const at = performance.now();
    clearInterval(state.waitTicker);
    state.waitTicker = rows.length === 0 ? 0 : setInterval(() => {
      for (const el of $('waiting-list').querySelectorAll('strong.waited')) el.textContent = `waited ${fmtDur(Number(el.dataset.waitedMs) + performance.now() - at)}`;
    }, 1000);
  }

  /** A refresh soon: at most one a second, never two at once (the stream may say "changed" many times a second). */
  function soon() {
    if (state.inFlight) {
      state.again = true;
      return;
    }
    if (state.soon) return;
    const wait = Math.max(0, 1000 - (Date.now() - state.lastRefresh));
    state.soon = setTimeout(() => {
      state.soon = 0;
      refresh();
    }, wait);
  }

  /** Live updates: the stream says what changed; polling only while it is down. */
  function connect() {
    if (state.stream) state.stream.close();
    state.stream = null;
    state.live = false;
    if (!state.auto || typeof EventSource === 'undefined') return;
    const es = new EventSource(`/api/stream?${apiQuery(readFilters())}`);
    state.stream = es;
    es.addEventListener('open', () => {
      state.live = true;
      clearTimeout(state.timer);
      setUpdated();
    });
    es.addEventListener('change', soon);
    es.addEventListener('reset', soon);
    es.addEventListener('error', () => {
      // EventSource reconnects by itself (with Last-Event-ID); until then, poll.
      if (state.live) {
        state.live = false;
        setUpdated();
      }
      if (!state.timer) schedule();
    });
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = 0;
    if (state.auto && !state.live) state.timer = setTimeout(async () => {
      await refresh();
      schedule();
    }, REFRESH_MS);
  }

  function init() {
    const f = readFilters();
    $('f-range').value = f.range;
    $('empty-example').textContent = `curl -H 'content-type: application/json' \\\n  -d '{"source":"ralph","event":"ralph_task_completed","task_id":"T-1","label":"demo","duration_ms":1200,"success":true}' \\\n  ${location.origin}/metrics/harness`;
    $('filters').addEventListener('change', () => {
      const next = { source: $('f-source').value, project: $('f-project').value, label: $('f-label').value, range: $('f-range').value };
      writeFilters(next);
      refresh();
      connect();
    });
    $('filters').addEventListener('submit', (e) => e.preventDefault());
    $('refresh-toggle').addEventListener('click', () => {
      state.auto = !state.auto;
      $('refresh-toggle').setAttribute('aria-pressed', String(state.auto));
      $('refresh-toggle').textContent = `Auto-refresh: ${state.auto ? 'on' : 'off'}`;
      if (state.auto) refresh();
      connect();
      schedule();
    });
    window.addEventListener('resize', () => {
      for (const c of Object.values(state.charts)) c.setSize({ width: Math.max(280, c.root.parentElement.clientWidth - 8), height: 220 });
    });
    // The token in the URL has become a cookie; do not leave it in the address bar or history.
    if (new URLSearchParams(location.search).has('token')) {
      const q = new URLSearchParams(location.search);
      q.delete('token');
      history.replaceState(null, '', `${location.pathname}${q.toString() ? `?${q}` : ''}`);
    }
    refresh().then(() => {
      connect();
      schedule();
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
