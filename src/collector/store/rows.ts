/**
 * What both stores share below the rules: the event row's columns, the session
 * row → API shape, and the session filter as SQL (the two dialects differ only
 * in their placeholders).
 */
import type { HarnessEvent } from '../../event';
import { sessionCost } from '../facts';
import { SOURCE_RANK, SUMMED } from '../fold';
import { sessionKey } from '../normalize';
import type { SessionFilter, SessionRow } from './index';

/** A session with no event for this long is no longer "active" (default of `serve --active-window-ms`). */
export const ACTIVE_WINDOW_MS = 30 * 60_000;

/** harness_events columns in insert order. */
export const EVENT_COLUMNS = ['event_id', 'event', 'source', 'ts', 'ts_ms', 'received_ms', 'session_key', 'session_id', 'run_id', 'task_id', 'label', 'project', 'tool_name', 'tool_use_id', 'success', 'duration_ms', 'exit_code', 'error', 'model', 'input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens', 'cost_usd', 'num_turns', 'body'] as const;

/** An event's harness_events row, in EVENT_COLUMNS order (positional binding is the cheapest per row). */
export function eventValues(e: HarnessEvent, receivedMs: number): unknown[] {
  const tsMs = Date.parse(e.timestamp);
  const u = e.usage ?? {};
  return [
    e.event_id,
    e.event,
    e.source,
    new Date(tsMs).toISOString(),
    tsMs,
    receivedMs,
    sessionKey(e),
    e.session_id ?? null,
    e.run_id ?? null,
    e.task_id ?? null,
    e.label ?? null,
    e.project ?? null,
    e.tool_name ?? null,
    e.tool_use_id ?? null,
    e.success === undefined || e.success === null ? null : e.success ? 1 : 0,
    e.duration_ms ?? null,
    e.exit_code ?? null,
    e.error ?? null,
    e.model ?? null,
    u.input_tokens ?? null,
    u.output_tokens ?? null,
    u.cache_creation_input_tokens ?? null,
    u.cache_read_input_tokens ?? null,
    e.cost_usd ?? null,
    e.num_turns ?? null,
    JSON.stringify(e),
  ];
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** A harness_sessions row (either database; numbers may arrive as strings from PostgreSQL) → the API's session. */
export function toSession(r: Record<string, unknown>, now: number, activeWindowMs = ACTIVE_WINDOW_MS): SessionRow {
  const iso = (v: unknown) => (v === null || v === undefined ? null : new Date(Number(v)).toISOString());
  const usageEvents = Number(r.usage_events);
  const useResult = usageEvents === 0 && r.result_input_tokens !== null && r.result_input_tokens !== undefined;
  const started = num(r.started_ms);
  const completed = num(r.completed_ms);
  const lastSeen = Number(r.last_seen_ms);
  // A completion without a reported duration lasts from the first event to it,
  // computed here so that it does not depend on which events had arrived first.
  const cost = sessionCost({
    usage_events: usageEvents,
    cost_usd: Number(r.cost_usd),
    claude_cost_requests: Number(r.claude_cost_requests ?? 0),
    estimate_cost_requests: Number(r.estimate_cost_requests ?? 0),
    unpriced_requests: Number(r.unpriced_requests ?? 0),
    result_cost_usd: num(r.result_cost_usd),
  });
  const duration = num(r.duration_ms) ?? (completed !== null && started !== null ? Math.max(0, completed - started) : null);
  return {
    id: r.id as string,
    claude_session_id: (r.claude_session_id as string) ?? null,
    run_id: (r.run_id as string) ?? null,
    source: (r.source as string) ?? null,
    project: (r.project as string) ?? null,
    label: (r.label as string) ?? null,
    task_id: (r.task_id as string) ?? null,
    started_at: iso(started),
    completed_at: iso(completed),
    last_seen_at: iso(lastSeen),
    duration_ms: duration,
    success: r.success === null || r.success === undefined ? null : Number(r.success) === 1,
    active: completed === null && now - lastSeen < activeWindowMs,
    exit_code: num(r.exit_code),
    tool_calls_count: Number(r.tool_calls_count),
    tool_failures: Number(r.tool_failures),
    error: (r.error as string) ?? null,
    model: (r.model as string) ?? null,
    num_turns: num(r.num_turns),
    events_count: Number(r.events_count),
    input_tokens: useResult ? Number(r.result_input_tokens) : Number(r.input_tokens),
    output_tokens: useResult ? (num(r.result_output_tokens) ?? 0) : Number(r.output_tokens),
    cache_creation_input_tokens: useResult ? (num(r.result_cache_creation_input_tokens) ?? 0) : Number(r.cache_creation_input_tokens),
    cache_read_input_tokens: useResult ? (num(r.result_cache_read_input_tokens) ?? 0) : Number(r.cache_read_input_tokens),
    cost_usd: Math.round(cost.cost_usd * 1e9) / 1e9,
    cost_source: cost.cost_source,
    unpriced_requests: Number(r.unpriced_requests ?? 0),
    lines_added: Number(r.lines_added ?? 0),
    lines_removed: Number(r.lines_removed ?? 0),
    commits: Number(r.commits ?? 0),
    pull_requests: Number(r.pull_requests ?? 0),
    active_time_s: Math.round(Number(r.active_time_s ?? 0) * 1000) / 1000,
  };
}

/** The session filter as a WHERE clause; `ph(i)` writes the i-th placeholder (`?` or `$i`). */
export function sessionWhere(f: SessionFilter, ph: (i: number) => string): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  const add = (cond: (p: string) => string, v: unknown) => {
    params.push(v);
    parts.push(cond(ph(params.length)));
  };
  if (f.source) add((p) => `source = ${p}`, f.source);
  if (f.project) add((p) => `project = ${p}`, f.project);
  if (f.label) add((p) => `label = ${p}`, f.label);
  if (f.sinceMs !== undefined) add((p) => `last_seen_ms >= ${p}`, f.sinceMs);
  if (f.untilMs !== undefined) add((p) => `started_ms <= ${p}`, f.untilMs);
  if (f.seenBeforeMs !== undefined) add((p) => `last_seen_ms < ${p}`, f.seenBeforeMs);
  return { sql: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params };
}

