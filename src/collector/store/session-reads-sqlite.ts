/**
 * The session reads on SQLite (../session-reads.ts): `seq` (harness_event_rows'
 * rowid) is the ingest order (one writer: rowids become visible in increasing
 * order), and the indexes of migrations/sqlite-compact-events.ts make every
 * read a range of one session. Reads go through the harness_events view;
 * sessions and kinds are compared as their interned ids, and each body is
 * rebuilt in JS from its layout and residue (event-codec.ts).
 */
import type Database from 'better-sqlite3';
import { decodeBody, encodeId, kindList, residueObject, type StoredParts } from './event-codec';
import type { Names } from './migrations/sqlite-compact-events';
import { byToolUse, countsOf, sharedStatements, type Changes, type ChangedSession, type Dialect, type EventRow, type PagePosition, type Position, type SessionReader, type SubagentRow, type WaitingRow } from '../session-reads';

/** Indexes the session reads rely on (the events' are built by migration 4); idempotent, so they need no schema version of their own. */
export const SESSION_INDEXES = [
  'CREATE INDEX IF NOT EXISTS harness_sessions_claude ON harness_sessions(claude_session_id)',
  'CREATE INDEX IF NOT EXISTS harness_sessions_task ON harness_sessions(task_id)',
  'CREATE INDEX IF NOT EXISTS harness_sessions_run ON harness_sessions(run_id)',
];

/** EventRow's columns without the body, then what the body is rebuilt from (tuple, layout, residue). */
const COLUMNS = 'event_id, event, source, ts_ms, session_id, run_id, task_id, label, project, tool_name, tool_use_id, success, duration_ms, exit_code, error, model, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd, num_turns, tuple, layout, residue';

/** The residue of the row aliased `a` as a JSON object (cm_residue: event-codec.ts residueObject, registered on the connection). */
const RESIDUE = (a: string) => `cm_residue(${a}.layout, ${a}.residue)`;

export const SQLITE_DIALECT: Dialect = {
  cols: (a) => `${a}.seq AS seq, 0 AS ord, ${COLUMNS.split(', ').map((c) => `${a}.${c}`).join(', ')}`,
  atOrBefore: (a, p) => `${a}.seq <= @${p}`,
  // The id as stored: a UUID's 16 bytes order as its text does; ids of another form (text) sort before them.
  id: (a) => `${a}.eid`,
  key: (a) => `${a}.skey`,
  keyText: (a) => `${a}.session_key`,
  kinds: (a, ks) => `${a}.kind IN ${kindList(ks)}`,
  idEq: (a) => `${a}.eid`,
  body: (a) => `${a}.seq AS body_seq`,
  contextCols: () => '',
  hasContext: (a) => `(json_extract(${a}.tuple, '$[6]') IS NOT NULL OR instr(${RESIDUE(a)}, '"context":{') > 0)`,
  bytewise: (e) => e,
  // Keys a column or the context tuple holds never reach these: the residue keeps agent_id, hook and attrs.
  json: (a, path) => `json_extract(${RESIDUE(a)}, '$.${path.join('.')}')`,
  bodyHas: (a, lit) => `instr(${RESIDUE(a)}, '${lit.replaceAll("'", "''")}') > 0`,
};

type StoredRow = StoredParts & { seq: number; ord: number };
/** A row of cols() as the EventRow the API reads: the body rebuilt, the parts it came from dropped. */
function toEventRow<R extends StoredRow>(r: R): EventRow & Omit<R, keyof StoredParts> {
  const { tuple: _t, layout: _l, residue: _r, session_id: _s, run_id: _ru, task_id: _ta, label: _la, project: _p, ...rest } = r;
  return { ...rest, body: decodeBody(r) } as unknown as EventRow & Omit<R, keyof StoredParts>;
}
const rowsOf = (rows: unknown[]) => (rows as StoredRow[]).map((r) => toEventRow(r));
/** A session key as its interned id; -1 (no row) when it was never stored. */
const NO_KEY = -1;

export class SqliteSessionReads implements SessionReader {
  readonly sharedWriters = false;
  private readonly s: ReturnType<SqliteSessionReads['prepare']>;

