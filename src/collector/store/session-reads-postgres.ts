/**
 * The session reads on PostgreSQL (../session-reads.ts), for several replicas
 * on one database. The ingest order is (tx, ord): the transaction that stored
 * an event (xid8) and its serial. Every read that follows the order
 * (highWater, since, changedSince) sees only transactions below its own
 * snapshot's xmin, so a transaction that commits late with a small id is never
 * skipped: it is not below xmin until it is over. The bound is computed in the
 * same statement as the rows, so the two agree.
 *
 * One consequence to know: xmin is the oldest write transaction still open in
 * the whole cluster. A write transaction left open (idle in transaction) holds
 * the live view (new events on session pages, the stream) until it ends;
 * stored events are never lost by it, only shown late.
 */
import { decodeObjectBody, type ContextTuple, type EventColumns } from './event-codec';
import { PART_ID, type PostgresEventParts } from './event-parts-postgres';
import { byToolUse, countsOf, sharedStatements, type Changes, type ChangedSession, type Dialect, type EventRow, type PagePosition, type Position, type SessionReader, type SharedStatement, type SubagentRow, type WaitingRow } from '../session-reads';

type Query = <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<R[]>;

/** A row of cols() or body(): the columns, and the parts its body is rebuilt from. */
type StoredRow = EventColumns & { layout_id: number; context_id: number | null; residue: string | null };

/** EventRow's columns without the body, then what the body is rebuilt from (event-codec.ts decodeObjectBody). */
const COLUMNS = 'event_id, event, source, ts_ms, session_id, run_id, task_id, label, project, tool_name, tool_use_id, success, duration_ms, exit_code, error, model, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd, num_turns, layout_id, context_id, residue';
/** int8's largest: "every row of this transaction". */
const ALL_ROWS = '9223372036854775807';
/** Every transaction below this is over (the snapshot's xmin). */
const XMIN = 'pg_snapshot_xmin(pg_current_snapshot())';

export const POSTGRES_DIALECT: Dialect = {
  cols: (a) => `${a}.tx::text::bigint AS seq, ${a}.ord, ${COLUMNS.split(', ').map((c) => `${a}.${c}`).join(', ')}`,
  // A whole position never goes past xmin − 1 (highWater's), so what is at or before it is settled.
  atOrBefore: (a, p) => `${a}.tx <= @${p}::text::xid8`,
  id: (a) => `${a}.event_id COLLATE "C"`,
  key: (a) => `${a}.skey`,
  keyText: (a) => `(SELECT k.text FROM harness_event_parts k WHERE k.id = ${a}.skey)`,
  kinds: (a, ks) => `${a}.event IN (${ks.map((k) => `'${k}'`).join(', ')})`,
  idEq: (a) => `${a}.event_id`,
  // The row's id: its body is rebuilt in JS from a read of its parts (bodiesOf).
  body: (a) => `${a}.event_id AS body_id`,
  contextCols: () => '',
  // A context is interned (context_id), or kept in the residue (a row stored whole, or a context that is no object).
  hasContext: (a) => `(${a}.context_id IS NOT NULL OR strpos(${a}.residue, '"context":{') > 0)`,
  bytewise: (e) => `${e} COLLATE "C"`,
  // Keys a column or the context holds never reach these: the residue keeps agent_id, hook and attrs
  // (and a row stored whole keeps its body there). json, not jsonb: it takes any text JSON.stringify wrote.
  json: (a, path) => `(${a}.residue::json #>> '{${path.join(',')}}')`,
  bodyHas: (a, lit) => `strpos(${a}.residue, '${lit.replaceAll("'", "''")}') > 0`,
};

/**
 * `@name` parameters as PostgreSQL's `$n` (one number per name), with the order to pass values in.
 * An event's `skey = @key` compares the session key as its interned id: a lookup that the planner
 * runs once (an InitPlan), so the per-session indexes apply; a key never stored matches no row.
 */
