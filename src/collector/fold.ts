/**
 * The folding rules, pure: what a stored event does to its session row and to
 * the counters. Both stores (SQLite, PostgreSQL) call these and only turn the
 * results into statements, so a rule is written once.
 *
 * Every rule commutes and is idempotent given the store's unique event_id:
 * a session row is a min/max/sum/"smallest known"/"latest by timestamp" of its
 * events, so events folded in any order, in one transaction or several
 * concurrent ones, give the same row. (The statement that applies a delta to a
 * row is `mergeDelta` written in SQL; `test/unit/fold.test.ts` checks the two agree.)
 */
import type { HarnessEvent } from '../event';
import { foldMetric, foldTool, foldUsage, factCost, metricDelta, toolDelta, usageDelta, usageFactKey, type UsageFact } from './facts';
import { completesSession, sessionKey, TOOL_EVENTS } from './normalize';
import { bucketIndex, DURATION_BUCKETS_S } from './prometheus';

/**
 * When events of one session name different sources, the more specific wins: a
 * ralph run wraps a headless (`api`) Claude session, a loop outranks a person's
 * session, a live session outranks its backfill. A total order (ties: the
 * smaller name), so the result does not depend on arrival.
 */
export const SOURCE_RANK: Record<string, number> = { ralph: 5, api: 4, cron: 3, interactive: 2, backfill: 1 };
const rank = (s: string) => SOURCE_RANK[s] ?? 0;
const ranksAbove = (b: string, a: string) => rank(b) > rank(a) || (rank(b) === rank(a) && b < a);

/**
 * Of two descriptions of a session (project, label, ids), the one kept: either
 * when only one is known, else the smaller, so that the row does not depend on
 * which event arrived first, in one transaction or in concurrent ones.
 */
export const pick = (a: string | null, b: string | null): string | null => (a === null ? b : b === null ? a : b < a ? b : a);

/** One event's (or several events') contribution to a session row. */
export interface SessionDelta {
  id: string;
  session_id: string | null;
  run_id: string | null;
  source: string;
  project: string | null;
  label: string | null;
  task_id: string | null;
  started_ms: number;
  last_seen_ms: number;
  events_count: number;
  tool_call: number;
  tool_failure: number;
  usage_event: number;
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cost_usd: number;
  claude_cost_requests: number;
  estimate_cost_requests: number;
  unpriced_requests: number;
  lines_added: number;
  lines_removed: number;
  commits: number;
  pull_requests: number;
  active_time_s: number;
  error: string | null;
  error_ms: number | null;
  model: string | null;
  model_ms: number | null;
}

/** Summed columns of a session delta (everything but identity, times, error and model). */
export const SUMMED = ['events_count', 'tool_call', 'tool_failure', 'usage_event', 'input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens', 'cost_usd', 'claude_cost_requests', 'estimate_cost_requests', 'unpriced_requests', 'lines_added', 'lines_removed', 'commits', 'pull_requests', 'active_time_s'] as const;

/** The later of two "latest by timestamp" values; ties go to b (the stores' SQL uses `>=`, the same). */
const later = (aMs: number | null, b: unknown, bMs: number | null) => b !== null && (aMs === null || (bMs ?? 0) >= aMs);

/** Combines two deltas exactly as a store's upsert combines a delta with the stored row. */
export function mergeDelta(a: SessionDelta, b: SessionDelta): SessionDelta {
  const laterError = later(a.error_ms, b.error, b.error_ms);
  const laterModel = later(a.model_ms, b.model, b.model_ms);
  const out: SessionDelta = {
    ...a,
    session_id: pick(a.session_id, b.session_id),
    run_id: pick(a.run_id, b.run_id),
    source: ranksAbove(b.source, a.source) ? b.source : a.source,
    project: pick(a.project, b.project),
    label: pick(a.label, b.label),
    task_id: pick(a.task_id, b.task_id),
    started_ms: Math.min(a.started_ms, b.started_ms),
    last_seen_ms: Math.max(a.last_seen_ms, b.last_seen_ms),
    error: laterError ? b.error : a.error,
    error_ms: laterError ? b.error_ms : a.error_ms,
    model: laterModel ? b.model : a.model,
    model_ms: laterModel ? b.model_ms : a.model_ms,
  };
  for (const k of SUMMED) out[k] = a[k] + b[k];
  return out;
}

