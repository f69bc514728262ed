/**
 * The reads behind one session's page, the live stream and "waiting on you".
 * Every statement the session page, `show` and the stream need is here, in one
 * place, so that a second store (PostgreSQL) ports a handful of queries, not a
 * feature. None of them scans harness_events: they go through
 * harness_events_session (session_key, ts_ms, event_id), which also carries the
 * rowid, or through the rowid itself.
 *
 * The rowid is the ingest sequence: SQLite has one writer at a time, so rowids
 * become visible in increasing order and "every event with rowid > N" is an
 * exact, gap-free "what arrived since N". (PostgreSQL's sequences do not give
 * that under concurrent transactions; a port needs a commit-ordered counter.)
 */
import type Database from 'better-sqlite3';

/** Indexes the session reads rely on; idempotent, so they need no schema version of their own. */
export const SESSION_INDEXES = [
  'CREATE INDEX IF NOT EXISTS harness_events_session ON harness_events(session_key, ts_ms, event_id)',
  'CREATE INDEX IF NOT EXISTS harness_events_session_tool ON harness_events(session_key, tool_use_id) WHERE tool_use_id IS NOT NULL',
  "CREATE INDEX IF NOT EXISTS harness_events_waiting ON harness_events(ts_ms) WHERE event IN ('Notification', 'PermissionRequest')",
  'CREATE INDEX IF NOT EXISTS harness_sessions_claude ON harness_sessions(claude_session_id)',
  'CREATE INDEX IF NOT EXISTS harness_sessions_task ON harness_sessions(task_id)',
  'CREATE INDEX IF NOT EXISTS harness_sessions_run ON harness_sessions(run_id)',
];

/** One stored event as the session reads return it (columns plus its JSON body). */
export interface EventRow {
  seq: number;
  event_id: string;
  event: string;
  source: string;
  ts_ms: number;
  tool_name: string | null;
  tool_use_id: string | null;
  success: number | null;
  duration_ms: number | null;
  exit_code: number | null;
  error: string | null;
  model: string | null;
  input_tokens: number | null;
  output_tokens: number | null;
  cache_creation_input_tokens: number | null;
  cache_read_input_tokens: number | null;
  cost_usd: number | null;
  num_turns: number | null;
  body: string;
}

/** Where a page of a session's events starts: after (ts_ms, event_id), among rowids ≤ snapshot. */
export interface PagePosition {
  snapshot: number;
  ts_ms: number;
  event_id: string;
}

/** A session touched since some sequence number (for the stream's catch-up). */
export interface ChangedSession {
  session_key: string;
  source: string;
  project: string | null;
  label: string | null;
  events: number;
  seq: number;
}

/** A session whose latest word is "waiting on a person". */
export interface WaitingRow {
  session_key: string;
  since_ms: number;
  /** The tool a permission was asked for (from the latest PermissionRequest). */
  tool_name: string | null;
  event: string;
  body: string;
}

/** Hook events that mean the session is blocked on its user. */
export const WAITING_EVENTS = ['Notification', 'PermissionRequest'] as const;
/** Events after which the session is no longer waiting (the person answered, or it ended). */
export const RESUMING_EVENTS = ['PreToolUse', 'PostToolUse', 'PostToolUseFailure', 'UserPromptSubmit', 'SessionEnd', 'SubagentStop', 'ralph_task_completed', 'task_completed', 'run_completed'] as const;

const COLS = 'rowid AS seq, event_id, event, source, ts_ms, tool_name, tool_use_id, success, duration_ms, exit_code, error, model, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd, num_turns, body';
/** The reports of a tool call besides its PreToolUse (hooks and Claude Code's OTel logs). */
export const TOOL_REPORTS = ['PostToolUse', 'PostToolUseFailure', 'tool_result', 'tool_decision', 'tool_span', 'tool_wait', 'tool_execution'] as const;
const POSTS = `(${TOOL_REPORTS.map((x) => `'${x}'`).join(', ')})`;
const list = (xs: readonly string[]) => `(${xs.map((x) => `'${x}'`).join(', ')})`;

/**
 * The reads of one session, the stream and "waiting on you", as a store
 * provides them (Store.sessionReads()). SQLite: SqliteSessionReads below. A
 * PostgreSQL port needs the same statements and a commit-ordered sequence for
 * `seq` (see the note above).
 */