export function positional(sql: string): { text: string; names: string[] } {
  const names: string[] = [];
  const text = sql.replace(/\.skey = @key\b/g, `.skey = ${PART_ID('@key::text')}`).replace(/@([a-z_]+)/g, (_m, name: string) => {
    let i = names.indexOf(name);
    if (i < 0) i = names.push(name) - 1;
    return `$${i + 1}`;
  });
  return { text, names };
}

function statements() {
  const d = POSTGRES_DIALECT;
  return {
    ...sharedStatements(d),
    highWater: `SELECT ${XMIN}::text::bigint - 1 AS n`,
    since: `SELECT ${d.cols('e')} FROM harness_events e
        WHERE e.skey = @key AND (e.tx, e.ord) > (@after::text::xid8, @after_ord::bigint) AND e.tx < ${XMIN} AND e.event <> 'otel_metric'
        ORDER BY e.tx, e.ord LIMIT @limit`,
    bodies: `SELECT ${d.cols('e')} FROM harness_events e WHERE e.event_id = ANY(@ids::text[])`,
    byToolUses: `SELECT ${d.cols('e')} FROM harness_events e
        WHERE e.skey = @key AND e.tool_use_id = ANY(@ids::text[]) AND (e.tx, e.ord) <= (@snapshot::text::xid8, @snapshot_ord::bigint)
        ORDER BY e.ts_ms, ${d.id('e')}`,
    // One statement, so the sessions, the count and the high water come from one snapshot.
    changedSince: `WITH hw AS (SELECT ${XMIN} AS x),
        ch AS (SELECT ${d.keyText('g')} AS session_key, g.source, g.project, g.label, g.events, g.seq FROM (
                 SELECT e.skey, min(e.source) AS source, max(e.project) AS project, max(e.label) AS label, count(*) AS events, max(e.tx::text::bigint) AS seq
                 FROM harness_events e, hw WHERE e.tx > @after::text::xid8 AND e.tx < hw.x GROUP BY e.skey) AS g)
        SELECT (SELECT x::text::bigint - 1 FROM hw) AS hw, (SELECT coalesce(sum(events), 0) FROM ch) AS events, (SELECT count(*) FROM ch) AS touched,
          (SELECT coalesce(json_agg(l ORDER BY l.seq), '[]'::json) FROM (SELECT * FROM ch ORDER BY seq LIMIT @limit) AS l) AS sessions`,
  };
}

type Name = keyof ReturnType<typeof statements>;
const compiled = Object.fromEntries(Object.entries(statements()).map(([k, v]) => [k, positional(v)])) as Record<Name, { text: string; names: string[] }>;

export class PostgresSessionReads implements SessionReader {
  readonly sharedWriters = true;

  constructor(
    private readonly query: Query,
    private readonly parts: PostgresEventParts,
  ) {}

  /** Rows of cols() or body() as the API reads them: each body rebuilt, the parts it came from dropped. */
  private async decoded<R extends StoredRow>(rows: R[]): Promise<Array<Omit<R, keyof StoredRow> & EventRow>> {
    if (rows.length === 0) return [];
    const texts = await this.parts.texts(rows.flatMap((r) => [r.layout_id, r.context_id]));
    return rows.map((r) => {
      const { layout_id, context_id, residue, session_id, run_id, task_id, label, project, ...rest } = r;
      const tuple: ContextTuple = [r.source, session_id, run_id, task_id, label, project, context_id === null ? null : (texts.get(Number(context_id)) ?? null)];
      return { ...rest, body: decodeObjectBody(texts.get(Number(layout_id)) ?? '"verbatim"', tuple, residue, r) } as unknown as Omit<R, keyof StoredRow> & EventRow;
    });
  }

  private run<R extends Record<string, unknown>>(name: Name, params: Record<string, unknown>): Promise<R[]> {
    const s = compiled[name];
    return this.query<R>(s.text, s.names.map((n) => params[n]));
  }

  async session(key: string): Promise<Record<string, unknown> | undefined> {
    return (await this.run('session', { key }))[0];
  }

  async resolve(id: string): Promise<string[]> {
    return (await this.run<{ id: string }>('resolve', { id })).map((r) => r.id);
  }