/** A delta that only places the event in time and identity; the counts are added by the rules. */
function emptyDelta(id: string, e: HarnessEvent, tsMs: number): SessionDelta {
  return {
    id, session_id: e.session_id ?? null, run_id: e.run_id ?? null, source: e.source, project: e.project ?? null, label: e.label ?? null, task_id: e.task_id ?? null,
    started_ms: tsMs, last_seen_ms: tsMs, events_count: 0, tool_call: 0, tool_failure: 0, usage_event: 0, input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0, cost_usd: 0, claude_cost_requests: 0, estimate_cost_requests: 0, unpriced_requests: 0, lines_added: 0, lines_removed: 0, commits: 0,
    pull_requests: 0, active_time_s: 0, error: null, error_ms: null, model: null, model_ms: null,
  };
}

// ---- counters -----------------------------------------------------------------

export interface CounterDelta {
  metric: string;
  labels: Record<string, string>;
  by: number;
}

/**
 * Counter increments of one transaction, one entry per series. Keyed by metric
 * and label values (cheap to build per event); a store serializes the labels
 * once per series when it writes them.
 */
export class CounterSet {
  private readonly m = new Map<string, CounterDelta>();

  bump(metric: string, labels: Record<string, string>, by = 1): void {
    if (by === 0) return;
    let key = metric;
    for (const k in labels) key += `\u0000${k}\u0001${labels[k]}`;
    const p = this.m.get(key);
    if (p) p.by += by;
    else this.m.set(key, { metric, labels, by });
  }

  get size(): number {
    return this.m.size;
  }

  /**
   * The series with their stored label text, sorted by (metric, labels): a store
   * that takes row locks writes them in this order, so two concurrent
   * transactions never wait on each other in a cycle.
   */
  rows(): Array<{ metric: string; labels: string; by: number }> {
    return [...this.m.values()]
      .map((c) => ({ metric: c.metric, labels: labelsText(c.labels), by: c.by }))
      .sort((a, b) => (a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : a.labels < b.labels ? -1 : a.labels > b.labels ? 1 : 0));
  }
}

/** The stored form of a series' labels (JSON, keys in the order the rule wrote them). */
export const labelsText = (labels: Record<string, string>): string => JSON.stringify(labels);

/** Label values are bounded in length (a label is a dimension, not a payload). */
export const LABEL_MAX = 128;
const lab = (v: string | null | undefined): string => (v ?? '').slice(0, LABEL_MAX);

// ---- completions ----------------------------------------------------------------

/** A completion event's result, as it would be written to its session. */
export interface Completion {
  id: string;
  event_id: string;
  ts_ms: number;
  /** 1 or 0: a failed exit or an error result is a failure even when `success` was not sent. */
  success: number;
  exit_code: number | null;
  /** As reported; null means "completed − started", computed when read. */
  duration_ms: number | null;
  num_turns: number | null;
  input_tokens: number | null;
  output_tokens: number | null;
  cache_creation_input_tokens: number | null;
  cache_read_input_tokens: number | null;
  cost_usd: number | null;
  /** Counter labels of the session. */
  labels: { source: string; project: string; label: string };
}

export function completionOf(e: HarnessEvent, tsMs = Date.parse(e.timestamp)): Completion | null {
  if (!completesSession(e)) return null;
  const u = e.usage ?? {};
  const exit = e.exit_code ?? null;
  const success = e.success === true ? 1 : e.success === false ? 0 : e.is_error === true || (exit !== null && exit !== 0) ? 0 : 1;
  return {
    id: sessionKey(e),
    event_id: e.event_id,
    ts_ms: tsMs,
    success,
    exit_code: exit,
    duration_ms: e.duration_ms ?? null,
    num_turns: e.num_turns ?? null,
    input_tokens: u.input_tokens ?? null,
    output_tokens: u.output_tokens ?? null,
    cache_creation_input_tokens: u.cache_creation_input_tokens ?? null,
    cache_read_input_tokens: u.cache_read_input_tokens ?? null,
    cost_usd: e.cost_usd ?? null,
    labels: { source: e.source, project: lab(e.project), label: lab(e.label) },
  };
}

/** What a store reads of a session (after this transaction's deltas) to place its completions. */
export interface CompletionState {
  started_ms: number;
  completed_ms: number | null;
  completion_event_id: string | null;
}

/** (ts, event id) order: the latest completion decides a session's outcome and result. */
export const isLaterCompletion = (c: { ts_ms: number; event_id: string }, s: CompletionState) =>
  s.completed_ms === null || c.ts_ms > s.completed_ms || (c.ts_ms === s.completed_ms && c.event_id > (s.completion_event_id ?? ''));

/**
 * Places completions on their sessions. `states` holds each session's stored
 * state, read inside the transaction after the session upserts (so the row is
 * locked where the database has row locks); it is updated in place. Returns the
 * completions to write (the latest per session). The session's first completion
 * is what `sessions_completed_total` and the duration histogram count, so a
 * replayed or a second completion counts nothing.
 */