export interface SessionReader {
  session(key: string): Promise<Record<string, unknown> | undefined>;
  resolve(id: string): Promise<string[]>;
  highWater(): Promise<number>;
  page(key: string, pos: PagePosition, limit: number): Promise<EventRow[]>;
  since(key: string, after: number, limit: number): Promise<EventRow[]>;
  toolUses(key: string, toolUseIds: string[], snapshot?: number): Promise<Map<string, EventRow[]>>;
  event(eventId: string): Promise<(EventRow & { session_key: string }) | undefined>;
  contextBody(key: string): Promise<string | undefined>;
  subagents(key: string): Promise<Array<{ agent_id: string; agent_type: string | null; events: number; first_ms: number; last_ms: number; tokens: number; cost_usd: number }>>;
  endEvent(key: string): Promise<EventRow | undefined>;
  unpricedModels(key: string): Promise<string[]>;
  counts(key: string): Promise<{ events: number; prompts: number; requests: number; waits: number }>;
  changedSince(seq: number, limit: number): Promise<{ sessions: ChangedSession[]; events: number; seq: number }>;
  waiting(fromMs: number, limit?: number): Promise<WaitingRow[]>;
}

export class SqliteSessionReads implements SessionReader {
  private readonly s: ReturnType<SqliteSessionReads['prepare']>;

  constructor(private readonly db: Database.Database) {
    for (const sql of SESSION_INDEXES) db.exec(sql);
    this.s = this.prepare();
  }