  constructor(
    private readonly db: Database.Database,
    private readonly names: Names,
  ) {
    for (const sql of SESSION_INDEXES) db.exec(sql);
    db.function('cm_residue', { deterministic: true }, (layout: unknown, residue: unknown) => (typeof layout === 'string' ? residueObject(layout, typeof residue === 'string' ? residue : null) : null));
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
      highWater: db.prepare('SELECT coalesce(max(seq), 0) AS n FROM harness_event_rows'),
      bodyAt: db.prepare(`SELECT ${d.cols('e')} FROM harness_events e WHERE e.seq = ?`),
      since: db.prepare(`SELECT ${d.cols('e')} FROM harness_events e WHERE e.skey = @key AND e.seq > @after AND NOT ${d.kinds('e', ['otel_metric'])} ORDER BY e.seq LIMIT @limit`),
      // Every report of a page's tool calls in one statement (one index probe per id, in SQLite, not in JS).
      // The unary + keeps SQLite on harness_events_session_tool instead of walking the whole session for the ORDER BY (w-16ui).
      byToolUses: db.prepare(`SELECT ${d.cols('e')} FROM harness_events e WHERE e.skey = @key AND e.tool_use_id IN (SELECT value FROM json_each(@ids)) AND e.seq <= @snapshot ORDER BY +e.ts_ms, +e.eid`),
      // The view's columns spelled out over the table, so NOT INDEXED keeps this a range of seq (not a walk of the session index).
      changedSince: db.prepare(`SELECT min(s.name) AS session_key, min(json_extract(c.name, '$[0]')) AS source, max(json_extract(c.name, '$[5]')) AS project,
          max(json_extract(c.name, '$[4]')) AS label, count(*) AS events, max(r.seq) AS seq
        FROM harness_event_rows r NOT INDEXED JOIN harness_names s ON s.id = r.skey JOIN harness_names c ON c.id = r.ctx
        WHERE r.seq > ? GROUP BY r.skey ORDER BY seq LIMIT ?`),
      changedSinceCount: db.prepare('SELECT count(*) AS n, count(DISTINCT skey) AS sessions, coalesce(max(seq), 0) AS seq FROM harness_event_rows NOT INDEXED WHERE seq > ?'),
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
    return rowsOf(this.s.page.all({ key: this.key(key), snapshot: pos.snapshot, ts_ms: pos.ts_ms, event_id: encodeId(pos.event_id), limit }));
  }

  /** A rowid is one row: `ord` never matters here. */
  async since(key: string, after: Position, limit: number): Promise<EventRow[]> {
    return rowsOf(this.s.since.all({ key: this.key(key), after: after.seq, limit }));
  }

  async toolUses(key: string, toolUseIds: string[], upTo: Position = { seq: Number.MAX_SAFE_INTEGER }): Promise<Map<string, EventRow[]>> {
    if (toolUseIds.length === 0) return new Map();
    return byToolUse(rowsOf(this.s.byToolUses.all({ key: this.key(key), ids: JSON.stringify(toolUseIds), snapshot: upTo.seq })));
  }

  async event(eventId: string): Promise<(EventRow & { session_key: string }) | undefined> {
    const r = this.s.one.get({ event_id: encodeId(eventId) }) as (StoredRow & { session_key: string }) | undefined;
    return r && toEventRow(r);
  }

  async contextBody(key: string): Promise<string | undefined> {
    const r = this.s.context.get({ key: this.key(key) }) as { body_seq: number } | undefined;
    return r && this.bodyAt(r.body_seq);
  }

  async subagents(key: string): Promise<SubagentRow[]> {
    return this.s.subagents.all({ key: this.key(key) }) as SubagentRow[];
  }

  async endEvent(key: string): Promise<EventRow | undefined> {
    const r = this.s.endEvent.get({ key: this.key(key) }) as StoredRow | undefined;
    return r && toEventRow(r);
  }

  async unpricedModels(key: string): Promise<string[]> {
    return (this.s.unpriced.all({ key: this.key(key) }) as Array<{ model: string }>).map((r) => r.model);
  }

  async counts(key: string): Promise<{ events: number; prompts: number; requests: number; waits: number }> {
    return countsOf(this.s.counts.get({ key: this.key(key) }) as { events: number; prompts: number | null; requests: number | null; waits: number | null });
  }

  /** Two statements, one snapshot: better-sqlite3 is synchronous, nothing commits between them. */
  async changedSince(seq: number, limit: number): Promise<Changes> {
    const c = this.s.changedSinceCount.get(seq) as { n: number; sessions: number; seq: number };
    if (c.n === 0) return { sessions: [], touched: 0, events: 0, seq };
    return { sessions: this.s.changedSince.all(seq, limit) as ChangedSession[], touched: c.sessions, events: c.n, seq: c.seq };
  }

  async waiting(fromMs: number, limit = 200): Promise<WaitingRow[]> {
    return (this.s.waiting.all({ from: fromMs, limit }) as Array<Omit<WaitingRow, 'body'> & { body_seq: number }>).map(({ body_seq, ...w }) => ({ ...w, body: this.bodyAt(body_seq) ?? '' }));
  }

  private key(sessionKey: string): number {
    return this.names.find(sessionKey) ?? NO_KEY;
  }

  private bodyAt(seq: number): string | undefined {
    const r = this.s.bodyAt.get(seq) as StoredRow | undefined;
    return r && decodeBody(r);
  }

  /** The query plan of a statement, for tests that show a read does not scan harness_events. */
  explain(name: Exclude<keyof SqliteSessionReads['s'], 'session' | 'resolve' | 'one' | 'bodyAt'>, params: unknown): string[] {
    const sql = (this.s[name] as unknown as { source: string }).source;
    const stmt = this.db.prepare(`EXPLAIN QUERY PLAN ${sql}`);
    const rows = (Array.isArray(params) ? stmt.all(...params) : stmt.all(params as Record<string, unknown>)) as Array<{ detail: string }>;
    return rows.map((r) => r.detail);
  }
}
