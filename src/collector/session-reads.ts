/**
 * The reads behind one session's page, the live stream and "waiting on you":
 * the interface both stores implement (Store.sessionReads()), the row types,
 * and the statements, written once over a small dialect wherever SQLite and
 * PostgreSQL agree. The stores: store/session-reads-sqlite.ts and
 * store/session-reads-postgres.ts. None of the reads scans harness_events:
 * they go through the indexes listed beside each store (tests show the plans).
 *
 * The ingest order. A "position" says which events a reader has seen, and
 * "everything after position P" must be exact: no event skipped because it
 * became visible late, none read twice.
 * - SQLite: the rowid. One writer at a time, so rowids become visible in
 *   increasing order and "rowid > N" is gap-free.
 * - PostgreSQL: a sequence is not (a transaction that commits later may hold
 *   a smaller number). Each event carries the id of the transaction that
 *   stored it (`tx xid8`, pg_current_xact_id()) and a serial (`ord`) that
 *   orders it within that transaction. A reader only returns events of
 *   transactions below its snapshot's xmin: every transaction that could
 *   still commit with a smaller id is over by then, so "tx ≤ xmin − 1" is a
 *   closed prefix of the order. The position is (tx, ord); a whole position
 *   (every row of tx) is the tx alone, which is what the stream's ids and the
 *   high water are.
 * Both fit a JavaScript number (xid8 is epoch·2³² + xid: far below 2⁵³).
 */
import type { EventColumns } from './store/event-codec';

/** A point in the ingest order (see above): `seq` and, inside one PostgreSQL transaction, the row's `ord`. No `ord`: all of `seq`. */
export interface Position {
  seq: number;
  ord?: number;
}

/** One stored event as the session reads return it: its columns (all but the session's own), its place, its JSON body. */
export interface EventRow extends Omit<EventColumns, 'session_id' | 'run_id' | 'task_id' | 'label' | 'project'> {
  /** Its place in the ingest order: SQLite's rowid, PostgreSQL's transaction id. */
  seq: number;
  /** Within `seq`: 0 on SQLite (a rowid is one row), the row's serial on PostgreSQL. */
  ord: number;
  body: string;
}

/** Where a page of a session's events starts: after (ts_ms, event_id), among events at or before the whole position `snapshot`. */
export interface PagePosition {
  snapshot: number;
  ts_ms: number;
  event_id: string;
}

/** A session touched since some position (for the stream). */
export interface ChangedSession {
  session_key: string;
  source: string;
  project: string | null;
  label: string | null;
  events: number;
  seq: number;
}