  private prepare() {
    const db = this.db;
    // One row per tool call: the Pre (else the call's earliest report) anchors the step; the Post, OTel's
    // tool_result and tool_decision of the same tool_use_id fold into it. OTel metric points are no steps.
    const notPairedPost = `e.event <> 'otel_metric' AND NOT (e.event IN ${POSTS} AND e.tool_use_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM harness_events p WHERE p.session_key = e.session_key AND p.tool_use_id = e.tool_use_id AND p.rowid <= @snapshot AND p.event_id <> e.event_id
          AND (p.event = 'PreToolUse' OR (p.event IN ${POSTS} AND (p.ts_ms, p.event_id) < (e.ts_ms, e.event_id)))))`;
    return {
      session: db.prepare('SELECT * FROM harness_sessions WHERE id = ?'),
      resolve: db.prepare(`SELECT id FROM harness_sessions WHERE id IN (@id, 'session:' || @id, 'run:' || @id) OR claude_session_id = @id OR task_id = @id OR run_id = @id
        ORDER BY (id = @id) DESC, started_ms DESC LIMIT 20`),
      highWater: db.prepare('SELECT coalesce(max(rowid), 0) AS n FROM harness_events'),
      page: db.prepare(`SELECT ${COLS} FROM harness_events e
        WHERE e.session_key = @key AND e.rowid <= @snapshot AND (e.ts_ms, e.event_id) > (@ts_ms, @event_id) AND ${notPairedPost}
        ORDER BY e.ts_ms, e.event_id LIMIT @limit`),
      since: db.prepare(`SELECT ${COLS} FROM harness_events e WHERE e.session_key = @key AND e.rowid > @after AND e.event <> 'otel_metric' ORDER BY e.rowid LIMIT @limit`),
      byToolUse: db.prepare(`SELECT ${COLS} FROM harness_events e WHERE e.session_key = @key AND e.tool_use_id = @tool_use_id AND e.rowid <= @snapshot ORDER BY e.ts_ms, e.event_id`),
      // Every report of a page's tool calls in one statement (one index probe per id, in SQLite, not in JS).
      // `+` keeps the planner off harness_events_session for the ORDER BY (it walked the whole session then): the tool index, then a sort of the few rows.
      byToolUses: db.prepare(`SELECT ${COLS} FROM harness_events e WHERE e.session_key = @key AND e.tool_use_id IN (SELECT value FROM json_each(@ids)) AND e.rowid <= @snapshot ORDER BY +e.ts_ms, +e.event_id`),
      one: db.prepare(`SELECT ${COLS}, session_key FROM harness_events e WHERE e.event_id = ?`),
      // Hooks send the context with every event: the newest few hundred are enough to find it.
      context: db.prepare(`SELECT body FROM (SELECT body FROM harness_events WHERE session_key = ? ORDER BY ts_ms DESC, event_id DESC LIMIT 500) WHERE instr(body, '"context":{') > 0 LIMIT 1`),
      subagents: db.prepare(`SELECT json_extract(body, '$.agent_id') AS agent_id, coalesce(max(json_extract(body, '$.hook.agent_type')), max(json_extract(body, '$.attrs.agent_type'))) AS agent_type,
          count(*) AS events, min(ts_ms) AS first_ms, max(ts_ms) AS last_ms,
          sum(CASE WHEN event = 'usage' THEN coalesce(input_tokens, 0) + coalesce(output_tokens, 0) + coalesce(cache_creation_input_tokens, 0) + coalesce(cache_read_input_tokens, 0) ELSE 0 END) AS tokens,
          sum(CASE WHEN event = 'usage' THEN coalesce(cost_usd, 0) ELSE 0 END) AS cost_usd
        FROM harness_events WHERE session_key = ? AND instr(body, '"agent_id":"') > 0 AND json_extract(body, '$.agent_id') IS NOT NULL GROUP BY 1 ORDER BY first_ms`),
      endEvent: db.prepare(`SELECT ${COLS} FROM harness_events e WHERE e.session_key = ? AND e.event IN ('SessionEnd', 'ralph_task_completed', 'task_completed', 'run_completed') ORDER BY e.ts_ms DESC, e.event_id DESC LIMIT 1`),
      unpriced: db.prepare(`SELECT DISTINCT coalesce(model, 'unknown') AS model FROM harness_events WHERE session_key = ? AND event = 'usage' AND cost_usd IS NULL ORDER BY 1 LIMIT 20`),
      counts: db.prepare(`SELECT count(*) AS events, sum(CASE WHEN event = 'UserPromptSubmit' THEN 1 ELSE 0 END) AS prompts, sum(CASE WHEN event = 'usage' THEN 1 ELSE 0 END) AS requests,
          sum(CASE WHEN event IN ${list(WAITING_EVENTS)} THEN 1 ELSE 0 END) AS waits
        FROM harness_events WHERE session_key = ?`),
      changedSince: db.prepare(`SELECT e.session_key, min(e.source) AS source, max(e.project) AS project, max(e.label) AS label, count(*) AS events, max(e.rowid) AS seq
        FROM harness_events e NOT INDEXED WHERE e.rowid > ? GROUP BY e.session_key ORDER BY seq LIMIT ?`),
      changedSinceCount: db.prepare('SELECT count(*) AS n, coalesce(max(rowid), 0) AS seq FROM harness_events NOT INDEXED WHERE rowid > ?'),
      // The latest wait of each session in the window, unless something later shows it moved on.
      // `since`: the first of the waits told since the session last moved on (a PermissionRequest, then its Notification).
      waiting: db.prepare(`SELECT w.session_key, w.event, w.body,
          coalesce((SELECT min(x.ts_ms) FROM harness_events x WHERE x.session_key = w.session_key AND x.event IN ${list(WAITING_EVENTS)} AND x.ts_ms <= w.ts_ms
             AND x.ts_ms > coalesce((SELECT max(r.ts_ms) FROM harness_events r WHERE r.session_key = w.session_key AND r.ts_ms <= w.ts_ms AND r.event IN ${list(RESUMING_EVENTS)}), -1)), w.ts_ms) AS since_ms,
          (SELECT p.tool_name FROM harness_events p WHERE p.session_key = w.session_key AND p.event = 'PermissionRequest' AND p.ts_ms <= w.ts_ms AND p.tool_name IS NOT NULL ORDER BY p.ts_ms DESC LIMIT 1) AS tool_name
        FROM harness_events w
        WHERE w.event IN ${list(WAITING_EVENTS)} AND w.ts_ms >= @from
          AND NOT EXISTS (SELECT 1 FROM harness_events l WHERE l.session_key = w.session_key AND l.event IN ${list(WAITING_EVENTS)}
                          AND (l.ts_ms > w.ts_ms OR (l.ts_ms = w.ts_ms AND l.event_id > w.event_id)))
          AND NOT EXISTS (SELECT 1 FROM harness_events r WHERE r.session_key = w.session_key AND r.ts_ms > w.ts_ms AND r.event IN ${list(RESUMING_EVENTS)})
        ORDER BY since_ms LIMIT @limit`),
    };
  }

  /** The folded session row, or undefined. */
  async session(key: string): Promise<Record<string, unknown> | undefined> {
    return this.s.session.get(key) as Record<string, unknown> | undefined;
  }

  /** Session keys an id may mean (a key, a Claude Code session id, a task id, a run id), the best match first. */
  async resolve(id: string): Promise<string[]> {
    return (this.s.resolve.all({ id }) as Array<{ id: string }>).map((r) => r.id);
  }

  /** The ingest sequence now: every stored event has seq ≤ this. */
  async highWater(): Promise<number> {
    return (this.s.highWater.get() as { n: number }).n;
  }

