/**
 * The session reads on SQLite (../session-reads.ts): the rowid is the ingest
 * order (one writer: rowids become visible in increasing order), and the
 * indexes below make every read a range of one session.
 */
import type Database from 'better-sqlite3';
import { byToolUse, countsOf, sharedStatements, type Changes, type ChangedSession, type Dialect, type EventRow, type PagePosition, type Position, type SessionReader, type SubagentRow, type WaitingRow } from '../session-reads';

/** Indexes the session reads rely on; idempotent, so they need no schema version of their own. */
export const SESSION_INDEXES = [
  'CREATE INDEX IF NOT EXISTS harness_events_session ON harness_events(session_key, ts_ms, event_id)',
  'CREATE INDEX IF NOT EXISTS harness_events_session_tool ON harness_events(session_key, tool_use_id) WHERE tool_use_id IS NOT NULL',
  "CREATE INDEX IF NOT EXISTS harness_events_waiting ON harness_events(ts_ms) WHERE event IN ('Notification', 'PermissionRequest')",
  'CREATE INDEX IF NOT EXISTS harness_sessions_claude ON harness_sessions(claude_session_id)',
  'CREATE INDEX IF NOT EXISTS harness_sessions_task ON harness_sessions(task_id)',
  'CREATE INDEX IF NOT EXISTS harness_sessions_run ON harness_sessions(run_id)',
];

const COLUMNS = 'event_id, event, source, ts_ms, tool_name, tool_use_id, success, duration_ms, exit_code, error, model, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd, num_turns, body';

export const SQLITE_DIALECT: Dialect = {
  cols: (a) => `${a}.rowid AS seq, 0 AS ord, ${COLUMNS.split(', ').map((c) => `${a}.${c}`).join(', ')}`,
  atOrBefore: (a, p) => `${a}.rowid <= @${p}`,
  id: (a) => `${a}.event_id`,
  bytewise: (e) => e,
  json: (a, path) => `json_extract(${a}.body, '$.${path.join('.')}')`,
  bodyHas: (a, lit) => `instr(${a}.body, '${lit.replaceAll("'", "''")}') > 0`,
};

export class SqliteSessionReads implements SessionReader {
  readonly sharedWriters = false;
  private readonly s: ReturnType<SqliteSessionReads['prepare']>;

  constructor(private readonly db: Database.Database) {
    for (const sql of SESSION_INDEXES) db.exec(sql);
    this.s = this.prepare();
  }

  private prepare() {
    const db = this.db;
    const d = SQLITE_DIALECT;
    const shared = sharedStatements(d);
    return {
      session: db.prepare(shared.session),
      resolve: db.prepare(shared.resolve),
      page: db.prepare(shared.page),
      one: db.prepare(shared.one),
      context: db.prepare(shared.context),
      subagents: db.prepare(shared.subagents),
      endEvent: db.prepare(shared.endEvent),
      unpriced: db.prepare(shared.unpriced),
      counts: db.prepare(shared.counts),
      waiting: db.prepare(shared.waiting),
      highWater: db.prepare('SELECT coalesce(max(rowid), 0) AS n FROM harness_events'),
      since: db.prepare(`SELECT ${d.cols('e')} FROM harness_events e WHERE e.session_key = @key AND e.rowid > @after AND e.event <> 'otel_metric' ORDER BY e.rowid LIMIT @limit`),
      // Every report of a page's tool calls in one statement (one index probe per id, in SQLite, not in JS).
      // The unary + keeps SQLite on harness_events_session_tool instead of walking the whole session for the ORDER BY (w-16ui).
      byToolUses: db.prepare(`SELECT ${d.cols('e')} FROM harness_events e WHERE e.session_key = @key AND e.tool_use_id IN (SELECT value FROM json_each(@ids)) AND e.rowid <= @snapshot ORDER BY +e.ts_ms, +e.event_id`),
      changedSince: db.prepare(`SELECT e.session_key, min(e.source) AS source, max(e.project) AS project, max(e.label) AS label, count(*) AS events, max(e.rowid) AS seq
        FROM harness_events e NOT INDEXED WHERE e.rowid > ? GROUP BY e.session_key ORDER BY seq LIMIT ?`),
      changedSinceCount: db.prepare('SELECT count(*) AS n, count(DISTINCT session_key) AS sessions, coalesce(max(rowid), 0) AS seq FROM harness_events NOT INDEXED WHERE rowid > ?'),
    };
  }

