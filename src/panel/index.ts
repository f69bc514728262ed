/// <reference lib="dom" />
/**
 * `<claude-harness-activity>`: the Harness Activity section (tasks today,
 * success rate, active Ralph instances, tokens and cost, daily usage, recent
 * sessions, by project and by label) as a custom element, for a dashboard that
 * wants Claude Code usage beside its own. No framework; a shadow root keeps its
 * styles in and the page's out; CSS custom properties theme it.
 *
 *   <script type="module">import 'claude-metrics/panel';</script>
 *   <claude-harness-activity endpoint="/harness" token="…" refresh="30"></claude-harness-activity>
 *
 * Attributes: endpoint (the collector, or the prefix a proxy serves its /api
 * under), token, refresh (seconds, 0 = never; default 30), days (daily chart,
 * default 14), limit (recent sessions, default 10), source / project / label
 * (filters), heading, timeout-ms. The host carries data-state = loading | ready
 * | error, and fires `harness-activity-load` (detail: the data) and
 * `harness-activity-error` (detail: the client's error value).
 *
 * Theme: --cha-font, --cha-bg, --cha-surface, --cha-fg, --cha-muted,
 * --cha-border, --cha-accent, --cha-ok, --cha-fail, --cha-radius, --cha-gap.
 * Parts: panel, tile, table, chart, error.
 *
 * Everything shown from the collector is set as text, never as HTML.
 */
import { createClient, type ClientError, type Daily, type HarnessClient, type Session, type SessionsPage, type Summary } from '../client/index';

export const TAG = 'claude-harness-activity';

export interface ActivityData {
  summary: Summary;
  sessions: SessionsPage;
  daily: Daily;
}

const STYLE = `
:host {
  --_font: var(--cha-font, system-ui, -apple-system, "Segoe UI", sans-serif);
  --_bg: var(--cha-bg, #ffffff);
  --_surface: var(--cha-surface, #f6f7f9);
  --_fg: var(--cha-fg, #1b1f24);
  --_muted: var(--cha-muted, #5d6672);
  --_border: var(--cha-border, #dde1e6);
  --_accent: var(--cha-accent, #3b6fd8);
  --_ok: var(--cha-ok, #2e9a5b);
  --_fail: var(--cha-fail, #d1453b);
  --_radius: var(--cha-radius, 8px);
  --_gap: var(--cha-gap, 12px);
  display: block;
  font-family: var(--_font);
  color: var(--_fg);
  background: var(--_bg);
  container-type: inline-size;
}
@media (prefers-color-scheme: dark) {
  :host {
    --_bg: var(--cha-bg, #15181c);
    --_surface: var(--cha-surface, #1e2227);
    --_fg: var(--cha-fg, #e6e9ed);
    --_muted: var(--cha-muted, #9aa3ad);
    --_border: var(--cha-border, #30363d);
  }
}
:host([hidden]) { display: none; }
.panel { display: flex; flex-direction: column; gap: var(--_gap); padding: var(--_gap); }
header { display: flex; align-items: baseline; justify-content: space-between; gap: var(--_gap); }
h2 { margin: 0; font-size: 1.1rem; font-weight: 600; }
h3 { margin: 0 0 6px; font-size: .85rem; font-weight: 600; color: var(--_muted); text-transform: uppercase; letter-spacing: .03em; }
.status { font-size: .8rem; color: var(--_muted); }
.error { border: 1px solid var(--_fail); color: var(--_fail); border-radius: var(--_radius); padding: 6px 10px; font-size: .85rem; }
.error[hidden] { display: none; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: var(--_gap); }
.tile { background: var(--_surface); border: 1px solid var(--_border); border-radius: var(--_radius); padding: 10px 12px; }
.tile .label { font-size: .8rem; color: var(--_muted); }
.tile .value { font-size: 1.6rem; font-weight: 650; margin-top: 2px; font-variant-numeric: tabular-nums; }
.tile .sub { font-size: .8rem; color: var(--_muted); margin-top: 2px; }
.body { display: flex; flex-direction: column; gap: var(--_gap); }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: var(--_gap); }
.card { background: var(--_surface); border: 1px solid var(--_border); border-radius: var(--_radius); padding: 10px 12px; min-width: 0; overflow-x: auto; }
.card.wide { grid-column: 1 / -1; }
table { width: 100%; border-collapse: collapse; font-size: .85rem; font-variant-numeric: tabular-nums; }
th { text-align: left; font-weight: 600; color: var(--_muted); border-bottom: 1px solid var(--_border); padding: 4px 6px; }
td { border-bottom: 1px solid var(--_border); padding: 4px 6px; white-space: nowrap; max-width: 24ch; overflow: hidden; text-overflow: ellipsis; }
td.num, th.num { text-align: right; }
tr:last-child td { border-bottom: 0; }
.ok { color: var(--_ok); }
.fail { color: var(--_fail); }
.running { color: var(--_accent); }
.empty { color: var(--_muted); font-size: .85rem; padding: 6px 0; }
svg { display: block; width: 100%; height: 140px; }
svg .bar-ok { fill: var(--_ok); }
svg .bar-fail { fill: var(--_fail); }
.axis { display: flex; font-size: 10px; color: var(--_muted); }
.axis span { flex: 1; text-align: center; overflow: hidden; }
.legend { font-size: .8rem; color: var(--_muted); margin-top: 4px; }
`;