/** What changed after a position: sessions (at most the limit asked for), the events in all, and the whole position read up to. */
export interface Changes {
  sessions: ChangedSession[];
  /** Sessions touched in all (more than `sessions` lists when the limit cut it). */
  touched: number;
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

export interface SubagentRow {
  agent_id: string;
  agent_type: string | null;
  events: number;
  first_ms: number;
  last_ms: number;
  tokens: number;
  cost_usd: number;
}

/** Hook events that mean the session is blocked on its user. */
export const WAITING_EVENTS = ['Notification', 'PermissionRequest'] as const;
/** Events after which the session is no longer waiting (the person answered, or it ended). */
export const RESUMING_EVENTS = ['PreToolUse', 'PostToolUse', 'PostToolUseFailure', 'UserPromptSubmit', 'SessionEnd', 'SubagentStop', 'ralph_task_completed', 'task_completed', 'run_completed'] as const;
/** The reports of a tool call besides its PreToolUse (hooks and Claude Code's OTel logs). */
export const TOOL_REPORTS = ['PostToolUse', 'PostToolUseFailure', 'tool_result', 'tool_decision', 'tool_span', 'tool_wait', 'tool_execution'] as const;
const END_EVENTS = ['SessionEnd', 'ralph_task_completed', 'task_completed', 'run_completed'] as const;

const list = (xs: readonly string[]) => `(${xs.map((x) => `'${x}'`).join(', ')})`;

/**
 * The reads of one session, the stream and "waiting on you", as a store
 * provides them (Store.sessionReads()).
 */
export interface SessionReader {
  /** True when other processes write the same database (PostgreSQL replicas): the stream must poll for their commits. */
  readonly sharedWriters: boolean;
  /** The folded session row, or undefined. */
  session(key: string): Promise<Record<string, unknown> | undefined>;
  /** Session keys an id may mean (a key, a Claude Code session id, a task id, a run id), the best match first. */
  resolve(id: string): Promise<string[]>;
  /** The whole position now: every event a reader can see is at or before it, and none will appear there later. */
  highWater(): Promise<number>;
  /** Up to `limit` rows of a session in time order, from a position, within a snapshot; paired Posts left out. */
  page(key: string, pos: PagePosition, limit: number): Promise<EventRow[]>;
  /** Events of a session after a position, in ingest order. */
  since(key: string, after: Position, limit: number): Promise<EventRow[]>;
  /** Every report of these tool calls at or before a position, grouped by tool_use_id (rows in time order). */
  toolUses(key: string, toolUseIds: string[], upTo?: Position): Promise<Map<string, EventRow[]>>;
  /** One event by id, with the session it belongs to. */
  event(eventId: string): Promise<(EventRow & { session_key: string }) | undefined>;
  /** The newest event body of the session that carries a `context` (host, cwd, git, version). */
  contextBody(key: string): Promise<string | undefined>;
  subagents(key: string): Promise<SubagentRow[]>;
  endEvent(key: string): Promise<EventRow | undefined>;
  /** Models of the session's requests that carry no cost (no price, no Claude Code figure). */
  unpricedModels(key: string): Promise<string[]>;
  counts(key: string): Promise<{ events: number; prompts: number; requests: number; waits: number }>;
  /** Sessions with events after the whole position `seq` (at most `limit` listed), read up to the high water, in one snapshot. */
  changedSince(seq: number, limit: number): Promise<Changes>;
  /** Sessions blocked on a person now (latest wait in the window with nothing after it). */
  waiting(fromMs: number, limit?: number): Promise<WaitingRow[]>;
}

/** What differs between the two SQL dialects in the statements below. */
export interface Dialect {
  /** EventRow's columns of the event aliased `a` (seq and ord included). */
  cols(a: string): string;
  /** The event aliased `a` is at or before the whole position in parameter `p`. */
  atOrBefore(a: string, p: string): string;
  /** An event id compared and ordered bytewise (SQLite's BINARY; PostgreSQL's "C", as its index is built). */
  id(a: string): string;
  /** A text ordered bytewise. */
  bytewise(expr: string): string;
  /** The session key column of the event aliased `a`, compared with `@key` (SQLite and PostgreSQL: its interned id). */
  key(a: string): string;
  /** The session key of the event aliased `a` as text. */
  keyText(a: string): string;
  /** The event aliased `a` is of one of these kinds (SQLite: their fixed ids, so partial indexes apply). */
  kinds(a: string, kinds: readonly string[]): string;
  /** The event aliased `a` by its id, compared with `@event_id` (SQLite: the id as stored, a blob for a UUID). */
  idEq(a: string): string;
  /** What the body of the event aliased `a` is read from (PostgreSQL: the body; SQLite: the row's position, the body rebuilt in JS). */
  body(a: string): string;
  /** Columns besides cols() that hasContext needs of a row (a leading comma), or ''. */
  contextCols(a: string): string;
  /** The body of the row aliased `a` (from cols() and contextCols()) carries a context (host, cwd, git, version). */
  hasContext(a: string): string;
  /** The JSON body's value at a path, as text (null when absent). */
  json(a: string, path: string[]): string;
  /** The body contains a literal. */
  bodyHas(a: string, literal: string): string;
}

/**
 * The statements both stores share, with named parameters (`@name`; the
 * PostgreSQL store turns them into `$n`).
 */
export function sharedStatements(d: Dialect) {
  // One row per tool call: the Pre (else the call's earliest report) anchors the step; the Post, OTel's
  // tool_result and tool_decision of the same tool_use_id fold into it. OTel metric points are no steps.
  const notPairedPost = `NOT ${d.kinds('e', ['otel_metric'])} AND NOT (${d.kinds('e', TOOL_REPORTS)} AND e.tool_use_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM harness_events p WHERE ${d.key('p')} = ${d.key('e')} AND p.tool_use_id = e.tool_use_id AND ${d.atOrBefore('p', 'snapshot')} AND ${d.id('p')} <> ${d.id('e')}
          AND (${d.kinds('p', ['PreToolUse'])} OR (${d.kinds('p', TOOL_REPORTS)} AND (p.ts_ms, ${d.id('p')}) < (e.ts_ms, ${d.id('e')})))))`;
  return {
    session: 'SELECT * FROM harness_sessions WHERE id = @key',
    // A session with no start time yet sorts last, as in SQLite's DESC.
    resolve: `SELECT id FROM harness_sessions WHERE id IN (@id, 'session:' || @id, 'run:' || @id) OR claude_session_id = @id OR task_id = @id OR run_id = @id
        ORDER BY (id = @id) DESC, coalesce(started_ms, -1) DESC LIMIT 20`,
    page: `SELECT ${d.cols('e')} FROM harness_events e
        WHERE ${d.key('e')} = @key AND ${d.atOrBefore('e', 'snapshot')} AND (e.ts_ms, ${d.id('e')}) > (@ts_ms, @event_id) AND ${notPairedPost}
        ORDER BY e.ts_ms, ${d.id('e')} LIMIT @limit`,
    one: `SELECT ${d.cols('e')}, ${d.keyText('e')} AS session_key FROM harness_events e WHERE ${d.idEq('e')} = @event_id`,
    // Hooks send the context with every event: the newest few hundred are enough to find it.
    context: `SELECT ${d.body('c')} FROM (SELECT ${d.cols('e')}${d.contextCols('e')} FROM harness_events e WHERE ${d.key('e')} = @key ORDER BY e.ts_ms DESC, ${d.id('e')} DESC LIMIT 500) AS c WHERE ${d.hasContext('c')} LIMIT 1`,
    subagents: `SELECT ${d.json('e', ['agent_id'])} AS agent_id, coalesce(max(${d.json('e', ['hook', 'agent_type'])}), max(${d.json('e', ['attrs', 'agent_type'])})) AS agent_type,
          count(*) AS events, min(e.ts_ms) AS first_ms, max(e.ts_ms) AS last_ms,
          sum(CASE WHEN ${d.kinds('e', ['usage'])} THEN coalesce(e.input_tokens, 0) + coalesce(e.output_tokens, 0) + coalesce(e.cache_creation_input_tokens, 0) + coalesce(e.cache_read_input_tokens, 0) ELSE 0 END) AS tokens,
          sum(CASE WHEN ${d.kinds('e', ['usage'])} THEN coalesce(e.cost_usd, 0) ELSE 0 END) AS cost_usd
        FROM harness_events e WHERE ${d.key('e')} = @key AND ${d.bodyHas('e', '"agent_id":"')} AND ${d.json('e', ['agent_id'])} IS NOT NULL GROUP BY 1 ORDER BY first_ms`,
    endEvent: `SELECT ${d.cols('e')} FROM harness_events e WHERE ${d.key('e')} = @key AND ${d.kinds('e', END_EVENTS)} ORDER BY e.ts_ms DESC, ${d.id('e')} DESC LIMIT 1`,
    unpriced: `SELECT DISTINCT ${d.bytewise("coalesce(e.model, 'unknown')")} AS model FROM harness_events e WHERE ${d.key('e')} = @key AND ${d.kinds('e', ['usage'])} AND e.cost_usd IS NULL ORDER BY 1 LIMIT 20`,
    counts: `SELECT count(*) AS events, sum(CASE WHEN ${d.kinds('e', ['UserPromptSubmit'])} THEN 1 ELSE 0 END) AS prompts, sum(CASE WHEN ${d.kinds('e', ['usage'])} THEN 1 ELSE 0 END) AS requests,
          sum(CASE WHEN ${d.kinds('e', WAITING_EVENTS)} THEN 1 ELSE 0 END) AS waits
        FROM harness_events e WHERE ${d.key('e')} = @key`,
    // The latest wait of each session in the window, unless something later shows it moved on.
    // `since`: the first of the waits told since the session last moved on (a PermissionRequest, then its Notification).
    waiting: `SELECT ${d.keyText('w')} AS session_key, w.event, ${d.body('w')},
          coalesce((SELECT min(x.ts_ms) FROM harness_events x WHERE ${d.key('x')} = ${d.key('w')} AND ${d.kinds('x', WAITING_EVENTS)} AND x.ts_ms <= w.ts_ms
             AND x.ts_ms > coalesce((SELECT max(r.ts_ms) FROM harness_events r WHERE ${d.key('r')} = ${d.key('w')} AND r.ts_ms <= w.ts_ms AND ${d.kinds('r', RESUMING_EVENTS)}), -1)), w.ts_ms) AS since_ms,
          (SELECT p.tool_name FROM harness_events p WHERE ${d.key('p')} = ${d.key('w')} AND ${d.kinds('p', ['PermissionRequest'])} AND p.ts_ms <= w.ts_ms AND p.tool_name IS NOT NULL ORDER BY p.ts_ms DESC LIMIT 1) AS tool_name
        FROM harness_events w
        WHERE ${d.kinds('w', WAITING_EVENTS)} AND w.ts_ms >= @from
          AND NOT EXISTS (SELECT 1 FROM harness_events l WHERE ${d.key('l')} = ${d.key('w')} AND ${d.kinds('l', WAITING_EVENTS)}
                          AND (l.ts_ms > w.ts_ms OR (l.ts_ms = w.ts_ms AND ${d.id('l')} > ${d.id('w')})))
          AND NOT EXISTS (SELECT 1 FROM harness_events r WHERE ${d.key('r')} = ${d.key('w')} AND r.ts_ms > w.ts_ms AND ${d.kinds('r', RESUMING_EVENTS)})
        ORDER BY since_ms LIMIT @limit`,
  };
}

export type SharedStatement = keyof ReturnType<typeof sharedStatements>;

/** Rows of tool reports grouped by tool_use_id, in the order read. */
export function byToolUse(rows: EventRow[]): Map<string, EventRow[]> {
  const out = new Map<string, EventRow[]>();
  for (const r of rows) {
    const list = out.get(r.tool_use_id!);
    if (list) list.push(r);
    else out.set(r.tool_use_id!, [r]);
  }
  return out;
}

/** counts() as numbers (a SUM over no rows is NULL). */
export function countsOf(r: { events: number; prompts: number | null; requests: number | null; waits: number | null }) {
  return { events: Number(r.events), prompts: Number(r.prompts ?? 0), requests: Number(r.requests ?? 0), waits: Number(r.waits ?? 0) };
}