  async session(key: string): Promise<Record<string, unknown> | undefined> {
    return this.s.session.get({ key }) as Record<string, unknown> | undefined;
  }

  async resolve(id: string): Promise<string[]> {
    return (this.s.resolve.all({ id }) as Array<{ id: string }>).map((r) => r.id);
  }

  async highWater(): Promise<number> {
    return (this.s.highWater.get() as { n: number }).n;
  }

  async page(key: string, pos: PagePosition, limit: number): Promise<EventRow[]> {
    return this.s.page.all({ key, snapshot: pos.snapshot, ts_ms: pos.ts_ms, event_id: pos.event_id, limit }) as EventRow[];
  }

  /** A rowid is one row: `ord` never matters here. */
  async since(key: string, after: Position, limit: number): Promise<EventRow[]> {
    return this.s.since.all({ key, after: after.seq, limit }) as EventRow[];
  }

  async toolUses(key: string, toolUseIds: string[], upTo: Position = { seq: Number.MAX_SAFE_INTEGER }): Promise<Map<string, EventRow[]>> {
    if (toolUseIds.length === 0) return new Map();
    return byToolUse(this.s.byToolUses.all({ key, ids: JSON.stringify(toolUseIds), snapshot: upTo.seq }) as EventRow[]);
  }

  async event(eventId: string): Promise<(EventRow & { session_key: string }) | undefined> {
    return this.s.one.get({ event_id: eventId }) as (EventRow & { session_key: string }) | undefined;
  }

  async contextBody(key: string): Promise<string | undefined> {
    return (this.s.context.get({ key }) as { body: string } | undefined)?.body;
  }

  async subagents(key: string): Promise<SubagentRow[]> {
    return this.s.subagents.all({ key }) as SubagentRow[];
  }

  async endEvent(key: string): Promise<EventRow | undefined> {
    return this.s.endEvent.get({ key }) as EventRow | undefined;
  }

  async unpricedModels(key: string): Promise<string[]> {
    return (this.s.unpriced.all({ key }) as Array<{ model: string }>).map((r) => r.model);
  }

  async counts(key: string): Promise<{ events: number; prompts: number; requests: number; waits: number }> {
    return countsOf(this.s.counts.get({ key }) as { events: number; prompts: number | null; requests: number | null; waits: number | null });
  }

  /** Two statements, one snapshot: better-sqlite3 is synchronous, nothing commits between them. */
  async changedSince(seq: number, limit: number): Promise<Changes> {
    const c = this.s.changedSinceCount.get(seq) as { n: number; sessions: number; seq: number };
    if (c.n === 0) return { sessions: [], touched: 0, events: 0, seq };
    return { sessions: this.s.changedSince.all(seq, limit) as ChangedSession[], touched: c.sessions, events: c.n, seq: c.seq };
  }

  async waiting(fromMs: number, limit = 200): Promise<WaitingRow[]> {
    return this.s.waiting.all({ from: fromMs, limit }) as WaitingRow[];
  }

  /** The query plan of a statement, for tests that show a read does not scan harness_events. */
  explain(name: Exclude<keyof SqliteSessionReads['s'], 'session' | 'resolve' | 'one'>, params: unknown): string[] {
    const sql = (this.s[name] as unknown as { source: string }).source;
    const stmt = this.db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
    const rows = (Array.isArray(params) ? stmt.all(...params) : stmt.all(params as Record<string, unknown>)) as Array<{ detail: string }>;
    return rows.map((r) => r.detail);
  }
}