export function applyCompletions(states: Map<string, CompletionState>, completions: Completion[], counters: CounterSet): Completion[] {
  const writes = new Map<string, Completion>();
  for (const c of completions) {
    const s = states.get(c.id);
    if (!s) continue; // its session upsert is in the same transaction: cannot happen
    if (s.completed_ms === null) {
      const outcome = c.success ? 'success' : 'failure';
      const h = { ...c.labels, outcome };
      const seconds = (c.duration_ms ?? Math.max(0, c.ts_ms - s.started_ms)) / 1000;
      counters.bump('sessions_completed_total', h);
      counters.bump('task_duration_seconds_bucket', { ...h, b: String(bucketIndex(DURATION_BUCKETS_S, seconds)) });
      counters.bump('task_duration_seconds_sum', h, seconds);
      if (c.cost_usd !== null) counters.bump('run_reported_cost_usd_total', c.labels, c.cost_usd);
    }
    if (isLaterCompletion(c, s)) {
      s.completed_ms = c.ts_ms;
      s.completion_event_id = c.event_id;
      writes.set(c.id, c);
    }
  }
  return [...writes.values()];
}

// ---- facts ------------------------------------------------------------------------

/**
 * A fact (facts.ts): one API request, tool call or OTel metric series, counted
 * once by its session however many paths report it. Its id…
 */
export interface FactId {
  session_id: string;
  kind: 'usage' | 'tool' | 'metric';
  key: string;
}

/** …and what is stored of it: the session row it counts in (its first report's) and its folded state. */
export interface FactRow {
  session_key: string;
  model: string | null;
  ts_ms: number;
  unpriced: number;
  state: unknown;
}

export const factIdText = (f: FactId): string => `${f.session_id}\u0000${f.kind}\u0000${f.key}`;

/** What an OTel metric adds to a session row (see ingest/otlp-metrics.ts). */
const METRIC_COLUMNS: Record<string, 'lines_added' | 'lines_removed' | 'commits' | 'pull_requests' | 'active_time_s'> = { lines_added: 'lines_added', lines_removed: 'lines_removed', commits: 'commits', pull_requests: 'pull_requests', active_time_s: 'active_time_s' };

/** The Prometheus counter each OTel metric column feeds (labels bounded: source, project, type). */
const METRIC_COUNTERS: Record<string, [string, Record<string, string>]> = {
  lines_added: ['lines_of_code_total', { type: 'added' }],
  lines_removed: ['lines_of_code_total', { type: 'removed' }],
  commits: ['commits_total', {}],
  pull_requests: ['pull_requests_total', {}],
  active_time_s: ['active_time_seconds_total', {}],
};

function metricOf(e: HarnessEvent): { column: (typeof METRIC_COLUMNS)[string]; value: number } | null {
  if (e.event !== 'otel_metric' || !e.attrs) return null;
  const column = METRIC_COLUMNS[String(e.attrs.metric)];
  const value = Number(e.attrs.value);
  return column && Number.isFinite(value) ? { column, value } : null;
}

/** The fact an event reports, if any. */
export function factOf(e: HarnessEvent): FactId | null {
  const session_id = e.session_id ?? sessionKey(e);
  if (e.event === 'usage') return { session_id, kind: 'usage', key: usageFactKey(e) };
  if (TOOL_EVENTS.has(e.event)) return { session_id, kind: 'tool', key: e.tool_use_id ? `tool:${e.tool_use_id}` : `event:${e.event_id}` };
  if (metricOf(e)) return { session_id, kind: 'metric', key: String(e.attrs!.series ?? e.event_id) };
  return null;
}

/** The facts some events report, once each, sorted: a store loads them (and where it can, locks them, in this order) before folding. */
export function factsOf(events: Iterable<HarnessEvent>): FactId[] {
  const m = new Map<string, FactId>();
  for (const e of events) {
    const f = factOf(e);
    if (f) m.set(factIdText(f), f);
  }
  return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, f]) => f);
}

// ---- one transaction ------------------------------------------------------------

export interface Fold {
  /** One delta per session touched, sorted by session id (the order a store locks rows in). */
  sessions: SessionDelta[];
  completions: Completion[];
  counters: CounterSet;
  /** Facts to save (each with its new row), sorted by id. */
  facts: Array<FactId & FactRow>;
}

/**
 * Folds newly stored events (duplicates already removed by the store) into
 * per-session deltas, counters and facts. `facts` holds the stored row of every
 * fact in `factsOf(events)` that exists (read inside the transaction); it is
 * updated in place as the events are folded, in order.
 */
