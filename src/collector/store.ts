/**
 * The collector's store: better-sqlite3 in WAL mode, versioned migrations,
 * prepared statements. It owns the driver; HTTP handlers only translate.
 *
 * Every accepted event is kept once (unique event_id: a duplicate changes
 * nothing). Sessions are folded with commutative updates (min/max/sum, and the
 * latest completion by timestamp), so late, out-of-order and replayed events
 * give the same row. Prometheus counters live in their own table, incremented
 * in the same transaction as the event, so they survive restarts and retention.
 */
import Database from 'better-sqlite3';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { HarnessEvent } from '../event';
import { bucketIndex, DURATION_BUCKETS_S } from './prometheus';
import { COMPLETION_EVENTS, sessionKey, TOOL_EVENTS } from './normalize';
import { factCost, foldMetric, foldTool, foldUsage, metricDelta, sessionCost, toolDelta, usageDelta, usageFactKey, type CostSource, type UsageFact } from './facts';

const MIGRATIONS: string[] = [
  // 1: events, sessions, counters
  `
  CREATE TABLE harness_events (
    event_id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    source TEXT NOT NULL,
    ts TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    session_key TEXT NOT NULL,
    session_id TEXT, run_id TEXT, task_id TEXT, label TEXT, project TEXT,
    tool_name TEXT, tool_use_id TEXT, success INTEGER, duration_ms REAL, exit_code INTEGER, error TEXT,
    model TEXT, input_tokens INTEGER, output_tokens INTEGER, cache_creation_input_tokens INTEGER, cache_read_input_tokens INTEGER,
    cost_usd REAL, num_turns INTEGER,
    body TEXT NOT NULL
  );
  CREATE INDEX harness_events_ts ON harness_events(ts_ms);

  CREATE TABLE harness_sessions (
    id TEXT PRIMARY KEY,
    claude_session_id TEXT, run_id TEXT,
    source TEXT, project TEXT, label TEXT, task_id TEXT,
    started_ms INTEGER, last_seen_ms INTEGER, completed_ms INTEGER,
    completion_event_id TEXT,
    duration_ms REAL, success INTEGER, exit_code INTEGER, error TEXT, error_ms INTEGER,
    tool_calls_count INTEGER NOT NULL DEFAULT 0, tool_failures INTEGER NOT NULL DEFAULT 0,
    model TEXT, model_ms INTEGER, num_turns INTEGER, events_count INTEGER NOT NULL DEFAULT 0,
    usage_events INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0, cache_read_input_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    result_input_tokens INTEGER, result_output_tokens INTEGER,
    result_cache_creation_input_tokens INTEGER, result_cache_read_input_tokens INTEGER, result_cost_usd REAL
  );
  CREATE INDEX harness_sessions_started ON harness_sessions(started_ms);
  CREATE INDEX harness_sessions_last_seen ON harness_sessions(last_seen_ms);

  CREATE TABLE counters (
    metric TEXT NOT NULL,
    labels TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (metric, labels)
  ) WITHOUT ROWID;
  `,
  // 2: facts (one API request, tool call or OTel metric series, whichever paths reported it; see facts.ts),
  // where each session's cost came from, and what Claude Code's OTel metrics add to a session.
  `
  CREATE TABLE harness_facts (
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    session_key TEXT NOT NULL,
    model TEXT,
    ts_ms INTEGER NOT NULL,
    unpriced INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    PRIMARY KEY (session_id, kind, key)
  ) WITHOUT ROWID;
  CREATE INDEX harness_facts_ts ON harness_facts(ts_ms);
  CREATE INDEX harness_facts_unpriced ON harness_facts(model) WHERE unpriced = 1;
  ALTER TABLE harness_sessions ADD COLUMN claude_cost_requests INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE harness_sessions ADD COLUMN estimate_cost_requests INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE harness_sessions ADD COLUMN unpriced_requests INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE harness_sessions ADD COLUMN lines_added INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE harness_sessions ADD COLUMN lines_removed INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE harness_sessions ADD COLUMN commits INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE harness_sessions ADD COLUMN pull_requests INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE harness_sessions ADD COLUMN active_time_s REAL NOT NULL DEFAULT 0;
  INSERT OR IGNORE INTO harness_facts (session_id, kind, key, session_key, model, ts_ms, unpriced, state)
    SELECT coalesce(session_id, session_key), 'usage',
      CASE WHEN json_extract(body, '$.request_id') IS NOT NULL THEN 'req:' || json_extract(body, '$.request_id')
           WHEN json_extract(body, '$.message_id') IS NOT NULL THEN 'msg:' || json_extract(body, '$.message_id')
           ELSE 'event:' || event_id END,
      session_key, model, ts_ms, CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END,
      json_object('model', model, 'input_tokens', coalesce(input_tokens, 0), 'output_tokens', coalesce(output_tokens, 0),
        'cache_creation_input_tokens', coalesce(cache_creation_input_tokens, 0), 'cache_read_input_tokens', coalesce(cache_read_input_tokens, 0),
        'claude_cost', NULL, 'estimate', cost_usd)
    FROM harness_events WHERE event = 'usage' ORDER BY ts_ms;
  UPDATE harness_sessions SET estimate_cost_requests = usage_events WHERE usage_events > 0;
  INSERT OR IGNORE INTO harness_facts (session_id, kind, key, session_key, model, ts_ms, state)
    SELECT coalesce(session_id, session_key), 'tool', coalesce('tool:' || tool_use_id, 'event:' || event_id), session_key, NULL, ts_ms,
      CASE WHEN success = 0 THEN '{"failed":true}' ELSE '{"failed":false}' END
    FROM harness_events WHERE event IN ('PostToolUse', 'PostToolUseFailure');
  `,
];