const nf = (n: number) => n.toLocaleString('en-US');
function compact(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return nf(n);
}
const usd = (n: number) => (n >= 100 ? `$${n.toFixed(0)}` : n >= 0.01 || n === 0 ? `$${n.toFixed(2)}` : `$${n.toFixed(4)}`);
const pct = (r: number | null) => (r === null ? '–' : `${(r * 100).toFixed(r === 1 || r === 0 ? 0 : 1)}%`);
function duration(ms: number | null): string {
  if (ms === null) return '–';
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}
function ago(iso: string | null, now: number): string {
  if (!iso) return '–';
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

/** A DOM element with text content and attributes: the only way collector data reaches the page. */
function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: Array<Node | string>): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}
const SVG = 'http://www.w3.org/2000/svg';
function svg(tag: string, attrs: Record<string, string | number>): SVGElement {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function table(headers: Array<[string, boolean?]>, rows: Array<Array<[string | Node, string?]>>, empty: string): HTMLElement {
  if (rows.length === 0) return el('div', { class: 'empty' }, empty);
  const head = el('tr', {}, ...headers.map(([h, num]) => el('th', num ? { class: 'num' } : {}, h)));
  const body = rows.map((r) => el('tr', {}, ...r.map(([v, cls]) => el('td', cls ? { class: cls } : {}, v))));
  return el('table', { part: 'table' }, el('thead', {}, head), el('tbody', {}, ...body));
}

/** Browsers have HTMLElement; elsewhere (SSR, Node) importing this module must not throw. */
const Base = (typeof HTMLElement === 'undefined' ? class {} : HTMLElement) as typeof HTMLElement;

export class HarnessActivityElement extends Base {
  static get observedAttributes(): string[] {
    return ['endpoint', 'token', 'refresh', 'days', 'limit', 'source', 'project', 'label', 'heading', 'timeout-ms'];
  }

  /** The last data shown (undefined before the first successful load). */
  data?: ActivityData;
  /** The last error (cleared by a successful load). */
  error?: ClientError;
  private root: ShadowRoot;
  private timer: ReturnType<typeof setInterval> | undefined;
  private inflight: AbortController | undefined;
  private queued = false;
  private tokenProp: string | undefined;

  constructor() {
    super();
    this.root = this.attachShadow({ mode: 'open' });
    const style = document.createElement('style');
    style.textContent = STYLE;
    this.root.append(style, el('section', { class: 'panel', part: 'panel' }));
  }

  /** The token as a property keeps it out of the DOM; it wins over the attribute. */
  get token(): string | undefined {
    return this.tokenProp ?? this.getAttribute('token') ?? undefined;
  }
  set token(v: string | undefined) {
    this.tokenProp = v || undefined;
    this.schedule();
  }

  connectedCallback(): void {
    // Not in the constructor: an element created by createElement may not get attributes there.
    if (!this.hasAttribute('data-state')) this.setAttribute('data-state', 'loading');
    this.renderSkeleton();
    this.schedule();
  }

  disconnectedCallback(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.inflight?.abort();
  }

  attributeChangedCallback(_name: string, old: string | null, value: string | null): void {
    if (old !== value && this.isConnected) this.schedule();
  }

  /**
   * Loads now; resolves when the panel shows the result (data or error). Not named
   * `refresh`: React sets props that match a property name as properties.
   */
  async reload(): Promise<void> {
    this.inflight?.abort();
    const ctl = new AbortController();
    this.inflight = ctl;
    const endpoint = this.getAttribute('endpoint') ?? '';
    const client: HarnessClient = createClient({ endpoint, token: this.token, timeoutMs: this.intAttr('timeout-ms', 10_000, 100, 600_000) });
    const filter = { source: this.getAttribute('source') || undefined, project: this.getAttribute('project') || undefined, label: this.getAttribute('label') || undefined };
    const [summary, sessions, daily] = await Promise.all([
      client.summary(filter, { signal: ctl.signal }),
      client.sessions({ ...filter, limit: this.intAttr('limit', 10, 1, 100) }, { signal: ctl.signal }),
      client.daily({ ...filter, days: this.intAttr('days', 14, 1, 90) }, { signal: ctl.signal }),
    ]);
    if (ctl.signal.aborted) return;
    const failed = [summary, sessions, daily].find((r) => !r.ok);
    if (failed && !failed.ok) {
      this.error = failed.error;
      this.setAttribute('data-state', 'error');
      this.renderError(failed.error);
      this.dispatchEvent(new CustomEvent('harness-activity-error', { detail: failed.error }));
      return;
    }
    if (!summary.ok || !sessions.ok || !daily.ok) return;
    this.error = undefined;
    this.data = { summary: summary.data, sessions: sessions.data, daily: daily.data };
    this.render(this.data);
    this.setAttribute('data-state', 'ready');
    this.dispatchEvent(new CustomEvent('harness-activity-load', { detail: this.data }));
  }

  private intAttr(name: string, def: number, min: number, max: number): number {
    const v = Number(this.getAttribute(name));
    return this.hasAttribute(name) && Number.isFinite(v) ? Math.min(max, Math.max(min, Math.round(v))) : def;
  }

  /** Many attribute changes in one turn (a framework setting them all) load once. */
  private schedule(): void {
    if (this.queued) return;
    this.queued = true;
    queueMicrotask(() => {
      this.queued = false;
      if (!this.isConnected) return;
      if (this.timer) clearInterval(this.timer);
      const every = this.intAttr('refresh', 30, 0, 86_400);
      this.timer = every > 0 ? setInterval(() => void this.reload(), every * 1000) : undefined;
      void this.reload();
    });
  }

  private get panel(): HTMLElement {
    return this.root.querySelector('.panel') as HTMLElement;
  }

  private renderSkeleton(): void {
    if (this.panel.childElementCount > 0) return;
    this.panel.append(
      el('header', {}, el('h2', { part: 'title' }, this.getAttribute('heading') ?? 'Harness Activity'), el('span', { class: 'status' }, 'loading…')),
      el('div', { class: 'error', part: 'error', role: 'alert', hidden: '' }),
      el('div', { class: 'body' }),
    );
  }

  private renderError(e: ClientError): void {
    this.renderSkeleton();
    const box = this.root.querySelector('.error') as HTMLElement;
    const what = e.kind === 'unauthorized' ? 'The collector refused the token' : e.kind === 'timeout' ? 'The collector did not answer in time' : e.kind === 'network' ? 'The collector is unreachable' : 'The collector answered with an error';
    box.textContent = `${what}: ${e.message}`;
    box.setAttribute('data-kind', e.kind);
    box.hidden = false;
    (this.root.querySelector('.status') as HTMLElement).textContent = this.data ? 'showing the last data' : '';
  }

  private render(d: ActivityData): void {
    this.renderSkeleton();
    const now = Date.parse(d.summary.generated_at) || Date.now();
    (this.root.querySelector('h2') as HTMLElement).textContent = this.getAttribute('heading') ?? 'Harness Activity';
    (this.root.querySelector('.error') as HTMLElement).hidden = true;
    (this.root.querySelector('.status') as HTMLElement).textContent = `updated ${new Date(now).toISOString().slice(11, 19)} UTC`;
    const s = d.summary;
    const tile = (key: string, label: string, value: string, sub: string) => el('div', { class: 'tile', part: 'tile', 'data-tile': key }, el('div', { class: 'label' }, label), el('div', { class: 'value' }, value), el('div', { class: 'sub' }, sub));
    const tiles = el(
      'div',
      { class: 'tiles' },
      tile('tasks-today', 'Tasks today', nf(s.today.tasks), `${nf(s.today.succeeded)} succeeded · ${nf(s.today.failed)} failed`),
      tile('success-rate', 'Success rate today', pct(s.today.success_rate), `7 days: ${pct(s.last_7d.success_rate)} of ${nf(s.last_7d.tasks)}`),
      tile('active-ralph', 'Active Ralph instances', nf(s.active.ralph), `${nf(s.active.total)} session(s) active`),
      tile('tokens-today', 'Tokens today', compact(s.today.tokens), `${usd(s.today.cost_usd)} estimated`),
    );
    const card = (title: string, body: Node, cls = 'card', key = '') => el('div', { class: cls, 'data-card': key }, el('h3', {}, title), body);
    const recent = table(
      [['Started'], ['Source'], ['Project'], ['Label'], ['Outcome'], ['Duration', true], ['Tools', true], ['Cost', true]],
      d.sessions.sessions.map((x: Session) => [
        [ago(x.started_at ?? x.last_seen_at, now)],
        [x.source ?? '–'],
        [x.project ?? '–'],
        [x.label ?? '–'],
        x.completed_at ? (x.success === false ? ['failed', 'fail'] : ['succeeded', 'ok']) : x.active ? ['running', 'running'] : ['idle'],
        [duration(x.duration_ms), 'num'],
        [nf(x.tool_calls_count), 'num'],
        [usd(x.cost_usd), 'num'],
      ]),
      'No sessions yet.',
    );
    const breakdown = (rows: Array<{ tasks: number; success_rate: number | null; tokens: number; cost_usd: number }>, name: (r: never) => string, what: string) =>
      table(
        [[what], ['Tasks', true], ['Success', true], ['Tokens', true], ['Cost', true]],
        rows.slice(0, 10).map((r) => [[name(r as never)], [nf(r.tasks), 'num'], [pct(r.success_rate), 'num'], [compact(r.tokens), 'num'], [usd(r.cost_usd), 'num']]),
        'Nothing in the last 7 days.',
      );
    const body = this.root.querySelector('.body') as HTMLElement;
    body.replaceChildren(
      tiles,
      card(`Daily usage (${this.intAttr('days', 14, 1, 90)} days)`, this.chart(d.daily, now), 'card', 'daily'),
      card('Recent sessions', recent, 'card', 'recent'),
      el(
        'div',
        { class: 'grid' },
        card('By project (7 days)', breakdown(s.by_project, (r: { project: string }) => r.project, 'Project'), 'card', 'by-project'),
        card('By label (7 days)', breakdown(s.by_label, (r: { label: string }) => r.label, 'Label'), 'card', 'by-label'),
      ),
    );
  }

  /** Tasks per day (succeeded over failed), one bar a day; the title of each bar has tokens and cost. */
  private chart(daily: Daily, now: number): Node {
    const days = this.intAttr('days', 14, 1, 90);
    const byDate = new Map<string, { ok: number; fail: number; tokens: number; cost: number }>();
    const start = Math.floor(now / 86_400_000) - (days - 1);
    for (let i = 0; i < days; i++) byDate.set(new Date((start + i) * 86_400_000).toISOString().slice(0, 10), { ok: 0, fail: 0, tokens: 0, cost: 0 });
    for (const r of daily.days) {
      const b = byDate.get(r.date);
      if (!b) continue;
      b.ok += r.succeeded;
      b.fail += r.failed;
      b.tokens += r.tokens ?? r.input_tokens + r.output_tokens + r.cache_creation_input_tokens + r.cache_read_input_tokens;
      b.cost += r.cost_usd;
    }
    const W = 600;
    const H = 140;
    const pad = 2;
    const max = Math.max(1, ...[...byDate.values()].map((b) => b.ok + b.fail));
    const bw = W / days;
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', part: 'chart', preserveAspectRatio: 'none' });
    const title = document.createElementNS(SVG, 'title');
    title.textContent = 'Tasks per day';
    root.append(title);
    let totalTokens = 0;
    let totalCost = 0;
    [...byDate.entries()].forEach(([date, b], i) => {
      totalTokens += b.tokens;
      totalCost += b.cost;
      const g = svg('g', { 'data-date': date, 'data-tasks': b.ok + b.fail, 'data-failed': b.fail, 'data-tokens': b.tokens });
      const t = document.createElementNS(SVG, 'title');
      t.textContent = `${date}: ${b.ok + b.fail} task(s), ${b.fail} failed, ${compact(b.tokens)} tokens, ${usd(b.cost)}`;
      g.append(t);
      const scale = (H - pad) / max;
      const hOk = b.ok * scale;
      const hFail = b.fail * scale;
      g.append(svg('rect', { class: 'bar-ok', x: i * bw + 2, y: H - pad - hOk, width: Math.max(1, bw - 4), height: hOk }));
      g.append(svg('rect', { class: 'bar-fail', x: i * bw + 2, y: H - pad - hOk - hFail, width: Math.max(1, bw - 4), height: hFail }));
      root.append(g);
    });
    // Dates as HTML under the bars: SVG text would stretch with the chart.
    const dates = [...byDate.keys()];
    const axis = el('div', { class: 'axis' }, ...dates.map((date, i) => el('span', {}, days <= 14 || i === 0 || i === days - 1 || i % 7 === 0 ? date.slice(5) : '')));
    return el('div', {}, root, axis, el('div', { class: 'legend' }, `${compact(totalTokens)} tokens, ${usd(totalCost)} over ${days} days; bars: tasks succeeded (below) and failed (above)`));
  }
}

/** Registers the element (once) under `tag`; importing the module does it for the default tag. */
export function defineHarnessActivity(tag: string = TAG): void {
  const registry = (globalThis as { customElements?: CustomElementRegistry }).customElements;
  if (!registry || registry.get(tag)) return;
  // A subclass per extra tag: one constructor may be registered only once.
  registry.define(tag, tag === TAG ? HarnessActivityElement : class extends HarnessActivityElement {});
}

defineHarnessActivity();

declare global {
  interface HTMLElementTagNameMap {
    'claude-harness-activity': HarnessActivityElement;
  }
}