  async highWater(): Promise<number> {
    return Number((await this.run<{ n: number }>('highWater', {}))[0]!.n);
  }

  async page(key: string, pos: PagePosition, limit: number): Promise<EventRow[]> {
    return this.decoded(await this.run<StoredRow & Record<string, unknown>>('page', { key, snapshot: pos.snapshot, ts_ms: pos.ts_ms, event_id: pos.event_id, limit }));
  }

  async since(key: string, after: Position, limit: number): Promise<EventRow[]> {
    return this.decoded(await this.run<StoredRow & Record<string, unknown>>('since', { key, after: after.seq, after_ord: after.ord ?? ALL_ROWS, limit }));
  }

  async toolUses(key: string, toolUseIds: string[], upTo: Position = { seq: Number.MAX_SAFE_INTEGER }): Promise<Map<string, EventRow[]>> {
    if (toolUseIds.length === 0) return new Map();
    return byToolUse(await this.decoded(await this.run<StoredRow & Record<string, unknown>>('byToolUses', { key, ids: toolUseIds, snapshot: upTo.seq, snapshot_ord: upTo.ord ?? ALL_ROWS })));
  }

  async event(eventId: string): Promise<(EventRow & { session_key: string }) | undefined> {
    return (await this.decoded(await this.run<StoredRow & { session_key: string } & Record<string, unknown>>('one', { event_id: eventId })))[0] as (EventRow & { session_key: string }) | undefined;
  }

  async contextBody(key: string): Promise<string | undefined> {
    const id = (await this.run<{ body_id: string }>('context', { key }))[0]?.body_id;
    return id === undefined ? undefined : (await this.bodiesOf([id])).get(id);
  }

  async subagents(key: string): Promise<SubagentRow[]> {
    return (await this.run<SubagentRow & Record<string, unknown>>('subagents', { key })).map((r) => ({ ...r, events: Number(r.events), tokens: Number(r.tokens), cost_usd: Number(r.cost_usd) }));
  }

  async endEvent(key: string): Promise<EventRow | undefined> {
    return (await this.decoded(await this.run<StoredRow & Record<string, unknown>>('endEvent', { key })))[0];
  }

  async unpricedModels(key: string): Promise<string[]> {
    return (await this.run<{ model: string }>('unpriced', { key })).map((r) => r.model);
  }

  async counts(key: string): Promise<{ events: number; prompts: number; requests: number; waits: number }> {
    return countsOf((await this.run<{ events: number; prompts: number | null; requests: number | null; waits: number | null }>('counts', { key }))[0]!);
  }

  async changedSince(seq: number, limit: number): Promise<Changes> {
    const r = (await this.run<{ hw: number; events: number; touched: number; sessions: ChangedSession[] }>('changedSince', { after: seq, limit }))[0]!;
    return { sessions: r.sessions, touched: Number(r.touched), events: Number(r.events), seq: Math.max(seq, Number(r.hw)) };
  }

  async waiting(fromMs: number, limit = 200): Promise<WaitingRow[]> {
    const rows = await this.run<Omit<WaitingRow, 'body'> & { body_id: string } & Record<string, unknown>>('waiting', { from: fromMs, limit });
    const bodies = await this.bodiesOf(rows.map((r) => r.body_id));
    return rows.map(({ body_id, ...w }) => ({ ...w, body: bodies.get(body_id) ?? '' }));
  }

  /** The bodies of these events, by id. */
  private async bodiesOf(ids: string[]): Promise<Map<string, string>> {
    if (ids.length === 0) return new Map();
    return new Map((await this.decoded(await this.run<StoredRow & Record<string, unknown>>('bodies', { ids }))).map((r) => [r.event_id, r.body]));
  }

  /** EXPLAIN of a statement with these parameters (for tests that show a read does not scan harness_events). */
  async explain(name: Exclude<Name, 'session' | 'resolve' | 'one' | 'highWater'> | SharedStatement, params: Record<string, unknown>): Promise<string[]> {
    const s = compiled[name];
    return (await this.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${s.text}`, s.names.map((n) => params[n]))).map((r) => r['QUERY PLAN']);
  }
}