/** The top-tools filter (over events): tool calls in the window. */
export function toolWhere(f: SessionFilter, ph: (i: number) => string): { sql: string; params: unknown[] } {
  const parts = ["event IN ('PostToolUse','PostToolUseFailure','tool_result')", 'tool_name IS NOT NULL'];
  const params: unknown[] = [];
  const add = (cond: (p: string) => string, v: unknown) => {
    params.push(v);
    parts.push(cond(ph(params.length)));
  };
  if (f.source) add((p) => `source = ${p}`, f.source);
  if (f.project) add((p) => `project = ${p}`, f.project);
  if (f.label) add((p) => `label = ${p}`, f.label);
  if (f.sinceMs !== undefined) add((p) => `ts_ms >= ${p}`, f.sinceMs);
  if (f.seenBeforeMs !== undefined) add((p) => `ts_ms < ${p}`, f.seenBeforeMs);
  return { sql: `WHERE ${parts.join(' AND ')}`, params };
}

/**
 * Top tools over events, in SQL both databases run. One call reported by the
 * hook and by OTel's tool_result is one call (same session and tool_use_id).
 */
export function topToolsSql(where: string, limitPh: string, collate = ''): string {
  return `SELECT tool, count(*) AS calls, sum(failed) AS failures, avg(duration_ms) AS avg_duration_ms FROM (${toolCallsSql(where, collate)}) AS calls_by_id
    GROUP BY tool ORDER BY calls DESC, tool LIMIT ${limitPh}`;
}

const toolCallsSql = (where: string, collate: string) => `SELECT min(tool_name${collate}) AS tool, max(CASE WHEN success = 0 THEN 1 ELSE 0 END) AS failed, max(duration_ms) AS duration_ms
      FROM harness_events ${where} GROUP BY coalesce(session_id, ''), coalesce(tool_use_id, event_id)`;

/** topToolsSql's per-tool sums, unlimited (the partial first day of a window, added to the tool rollups). */
export function toolSumsSql(where: string, collate = ''): string {
  return `SELECT tool, count(*) AS calls, sum(failed) AS failures, coalesce(sum(duration_ms), 0) AS dur_sum, count(duration_ms) AS dur_count FROM (${toolCallsSql(where, collate)}) AS calls_by_id GROUP BY tool`;
}

/** The page size the API allows. */
export const pageOf = (f: SessionFilter) => ({ limit: Math.min(1000, f.limit ?? 50), offset: f.offset ?? 0 });

/** harness_sessions columns an upsert writes, each with the SessionDelta field it takes. */
export const SESSION_DELTA_COLUMNS = [
  ['id', 'id'], ['claude_session_id', 'session_id'], ['run_id', 'run_id'], ['source', 'source'], ['project', 'project'], ['label', 'label'], ['task_id', 'task_id'],
  ['started_ms', 'started_ms'], ['last_seen_ms', 'last_seen_ms'], ['events_count', 'events_count'], ['tool_calls_count', 'tool_call'], ['tool_failures', 'tool_failure'],
  ['usage_events', 'usage_event'], ['input_tokens', 'input_tokens'], ['output_tokens', 'output_tokens'], ['cache_creation_input_tokens', 'cache_creation_input_tokens'],
  ['cache_read_input_tokens', 'cache_read_input_tokens'], ['cost_usd', 'cost_usd'], ['error', 'error'], ['error_ms', 'error_ms'], ['model', 'model'], ['model_ms', 'model_ms'],
  ['claude_cost_requests', 'claude_cost_requests'], ['estimate_cost_requests', 'estimate_cost_requests'], ['unpriced_requests', 'unpriced_requests'],
  ['lines_added', 'lines_added'], ['lines_removed', 'lines_removed'], ['commits', 'commits'], ['pull_requests', 'pull_requests'], ['active_time_s', 'active_time_s'],
] as const;

