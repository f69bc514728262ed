/**
 * The folding rules, pure: what a stored event does to its session row and to
 * the counters. Both stores (SQLite, PostgreSQL) call these and only turn the
 * results into statements, so a rule is written once.
 *
 * Every rule commutes and is idempotent given the store's unique event_id:
 * a session row is a min/max/sum/"first non-null"/"latest by timestamp" of its
 * events, so events folded in any order, in one transaction or several
 * concurrent ones, give the same row. (The statement that applies a delta to a
 * row is `mergeDelta` written in SQL; `test/unit/fold.test.ts` checks the two agree.)
 */
import type { HarnessEvent } from '../event';
import { COMPLETION_EVENTS, sessionKey, TOOL_EVENTS } from './normalize';
import { bucketIndex, DURATION_BUCKETS_S } from './prometheus';

/** Sources that outrank a hook's `interactive` when both describe one session (a run wraps a session). */
const RANKED_SOURCES = new Set(['ralph', 'api']);
const rank = (s: string) => (RANKED_SOURCES.has(s) ? 1 : 0);

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
  error: string | null;
  error_ms: number | null;
  model: string | null;
  model_ms: number | null;
}

/** The later of two "latest by timestamp" values; ties go to b (the stores' SQL uses `>=`, the same). */
const later = (aMs: number | null, b: unknown, bMs: number | null) => b !== null && (aMs === null || (bMs ?? 0) >= aMs);

/** Combines two deltas exactly as a store's upsert combines a delta with the stored row. */
export function mergeDelta(a: SessionDelta, b: SessionDelta): SessionDelta {
  const laterError = later(a.error_ms, b.error, b.error_ms);
  const laterModel = later(a.model_ms, b.model, b.model_ms);
  return {
    id: a.id,
    session_id: a.session_id ?? b.session_id,
    run_id: a.run_id ?? b.run_id,
    source: rank(b.source) > rank(a.source) ? b.source : a.source,
    project: a.project ?? b.project,
    label: a.label ?? b.label,
    task_id: a.task_id ?? b.task_id,
    started_ms: Math.min(a.started_ms, b.started_ms),
    last_seen_ms: Math.max(a.last_seen_ms, b.last_seen_ms),
    events_count: a.events_count + b.events_count,
    tool_call: a.tool_call + b.tool_call,
    tool_failure: a.tool_failure + b.tool_failure,
    usage_event: a.usage_event + b.usage_event,
    input_tokens: a.input_tokens + b.input_tokens,
    output_tokens: a.output_tokens + b.output_tokens,
    cache_creation_input_tokens: a.cache_creation_input_tokens + b.cache_creation_input_tokens,
    cache_read_input_tokens: a.cache_read_input_tokens + b.cache_read_input_tokens,
    cost_usd: a.cost_usd + b.cost_usd,
    error: laterError ? b.error : a.error,
    error_ms: laterError ? b.error_ms : a.error_ms,
    model: laterModel ? b.model : a.model,
    model_ms: laterModel ? b.model_ms : a.model_ms,
  };
}

/** What one event adds to its session. */
export function sessionDelta(e: HarnessEvent, tsMs = Date.parse(e.timestamp)): SessionDelta {
  const u = e.usage ?? {};
  const isUsage = e.event === 'usage';
  const isTool = TOOL_EVENTS.has(e.event);
  return {
    id: sessionKey(e),
    session_id: e.session_id ?? null,
    run_id: e.run_id ?? null,
    source: e.source,
    project: e.project ?? null,
    label: e.label ?? null,
    task_id: e.task_id ?? null,
    started_ms: tsMs,
    last_seen_ms: tsMs,
    events_count: 1,
    tool_call: isTool ? 1 : 0,
    tool_failure: isTool && e.success === false ? 1 : 0,
    usage_event: isUsage ? 1 : 0,
    input_tokens: isUsage ? (u.input_tokens ?? 0) : 0,
    output_tokens: isUsage ? (u.output_tokens ?? 0) : 0,
    cache_creation_input_tokens: isUsage ? (u.cache_creation_input_tokens ?? 0) : 0,
    cache_read_input_tokens: isUsage ? (u.cache_read_input_tokens ?? 0) : 0,
    cost_usd: isUsage ? (e.cost_usd ?? 0) : 0,
    error: e.error ?? null,
    error_ms: e.error ? tsMs : null,
    model: e.model ?? null,
    model_ms: e.model ? tsMs : null,
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

/** The counters one stored event increments (its completion's are added by `applyCompletions`). */
export function countEvent(e: HarnessEvent, c: CounterSet): void {
  const project = lab(e.project);
  const label = lab(e.label);
  c.bump('events_total', { source: e.source, project, label, event: lab(e.event) });
  if (TOOL_EVENTS.has(e.event)) c.bump('tool_calls_total', { source: e.source, project, tool: lab(e.tool_name), outcome: e.success === false ? 'failure' : 'success' });
  if (e.event === 'usage') {
    const u = e.usage ?? {};
    const model = lab(e.model) || 'unknown';
    c.bump('tokens_total', { source: e.source, project, model, kind: 'input' }, u.input_tokens ?? 0);
    c.bump('tokens_total', { source: e.source, project, model, kind: 'output' }, u.output_tokens ?? 0);
    c.bump('tokens_total', { source: e.source, project, model, kind: 'cache_creation' }, u.cache_creation_input_tokens ?? 0);
    c.bump('tokens_total', { source: e.source, project, model, kind: 'cache_read' }, u.cache_read_input_tokens ?? 0);
    c.bump('cost_usd_total', { source: e.source, project, model }, e.cost_usd ?? 0);
  }
}

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
  if (!COMPLETION_EVENTS.has(e.event)) return null;
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

// ---- one transaction ------------------------------------------------------------

export interface Fold {
  /** One delta per session touched, sorted by session id (the order a store locks rows in). */
  sessions: SessionDelta[];
  completions: Completion[];
  counters: CounterSet;
}

/** Folds newly stored events (duplicates already removed by the store) into per-session deltas and counters. */
export function foldEvents(events: Iterable<HarnessEvent>, duplicates = 0): Fold {
  const sessions = new Map<string, SessionDelta>();
  const completions: Completion[] = [];
  const counters = new CounterSet();
  for (const e of events) {
    const tsMs = Date.parse(e.timestamp);
    const d = sessionDelta(e, tsMs);
    const prev = sessions.get(d.id);
    sessions.set(d.id, prev ? mergeDelta(prev, d) : d);
    countEvent(e, counters);
    const c = completionOf(e, tsMs);
    if (c) completions.push(c);
  }
  if (duplicates > 0) counters.bump('duplicates_total', {}, duplicates);
  return { sessions: [...sessions.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)), completions, counters };
}
