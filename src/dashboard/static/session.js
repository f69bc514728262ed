// One session: header, a timeline to scale (idle gaps compressed, subagent steps
// nested under the Agent call that started them), per-request tokens and cost,
// and a filterable list with each step's raw metadata. Live over Server-Sent
// Events (GET /api/stream?session=…), polling only while the stream is down.
// Every user-controlled string goes in with textContent, never as HTML.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 5000;
  /** Gaps between activity longer than this are drawn compressed. */
  const IDLE_MS = 60_000;
  const GAP_PX = 34;
  const LIST_PAGE = 500;
  /** The first page is what the first render needs (the list shows its first rows); the rest comes in big pages behind it. */
  const FIRST_PAGE = 300;
  const NEXT_PAGE = 5000;
  /** Sub-pixel tool calls next to each other are drawn as one bar up to this wide (a long session has thousands per lane). */
  const CLUSTER_PX = 6;
  const state = {
    id: '',
    header: null,
    steps: new Map(),
    live: '',
    listShown: LIST_PAGE,
    selected: '',
    source: null,
    pollTimer: 0,
    streamUp: false,
    pending: false,
    again: false,
    chart: null,
    chartKey: '',
    chartData: '',
    listKey: '',
    frame: 0,
    loading: false,
  };

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'style') el.style.cssText = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === '') continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const nf = new Intl.NumberFormat('en-US');
  const fmtInt = (n) => (n === null || n === undefined ? '–' : nf.format(Math.round(n)));
  const fmtTokens = (n) => (n === null || n === undefined ? '–' : n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : fmtInt(n));
  const fmtCost = (n) => (n === null || n === undefined ? '–' : n >= 100 ? `$${n.toFixed(0)}` : n >= 1 ? `$${n.toFixed(2)}` : `$${n.toFixed(4)}`);
  const fmtDur = (ms) => {
    if (ms === null || ms === undefined) return '–';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 59.5) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
    const t = Math.round(s);
    const m = Math.floor(t / 60);
    if (m < 60) return `${m} min ${t % 60} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  };
  const fmtOffset = (ms) => {
    const s = Math.max(0, Math.round(ms / 1000));
    const hh = Math.floor(s / 3600);
    const mm = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, '0');
    return hh ? `+${hh}:${String(mm).padStart(2, '0')}:${ss}` : `+${mm}:${ss}`;
  };
  const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' }) : '–');
  const tokensOf = (s) => (s.input_tokens || 0) + (s.output_tokens || 0) + (s.cache_creation_input_tokens || 0) + (s.cache_read_input_tokens || 0);
  const isTool = (s) => s.kind === 'tool';
  const isFailure = (s) => s.status === 'failed' || (s.kind !== 'tool' && s.error);
  const stepLabel = (s) => (isTool(s) ? s.tool_name || 'tool' : s.kind === 'request' ? s.model || 'request' : s.kind === 'wait' ? s.notification_type || s.event : s.event);

  async function getJson(path) {
    const res = await fetch(path, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
    let body = null;
    try {
      body = await res.json();
    } catch {
      /* not JSON */
    }
    if (!res.ok) throw Object.assign(new Error((body && body.error) || `HTTP ${res.status}`), { status: res.status });
    return body;
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

  // ---- data ---------------------------------------------------------------------
  const api = (suffix) => `/api/sessions/${encodeURIComponent(state.id)}${suffix}`;

  /**
   * The header and a small first page (asked for together) are drawn at once;
   * the rest of the session follows in big pages, each drawn as it arrives (at
   * most once a frame), so a long session opens as fast as a short one.
   */
  async function loadAll() {
    state.loading = true;
    try {
      const firstPage = getJson(api(`/events?limit=${FIRST_PAGE}`));
      firstPage.catch(() => undefined); // the header's error is the one shown
      state.header = await getJson(api(''));
      state.id = state.header.id;
      state.steps = new Map();
      let page = await firstPage;
      for (let i = 0; i < 1000; i++) {
        // The next page is asked for before this one is drawn: the collector reads while the browser draws.
        const next = page.next ? getJson(api(`/events?limit=${NEXT_PAGE}&after=${encodeURIComponent(page.next)}`)) : null;
        if (next) next.catch(() => undefined); // awaited below; a failure is thrown there
        for (const s of page.steps) upsert(s);
        state.live = page.live;
        if (i === 0) render();
        else renderSoon();
        if (!next) break;
        page = await next;
      }
    } finally {
      state.loading = false;
    }
    renderSoon();
  }

  /** One render per frame however many pages or stream messages arrive. */
  function renderSoon() {
    if (state.frame) return;
    state.frame = requestAnimationFrame(() => {
      state.frame = 0;
      render();
    });
  }

  /** A step in by id; one API request reported twice (transcript, OTel) keeps the largest counts and Claude Code's cost. */
  function upsert(s) {
    const prev = state.steps.get(s.id);
    if (prev && s.kind === 'request' && prev.kind === 'request') {
      for (const k of ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens']) s[k] = Math.max(prev[k] || 0, s[k] || 0);
      if (s.cost_source !== 'claude_code' && prev.cost_source === 'claude_code') (s.cost_usd = prev.cost_usd), (s.cost_source = prev.cost_source);
      s.event_ids = [...new Set([...prev.event_ids, ...s.event_ids])];
      s.at_ms = Math.min(prev.at_ms, s.at_ms);
    }
    state.steps.set(s.id, s);
  }

  /** What arrived since the live cursor, upserted by step id. */
  async function catchUp() {
    // A change told while a catch-up is in flight may have been stored after its read: run once more after it.
    if (state.pending) {
      state.again = true;
      return;
    }
    state.pending = true;
    state.again = false;
    try {
      let changed = 0;
      for (let i = 0; i < 1000; i++) {
        const page = await getJson(api(`/events?limit=2000&after=${encodeURIComponent(state.live)}`));
        for (const s of page.steps) upsert(s);
        changed += page.steps.length;
        state.live = page.live;
        if (!page.next) break;
      }
      const header = await getJson(api(''));
      if (changed === 0 && JSON.stringify(header) === JSON.stringify(state.header) && document.body.dataset.state === 'ready') return;
      state.header = header;
      banner(null);
      renderSoon();
    } catch (err) {
      showError(err);
    } finally {
      state.pending = false;
      if (state.again) catchUp();
    }
  }

  function showError(err) {
    if (err.status === 401) banner('auth', [h('strong', {}, 'Unauthorized. '), 'Open this page once with ', h('code', {}, '?token=…'), '.']);
    else if (err.status === 404) banner('down', [h('strong', {}, 'No such session. '), err.message]);
    else banner('down', [h('strong', {}, 'Collector unreachable. '), `${err.message}. Retrying.`]);
    $('updated').textContent = `Failed at ${new Date().toLocaleTimeString()}`;
    document.body.dataset.state = 'error';
  }

  // ---- live: SSE first, polling only while it is down -------------------------------
  function connect() {
    if (typeof EventSource === 'undefined') return startPolling();
    const es = new EventSource(`/api/stream?session=${encodeURIComponent(state.id)}`);
    state.source = es;
    es.addEventListener('open', () => {
      state.streamUp = true;
      stopPolling();
      setUpdated();
    });
    es.addEventListener('change', () => catchUp());
    es.addEventListener('reset', () => loadAll().catch(showError));
    // hello after a reconnect: catch up in case the drop hid something (Last-Event-ID covers the rest).
    es.addEventListener('hello', () => catchUp());
    es.addEventListener('error', () => {
      state.streamUp = false;
      setUpdated();
      startPolling();
    });
  }
  function startPolling() {
    if (state.pollTimer) return;
    state.pollTimer = setInterval(() => {
      if (!state.streamUp) catchUp();
    }, POLL_MS);
  }
  function stopPolling() {
    clearInterval(state.pollTimer);
    state.pollTimer = 0;
  }
  function setUpdated() {
    $('updated').textContent = `${state.streamUp ? 'Live' : `Polling every ${POLL_MS / 1000} s (stream down)`} · ${new Date().toLocaleTimeString()}`;
    $('updated').dataset.live = state.streamUp ? 'on' : 'off';
  }

  // ---- rendering ----------------------------------------------------------------
  function sortedSteps() {
    return [...state.steps.values()].sort((a, b) => a.at_ms - b.at_ms || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  function outcomeBadge(s) {
    if (s.active) return h('span', { class: 'badge running' }, '● running');
    if (s.success === true) return h('span', { class: 'badge ok' }, '✓ success');
    if (s.success === false) return h('span', { class: 'badge fail' }, '✗ failed');
    return h('span', { class: 'badge idle' }, '– no outcome');
  }

  function renderHeader(steps, lay) {
    const s = state.header;
    const name = s.task_id || s.label || (s.claude_session_id ? s.claude_session_id.slice(0, 8) : s.id);
    $('title').textContent = `Session ${name}`;
    document.title = `${name} · Session · claude-metrics`;
    $('outcome').replaceChildren(outcomeBadge(s));
    $('api-link').href = api('');
    const fact = (k, v, title) => [h('div', { class: 'fact' }, h('dt', {}, k), h('dd', title ? { title } : {}, v === null || v === undefined || v === '' ? '–' : v))];
    const tokens = tokensOf(s);
    $('facts').replaceChildren(
      ...fact('Source', s.source),
      ...fact('Project', s.project),
      ...fact('Label', s.label),
      ...fact('Task', s.task_id),
      ...fact('Claude session', s.claude_session_id),
      ...fact('Run', s.run_id),
      ...fact('Started', fmtTime(s.started_at)),
      ...fact('Duration', fmtDur(s.duration_ms ?? (s.started_at && s.last_seen_at ? Date.parse(s.last_seen_at) - Date.parse(s.started_at) : null))),
      ...fact('Tool calls', `${fmtInt(s.tool_calls_count)}${s.tool_failures ? ` (${fmtInt(s.tool_failures)} failed)` : ''}`),
      ...fact('Prompts', fmtInt(s.prompts)),
      ...fact('Tokens', fmtTokens(tokens), `in ${fmtInt(s.input_tokens)} · out ${fmtInt(s.output_tokens)} · cache write ${fmtInt(s.cache_creation_input_tokens)} · cache read ${fmtInt(s.cache_read_input_tokens)}`),
      ...fact('Cost', fmtCost(s.cost_usd)),
      ...fact('Model', s.model),
      ...fact('Subagents', s.subagents.length ? s.subagents.map((a) => a.agent_type || a.agent_id).join(', ') : '–'),
      ...fact('End reason', s.end_reason),
      ...fact('Claude Code', s.claude_version),
      ...fact('Host', [s.user, s.host].filter(Boolean).join('@')),
      ...fact('Directory', s.cwd),
      ...fact('Git', [s.git_branch, s.git_commit && s.git_commit.slice(0, 10)].filter(Boolean).join(' @ ')),
      ...fact('Permission mode', s.permission_mode),
    );
    const endErr = $('end-error');
    if (s.success === false || s.error) {
      endErr.hidden = false;
      endErr.replaceChildren(h('strong', {}, s.success === false ? 'Failed: ' : 'Last error: '), s.error || s.end_reason || 'no error text was sent');
    } else endErr.hidden = true;
    const src = s.sources || { requests: { count: 0 } };
    const r = src.requests || { count: 0 };
    const names = { claude_code: "Claude Code's own cost", estimate: 'our price table (estimate)', none: 'nothing priced' };
    const parts = [`Cost from ${names[s.cost_source] || s.cost_source || 'nothing yet'}`];
    if (r.count) parts.push(` · ${fmtInt(r.count)} request${r.count === 1 ? '' : 's'}: ${fmtInt(r.claude_code)} at Claude Code's cost, ${fmtInt(r.estimate)} estimated, ${fmtInt(r.unpriced)} unpriced (${fmtCost(r.cost_usd)})`);
    if (src.run_result) parts.push(` · run result ${fmtCost(src.run_result.cost_usd)}`);
    $('sources').replaceChildren(
      ...parts,
      src.disagree ? h('span', { class: 'badge fail', title: 'the requests and the run result differ by more than rounding' }, ' sources disagree') : '',
      (src.unpriced_models || []).length ? h('span', { class: 'badge warn', title: 'tokens counted, cost unknown' }, ` no price for ${src.unpriced_models.join(', ')}`) : '',
    );
    renderWorth(steps, lay);
    renderWaiting(steps);
  }

  function renderWorth(steps, lay) {
    const items = [];
    const failures = steps.filter(isFailure);
    if (failures.length) items.push(h('li', { class: 'bad' }, h('a', { href: `#step=${encodeURIComponent(failures[0].id)}`, 'data-step': failures[0].id }, `${failures.length} failed step${failures.length === 1 ? '' : 's'}`), ` · first: ${stepLabel(failures[0])} ${failures[0].error ? `— ${failures[0].error.slice(0, 120)}` : ''}`));
    const tools = steps.filter((s) => isTool(s) && s.duration_ms !== null);
    if (tools.length) {
      const slow = tools.reduce((a, b) => (b.duration_ms > a.duration_ms ? b : a));
      items.push(h('li', {}, h('a', { href: `#step=${encodeURIComponent(slow.id)}`, 'data-step': slow.id }, `slowest step: ${stepLabel(slow)}`), ` · ${fmtDur(slow.duration_ms)}`));
    }
    const gaps = lay.gaps;
    if (gaps.length) {
      const g = gaps.reduce((a, b) => (b.ms > a.ms ? b : a));
      items.push(h('li', {}, `longest idle: ${fmtDur(g.ms)}${g.waiting ? ' (waiting on a person)' : ''} after ${fmtOffset(g.t0 - lay.t0)}`));
    }
    const open = steps.filter((s) => s.status === 'unfinished' || s.status === 'denied');
    if (open.length) items.push(h('li', {}, `${open.length} tool call${open.length === 1 ? '' : 's'} without a result (${open[0].status})`));
    $('worth').replaceChildren(...items);
  }

  /** Waiting now: the latest wait step has nothing after it that shows the person answered. */
  function currentWait(steps) {
    if (state.header.completed_at) return null;
    let wait = null;
    for (const s of steps) if (s.kind === 'wait') wait = s;
    if (!wait) return null;
    const answered = steps.some((n) => n.kind !== 'wait' && n.kind !== 'request' && (n.at_ms > wait.at_ms || (isTool(n) && n.end_ms !== null && n.end_ms >= wait.at_ms && (n.status === 'ok' || n.status === 'failed'))));
    return answered ? null : wait;
  }

  function renderWaiting(steps) {
    const w = currentWait(steps);
    const el = $('waiting');
    if (!w) {
      el.hidden = true;
      return;
    }
    el.hidden = false;
    el.replaceChildren(h('strong', {}, 'Waiting on you. '), `${w.notification_type === 'permission_prompt' || w.event === 'PermissionRequest' ? 'A permission prompt' : 'Claude'} has waited ${fmtDur(Date.now() - w.at_ms)}${w.tool_name ? ` (${w.tool_name})` : ''}${w.message ? `: ${w.message}` : ''}.`);
  }

  /**
   * The time axis: activity at scale, gaps longer than IDLE_MS drawn as a fixed
   * narrow band. Returns x(t) and the compressed gaps.
   */
  function layout(steps) {
    // A tool call that waited for a person is active at its start and while it runs, not in between.
    const spans = steps
      .flatMap((s) => (s.wait_ms > 0 && s.end_ms !== null ? [[s.at_ms, s.at_ms], [s.end_ms - (s.duration_ms || 0), s.end_ms]] : [[s.at_ms, Math.max(s.at_ms, s.end_ms ?? s.at_ms)]]))
      .sort((a, b) => a[0] - b[0]);
    const t0 = spans.length ? spans[0][0] : 0;
    const busy = [];
    for (const [a, b] of spans) {
      const last = busy[busy.length - 1];
      if (last && a <= last[1] + IDLE_MS) last[1] = Math.max(last[1], b);
      else busy.push([a, b]);
    }
    const gaps = [];
    const waits = steps.filter((s) => s.kind === 'wait');
    for (let i = 1; i < busy.length; i++) {
      const g = { t0: busy[i - 1][1], t1: busy[i][0], ms: busy[i][0] - busy[i - 1][1], waiting: false };
      g.waiting = waits.some((s) => s.at_ms >= g.t0 - 1000 && s.at_ms <= g.t1);
      gaps.push(g);
    }
    const t1 = busy.length ? busy[busy.length - 1][1] : t0;
    const realMs = Math.max(1, t1 - t0 - gaps.reduce((a, g) => a + g.ms, 0));
    return { t0, t1, gaps, realMs };
  }

  function scaleFor(lay, width) {
    const px = Math.max(0, width - lay.gaps.length * GAP_PX) / lay.realMs;
    return (t) => {
      let x = 0;
      let from = lay.t0;
      for (const g of lay.gaps) {
        if (t <= g.t0) break;
        if (t < g.t1) return x + (g.t0 - from) * px + ((t - g.t0) / g.ms) * GAP_PX;
        x += (g.t0 - from) * px + GAP_PX;
        from = g.t1;
      }
      return x + (t - from) * px;
    };
  }

  /**
   * A lane's tool calls as the pieces drawn: a call that matters on its own
   * (failed, unfinished, waited for a person, or 3 px wide or more) is its own
   * bar; narrower calls side by side become one bar of up to CLUSTER_PX, shaded
   * by how busy it is. So a lane has at most a few hundred elements whatever the
   * session's length, and a short session draws every call as before.
   */
  function pieces(items, x) {
    const out = [];
    let run = null;
    const flush = () => {
      if (run) out.push(run.steps.length === 1 ? { step: run.steps[0], a: run.a, b: run.b } : run);
      run = null;
    };
    for (const s of items) {
      const a = x(s.at_ms);
      const b = x(s.end_ms ?? s.at_ms);
      if (s.status === 'failed' || s.status === 'unfinished' || s.status === 'denied' || s.wait_ms > 0 || b - a >= 3) out.push({ step: s, a, b });
      else if (run && a <= run.b + 1 && b - run.a <= CLUSTER_PX) {
        run.steps.push(s);
        run.b = Math.max(run.b, b);
        run.busy += b - a;
      } else {
        flush();
        run = { steps: [s], a, b, busy: b - a };
      }
    }
    flush();
    return out.sort((p, q) => p.a - q.a);
  }

  /**
   * Markers thinned to one per `px` pixels and key (the first, or the largest by
   * `weight`), each with how many it stands for: a marker per pixel is all the eye gets.
   */
  function thin(items, x, key, px, weight) {
    const at = new Map();
    const out = [];
    for (const s of items) {
      const k = `${key(s)}|${Math.floor(x(s.at_ms) / px)}`;
      const p = at.get(k);
      if (!p) {
        const q = { step: s, n: 1 };
        at.set(k, q);
        out.push(q);
      } else {
        p.n++;
        if (weight && weight(s) > weight(p.step)) p.step = s;
      }
    }
    return out;
  }

  /** Greedy packing of pieces into rows so parallel calls do not overlap. */
  function pack(items) {
    const rows = [];
    for (const p of items) {
      const b = Math.max(p.a + 3, p.b);
      let r = rows.findIndex((end) => end <= p.a);
      if (r === -1) {
        r = rows.length;
        rows.push(0);
      }
      rows[r] = b + 1;
      p.row = r;
      p.w = b - p.a;
    }
    return Math.max(1, rows.length);
  }

  function renderTimeline(steps, lay, space) {
    const el = $('timeline');
    const width = Math.max(640, space - 150 - 28);
    const x = scaleFor(lay, width);
    const lanes = [];
    const parentOf = subagentParents(steps);
    const main = steps.filter((s) => isTool(s) && !s.agent_id);
    const byAgent = new Map();
    for (const s of steps) if (s.agent_id && (isTool(s) || s.kind === 'request')) (byAgent.get(s.agent_id) || byAgent.set(s.agent_id, []).get(s.agent_id)).push(s);

    const bar = (p, cls) => {
      if (p.steps) {
        // Several short calls side by side: one bar, darker the busier those pixels were.
        const ran = p.steps.reduce((a, s) => a + (s.duration_ms || 0), 0);
        const names = [...new Set(p.steps.map(stepLabel))].slice(0, 4).join(', ');
        return h('div', { class: `bar-item ${cls} cluster`, style: `left:${p.a.toFixed(1)}px;width:${Math.max(3, p.w).toFixed(1)}px;top:${p.row * 16 + 2}px;opacity:${(0.35 + 0.65 * Math.min(1, p.busy / Math.max(1, p.w))).toFixed(2)}`, title: `${fmtInt(p.steps.length)} tool calls (${names}) · ${fmtDur(ran)} running in all`, 'data-step': p.steps[0].id });
      }
      const s = p.step;
      const status = s.status === 'failed' ? ' failed' : s.status === 'unfinished' || s.status === 'denied' ? ' open' : '';
      const w = s.status === 'unfinished' || s.status === 'denied' ? Math.max(8, (x(state.header.completed_at ? lay.t1 : Math.max(lay.t1, s.at_ms)) - p.a) || 8) : p.w;
      const title = `${stepLabel(s)} · ${fmtDur(s.duration_ms)}${s.wait_ms ? ` after waiting ${fmtDur(s.wait_ms)} for a person` : ''} · ${s.status || ''}${s.error ? ` · ${s.error}` : ''}`;
      const el = h('div', { class: `bar-item ${cls}${status}${s.wait_ms ? ' waited' : ''}${state.selected === s.id ? ' selected' : ''}`, style: `left:${p.a.toFixed(1)}px;width:${Math.max(3, w).toFixed(1)}px;top:${p.row * 16 + 2}px`, title, 'data-step': s.id });
      if (s.wait_ms && s.end_ms !== null) {
        // The waiting part of the call, then its run.
        const runX = x(s.end_ms - (s.duration_ms || 0));
        el.append(h('span', { class: 'wait-part', style: `width:${Math.max(0, runX - p.a).toFixed(1)}px` }));
      }
      return el;
    };
    const lane = (label, cls, rows, children, title) =>
      h('div', { class: `lane ${cls}` }, h('div', { class: 'lane-label', title: title || label }, label), h('div', { class: 'lane-track', style: `height:${rows * 16 + 4}px;width:${width}px` }, children));

    // Markers: prompts, starts/ends, stops, errors that are not tool calls.
    const marks = steps.filter((s) => ['prompt', 'start', 'end', 'stop', 'task', 'compact'].includes(s.kind) || (!isTool(s) && s.error));
    const more = (n) => (n > 1 ? ` (and ${fmtInt(n - 1)} more here)` : '');
    lanes.push(lane('Events', 'marks', 1, thin(marks, x, (s) => `${s.kind}${isFailure(s) ? '!' : ''}`, 4).map(({ step: s, n }) => h('div', { class: `mark ${s.kind}${isFailure(s) ? ' failed' : ''}`, style: `left:${x(s.at_ms).toFixed(1)}px`, title: `${s.event} at ${fmtOffset(s.at_ms - lay.t0)}${s.error ? ` · ${s.error}` : ''}${more(n)}`, 'data-step': s.id }))));
    const mainPieces = pieces(main, x);
    const mainRows = pack(mainPieces);
    lanes.push(lane('Main agent', 'tools', mainRows, mainPieces.map((p) => bar(p, 'tool'))));
    for (const [agent, items] of byAgent) {
      const tools = items.filter(isTool);
      const parts = pieces(tools, x);
      const rows = pack(parts);
      const info = (state.header.subagents || []).find((a) => a.agent_id === agent);
      const parent = parentOf.get(agent);
      const label = `↳ ${(info && info.agent_type) || 'subagent'}`;
      lanes.push(lane(label, 'tools sub', rows, parts.map((p) => bar(p, 'tool sub')), `${label} (${agent})${parent ? ` · started by ${parent.tool_name} at ${fmtOffset(parent.at_ms - lay.t0)}` : ''}`));
    }
    const waits = waitSpans(steps, lay);
    lanes.push(lane('Waiting', 'waits', 1, waits.map((w) => h('div', { class: 'bar-item wait', style: `left:${x(w.t0).toFixed(1)}px;width:${Math.max(4, x(w.t1) - x(w.t0)).toFixed(1)}px;top:2px`, title: `waiting on a person ${fmtDur(w.t1 - w.t0)}${w.open ? ' (still waiting)' : ''}`, 'data-step': w.step.id }))));
    const reqs = steps.filter((s) => s.kind === 'request');
    const maxTok = reqs.reduce((m, s) => Math.max(m, tokensOf(s)), 1);
    lanes.push(lane('Requests', 'reqs', 1, thin(reqs, x, (s) => (s.agent_id ? 'sub' : ''), 2, tokensOf).map(({ step: s, n }) => h('div', { class: `req${s.agent_id ? ' sub' : ''}`, style: `left:${x(s.at_ms).toFixed(1)}px;height:${(4 + (tokensOf(s) / maxTok) * 10).toFixed(1)}px`, title: `${s.model || 'request'} · ${fmtTokens(tokensOf(s))} tokens · ${fmtCost(s.cost_usd)}${n > 1 ? ` (the largest of ${fmtInt(n)} here)` : ''}`, 'data-step': s.id }))));
    // The axis: offsets at scale, and each compressed gap labelled.
    const ticks = [];
    const step = niceStep(lay.realMs / Math.max(1, width / 110));
    for (let t = lay.t0; t <= lay.t1 && ticks.length < 400; t += step) {
      if (lay.gaps.some((g) => t > g.t0 && t < g.t1)) continue;
      ticks.push(h('span', { class: 'tick', style: `left:${x(t).toFixed(1)}px` }, fmtOffset(t - lay.t0)));
    }
    for (const g of lay.gaps) ticks.push(h('span', { class: `gap-label${g.waiting ? ' waiting' : ''}`, style: `left:${x(g.t0).toFixed(1)}px;width:${GAP_PX}px`, title: `${g.waiting ? 'waiting on a person' : 'idle'} ${fmtDur(g.ms)} (compressed)` }, `⋯ ${fmtDur(g.ms)}`));
    const gapBands = lay.gaps.map((g) => h('div', { class: 'gap-band', style: `left:${x(g.t0).toFixed(1)}px;width:${GAP_PX}px` }));
    el.replaceChildren(h('div', { class: 'lanes' }, lanes, h('div', { class: 'lane axis' }, h('div', { class: 'lane-label' }, ''), h('div', { class: 'lane-track', style: `width:${width}px` }, ticks))), h('div', { class: 'gap-layer', style: `width:${width}px` }, gapBands));
    $('timeline-note').textContent = `${fmtInt(steps.length)} steps over ${fmtDur(lay.t1 - lay.t0)}${lay.gaps.length ? ` · ${lay.gaps.length} idle gap${lay.gaps.length === 1 ? '' : 's'} compressed` : ''}`;
  }

  function niceStep(ms) {
    const choices = [100, 250, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000, 600000, 900000, 1800000, 3600000, 7200000, 21600000];
    return choices.find((c) => c >= ms) || choices[choices.length - 1];
  }

  /**
   * A wait lasts from its step to the first sign the person answered: the next
   * step that starts after it, or the end of the tool call it was asked for.
   */
  function waitSpans(steps, lay) {
    const out = [];
    for (let i = 0; i < steps.length; i++) {
      const s = steps[i];
      if (s.kind !== 'wait') continue;
      const prev = out[out.length - 1];
      if (prev && (prev.open || prev.t1 >= s.at_ms)) continue; // the same wait, told twice (PermissionRequest, then Notification)
      let t1 = Infinity;
      // Steps are in time order: the next one that starts later ends the wait; before it, a call still running may.
      for (let j = i + 1; j < steps.length; j++) {
        const n = steps[j];
        if (n.kind === 'wait' || n.kind === 'request') continue;
        if (n.at_ms > s.at_ms) {
          t1 = Math.min(t1, n.at_ms);
          break;
        }
        if (isTool(n) && n.end_ms !== null && n.end_ms > s.at_ms) t1 = Math.min(t1, n.end_ms);
      }
      // The call the person was asked about started just before (a bounded look back keeps this linear).
      for (let j = i - 1; j >= 0 && j >= i - 200; j--) {
        const n = steps[j];
        if (isTool(n) && n.end_ms !== null && n.end_ms > s.at_ms) t1 = Math.min(t1, n.end_ms);
      }
      const open = t1 === Infinity && !state.header.completed_at;
      if (t1 === Infinity) t1 = open ? Math.max(lay.t1, s.at_ms) : lay.t1;
      out.push({ t0: s.at_ms, t1: Math.max(s.at_ms, t1), open, step: s });
    }
    return out;
  }

  /** Subagent → the Agent/Task call whose span contains its first step (same subagent type preferred). */
  function subagentParents(steps) {
    const agents = steps.filter((s) => isTool(s) && !s.agent_id && (s.tool_name === 'Agent' || s.tool_name === 'Task'));
    const first = new Map();
    for (const s of steps) if (s.agent_id && !first.has(s.agent_id)) first.set(s.agent_id, s);
    const out = new Map();
    for (const [agent, s] of first) {
      const inside = agents.filter((a) => a.at_ms <= s.at_ms && (a.end_ms === null || a.end_ms >= s.at_ms));
      const typed = inside.find((a) => a.subagent_type && a.subagent_type === s.agent_type);
      const p = typed || inside[inside.length - 1];
      if (p) out.set(agent, p);
    }
    return out;
  }

  function renderRequests(steps, space) {
    const reqs = steps.filter((s) => s.kind === 'request');
    const total = reqs.reduce((a, s) => a + (s.cost_usd || 0), 0);
    $('requests-note').textContent = reqs.length ? `(${fmtInt(reqs.length)} · ${fmtTokens(reqs.reduce((a, s) => a + tokensOf(s), 0))} tokens · ${fmtCost(total)})` : '(none recorded)';
    const el = $('chart-requests');
    if (typeof uPlot === 'undefined' || reqs.length === 0) {
      if (state.chart) state.chart.destroy();
      state.chart = null;
      state.chartKey = '';
      el.replaceChildren(reqs.length ? '' : h('p', { class: 'none' }, 'No API requests recorded for this session (the transcript is read at Stop and SessionEnd).'));
      return;
    }
    const xs = reqs.map((_, i) => i + 1);
    const tokens = reqs.map(tokensOf);
    const cost = reqs.map((s) => s.cost_usd || 0);
    const width = Math.max(300, space - 8);
    // The same chart takes new data (a page of steps, a live event); it is made anew only when its options change.
    const key = `${width}|${reqs.length < 80}|${reqs.length > 1}`;
    const data = `${reqs.length}|${tokens.reduce((a, t) => a + t, 0)}|${cost.reduce((a, c) => a + c, 0)}`;
    if (state.chart && state.chartKey === key) {
      if (state.chartData !== data) state.chart.setData([xs, tokens, cost]);
      state.chartData = data;
      return;
    }
    state.chartKey = key;
    state.chartData = data;
    if (state.chart) state.chart.destroy();
    el.replaceChildren();
    const bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 30] }) : undefined;
    const colors = ['#2563eb'];
    state.chart = new uPlot(
      {
        width,
        height: 200,
        scales: { x: { time: false, range: (u, min, max) => [min - 0.5, max + 0.5] }, tok: { range: (u, min, max) => [0, Math.max(1, max)] }, usd: { range: (u, min, max) => [0, Math.max(0.0001, max)] } },
        axes: [{ stroke: '#4b5563', grid: { show: false }, values: (u, v) => v.map((n) => (Number.isInteger(n) ? `#${n}` : '')) }, { scale: 'tok', stroke: '#4b5563', grid: { stroke: '#e5e7eb' }, size: 60, values: (u, v) => v.map(fmtTokens) }, { scale: 'usd', side: 1, stroke: '#b45309', grid: { show: false }, size: 64, values: (u, v) => v.map((n) => `$${n.toFixed(3)}`) }],
        series: [{ label: 'request' }, { label: 'tokens', scale: 'tok', stroke: colors[0], fill: `${colors[0]}55`, paths: bars, width: 1, value: (u, v) => (v === null ? '–' : fmtTokens(v)) }, { label: 'cost', scale: 'usd', stroke: '#b45309', width: 2, points: { show: reqs.length < 80 }, paths: reqs.length > 1 ? undefined : () => null, value: (u, v) => (v === null ? '–' : fmtCost(v)) }],
      },
      [xs, tokens, cost],
      el,
    );
  }

  function readListFilters() {
    return { kind: $('f-kind').value, tool: $('f-tool').value, failed: $('f-failed').checked, text: $('f-text').value.trim().toLowerCase() };
  }

  function fillSelect(sel, values) {
    const keep = sel.value;
    sel.replaceChildren(h('option', { value: '' }, 'all'), ...values.map((v) => h('option', { value: v }, v)));
    sel.value = values.includes(keep) ? keep : '';
  }

  function renderList(steps) {
    fillSelect($('f-kind'), [...new Set(steps.map((s) => s.kind))].sort());
    fillSelect($('f-tool'), [...new Set(steps.filter(isTool).map((s) => s.tool_name).filter(Boolean))].sort());
    const f = readListFilters();
    const t0 = steps.length ? steps[0].at_ms : 0;
    const agents = new Map((state.header.subagents || []).map((a) => [a.agent_id, a.agent_type || a.agent_id]));
    const rows = steps.filter(
      (s) =>
        (!f.kind || s.kind === f.kind) &&
        (!f.tool || s.tool_name === f.tool) &&
        (!f.failed || isFailure(s) || s.status === 'denied') &&
        (!f.text || [s.tool_name, s.event, s.error, s.model, s.message, s.agent_type, s.notification_type].some((v) => v && String(v).toLowerCase().includes(f.text))),
    );
    $('steps-count').textContent = rows.length === steps.length ? `(${fmtInt(steps.length)})` : `(${fmtInt(rows.length)} of ${fmtInt(steps.length)})`;
    const head = ['When', 'Kind', 'Step', 'Duration', 'Status', 'Tokens', 'Cost', 'Agent', 'Error / detail'];
    const num = new Set([3, 5, 6]);
    const shown = rows.slice(0, state.listShown);
    $('more').hidden = rows.length <= state.listShown;
    $('more').textContent = `Show more (${fmtInt(rows.length - state.listShown)} left)`;
    // Rows already on screen stay (a later page of a long session adds steps below the shown ones).
    const key = `${t0}|${state.selected}|${state.header.completed_at}|${agents.size}|${shown.map((s) => `${s.id}:${s.seq}`).join(',')}`;
    if (key === state.listKey) return;
    state.listKey = key;
    const body = shown.map((s) => {
      const status = s.status === 'failed' ? h('span', { class: 'badge fail' }, '✗ failed') : s.status === 'ok' ? h('span', { class: 'badge ok' }, '✓') : s.status === 'unfinished' ? h('span', { class: 'badge running' }, '… unfinished') : s.status === 'denied' ? h('span', { class: 'badge warn' }, '⊘ no result') : '';
      const detail = s.error || s.message || (s.kind === 'prompt' ? (s.prompt ? s.prompt.slice(0, 160) : s.prompt_length !== null ? `${fmtInt(s.prompt_length)} characters` : '') : s.reason || '');
      const tr = h(
        'tr',
        { class: `step${isFailure(s) ? ' failed' : ''}${state.selected === s.id ? ' selected' : ''}`, tabindex: '0', 'data-step': s.id, 'aria-expanded': state.selected === s.id ? 'true' : 'false' },
        [
          fmtOffset(s.at_ms - t0),
          s.kind,
          stepLabel(s),
          s.duration_ms !== null && s.duration_ms !== undefined ? fmtDur(s.duration_ms) : '',
          status,
          s.kind === 'request' ? fmtTokens(tokensOf(s)) : '',
          s.cost_usd !== null && s.cost_usd !== undefined ? fmtCost(s.cost_usd) : '',
          s.agent_id ? agents.get(s.agent_id) || s.agent_id : '',
          detail ? h('span', { class: isFailure(s) ? 'error' : 'detail' }, detail.length > 200 ? `${detail.slice(0, 200)}…` : detail) : '',
        ].map((c, i) => h('td', { class: num.has(i) ? 'num' : '' }, c)),
      );
      return state.selected === s.id ? [tr, detailRow(s, head.length)] : [tr];
    });
    $('steps').replaceChildren(
      h('thead', {}, h('tr', {}, head.map((c, i) => h('th', { scope: 'col', class: num.has(i) ? 'num' : '' }, c)))),
      h('tbody', {}, body.length ? body.flat() : [h('tr', {}, h('td', { colspan: head.length, class: 'none' }, 'No steps match these filters.'))]),
    );
  }

  function detailRow(s, span) {
    const pre = h('pre', { class: 'raw', 'aria-label': 'raw metadata' }, 'loading…');
    Promise.all(s.event_ids.map((id) => getJson(`/api/events/${encodeURIComponent(id)}`).then((r) => r.event).catch((e) => ({ error: e.message }))))
      .then((evs) => {
        pre.textContent = JSON.stringify(evs.length === 1 ? evs[0] : evs, null, 2);
      })
      .catch(() => {
        pre.textContent = 'could not load';
      });
    return h('tr', { class: 'detail-row' }, h('td', { colspan: span }, h('div', { class: 'raw-head' }, `Raw metadata (${s.event_ids.length} event${s.event_ids.length === 1 ? '' : 's'}) · step ${s.id}`), pre));
  }

  function select(id, scroll) {
    state.selected = state.selected === id ? '' : id;
    history.replaceState(null, '', `${location.pathname}${location.search}${state.selected ? `#step=${encodeURIComponent(state.selected)}` : ''}`);
    const steps = sortedSteps();
    if (state.selected) {
      // Make sure the selected row is in the shown part of the list.
      const f = readListFilters();
      if (f.kind || f.tool || f.failed || f.text) {
        const s = state.steps.get(state.selected);
        if (s && ((f.kind && s.kind !== f.kind) || (f.tool && s.tool_name !== f.tool) || f.failed || f.text)) {
          $('f-kind').value = '';
          $('f-tool').value = '';
          $('f-failed').checked = false;
          $('f-text').value = '';
        }
      }
      const idx = steps.findIndex((s) => s.id === state.selected);
      if (idx >= state.listShown) state.listShown = idx + 50;
    }
    renderList(steps);
    for (const el of document.querySelectorAll('.bar-item.selected, .mark.selected')) el.classList.remove('selected');
    if (state.selected) for (const el of document.querySelectorAll('[data-step]')) if (el.dataset.step === state.selected && !el.matches('tr')) el.classList.add('selected');
    if (scroll && state.selected) {
      const row = [...document.querySelectorAll('#steps tr.step')].find((r) => r.dataset.step === state.selected);
      if (row) {
        row.scrollIntoView({ block: 'center' });
        row.focus({ preventScroll: true });
      }
    }
  }

  function render() {
    // Widths read before anything changes: a read after a change would make the browser lay the page out again.
    const space = { timeline: $('timeline').parentElement.clientWidth, requests: $('chart-requests').clientWidth };
    const steps = sortedSteps();
    const lay = layout(steps);
    renderHeader(steps, lay);
    renderTimeline(steps, lay, space.timeline);
    renderRequests(steps, space.requests);
    renderList(steps);
    if (state.streamUp || state.pollTimer || !state.source) setUpdated();
    document.body.dataset.state = 'ready';
    document.body.dataset.steps = String(steps.length);
  }

  function init() {
    const m = /^\/sessions\/([^/]+)$/.exec(location.pathname);
    state.id = m ? decodeURIComponent(m[1]) : new URLSearchParams(location.search).get('id') || '';
    if (new URLSearchParams(location.search).has('token')) {
      const q = new URLSearchParams(location.search);
      q.delete('token');
      history.replaceState(null, '', `${location.pathname}${q.toString() ? `?${q}` : ''}${location.hash}`);
    }
    const fromHash = /^#step=(.+)$/.exec(location.hash);
    if (fromHash) state.selected = decodeURIComponent(fromHash[1]);
    // Back to the dashboard the way we came (its filters kept), else its plain URL.
    if (document.referrer && new URL(document.referrer).origin === location.origin && new URL(document.referrer).pathname === '/') $('back').href = document.referrer;

    $('step-filters').addEventListener('input', () => {
      state.listShown = LIST_PAGE;
      renderList(sortedSteps());
    });
    $('step-filters').addEventListener('submit', (e) => e.preventDefault());
    $('more').addEventListener('click', () => {
      state.listShown += LIST_PAGE;
      renderList(sortedSteps());
    });
    document.addEventListener('click', (e) => {
      const t = e.target.closest('[data-step]');
      if (!t || t.closest('.detail-row')) return;
      if (t.tagName === 'A') e.preventDefault();
      select(t.dataset.step, !t.matches('tr'));
      if (t.matches('tr') && state.selected) {
        const row = [...document.querySelectorAll('#steps tr.step')].find((r) => r.dataset.step === t.dataset.step);
        if (row) row.focus();
      }
    });
    $('steps').addEventListener('keydown', (e) => {
      const row = e.target.closest('tr.step');
      if (!row) return;
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        select(row.dataset.step, false);
        const again = [...document.querySelectorAll('#steps tr.step')].find((r) => r.dataset.step === row.dataset.step);
        if (again) again.focus();
      } else if (e.key === 'ArrowDown' || e.key === 'j' || e.key === 'ArrowUp' || e.key === 'k') {
        e.preventDefault();
        const rows = [...document.querySelectorAll('#steps tr.step')];
        const i = rows.indexOf(row) + (e.key === 'ArrowDown' || e.key === 'j' ? 1 : -1);
        if (rows[i]) rows[i].focus();
      }
    });
    let resizeTimer = 0;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => state.header && render(), 150);
    });
    loadAll()
      .then(() => {
        if (state.selected) {
          const want = state.selected;
          state.selected = '';
          select(want, true);
        }
        connect();
      })
      .catch((err) => {
        showError(err);
        if (err.status !== 404 && err.status !== 401) setTimeout(() => location.reload(), POLL_MS);
      });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