export interface IngestOutcome {
  accepted: number;
  duplicates: number;
}

export interface SessionRow {
  id: string;
  claude_session_id: string | null;
  run_id: string | null;
  source: string | null;
  project: string | null;
  label: string | null;
  task_id: string | null;
  started_at: string | null;
  completed_at: string | null;
  last_seen_at: string | null;
  duration_ms: number | null;
  success: boolean | null;
  active: boolean;
  exit_code: number | null;
  tool_calls_count: number;
  tool_failures: number;
  error: string | null;
  model: string | null;
  num_turns: number | null;
  events_count: number;
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cost_usd: number;
  /** Where cost_usd came from: Claude Code's own figure, our estimate, or nothing priced. */
  cost_source: CostSource;
  /** Requests whose model has no price and no Claude Code cost: tokens counted, cost not. */
  unpriced_requests: number;
  lines_added: number;
  lines_removed: number;
  commits: number;
  pull_requests: number;
  active_time_s: number;
}

export interface SessionFilter {
  source?: string;
  project?: string;
  label?: string;
  sinceMs?: number;
  untilMs?: number;
  limit?: number;
  offset?: number;
}

/** A session with no event for this long is no longer "active". */
export const ACTIVE_WINDOW_MS = 30 * 60_000;

/** One event's (or several events') contribution to a session row, as the upsert's parameters. */
interface SessionDelta {
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
const SUMMED = ['events_count', 'tool_call', 'tool_failure', 'usage_event', 'input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens', 'cost_usd', 'claude_cost_requests', 'estimate_cost_requests', 'unpriced_requests', 'lines_added', 'lines_removed', 'commits', 'pull_requests', 'active_time_s'] as const;

/** What an OTel metric adds to a session row (see ingest/otlp-metrics.ts). */
const METRIC_COLUMNS: Record<string, (typeof SUMMED)[number]> = { lines_added: 'lines_added', lines_removed: 'lines_removed', commits: 'commits', pull_requests: 'pull_requests', active_time_s: 'active_time_s' };

/** The Prometheus counter each OTel metric column feeds (labels bounded: source, project, type). */
const METRIC_COUNTERS: Record<string, [string, Record<string, string>]> = {
  lines_added: ['lines_of_code_total', { type: 'added' }],
  lines_removed: ['lines_of_code_total', { type: 'removed' }],
  commits: ['commits_total', {}],
  pull_requests: ['pull_requests_total', {}],
  active_time_s: ['active_time_seconds_total', {}],
};

function emptyDelta(id: string, e: HarnessEvent, tsMs: number): SessionDelta {
  return {
    id, session_id: e.session_id ?? null, run_id: e.run_id ?? null, source: e.source, project: e.project ?? null, label: e.label ?? null, task_id: e.task_id ?? null,
    started_ms: tsMs, last_seen_ms: tsMs, events_count: 0, tool_call: 0, tool_failure: 0, usage_event: 0, input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0, cost_usd: 0, claude_cost_requests: 0, estimate_cost_requests: 0, unpriced_requests: 0, lines_added: 0, lines_removed: 0, commits: 0,
    pull_requests: 0, active_time_s: 0, error: null, error_ms: null, model: null, model_ms: null,
  };
}

/** Combines two deltas the way the upsert combines a delta with the row: same result in one statement. */
export function mergeDelta(a: SessionDelta, b: SessionDelta): SessionDelta {
  const ranks = (x: string) => (x === 'ralph' || x === 'api' ? 1 : 0);
  const laterError = b.error !== null && (a.error_ms === null || (b.error_ms ?? 0) >= a.error_ms);
  const laterModel = b.model !== null && (a.model_ms === null || (b.model_ms ?? 0) >= a.model_ms);
  const out: SessionDelta = {
    ...a,
    id: a.id,
    session_id: a.session_id ?? b.session_id,
    run_id: a.run_id ?? b.run_id,
    source: ranks(b.source) > ranks(a.source) ? b.source : a.source,
    project: a.project ?? b.project,
    label: a.label ?? b.label,
    task_id: a.task_id ?? b.task_id,
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

/** harness_events columns in insert order. */
const EVENT_COLUMNS = ['event_id', 'event', 'source', 'ts', 'ts_ms', 'received_ms', 'session_key', 'session_id', 'run_id', 'task_id', 'label', 'project', 'tool_name', 'tool_use_id', 'success', 'duration_ms', 'exit_code', 'error', 'model', 'input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens', 'cost_usd', 'num_turns', 'body'] as const;

const LABEL_MAX = 128;
const lab = (v: string | null | undefined): string => (v ?? '').slice(0, LABEL_MAX);

export class Store {
  readonly db: Database.Database;
  private readonly stmts: ReturnType<Store['prepare']>;

  constructor(path: string, sync: 'normal' | 'full' = process.env.CLAUDE_METRICS_DB_SYNC === 'full' ? 'full' : 'normal') {
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      const fresh = !existsSync(path);
      this.db = new Database(path);
      if (fresh) chmodSync(path, 0o600);
    } else this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // WAL + NORMAL: a commit is in the WAL file before we answer, so an
    // acknowledged event survives a killed or crashed collector (tested with
    // kill -9). FULL would also survive power loss, at an fsync per request
    // (measured: single-event ingest 4x slower); CLAUDE_METRICS_DB_SYNC=full opts in.
    this.db.pragma(`synchronous = ${sync === 'full' ? 'FULL' : 'NORMAL'}`);
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
    this.stmts = this.prepare();
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) throw new Error(`database schema version ${version} is newer than this collector (${MIGRATIONS.length}); upgrade claude-metrics`);
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  private prepare() {
    const db = this.db;
    return {
      // Positional parameters: binding 26 named ones per row measured ~1 µs slower.
      insertEvent: db.prepare(`INSERT OR IGNORE INTO harness_events (${EVENT_COLUMNS.join(', ')}) VALUES (${EVENT_COLUMNS.map(() => '?').join(', ')})`),
      // Commutative fold: every column is a min/max/sum or "first non-null", so any order gives the same row.
      upsertSession: db.prepare(`INSERT INTO harness_sessions (id, claude_session_id, run_id, source, project, label, task_id, started_ms, last_seen_ms, events_count,
          tool_calls_count, tool_failures, usage_events, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd, error, error_ms, model, model_ms,
          claude_cost_requests, estimate_cost_requests, unpriced_requests, lines_added, lines_removed, commits, pull_requests, active_time_s)
        VALUES (@id, @session_id, @run_id, @source, @project, @label, @task_id, @started_ms, @last_seen_ms, @events_count,
          @tool_call, @tool_failure, @usage_event, @input_tokens, @output_tokens, @cache_creation_input_tokens, @cache_read_input_tokens, @cost_usd, @error, @error_ms, @model, @model_ms,
          @claude_cost_requests, @estimate_cost_requests, @unpriced_requests, @lines_added, @lines_removed, @commits, @pull_requests, @active_time_s)
        ON CONFLICT(id) DO UPDATE SET
          claude_session_id = coalesce(claude_session_id, excluded.claude_session_id),
          run_id = coalesce(run_id, excluded.run_id),
          source = CASE WHEN excluded.source IN ('ralph','api') AND source NOT IN ('ralph','api') THEN excluded.source ELSE coalesce(source, excluded.source) END,
          project = coalesce(project, excluded.project),
          label = coalesce(label, excluded.label),
          task_id = coalesce(task_id, excluded.task_id),
          started_ms = min(started_ms, excluded.started_ms),
          last_seen_ms = max(last_seen_ms, excluded.last_seen_ms),
          events_count = events_count + excluded.events_count,
          tool_calls_count = tool_calls_count + excluded.tool_calls_count,
          tool_failures = tool_failures + excluded.tool_failures,
          usage_events = usage_events + excluded.usage_events,
          input_tokens = input_tokens + excluded.input_tokens,
          output_tokens = output_tokens + excluded.output_tokens,
          cache_creation_input_tokens = cache_creation_input_tokens + excluded.cache_creation_input_tokens,
          cache_read_input_tokens = cache_read_input_tokens + excluded.cache_read_input_tokens,
          cost_usd = cost_usd + excluded.cost_usd,
          claude_cost_requests = claude_cost_requests + excluded.claude_cost_requests,
          estimate_cost_requests = estimate_cost_requests + excluded.estimate_cost_requests,
          unpriced_requests = unpriced_requests + excluded.unpriced_requests,
          lines_added = lines_added + excluded.lines_added,
          lines_removed = lines_removed + excluded.lines_removed,
          commits = commits + excluded.commits,
          pull_requests = pull_requests + excluded.pull_requests,
          active_time_s = active_time_s + excluded.active_time_s,
          error = CASE WHEN excluded.error IS NOT NULL AND (error_ms IS NULL OR excluded.error_ms >= error_ms) THEN excluded.error ELSE error END,
          error_ms = CASE WHEN excluded.error IS NOT NULL AND (error_ms IS NULL OR excluded.error_ms >= error_ms) THEN excluded.error_ms ELSE error_ms END,
          model = CASE WHEN excluded.model IS NOT NULL AND (model_ms IS NULL OR excluded.model_ms >= model_ms) THEN excluded.model ELSE model END,
          model_ms = CASE WHEN excluded.model IS NOT NULL AND (model_ms IS NULL OR excluded.model_ms >= model_ms) THEN excluded.model_ms ELSE model_ms END`),
      getCompletion: db.prepare('SELECT completed_ms, completion_event_id FROM harness_sessions WHERE id = ?'),
      setCompletion: db.prepare(`UPDATE harness_sessions SET completed_ms = @ts_ms, completion_event_id = @event_id, success = @success, exit_code = @exit_code,
          duration_ms = @duration_ms, num_turns = coalesce(@num_turns, num_turns),
          result_input_tokens = @input_tokens, result_output_tokens = @output_tokens, result_cache_creation_input_tokens = @cache_creation_input_tokens,
          result_cache_read_input_tokens = @cache_read_input_tokens, result_cost_usd = @cost_usd
        WHERE id = @id`),
      getFact: db.prepare('SELECT session_key, state FROM harness_facts WHERE session_id = ? AND kind = ? AND key = ?'),
      putFact: db.prepare(`INSERT INTO harness_facts (session_id, kind, key, session_key, model, ts_ms, unpriced, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT(session_id, kind, key) DO UPDATE SET model = excluded.model, ts_ms = max(ts_ms, excluded.ts_ms), unpriced = excluded.unpriced, state = excluded.state`),
      bump: db.prepare('INSERT INTO counters (metric, labels, value) VALUES (?, ?, ?) ON CONFLICT(metric, labels) DO UPDATE SET value = value + excluded.value'),
      counters: db.prepare('SELECT metric, labels, value FROM counters'),
    };
  }

  /**
   * Counter increments of the transaction in progress, written once per series
   * at its end. Keyed by metric and label values (cheap to build per event); the
   * labels' JSON, the stored form, is made once per series at the end.
   */
  private pending: Map<string, { metric: string; labels: Record<string, string>; by: number }> | null = null;

  /** Adds to a monotonic counter (kept across restarts and retention). */
  bump(metric: string, labels: Record<string, string>, by = 1): void {
    if (by === 0) return;
    if (!this.pending) {
      this.stmts.bump.run(metric, JSON.stringify(labels), by);
      return;
    }
    let key = metric;
    for (const k in labels) key += `\u0000${k}\u0001${labels[k]}`;
    const p = this.pending.get(key);
    if (p) p.by += by;
    else this.pending.set(key, { metric, labels, by });
  }

  private flushCounters(): void {
    const p = this.pending;
    this.pending = null;
    if (!p) return;
    for (const { metric, labels, by } of p.values()) this.stmts.bump.run(metric, JSON.stringify(labels), by);
  }

  /** Stores a batch in one transaction: committed (WAL) before the caller answers 2xx. */
  ingest(events: HarnessEvent[], receivedMs = Date.now()): IngestOutcome {
    return this.ingestMany([events], receivedMs)[0]!;
  }

  /** Several requests' events in one transaction (group commit), each with its own outcome. */
  ingestMany(groups: HarnessEvent[][], receivedMs = Date.now()): IngestOutcome[] {
    return this.db.transaction((gs: HarnessEvent[][]) => gs.map((g) => this.ingestGroup(g, receivedMs)))(groups);
  }

  private ingestGroup(events: HarnessEvent[], receivedMs: number): IngestOutcome {
    return ((evs: HarnessEvent[]) => {
      let accepted = 0;
      let duplicates = 0;
      this.pending = new Map();
      const sessions = new Map<string, SessionDelta>();
      const completions: Array<() => void> = [];
      try {
        for (const e of evs) {
          if (this.ingestOne(e, receivedMs, sessions, completions)) accepted++;
          else duplicates++;
        }
        // One upsert per session touched, then completions (they read the folded row).
        for (const d of sessions.values()) this.stmts.upsertSession.run(d);
        for (const c of completions) c();
        if (duplicates > 0) this.bump('duplicates_total', {}, duplicates);
        this.flushCounters();
      } finally {
        this.pending = null;
      }
      return { accepted, duplicates };
    })(events);
  }

  /** Counts rejected input by reason (bounded: a fixed set of reason codes). */
  countRejects(reason: string, n = 1): void {
    this.bump('rejects_total', { reason }, n);
  }

  private ingestOne(e: HarnessEvent, receivedMs: number, sessions: Map<string, SessionDelta>, completions: Array<() => void>): boolean {
    const tsMs = Date.parse(e.timestamp);
    const key = sessionKey(e);
    const u = e.usage ?? {};
    const isUsage = e.event === 'usage';
    const success = e.success === undefined || e.success === null ? null : e.success ? 1 : 0;
    // In EVENT_COLUMNS order; positional binding is the cheapest per row.
    const values = [
      e.event_id,
      e.event,
      e.source,
      new Date(tsMs).toISOString(),
      tsMs,
      receivedMs,
      key,
      e.session_id ?? null,
      e.run_id ?? null,
      e.task_id ?? null,
      e.label ?? null,
      e.project ?? null,
      e.tool_name ?? null,
      e.tool_use_id ?? null,
      success,
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
    if (this.stmts.insertEvent.run(values).changes === 0) return false;

    const isTool = TOOL_EVENTS.has(e.event);
    const failedTool = isTool && e.success === false;
    const own = emptyDelta(key, e, tsMs);
    own.events_count = 1;
    own.error = e.error ?? null;
    own.error_ms = e.error ? tsMs : null;
    own.model = e.model ?? null;
    own.model_ms = e.model ? tsMs : null;
    const add = (target: string, d: SessionDelta) => {
      const cur = sessions.get(target);
      sessions.set(target, cur ? mergeDelta(cur, d) : d);
    };
    // A fact counts in the row its first report landed in (see facts.ts for the rules).
    const fact = <T>(kind: string, factKey: string): { target: string; prev: T | undefined; save: (next: T, model?: string | null, unpriced?: boolean) => void } => {
      const sid = e.session_id ?? key;
      const row = this.stmts.getFact.get(sid, kind, factKey) as { session_key: string; state: string } | undefined;
      return {
        target: row?.session_key ?? key,
        prev: row ? (JSON.parse(row.state) as T) : undefined,
        save: (next, model = null, unpriced = false) => this.stmts.putFact.run(sid, kind, factKey, row?.session_key ?? key, model, tsMs, unpriced ? 1 : 0, JSON.stringify(next)),
      };
    };
    // Another row (the fact's first report landed there) gets only the counts, not this event's identity.
    const target = (t: string) => (t === key ? own : { ...emptyDelta(t, e, tsMs), run_id: null, task_id: null, label: null, project: null });
    const project = lab(e.project);
    const base = { source: e.source, project, label: lab(e.label) };

    if (isUsage) {
      const f = fact<UsageFact>('usage', usageFactKey(e));
      const claude = e.cost_source === 'claude_code';
      const c: UsageFact = {
        model: e.model ?? null,
        input_tokens: u.input_tokens ?? 0,
        output_tokens: u.output_tokens ?? 0,
        cache_creation_input_tokens: u.cache_creation_input_tokens ?? 0,
        cache_read_input_tokens: u.cache_read_input_tokens ?? 0,
        claude_cost: claude ? (e.cost_usd ?? null) : null,
        estimate: claude ? null : (e.cost_usd ?? null),
      };
      const next = foldUsage(f.prev, c);
      f.save(next, next.model, factCost(next).source === 'none');
      const delta = usageDelta(f.prev, next);
      const d = target(f.target);
      for (const k of ['usage_event', 'input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens', 'cost_usd', 'claude_cost_requests', 'estimate_cost_requests', 'unpriced_requests'] as const) d[k] += delta[k];
      if (d !== own) add(f.target, d);
      // Counters only grow: a correction downwards (an estimate above Claude Code's own figure) stays in the counter.
      const model = lab(next.model) || 'unknown';
      this.bump('tokens_total', { source: e.source, project, model, kind: 'input' }, delta.input_tokens);
      this.bump('tokens_total', { source: e.source, project, model, kind: 'output' }, delta.output_tokens);
      this.bump('tokens_total', { source: e.source, project, model, kind: 'cache_creation' }, delta.cache_creation_input_tokens);
      this.bump('tokens_total', { source: e.source, project, model, kind: 'cache_read' }, delta.cache_read_input_tokens);
      if (delta.cost_usd > 0) this.bump('cost_usd_total', { source: e.source, project, model }, delta.cost_usd);
    }
    if (isTool) {
      const f = fact<{ failed: boolean }>('tool', e.tool_use_id ? `tool:${e.tool_use_id}` : `event:${e.event_id}`);
      const next = foldTool(f.prev, { failed: failedTool });
      f.save(next);
      const delta = toolDelta(f.prev, next);
      const d = target(f.target);
      d.tool_call += delta.tool_call;
      d.tool_failure += delta.tool_failure;
      if (d !== own) add(f.target, d);
      if (delta.tool_call) this.bump('tool_calls_total', { source: e.source, project, tool: lab(e.tool_name), outcome: failedTool ? 'failure' : 'success' });
    }
    if (e.event === 'otel_metric' && e.attrs) {
      const column = METRIC_COLUMNS[String(e.attrs.metric)];
      const value = Number(e.attrs.value);
      if (column && Number.isFinite(value)) {
        const series = String(e.attrs.series ?? e.event_id);
        const f = fact<{ value: number }>('metric', series);
        // A delta point is its own series (its key includes its window); a cumulative one keeps its largest value.
        const next = e.attrs.cumulative === true ? foldMetric(f.prev, { value }) : { value: (f.prev?.value ?? 0) + value };
        f.save(next);
        const by = metricDelta(f.prev, next);
        const d = target(f.target);
        d[column] += by;
        if (d !== own) add(f.target, d);
        const [metric, labels] = METRIC_COUNTERS[column]!;
        if (by > 0) this.bump(metric, { source: e.source, project, ...labels, ...(column === 'active_time_s' ? { type: lab(String(e.attrs.kind ?? '')) } : {}) }, by);
      }
    }
    add(key, own);
    this.bump('events_total', { source: e.source, project, label: base.label, event: lab(e.event) });
    if (COMPLETION_EVENTS.has(e.event)) {
      const row = { success, exit_code: e.exit_code ?? null, input_tokens: u.input_tokens ?? null, output_tokens: u.output_tokens ?? null, cache_creation_input_tokens: u.cache_creation_input_tokens ?? null, cache_read_input_tokens: u.cache_read_input_tokens ?? null, cost_usd: e.cost_usd ?? null, num_turns: e.num_turns ?? null };
      completions.push(() => this.complete(key, e, row, tsMs, base));
    }
    return true;
  }

  /**
   * The latest completion (by timestamp, then event id) decides outcome and
   * result; the session's first completion is what the completed counter and the
   * duration histogram count, so a replayed or second completion counts nothing.
   */
  private complete(key: string, e: HarnessEvent, row: { success: number | null; exit_code: number | null; input_tokens: number | null; output_tokens: number | null; cache_creation_input_tokens: number | null; cache_read_input_tokens: number | null; cost_usd: number | null; num_turns: number | null }, tsMs: number, base: Record<string, string>): void {
    const prev = this.stmts.getCompletion.get(key) as { completed_ms: number | null; completion_event_id: string | null } | undefined;
    const isLater = !prev || prev.completed_ms === null || tsMs > prev.completed_ms || (tsMs === prev.completed_ms && e.event_id > (prev.completion_event_id ?? ''));
    // A failed exit or an error result is a failure even when `success` was not sent.
    const success = row.success !== null ? row.success : e.is_error === true || (row.exit_code !== null && row.exit_code !== 0) ? 0 : 1;
    if (isLater) {
      const started = this.db.prepare('SELECT started_ms FROM harness_sessions WHERE id = ?').get(key) as { started_ms: number } | undefined;
      const duration = e.duration_ms ?? (started ? Math.max(0, tsMs - started.started_ms) : null);
      this.stmts.setCompletion.run({ ...row, id: key, ts_ms: tsMs, event_id: e.event_id, success, duration_ms: duration });
    }
    if (!prev || prev.completed_ms === null) {
      const outcome = success ? 'success' : 'failure';
      this.bump('sessions_completed_total', { ...base, outcome });
      const started = this.db.prepare('SELECT started_ms FROM harness_sessions WHERE id = ?').get(key) as { started_ms: number } | undefined;
      const seconds = (e.duration_ms ?? (started ? Math.max(0, tsMs - started.started_ms) : 0)) / 1000;
      const h = { ...base, outcome };
      this.bump('task_duration_seconds_bucket', { ...h, b: String(bucketIndex(DURATION_BUCKETS_S, seconds)) });
      this.bump('task_duration_seconds_sum', h, seconds);
      if (typeof e.cost_usd === 'number') this.bump('run_reported_cost_usd_total', base, e.cost_usd);
    }
  }

  counters(): Array<{ metric: string; labels: Record<string, string>; value: number }> {
    return (this.stmts.counters.all() as Array<{ metric: string; labels: string; value: number }>).map((r) => ({ metric: r.metric, labels: JSON.parse(r.labels) as Record<string, string>, value: r.value }));
  }

  /** Retention: deletes old events and sessions; counters are untouched and stay monotonic. */
  sweep(retentionDays: number, now = Date.now()): { events: number; sessions: number; facts: number } {
    const cutoff = now - retentionDays * 86_400_000;
    return this.db.transaction(() => ({
      events: this.db.prepare('DELETE FROM harness_events WHERE ts_ms < ?').run(cutoff).changes,
      sessions: this.db.prepare('DELETE FROM harness_sessions WHERE last_seen_ms < ?').run(cutoff).changes,
      facts: this.db.prepare('DELETE FROM harness_facts WHERE ts_ms < ?').run(cutoff).changes,
    }))();
  }

  close(): void {
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      /* closing anyway */
    }
    this.db.close();
  }

  // ---- read side ------------------------------------------------------------

  static toSession(r: Record<string, unknown>, now: number): SessionRow {
    const iso = (v: unknown) => (typeof v === 'number' ? new Date(v).toISOString() : null);
    const useResult = (r.usage_events as number) === 0 && r.result_input_tokens !== null && r.result_input_tokens !== undefined;
    const completed = r.completed_ms !== null;
    const cost = sessionCost({
      usage_events: r.usage_events as number,
      cost_usd: r.cost_usd as number,
      claude_cost_requests: (r.claude_cost_requests as number) ?? 0,
      estimate_cost_requests: (r.estimate_cost_requests as number) ?? 0,
      unpriced_requests: (r.unpriced_requests as number) ?? 0,
      result_cost_usd: typeof r.result_cost_usd === 'number' ? r.result_cost_usd : null,
    });
    return {
      id: r.id as string,
      claude_session_id: (r.claude_session_id as string) ?? null,
      run_id: (r.run_id as string) ?? null,
      source: (r.source as string) ?? null,
      project: (r.project as string) ?? null,
      label: (r.label as string) ?? null,
      task_id: (r.task_id as string) ?? null,
      started_at: iso(r.started_ms),
      completed_at: iso(r.completed_ms),
      last_seen_at: iso(r.last_seen_ms),
      duration_ms: (r.duration_ms as number) ?? null,
      success: r.success === null || r.success === undefined ? null : r.success === 1,
      active: !completed && now - (r.last_seen_ms as number) < ACTIVE_WINDOW_MS,
      exit_code: (r.exit_code as number) ?? null,
      tool_calls_count: r.tool_calls_count as number,
      tool_failures: r.tool_failures as number,
      error: (r.error as string) ?? null,
      model: (r.model as string) ?? null,
      num_turns: (r.num_turns as number) ?? null,
      events_count: r.events_count as number,
      input_tokens: useResult ? (r.result_input_tokens as number) : (r.input_tokens as number),
      output_tokens: useResult ? ((r.result_output_tokens as number) ?? 0) : (r.output_tokens as number),
      cache_creation_input_tokens: useResult ? ((r.result_cache_creation_input_tokens as number) ?? 0) : (r.cache_creation_input_tokens as number),
      cache_read_input_tokens: useResult ? ((r.result_cache_read_input_tokens as number) ?? 0) : (r.cache_read_input_tokens as number),
      cost_usd: Math.round(cost.cost_usd * 1e9) / 1e9,
      cost_source: cost.cost_source,
      unpriced_requests: (r.unpriced_requests as number) ?? 0,
      lines_added: (r.lines_added as number) ?? 0,
      lines_removed: (r.lines_removed as number) ?? 0,
      commits: (r.commits as number) ?? 0,
      pull_requests: (r.pull_requests as number) ?? 0,
      active_time_s: Math.round(((r.active_time_s as number) ?? 0) * 1000) / 1000,
    };
  }

  private where(f: SessionFilter): { sql: string; params: unknown[] } {
    const parts: string[] = [];
    const params: unknown[] = [];
    if (f.source) (parts.push('source = ?'), params.push(f.source));
    if (f.project) (parts.push('project = ?'), params.push(f.project));
    if (f.label) (parts.push('label = ?'), params.push(f.label));
    if (f.sinceMs !== undefined) (parts.push('last_seen_ms >= ?'), params.push(f.sinceMs));
    if (f.untilMs !== undefined) (parts.push('started_ms <= ?'), params.push(f.untilMs));
    return { sql: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params };
  }

  sessions(f: SessionFilter, now = Date.now()): { sessions: SessionRow[]; total: number } {
    const w = this.where(f);
    const total = (this.db.prepare(`SELECT count(*) AS n FROM harness_sessions ${w.sql}`).get(...w.params) as { n: number }).n;
    const rows = this.db
      .prepare(`SELECT * FROM harness_sessions ${w.sql} ORDER BY started_ms DESC, id LIMIT ? OFFSET ?`)
      .all(...w.params, Math.min(1000, f.limit ?? 50), f.offset ?? 0) as Array<Record<string, unknown>>;
    return { sessions: rows.map((r) => Store.toSession(r, now)), total };
  }

  /** Every session matching the filter (for aggregates); bounded by the time window. */
  allSessions(f: SessionFilter, now = Date.now()): SessionRow[] {
    const w = this.where(f);
    return (this.db.prepare(`SELECT * FROM harness_sessions ${w.sql}`).all(...w.params) as Array<Record<string, unknown>>).map((r) => Store.toSession(r, now));
  }

  topTools(f: SessionFilter, limit = 10): Array<{ tool: string; calls: number; failures: number; avg_duration_ms: number | null }> {
    const parts = ["event IN ('PostToolUse','PostToolUseFailure','tool_result')", 'tool_name IS NOT NULL'];
    const params: unknown[] = [];
    if (f.source) (parts.push('source = ?'), params.push(f.source));
    if (f.project) (parts.push('project = ?'), params.push(f.project));
    if (f.label) (parts.push('label = ?'), params.push(f.label));
    if (f.sinceMs !== undefined) (parts.push('ts_ms >= ?'), params.push(f.sinceMs));
    // One call reported by the hook and by OTel's tool_result is one call (same session and tool_use_id).
    return (
      this.db
        .prepare(
          `SELECT tool, count(*) AS calls, sum(failed) AS failures, avg(duration_ms) AS avg_duration_ms FROM (
             SELECT tool_name AS tool, max(CASE WHEN success = 0 THEN 1 ELSE 0 END) AS failed, max(duration_ms) AS duration_ms
             FROM harness_events WHERE ${parts.join(' AND ')} GROUP BY coalesce(session_id, ''), coalesce(tool_use_id, event_id))
           GROUP BY tool ORDER BY calls DESC, tool LIMIT ?`,
        )
        .all(...params, limit) as Array<{ tool: string; calls: number; failures: number; avg_duration_ms: number | null }>
    ).map((r) => ({ ...r, avg_duration_ms: r.avg_duration_ms === null ? null : Math.round(r.avg_duration_ms) }));
  }

  /** Models seen with tokens but no price and no Claude Code cost (their cost is unknown, not zero). */
  unpricedModels(limit = 20): Array<{ model: string; requests: number }> {
    return this.db
      .prepare(`SELECT coalesce(model, 'unknown') AS model, count(*) AS requests FROM harness_facts INDEXED BY harness_facts_unpriced
        WHERE unpriced = 1 GROUP BY model ORDER BY requests DESC, model LIMIT ?`)
      .all(limit) as Array<{ model: string; requests: number }>;
  }

  filters(): { sources: string[]; projects: string[]; labels: string[] } {
    const col = (c: string) => (this.db.prepare(`SELECT DISTINCT ${c} AS v FROM harness_sessions WHERE ${c} IS NOT NULL ORDER BY v LIMIT 500`).all() as Array<{ v: string }>).map((r) => r.v);
    return { sources: col('source'), projects: col('project'), labels: col('label') };
  }

  /** Events stored (for health). */
  eventCount(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM harness_events').get() as { n: number }).n;
  }
}