/**
 * fold.ts's `mergeDelta` as the SET list of an upsert, for either database:
 * `t` qualifies the stored row, `least`/`greatest` are the dialect's two-argument
 * min and max, `collate` makes text compare bytewise as in SQLite and JS
 * (PostgreSQL's default collation follows the locale). Every column is a
 * min/max/sum, "smallest known", ranked or "latest by timestamp", so
 * concurrent upserts of one session commute.
 */
export function sessionMergeSet(t: string, least: string, greatest: string, collate = ''): string {
  const pick = (c: string) => `${c} = CASE WHEN ${t}.${c} IS NULL OR (excluded.${c} IS NOT NULL AND excluded.${c}${collate} < ${t}.${c}${collate}) THEN excluded.${c} ELSE ${t}.${c} END`;
  const sum = (c: string) => `${c} = ${t}.${c} + excluded.${c}`;
  const latest = (c: string, at: string) =>
    [c, at].map((x) => `${x} = CASE WHEN excluded.${c} IS NOT NULL AND (${t}.${at} IS NULL OR excluded.${at} >= ${t}.${at}) THEN excluded.${x} ELSE ${t}.${x} END`).join(',\n  ');
  const rank = (x: string) => `CASE ${x} ${Object.entries(SOURCE_RANK).map(([k, v]) => `WHEN '${k}' THEN ${v}`).join(' ')} ELSE 0 END`;
  return [
    ...['claude_session_id', 'run_id'].map(pick),
    `source = CASE WHEN ${rank('excluded.source')} > ${rank(`${t}.source`)} OR (${rank('excluded.source')} = ${rank(`${t}.source`)} AND excluded.source${collate} < ${t}.source${collate}) THEN excluded.source ELSE ${t}.source END`,
    ...['project', 'label', 'task_id'].map(pick),
    `started_ms = ${least}(${t}.started_ms, excluded.started_ms)`,
    `last_seen_ms = ${greatest}(${t}.last_seen_ms, excluded.last_seen_ms)`,
    ...SESSION_DELTA_COLUMNS.filter(([, f]) => (SUMMED as readonly string[]).includes(f)).map(([c]) => sum(c)),
    latest('error', 'error_ms'),
    latest('model', 'model_ms'),
  ].join(',\n  ');
}

/** What a completion writes to its session (`v(name)` reads the completion's value). */
export function completionSet(t: string, v: (name: string) => string): string {
  return `completed_ms = ${v('ts_ms')}, completion_event_id = ${v('event_id')}, success = ${v('success')}, exit_code = ${v('exit_code')},
  duration_ms = ${v('duration_ms')}, num_turns = coalesce(${v('num_turns')}, ${t}.num_turns),
  result_input_tokens = ${v('input_tokens')}, result_output_tokens = ${v('output_tokens')}, result_cache_creation_input_tokens = ${v('cache_creation_input_tokens')},
  result_cache_read_input_tokens = ${v('cache_read_input_tokens')}, result_cost_usd = ${v('cost_usd')}`;
}

/** What the tool rollups read of a stored tool event when they are rebuilt (columns, not the body: the same for every stored shape). */
export const TOOL_EVENTS_SQL = `SELECT event_id, event, source, ts_ms, session_id, run_id, task_id, label, project, tool_name, tool_use_id, success, duration_ms
  FROM harness_events WHERE event IN ('PostToolUse', 'PostToolUseFailure', 'tool_result') ORDER BY ts_ms, event_id`;

export function toolEventOf(r: Record<string, unknown>): HarnessEvent {
  const opt = (v: unknown) => (v === null || v === undefined ? undefined : v);
  return {
    event_id: r.event_id as string,
    event: r.event as string,
    source: r.source as HarnessEvent['source'],
    timestamp: new Date(Number(r.ts_ms)).toISOString(),
    session_id: opt(r.session_id) as string | undefined,
    run_id: opt(r.run_id) as string | undefined,
    task_id: opt(r.task_id) as string | undefined,
    label: opt(r.label) as string | undefined,
    project: opt(r.project) as string | undefined,
    tool_name: opt(r.tool_name) as string | undefined,
    tool_use_id: opt(r.tool_use_id) as string | undefined,
    success: r.success === null || r.success === undefined ? undefined : Number(r.success) === 1,
    duration_ms: r.duration_ms === null || r.duration_ms === undefined ? undefined : Number(r.duration_ms),
  } as HarnessEvent;
}