  /** Up to `limit` rows of a session in time order, from a position, within a snapshot; paired Posts left out. */
  async page(key: string, pos: PagePosition, limit: number): Promise<EventRow[]> {
    return this.s.page.all({ key, snapshot: pos.snapshot, ts_ms: pos.ts_ms, event_id: pos.event_id, limit }) as EventRow[];
  }

  /** Events of a session that arrived after `after` (in arrival order). */
  async since(key: string, after: number, limit: number): Promise<EventRow[]> {
    return this.s.since.all({ key, after, limit }) as EventRow[];
  }

  /** Every event of one tool call (its Pre, Post, failure), within a snapshot. */
  async toolUse(key: string, toolUseId: string, snapshot = Number.MAX_SAFE_INTEGER): Promise<EventRow[]> {
    return this.s.byToolUse.all({ key, tool_use_id: toolUseId, snapshot }) as EventRow[];
  }

  /** Every report of these tool calls, grouped by tool_use_id (rows in time order). */
  async toolUses(key: string, toolUseIds: string[], snapshot = Number.MAX_SAFE_INTEGER): Promise<Map<string, EventRow[]>> {
    const out = new Map<string, EventRow[]>();
    if (toolUseIds.length === 0) return out;
    for (const r of this.s.byToolUses.all({ key, ids: JSON.stringify(toolUseIds), snapshot }) as EventRow[]) {
      const list = out.get(r.tool_use_id!);
      if (list) list.push(r);
      else out.set(r.tool_use_id!, [r]);
    }
    return out;
  }

  /** One event by id, with the session it belongs to. */
  async event(eventId: string): Promise<(EventRow & { session_key: string }) | undefined> {
    return this.s.one.get(eventId) as (EventRow & { session_key: string }) | undefined;
  }

  /** The newest event body of the session that carries a `context` (host, cwd, git, version). */
  async contextBody(key: string): Promise<string | undefined> {
    return (this.s.context.get(key) as { body: string } | undefined)?.body;
  }

  async subagents(key: string): Promise<Array<{ agent_id: string; agent_type: string | null; events: number; first_ms: number; last_ms: number; tokens: number; cost_usd: number }>> {
    return this.s.subagents.all(key) as Array<{ agent_id: string; agent_type: string | null; events: number; first_ms: number; last_ms: number; tokens: number; cost_usd: number }>;
  }

  async endEvent(key: string): Promise<EventRow | undefined> {
    return this.s.endEvent.get(key) as EventRow | undefined;
  }

  /** Models of the session's requests that carry no cost (no price, no Claude Code figure). */
  async unpricedModels(key: string): Promise<string[]> {
    return (this.s.unpriced.all(key) as Array<{ model: string }>).map((r) => r.model);
  }

  async counts(key: string): Promise<{ events: number; prompts: number; requests: number; waits: number }> {
    const r = this.s.counts.get(key) as { events: number; prompts: number | null; requests: number | null; waits: number | null };
    return { events: r.events, prompts: r.prompts ?? 0, requests: r.requests ?? 0, waits: r.waits ?? 0 };
  }

  /** Sessions with events after `seq` (at most `limit`), and how many events that is in all. */
  async changedSince(seq: number, limit: number): Promise<{ sessions: ChangedSession[]; events: number; seq: number }> {
    const c = this.s.changedSinceCount.get(seq) as { n: number; seq: number };
    if (c.n === 0) return { sessions: [], events: 0, seq };
    return { sessions: this.s.changedSince.all(seq, limit) as ChangedSession[], events: c.n, seq: c.seq };
  }

  /** Sessions blocked on a person now (latest wait in the window with nothing after it). */
  async waiting(fromMs: number, limit = 200): Promise<WaitingRow[]> {
    return this.s.waiting.all({ from: fromMs, limit }) as WaitingRow[];
  }

  /** The query plan of a statement, for tests that show a read does not scan harness_events. */
  explain(name: 'page' | 'since' | 'byToolUse' | 'byToolUses' | 'context' | 'subagents' | 'counts' | 'unpriced' | 'endEvent' | 'waiting' | 'changedSince' | 'changedSinceCount', params: unknown): string[] {
    const sql = (this.s[name] as unknown as { source: string }).source;
    const stmt = this.db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
    const rows = (Array.isArray(params) ? stmt.all(...params) : stmt.all(params as Record<string, unknown>)) as Array<{ detail: string }>;
    return rows.map((r) => r.detail);
  }
}
