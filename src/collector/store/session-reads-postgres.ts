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
import { byToolUse, countsOf, sharedStatements, type Changes, type ChangedSession, type Dialect, type EventRow, type PagePosition, type Position, type SessionReader, type SharedStatement, type SubagentRow, type WaitingRow } from '../session-reads';

type Query = <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<R[]>;

const COLUMNS = 'event_id, event, source, ts_ms, tool_name, tool_use_id, success, duration_ms, exit_code, error, model, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd, num_turns, body';
/** int8's largest: "every row of this transaction". */
const ALL_ROWS = '9223372036854775807';
/** Every transaction below this is over (the snapshot's xmin). */
const XMIN = 'pg_snapshot_xmin(pg_current_snapshot())';

export const POSTGRES_DIALECT: Dialect = {
  cols: (a) => `${a}.tx::text::bigint AS seq, ${a}.ord, ${COLUMNS.split(', ').map((c) => `${a}.${c}`).join(', ')}`,
  // A whole position never goes past xmin − 1 (highWater's), so what is at or before it is settled.
  atOrBefore: (a, p) => `${a}.tx <= @${p}::text::xid8`,
  id: (a) => `${a}.event_id COLLATE "C"`,
  key: (a) => `${a}.session_key`,
  kinds: (a, ks) => `${a}.event IN (${ks.map((k) => `'${k}'`).join(', ')})`,
  idEq: (a) => `${a}.event_id`,
  body: (a) => `${a}.body`,
  contextCols: () => '',
  hasContext: (a) => `strpos(${a}.body, '"context":{') > 0`,
  bytewise: (e) => `${e} COLLATE "C"`,
  // json, not jsonb: the body is only read here, and json takes any text JSON.stringify wrote.
  json: (a, path) => `(${a}.body::json #>> '{${path.join(',')}}')`,
  bodyHas: (a, lit) => `strpos(${a}.body, '${lit.replaceAll("'", "''")}') > 0`,
};

/** `@name` parameters as PostgreSQL's `$n` (one number per name), with the order to pass values in. */
export function positional(sql: string): { text: string; names: string[] } {
  const names: string[] = [];
  const text = sql.replace(/@([a-z_]+)/g, (_m, name: string) => {
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
        WHERE e.session_key = @key AND (e.tx, e.ord) > (@after::text::xid8, @after_ord::bigint) AND e.tx < ${XMIN} AND e.event <> 'otel_metric'
        ORDER BY e.tx, e.ord LIMIT @limit`,
    byToolUses: `SELECT ${d.cols('e')} FROM harness_events e
        WHERE e.session_key = @key AND e.tool_use_id = ANY(@ids::text[]) AND (e.tx, e.ord) <= (@snapshot::text::xid8, @snapshot_ord::bigint)
        ORDER BY e.ts_ms, ${d.id('e')}`,
    // One statement, so the sessions, the count and the high water come from one snapshot.
    changedSince: `WITH hw AS (SELECT ${XMIN} AS x),
        ch AS (SELECT e.session_key, min(e.source) AS source, max(e.project) AS project, max(e.label) AS label, count(*) AS events, max(e.tx::text::bigint) AS seq
               FROM harness_events e, hw WHERE e.tx > @after::text::xid8 AND e.tx < hw.x GROUP BY e.session_key)
        SELECT (SELECT x::text::bigint - 1 FROM hw) AS hw, (SELECT coalesce(sum(events), 0) FROM ch) AS events, (SELECT count(*) FROM ch) AS touched,
          (SELECT coalesce(json_agg(l ORDER BY l.seq), '[]'::json) FROM (SELECT * FROM ch ORDER BY seq LIMIT @limit) AS l) AS sessions`,
  };
}

type Name = keyof ReturnType<typeof statements>;
const compiled = Object.fromEntries(Object.entries(statements()).map(([k, v]) => [k, positional(v)])) as Record<Name, { text: string; names: string[] }>;

export class PostgresSessionReads implements SessionReader {
  readonly sharedWriters = true;

  constructor(private readonly query: Query) {}

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
    return (await this.run<EventRow & Record<string, unknown>>('page', { key, snapshot: pos.snapshot, ts_ms: pos.ts_ms, event_id: pos.event_id, limit }));
  }

  async since(key: string, after: Position, limit: number): Promise<EventRow[]> {
    return this.run<EventRow & Record<string, unknown>>('since', { key, after: after.seq, after_ord: after.ord ?? ALL_ROWS, limit });
  }

  async toolUses(key: string, toolUseIds: string[], upTo: Position = { seq: Number.MAX_SAFE_INTEGER }): Promise<Map<string, EventRow[]>> {
    if (toolUseIds.length === 0) return new Map();
    return byToolUse(await this.run<EventRow & Record<string, unknown>>('byToolUses', { key, ids: toolUseIds, snapshot: upTo.seq, snapshot_ord: upTo.ord ?? ALL_ROWS }));
  }

  async event(eventId: string): Promise<(EventRow & { session_key: string }) | undefined> {
    return (await this.run<EventRow & { session_key: string } & Record<string, unknown>>('one', { event_id: eventId }))[0];
  }

  async contextBody(key: string): Promise<string | undefined> {
    return (await this.run<{ body: string }>('context', { key }))[0]?.body;
  }

  async subagents(key: string): Promise<SubagentRow[]> {
    return (await this.run<SubagentRow & Record<string, unknown>>('subagents', { key })).map((r) => ({ ...r, events: Number(r.events), tokens: Number(r.tokens), cost_usd: Number(r.cost_usd) }));
  }

  async endEvent(key: string): Promise<EventRow | undefined> {
    return (await this.run<EventRow & Record<string, unknown>>('endEvent', { key }))[0];
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
    return this.run<WaitingRow & Record<string, unknown>>('waiting', { from: fromMs, limit });
  }

  /** EXPLAIN of a statement with these parameters (for tests that show a read does not scan harness_events). */
  async explain(name: Exclude<Name, 'session' | 'resolve' | 'one' | 'highWater'> | SharedStatement, params: Record<string, unknown>): Promise<string[]> {
    const s = compiled[name];
    return (await this.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${s.text}`, s.names.map((n) => params[n]))).map((r) => r['QUERY PLAN']);
  }
}