export function foldEvents(events: Iterable<HarnessEvent>, facts: Map<string, FactRow> = new Map(), duplicates = 0): Fold {
  const sessions = new Map<string, SessionDelta>();
  const completions: Completion[] = [];
  const counters = new CounterSet();
  const touched = new Map<string, FactId>();
  const add = (d: SessionDelta) => {
    const cur = sessions.get(d.id);
    sessions.set(d.id, cur ? mergeDelta(cur, d) : d);
  };
  for (const e of events) {
    const tsMs = Date.parse(e.timestamp);
    const key = sessionKey(e);
    const u = e.usage ?? {};
    const project = lab(e.project);
    const own = emptyDelta(key, e, tsMs);
    own.events_count = 1;
    own.error = e.error ?? null;
    own.error_ms = e.error ? tsMs : null;
    own.model = e.model ?? null;
    own.model_ms = e.model ? tsMs : null;

    const fid = factOf(e);
    if (fid) {
      // A fact counts in the row its first report landed in; another row gets only the counts, not this event's identity.
      const idText = factIdText(fid);
      const row = facts.get(idText);
      const target = row?.session_key ?? key;
      const d = target === key ? own : { ...emptyDelta(target, e, tsMs), run_id: null, task_id: null, label: null, project: null };
      const save = (state: unknown, model: string | null = null, unpriced = false) => {
        facts.set(idText, { session_key: target, model, ts_ms: Math.max(row?.ts_ms ?? tsMs, tsMs), unpriced: unpriced ? 1 : 0, state });
        touched.set(idText, fid);
      };
      if (fid.kind === 'usage') {
        const prev = row?.state as UsageFact | undefined;
        const claude = e.cost_source === 'claude_code';
        const next = foldUsage(prev, {
          model: e.model ?? null,
          input_tokens: u.input_tokens ?? 0,
          output_tokens: u.output_tokens ?? 0,
          cache_creation_input_tokens: u.cache_creation_input_tokens ?? 0,
          cache_read_input_tokens: u.cache_read_input_tokens ?? 0,
          claude_cost: claude ? (e.cost_usd ?? null) : null,
          estimate: claude ? null : (e.cost_usd ?? null),
        });
        save(next, next.model, factCost(next).source === 'none');
        const delta = usageDelta(prev, next);
        for (const k of ['usage_event', 'input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens', 'cost_usd', 'claude_cost_requests', 'estimate_cost_requests', 'unpriced_requests'] as const) d[k] += delta[k];
        // Counters only grow: a correction downwards (an estimate above Claude Code's own figure) stays in the counter.
        const model = lab(next.model) || 'unknown';
        counters.bump('tokens_total', { source: e.source, project, model, kind: 'input' }, delta.input_tokens);
        counters.bump('tokens_total', { source: e.source, project, model, kind: 'output' }, delta.output_tokens);
        counters.bump('tokens_total', { source: e.source, project, model, kind: 'cache_creation' }, delta.cache_creation_input_tokens);
        counters.bump('tokens_total', { source: e.source, project, model, kind: 'cache_read' }, delta.cache_read_input_tokens);
        if (delta.cost_usd > 0) counters.bump('cost_usd_total', { source: e.source, project, model }, delta.cost_usd);
      } else if (fid.kind === 'tool') {
        const prev = row?.state as { failed: boolean } | undefined;
        const failed = e.success === false;
        const next = foldTool(prev, { failed });
        save(next);
        const delta = toolDelta(prev, next);
        d.tool_call += delta.tool_call;
        d.tool_failure += delta.tool_failure;
        if (delta.tool_call) counters.bump('tool_calls_total', { source: e.source, project, tool: lab(e.tool_name), outcome: failed ? 'failure' : 'success' });
      } else {
        const { column, value } = metricOf(e)!;
        const prev = row?.state as { value: number } | undefined;
        // A delta point is its own series (its key includes its window); a cumulative one keeps its largest value.
        const next = e.attrs!.cumulative === true ? foldMetric(prev, { value }) : { value: (prev?.value ?? 0) + value };
        save(next);
        const by = metricDelta(prev, next);
        d[column] += by;
        const [metric, labels] = METRIC_COUNTERS[column]!;
        if (by > 0) counters.bump(metric, { source: e.source, project, ...labels, ...(column === 'active_time_s' ? { type: lab(String(e.attrs!.kind ?? '')) } : {}) }, by);
      }
      if (d !== own) add(d);
    }
    add(own);
    counters.bump('events_total', { source: e.source, project, label: lab(e.label), event: lab(e.event) });
    const c = completionOf(e, tsMs);
    if (c) completions.push(c);
  }
  if (duplicates > 0) counters.bump('duplicates_total', {}, duplicates);
  const byId = <T extends { id: string }>(a: T, b: T) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  return {
    sessions: [...sessions.values()].sort(byId),
    completions,
    counters,
    facts: [...touched.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([idText, f]) => ({ ...f, ...facts.get(idText)! })),
  };
}
