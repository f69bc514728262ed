/**
 * The PostgreSQL store: several `serve` replicas on one database, through `pg`
 * and a connection pool per replica.
 *
 * One group commit is one transaction: the events are inserted in one statement
 * (`ON CONFLICT DO NOTHING`: the database decides which replica stored an event
 * first), then only the newly stored ones are folded by fold.ts and written as
 * `INSERT … ON CONFLICT DO UPDATE` upserts whose updates commute (sums, min,
 * max, first non-null, latest by timestamp), so concurrent transactions of
 * several replicas give the same rows as one collector would. Every statement
 * takes its row locks in one global order (event ids, then session ids, then
 * counter series, all sorted) so two transactions cannot deadlock on each other;
 * if the server still reports one (or a serialization failure) the transaction
 * is run again. COMMIT returns after the WAL is flushed (synchronous_commit is
 * PostgreSQL's default), before the caller answers 2xx.
 *
 * When the server goes away (restart, failover, too many connections) calls
 * reject with StoreUnavailableError (HTTP 503 + Retry-After); the pool opens
 * fresh connections on the next call, so a replica recovers without a restart.
 */
import { Pool, types as pgTypes, type PoolClient, type PoolConfig } from 'pg';
import type { HarnessEvent } from '../../event';
import type { MetricSlot } from '../metric-limits';
import { applyCompletions, factIdText, factsOf, foldEvents, labelsText, type CompletionState, type FactId, type FactRow } from '../fold';
import { checkedLastSeen, dimValue, RollupDelta, ROLLUP_VALUES, rollupSql, toolDays, toolHourRollups, toolRollupSql, toRollupSum, utcDay, type LastSeen, type LastSeenRow, type RollupQuery, type RollupSum, type ToolHourRow, type ToolRollupQuery } from '../rollups';
import { redactUrl, StoreUnavailableError, SWEEP_CHUNK, SWEEP_PERIOD_MS, type CounterTotal, type Filters, type IngestOutcome, type IngestTotals, type RebuildResult, type SessionFilter, type SessionRow, type Store, type StoreOptions, type SweepResult, type ToolRow, type ToolSum } from './index';
import { compactRow, factKeyOf, factKeyText, factPartTexts, partTexts, PG_EVENT_COLUMNS, withPartIds } from './event-rows-postgres';
import { PART_ID, PostgresEventParts } from './event-parts-postgres';
import { PostgresCounterSeries, type StagedSeries } from './counter-series-postgres';
import { POSTGRES_MIGRATIONS } from './migrations/postgres';
import { PostgresSessionReads } from './session-reads-postgres';
import { completionSet, pageOf, SESSION_DELTA_COLUMNS, sessionMergeSet, sessionWhere, TOOL_EVENTS_SQL, toolEventOf, toolSumsSql, toolWhere, topToolsSql, toSession, ACTIVE_WINDOW_MS } from './rows';

/** pg_advisory_xact_lock key held while migrating ("cm-migr" as digits, any constant works). */
const MIGRATION_LOCK = 6_373_609_105;
/** Counter rows per series (counter_values' shards). */
const COUNTER_SHARDS = 16;
const ph = (i: number) => `$${i}`;
/** This backend's shard of a spread-out row (counters, rollups, totals). */
const SHARD = `(pg_backend_pid() % ${COUNTER_SHARDS})::smallint`;
/**
 * The sum of a value spread over shards, exact and the same whatever order the rows are read in, so
 * a counter never appears to step back between two scrapes (Prometheus would see a reset): whole
 * values (counts, nine rows in ten) add exactly as doubles; only fractions (costs, seconds) go
 * through numeric, whose cast per row was half of the scrape's time (docs/benchmarks.md).
 */
const EXACT_SUM = 'sum(value) FILTER (WHERE value = trunc(value)) AS whole, sum(value::numeric) FILTER (WHERE value <> trunc(value)) AS part';
type ExactSum = { whole: number | null; part: string | null };
const exactSum = (r: ExactSum) => Number(r.whole ?? 0) + Number(r.part ?? 0);

/** A stored session row as rollups.ts reads it; a row with no time yet (this transaction's placeholder) contributes nothing. */
const asSession = (r: Record<string, unknown> | undefined): SessionRow | null => (r === undefined || r.last_seen_ms === null ? null : toSession(r, 0));

/**
 * PostgreSQL text cannot hold U+0000 (SQLite can): in anything this store
 * writes or looks up it becomes U+FFFD, so such input is stored, not a 5xx.
 */
const clean = (s: string) => (s.includes('\u0000') ? s.replaceAll('\u0000', '\uFFFD') : s);
/** JSON for a statement parameter; the replacer runs only when a NUL could be inside. */
function json(v: unknown): string {
  const text = JSON.stringify(v);
  return text.includes('\\u0000') ? JSON.stringify(v, (_k, x: unknown) => (typeof x === 'string' ? clean(x) : x)) : text;
}
const cleanParams = (params: unknown[]) => params.map((p) => (typeof p === 'string' ? clean(p) : p));

/** int8 and numeric as JS numbers: ms timestamps and token counts stay far below 2^53. */
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === 20 || oid === 1700 ? (v: string) => Number(v) : pgTypes.getTypeParser(oid, format))) as typeof pgTypes.getTypeParser,
};

/** SQLSTATE classes and codes that mean "the server cannot do it now", not "the statement is wrong". */
const UNAVAILABLE_STATES = /^(08|53|57P0[1-4]|58|25006|55P03|57014|40001|40P01)/;
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);
const RETRY_STATES = new Set(['40001', '40P01']);

/** The connection is gone (as opposed to an error the server answered on a working connection). */
function connectionLost(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (e?.code && NETWORK_CODES.has(e.code)) return true;
  if (e?.code && /^(08|57P0[1-3])/.test(e.code)) return true;
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|not queryable|Connection closed/i.test(e?.message ?? '');
}

function unavailable(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return connectionLost(err) || (typeof code === 'string' && UNAVAILABLE_STATES.test(code));
}

function asStoreError(err: unknown): unknown {
  if (!unavailable(err)) return err;
  const e = err as { code?: string; message?: string };
  return new StoreUnavailableError(`PostgreSQL: ${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}`, 1, err);
}

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly location: string;
  activeWindowMs = ACTIVE_WINDOW_MS;
  readonly pool: Pool;
  private readonly guarded = new WeakSet<PoolClient>();
  /** Counter series ids and names seen by this replica (counter-series-postgres.ts). */
  private readonly series = new PostgresCounterSeries();
  /** Interned layouts and contexts of the compact event rows (migration 8). */
  private readonly parts = new PostgresEventParts((sql, params) => this.query(sql, params));
  private readonly log: NonNullable<StoreOptions['log']>;

  /** Connects, applies the migrations this replica knows (once across replicas) and returns the store. */
  static async open(url: string, opts: StoreOptions = {}): Promise<PostgresStore> {
    const store = new PostgresStore(url, opts);
    try {
      await store.migrate();
    } catch (err) {
      await store.pool.end().catch(() => undefined);
      throw err;
    }
    return store;
  }

  private constructor(url: string, opts: StoreOptions) {
    this.location = redactUrl(url);
    this.log = opts.log ?? (() => undefined);
    const config: PoolConfig = {
      connectionString: url,
      max: opts.poolSize ?? 10,
      // A server that does not answer costs a request a few seconds, not forever.
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: 'claude-metrics serve',
      statement_timeout: 30_000,
      // A connection that hangs (a partition, a blackholed server) fails the call instead of holding it for minutes.
      query_timeout: 35_000,
      idle_in_transaction_session_timeout: 60_000,
      types: TYPES,
    };
    this.pool = new Pool(config);
    // An idle connection the server closed (restart, failover): the pool drops it and opens another when needed.
    this.pool.on('error', (err) => this.log('PostgreSQL connection lost', { error: err.message }));
  }

  private async connect(): Promise<PoolClient> {
    const c = await this.pool.connect();
    if (!this.guarded.has(c)) {
      // Errors of a checked-out connection also reach its pending query; this keeps them from being unhandled.
      c.on('error', () => undefined);
      this.guarded.add(c);
    }
    return c;
  }

  private async migrate(): Promise<void> {
    const c = await this.connect();
    try {
      await c.query('BEGIN');
      // Replicas starting together queue here; the first applies, the others find the versions recorded.
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      // A migration over a big table (every stored event) may take longer than any request should.
      await c.query('SET LOCAL statement_timeout = 0');
      await c.query('CREATE TABLE IF NOT EXISTS claude_metrics_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())');
      const version = Number((await c.query('SELECT coalesce(max(version), 0) AS v FROM claude_metrics_migrations')).rows[0].v);
      if (version > POSTGRES_MIGRATIONS.length) throw new Error(`database schema version ${version} is newer than this collector (${POSTGRES_MIGRATIONS.length}); upgrade claude-metrics`);
      for (let v = version; v < POSTGRES_MIGRATIONS.length; v++) {
        await c.query(POSTGRES_MIGRATIONS[v]!.sql);
        await c.query('INSERT INTO claude_metrics_migrations (version, name) VALUES ($1, $2)', [v + 1, POSTGRES_MIGRATIONS[v]!.name]);
      }
      // A migration that added aggregate tables leaves them to be filled from the stored sessions (still under the migration lock).
      if ((await c.query("SELECT 1 FROM aggregates_state WHERE name = 'rebuild' AND value = 'due'")).rowCount) await this.rebuildIn(c);
      await c.query('COMMIT');
      c.release();
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      c.release(err as Error);
      throw err;
    }
  }

  /**
   * Runs fn in a transaction. A deadlock or serialization failure runs it again;
   * a pooled connection found dead before COMMIT was sent is replaced once (the
   * server restarted since it was opened). Anything else rejects, the
   * unavailable kinds as StoreUnavailableError.
   */
  private async tx<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    let staleRetried = false;
    for (let attempt = 0; ; attempt++) {
      let c: PoolClient;
      try {
        c = await this.connect();
      } catch (err) {
        throw asStoreError(err);
      }
      let committing = false;
      try {
        await c.query('BEGIN');
        const r = await fn(c);
        committing = true;
        await c.query('COMMIT');
        c.release();
        return r;
      } catch (err) {
        const lost = connectionLost(err);
        if (lost) c.release(err as Error);
        else {
          const rolledBack = await c.query('ROLLBACK').then(
            () => true,
            () => false,
          );
          c.release(rolledBack ? undefined : (err as Error));
        }
        const code = (err as { code?: string }).code ?? '';
        if (RETRY_STATES.has(code) && attempt < 5) continue;
        // After COMMIT was sent we cannot know whether it happened: the caller answers 503 and the
        // emitter's retry finds the events stored (a duplicate, counted once) or stores them.
        if (lost && !committing && !staleRetried) {
          staleRetried = true;
          continue;
        }
        throw asStoreError(err);
      }
    }
  }

  /** One statement outside a transaction, with the same retry of a stale connection. */
  private async query<R extends Record<string, unknown> = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.pool.query(sql, cleanParams(params))).rows as R[];
      } catch (err) {
        if (connectionLost(err) && attempt === 0) continue;
        throw asStoreError(err);
      }
    }
  }

  async ingestMany(input: HarnessEvent[][], receivedMs = Date.now()): Promise<IngestOutcome[]> {
    if (input.every((g) => g.length === 0)) return input.map(() => ({ accepted: 0, duplicates: 0 }));
    let groups = input;
    let encoded = groups.flat().map((e) => compactRow(e, receivedMs));
    if (encoded.some((r) => r.nul)) {
      // Rare: clean the events themselves, so ids, keys and facts agree everywhere below.
      groups = groups.map((g) => g.map((e) => JSON.parse(JSON.stringify(e), (_k, x: unknown) => (typeof x === 'string' ? clean(x) : x)) as HarnessEvent));
      encoded = groups.flat().map((e) => compactRow(e, receivedMs));
    }
    // The session keys, layouts and contexts get their ids first, in statements of their own (event-parts-postgres.ts).
    const ids = await this.parts.ids([...partTexts(encoded), ...factPartTexts(groups.flat())]);
    const eventRows = JSON.stringify(encoded.map((r) => withPartIds(r, ids)));
    const cols = PG_EVENT_COLUMNS.join(', ');
    const staged: StagedSeries = new Map();
    const outcomes = await this.tx(async (c) => {
      // Sorted by id: two replicas given the same events in another order wait for each other, never in a cycle.
      const inserted = await c.query<{ event_id: string }>(
        `INSERT INTO harness_events (${cols}) SELECT ${cols} FROM json_populate_recordset(NULL::harness_events, $1::json) ORDER BY event_id ON CONFLICT (event_id) DO NOTHING RETURNING event_id`,
        [eventRows],
      );
      const fresh = new Set(inserted.rows.map((r) => r.event_id));
      const stored: HarnessEvent[] = [];
      let duplicates = 0;
      const outcomes = groups.map((g) => {
        const o = { accepted: 0, duplicates: 0 };
        for (const e of g) {
          // The first occurrence in this transaction is the one stored; a repeat is a duplicate.
          if (fresh.delete(e.event_id)) (o.accepted++, stored.push(e));
          else o.duplicates++;
        }
        duplicates += o.duplicates;
        return o;
      });
      const facts = await this.lockFacts(c, stored, ids);
      // Before the fold: it updates `facts` in place, and a call is new when its fact was not stored.
      const tools = toolHourRollups(stored, facts);
      const fold = foldEvents(stored, facts, duplicates);
      if (fold.facts.length > 0) {
        await c.query(
          // Every session key here is interned: this batch's before the transaction, a stored fact's when it was stored.
          `UPDATE harness_facts AS f SET skey = ${PART_ID('w.session_key')}, model = w.model, ts_ms = w.ts_ms, unpriced = w.unpriced, state = w.state
           FROM json_to_recordset($1::json) AS w(sid integer, kind smallint, khash bigint, session_key text, model text, ts_ms bigint, unpriced smallint, state text)
           WHERE f.sid = w.sid AND f.kind = w.kind AND f.khash = w.khash`,
          [json(fold.facts.map((f) => ({ ...factKeyOf(f, ids), session_key: f.session_key, model: f.model, ts_ms: f.ts_ms, unpriced: f.unpriced, state: JSON.stringify(f.state) })))],
        );
      }
      // Each touched session as it was (locked: a new one as a placeholder row, so that a
      // replica folding the same new session waits for this one), then as it becomes: the
      // difference of the two moves its rollup contribution (rollups.ts).
      const before = new Map<string, Record<string, unknown>>();
      const after = new Map<string, Record<string, unknown>>();
      if (fold.sessions.length > 0) {
        const ids = fold.sessions.map((d) => clean(d.id));
        for (const r of (await c.query(`INSERT INTO harness_sessions AS s (id) SELECT id FROM unnest($1::text[]) AS t(id) ORDER BY id ON CONFLICT (id) DO UPDATE SET id = s.id RETURNING s.*`, [ids])).rows) before.set(r.id as string, r);
        const sessionCols = SESSION_DELTA_COLUMNS.map(([col]) => col).join(', ');
        const rows = fold.sessions.map((d) => {
          const o: Record<string, unknown> = {};
          for (const [col, field] of SESSION_DELTA_COLUMNS) o[col] = d[field];
          return o;
        });
        const upserted = await c.query(
          `INSERT INTO harness_sessions AS s (${sessionCols}) SELECT ${sessionCols} FROM json_populate_recordset(NULL::harness_sessions, $1::json) ORDER BY id
           ON CONFLICT (id) DO UPDATE SET ${sessionMergeSet('s', 'least', 'greatest', ' COLLATE "C"')} RETURNING s.*`,
          [json(rows)],
        );
        for (const r of upserted.rows) after.set(r.id as string, r);
      }
      if (fold.completions.length > 0) {
        // These rows were upserted above, so this transaction holds their locks: the state read is the state written.
        const states = new Map<string, CompletionState>();
        for (const x of fold.completions) {
          const r = after.get(clean(x.id));
          if (r) states.set(x.id, { started_ms: r.started_ms as number, completed_ms: r.completed_ms as number | null, completion_event_id: r.completion_event_id as string | null });
        }
        const writes = applyCompletions(states, fold.completions, fold.counters).map(({ labels: _, ...w }) => w);
        if (writes.length > 0) {
          const done = await c.query(
            `UPDATE harness_sessions AS s SET ${completionSet('s', (n) => `c.${n}`)}
             FROM json_to_recordset($1::json) AS c(id text, ts_ms bigint, event_id text, success smallint, exit_code bigint, duration_ms double precision, num_turns bigint,
               input_tokens bigint, output_tokens bigint, cache_creation_input_tokens bigint, cache_read_input_tokens bigint, cost_usd double precision)
             WHERE s.id = c.id RETURNING s.*`,
            [json(writes)],
          );
          for (const r of done.rows) after.set(r.id as string, r);
        }
      }
      const delta = new RollupDelta();
      for (const [id, r] of after) delta.diff(asSession(before.get(id)), asSession(r));
      await this.writeRollups(c, delta);
      await this.writeToolRollups(c, tools);
      const totals: Array<[string, number]> = [];
      if (stored.length > 0) totals.push(['events', stored.length]);
      if (duplicates > 0) totals.push(['duplicates', duplicates]);
      if (totals.length > 0) {
        await c.query(
          `INSERT INTO ingest_totals AS t (name, shard, value) SELECT n, ${SHARD}, v FROM unnest($1::text[], $2::double precision[]) AS x(n, v) ORDER BY n
           ON CONFLICT (name, shard) DO UPDATE SET value = t.value + excluded.value`,
          [totals.map((t) => t[0]), totals.map((t) => t[1])],
        );
      }
      staged.clear(); // a retried transaction stages again
      await this.writeCounters(c, fold.counters.rows(), staged);
      return outcomes;
    });
    this.series.commit(staged);
    return outcomes;
  }

  /**
   * Loads, and locks for this transaction, the facts these events report. A
   * fact two replicas see at once is a row neither has written yet, which a
   * plain SELECT … FOR UPDATE cannot lock; so every fact is upserted first (a
   * new one as a placeholder with an empty state, an existing one with a no-op
   * update that waits for, then returns, the latest committed state), in sorted
   * order. The fold then writes each one's real state in the same transaction.
   */
  private async lockFacts(c: PoolClient, events: HarnessEvent[], partIds: ReadonlyMap<string, number>): Promise<Map<string, FactRow>> {
    const facts = new Map<string, FactRow>();
    const wanted = new Map<string, FactId>();
    const keys = factsOf(events).map((f) => {
      const k = factKeyOf(f, partIds);
      wanted.set(factKeyText(k.sid, k.kind, k.khash), f);
      return k;
    });
    if (keys.length === 0) return facts;
    const rows = await c.query<{ sid: number; kind: number; khash: string; session_key: string; model: string | null; ts_ms: number; unpriced: number; state: string }>(
      `INSERT INTO harness_facts AS f (sid, kind, khash, skey, ts_ms, state)
       SELECT sid, kind, khash, 0, 0, '' FROM json_to_recordset($1::json) AS w(sid integer, kind smallint, khash bigint) ORDER BY sid, kind, khash
       ON CONFLICT (sid, kind, khash) DO UPDATE SET state = f.state
       RETURNING f.sid, f.kind, f.khash, (SELECT k.text FROM harness_event_parts k WHERE k.id = f.skey) AS session_key, f.model, f.ts_ms, f.unpriced, f.state`,
      [JSON.stringify(keys)],
    );
    for (const r of rows.rows) {
      if (r.state === '') continue; // new: no report stored yet
      const f = wanted.get(factKeyText(r.sid, r.kind, r.khash));
      if (f) facts.set(factIdText(f), { session_key: r.session_key, model: r.model, ts_ms: r.ts_ms, unpriced: r.unpriced, state: JSON.parse(r.state) as unknown });
    }
    return facts;
  }

  /** Adds a transaction's rollup changes to this backend's shard of each row, in key order (the lock order). */
  private async writeRollups(c: PoolClient, delta: RollupDelta): Promise<void> {
    // One additive upsert per session rollup table. `order` is its key in the order rows are locked
    // (text bytewise where it was: two replicas take their locks in the same order).
    const add = async (table: string, order: string[], rows: unknown[]) => {
      if (rows.length === 0) return;
      const cols = ROLLUP_VALUES.join(', ');
      const keys = order.map((o) => o.split(' ')[0]).join(', ');
      await c.query(
        `INSERT INTO ${table} AS r (${keys}, shard, ${cols})
         SELECT ${keys}, ${SHARD}, ${cols} FROM json_populate_recordset(NULL::${table}, $1::json)
         ORDER BY ${order.join(', ')}
         ON CONFLICT (${keys}, shard) DO UPDATE SET ${ROLLUP_VALUES.map((v) => `${v} = r.${v} + excluded.${v}`).join(', ')}`,
        [json(rows)],
      );
    };
    const C = (k: string) => `${k} COLLATE "C"`;
    await add('session_rollups', ['day', 'seen_day', C('source'), C('project'), C('label')], delta.rows());
    await add('session_dim_rollups', ['dim', C('value'), 'day', 'seen_day'], delta.dimRows());
    await add('session_hour_rollups', ['hour', C('source'), C('project'), C('label')], delta.hourRows());
    const lastSeen = delta.lastSeen();
    if (lastSeen.length > 0) {
      // A MAX: commutes with every other replica's, and writing it again changes nothing.
      await c.query(
        `INSERT INTO session_last_seen AS r (source, project, label, shard, last_seen_ms)
         SELECT source, project, label, ${SHARD}, last_seen_ms FROM json_populate_recordset(NULL::session_last_seen, $1::json)
         ORDER BY source COLLATE "C", project COLLATE "C", label COLLATE "C"
         ON CONFLICT (source, project, label, shard) DO UPDATE SET last_seen_ms = greatest(r.last_seen_ms, excluded.last_seen_ms)`,
        [json(lastSeen)],
      );
    }
    const filters = delta.filters();
    if (filters.length > 0) {
      await c.query(
        `INSERT INTO filter_values AS f (dim, value, shard, sessions) SELECT d, v, ${SHARD}, n FROM unnest($1::text[], $2::text[], $3::bigint[]) AS x(d, v, n) ORDER BY d, v COLLATE "C"
         ON CONFLICT (dim, value, shard) DO UPDATE SET sessions = f.sessions + excluded.sessions`,
        [filters.map((f) => f.dim), filters.map((f) => clean(f.value)), filters.map((f) => f.sessions)],
      );
    }
  }

  private async writeToolRollups(c: PoolClient, hours: ToolHourRow[]): Promise<void> {
    if (hours.length === 0) return;
    // The same additive upsert into the hourly table and the daily one (keyed by `hour` or `day`).
    const upsert = (table: 'tool_hour_rollups' | 'tool_rollups', bucket: 'hour' | 'day', rows: unknown[]) =>
      c.query(
        `INSERT INTO ${table} AS r (dim, value, ${bucket}, tool, shard, calls, failures, dur_sum, dur_count)
         SELECT dim, value, ${bucket}, tool, ${SHARD}, calls, failures, dur_sum, dur_count FROM json_populate_recordset(NULL::${table}, $1::json)
         ORDER BY dim, value COLLATE "C", ${bucket}, tool COLLATE "C"
         ON CONFLICT (dim, value, ${bucket}, tool, shard) DO UPDATE SET calls = r.calls + excluded.calls, failures = r.failures + excluded.failures,
           dur_sum = r.dur_sum + excluded.dur_sum, dur_count = r.dur_count + excluded.dur_count`,
        [json(rows)],
      );
    await upsert('tool_hour_rollups', 'hour', hours);
    await upsert('tool_rollups', 'day', toolDays(hours));
  }

  /** Adds to this backend's shard of each series, in series-id order (the lock order); new series are added first (counter-series-postgres.ts). */
  private async writeCounters(c: PoolClient, rows: ReadonlyArray<{ metric: string; labels: string; by: number }>, staged: StagedSeries): Promise<void> {
    if (rows.length === 0) return;
    const ids = await this.series.ids(c, rows, staged);
    await c.query(
      `INSERT INTO counter_values AS v (series, shard, value)
       SELECT s, ${SHARD}, x FROM unnest($1::int[], $2::double precision[]) AS t(s, x) ORDER BY s
       ON CONFLICT (series, shard) DO UPDATE SET value = v.value + excluded.value`,
      [ids, rows.map((r) => r.by)],
    );
  }

  async countRejects(reason: string, n = 1): Promise<void> {
    if (n > 0) await this.bump('rejects_total', { reason }, n);
  }

  async bump(metric: string, labels: Record<string, string>, by = 1): Promise<void> {
    if (by === 0) return;
    const staged: StagedSeries = new Map();
    await this.tx(async (c) => {
      staged.clear(); // a retried transaction stages again
      await this.writeCounters(c, [{ metric, labels: labelsText(labels), by }], staged);
    });
    this.series.commit(staged);
  }

  async metricSlots(): Promise<MetricSlot[]> {
    const rows = await this.query<{ dimension: string; slot: number; value: string }>('SELECT dimension, slot, value FROM metric_label_slots');
    return rows.map((r) => ({ dimension: r.dimension, slot: Number(r.slot), value: r.value }));
  }

  async claimMetricSlots(slots: MetricSlot[]): Promise<void> {
    if (slots.length === 0) return;
    // One statement: a slot or a value another replica took first is skipped (either unique key).
    await this.query(
      `INSERT INTO metric_label_slots (dimension, slot, value) SELECT * FROM unnest($1::text[], $2::int[], $3::text[]) ON CONFLICT DO NOTHING`,
      [slots.map((s) => s.dimension), slots.map((s) => s.slot), slots.map((s) => s.value)],
    );
  }

  async counters(): Promise<CounterTotal[]> {
    // Summed over the shards exactly (EXACT_SUM).
    const rows = await this.query<{ series: number } & ExactSum>(`SELECT series, ${EXACT_SUM} FROM counter_values GROUP BY series`);
    const names = await this.series.names((sql, params) => this.query(sql, params), rows.map((r) => r.series));
    return rows.map((r) => {
      const n = names.get(r.series)!;
      return { metric: n.metric, labels: n.labels, value: exactSum(r) };
    });
  }

  async sessions(f: SessionFilter, now = Date.now()): Promise<{ sessions: SessionRow[]; total: number }> {
    const w = sessionWhere(f, ph);
    const { limit, offset } = pageOf(f);
    const n = w.params.length;
    const [count, rows] = await Promise.all([
      this.query<{ n: number }>(`SELECT count(*) AS n FROM harness_sessions ${w.sql}`, w.params),
      this.query(`SELECT * FROM harness_sessions ${w.sql} ORDER BY started_ms DESC, id LIMIT $${n + 1} OFFSET $${n + 2}`, [...w.params, limit, offset]),
    ]);
    return { sessions: rows.map((r) => toSession(r, now, this.activeWindowMs)), total: Number(count[0]!.n) };
  }

  async allSessions(f: SessionFilter, now = Date.now()): Promise<SessionRow[]> {
    const w = sessionWhere(f, ph);
    return (await this.query(`SELECT * FROM harness_sessions ${w.sql}`, w.params)).map((r) => toSession(r, now, this.activeWindowMs));
  }

  async topTools(f: SessionFilter, limit = 10): Promise<ToolRow[]> {
    const w = toolWhere(f, ph);
    const rows = await this.query<{ tool: string; calls: number; failures: number; avg_duration_ms: number | null }>(topToolsSql(w.sql, `$${w.params.length + 1}`, ' COLLATE "C"'), [...w.params, limit]);
    return rows.map((r) => ({ tool: r.tool, calls: Number(r.calls), failures: Number(r.failures), avg_duration_ms: r.avg_duration_ms === null ? null : Math.round(Number(r.avg_duration_ms)) }));
  }

  async unpricedModels(limit = 20): Promise<Array<{ model: string; requests: number }>> {
    const rows = await this.query<{ model: string; requests: number }>(
      `SELECT coalesce(model, 'unknown') COLLATE "C" AS model, count(*) AS requests FROM harness_facts WHERE unpriced = 1 GROUP BY 1 ORDER BY requests DESC, model LIMIT $1`,
      [limit],
    );
    return rows.map((r) => ({ model: r.model, requests: Number(r.requests) }));
  }

  async filters(): Promise<Filters> {
    // COLLATE "C": the same order as SQLite's (bytewise), whatever the database's locale.
    const rows = await this.query<{ dim: string; v: string }>(`SELECT dim, value COLLATE "C" AS v FROM filter_values GROUP BY dim, value HAVING sum(sessions) > 0 ORDER BY dim, v`);
    const col = (dim: string) => rows.filter((r) => r.dim === dim).map((r) => r.v).slice(0, 500);
    return { sources: col('source'), projects: col('project'), labels: col('label') };
  }

  async toolRollupSums(q: ToolRollupQuery): Promise<ToolSum[] | null> {
    const w = toolRollupSql(q, ph);
    if (w === null) return null;
    return (await this.query<Record<string, unknown>>(w.sql, w.params)).map((r) => ({ tool: r.tool as string, calls: Number(r.calls), failures: Number(r.failures), dur_sum: Number(r.dur_sum), dur_count: Number(r.dur_count) }));
  }

  async toolSums(f: SessionFilter): Promise<ToolSum[]> {
    const w = toolWhere(f, ph);
    return (await this.query<Record<string, unknown>>(toolSumsSql(w.sql, ' COLLATE "C"'), w.params)).map((r) => ({ tool: r.tool as string, calls: Number(r.calls), failures: Number(r.failures), dur_sum: Number(r.dur_sum), dur_count: Number(r.dur_count) }));
  }

  async rollupSums(q: RollupQuery): Promise<RollupSum[]> {
    const { sql, params } = rollupSql(q, ph);
    return (await this.query(sql, params)).map(toRollupSum);
  }

  async ingestTotals(): Promise<IngestTotals> {
    const [totals, rejects] = await Promise.all([
      this.query<{ name: string } & ExactSum>(`SELECT name, ${EXACT_SUM} FROM ingest_totals GROUP BY name`),
      this.query<{ labels: string } & ExactSum>(`SELECT labels, ${EXACT_SUM} FROM counters WHERE metric = 'rejects_total' GROUP BY labels`),
    ]);
    const t = new Map(totals.map((r) => [r.name, exactSum(r)]));
    const byReason: Record<string, number> = {};
    for (const r of rejects) {
      const reason = (JSON.parse(r.labels) as { reason?: string }).reason ?? 'unknown';
      byReason[reason] = (byReason[reason] ?? 0) + exactSum(r);
    }
    return { events: t.get('events') ?? 0, duplicates: t.get('duplicates') ?? 0, rejects: byReason };
  }

  async lastSeen(sinceMs: number): Promise<LastSeen[]> {
    const { latest, stale } = await checkedLastSeen(
      await this.query<LastSeenRow & Record<string, unknown>>('SELECT source, project, label, max(last_seen_ms) AS last_seen_ms FROM session_last_seen WHERE last_seen_ms >= $1 GROUP BY source, project, label', [sinceMs]),
      async (times) => this.query<LastSeen & Record<string, unknown>>('SELECT source, project, label, last_seen_ms FROM harness_sessions WHERE last_seen_ms = ANY($1::bigint[])', [times]),
      async () => this.query<LastSeen & Record<string, unknown>>('SELECT source, project, label, max(last_seen_ms) AS last_seen_ms FROM harness_sessions WHERE last_seen_ms >= $1 GROUP BY source, project, label', [sinceMs]),
    );
    if (stale.length > 0) await this.repairLastSeen(stale).catch(() => undefined); // a later scrape repairs
    return latest;
  }

  /**
   * Stale session_last_seen entries set to their combination's true latest time, safe against
   * concurrent ingest: the combination's rows not above the stale time are deleted first (a row an
   * ingest raised meanwhile stays; one it holds is waited for), the sessions are read only after that
   * (READ COMMITTED: a new snapshot per statement, so every session committed before the delete is
   * seen, and one committed after it raised its own entry), and the result goes back as a MAX.
   */
  private async repairLastSeen(stale: LastSeenRow[]): Promise<void> {
    const sorted = [...stale].sort((a, b) => (a.source + '\u0000' + a.project + '\u0000' + a.label < b.source + '\u0000' + b.project + '\u0000' + b.label ? -1 : 1));
    await this.tx(async (c) => {
      for (const e of sorted) {
        await c.query('DELETE FROM session_last_seen WHERE source = $1 AND project = $2 AND label = $3 AND last_seen_ms <= $4', [e.source, e.project, e.label, e.last_seen_ms]);
        const m = (await c.query<{ m: number | null }>('SELECT max(last_seen_ms) AS m FROM harness_sessions WHERE source IS NOT DISTINCT FROM $1 AND project IS NOT DISTINCT FROM $2 AND label IS NOT DISTINCT FROM $3', [dimValue(e.source), dimValue(e.project), dimValue(e.label)])).rows[0]!.m;
        if (m !== null) {
          await c.query(
            `INSERT INTO session_last_seen AS r (source, project, label, shard, last_seen_ms) VALUES ($1, $2, $3, ${SHARD}, $4)
             ON CONFLICT (source, project, label, shard) DO UPDATE SET last_seen_ms = greatest(r.last_seen_ms, excluded.last_seen_ms)`,
            [e.source, e.project, e.label, m],
          );
        }
      }
    });
  }

  async rebuildAggregates(): Promise<RebuildResult> {
    return this.tx((c) => this.rebuildIn(c));
  }

  /**
   * The aggregates from scratch, in the caller's transaction. The exclusive lock on the
   * rollup tables makes a replica's ingest wait at its rollup write (its session rows are
   * already changed, not yet committed, so not in what this reads): after this commits it
   * adds its own difference on top, and nothing is counted twice or lost.
   */
  private async rebuildIn(c: PoolClient): Promise<RebuildResult> {
    await c.query('LOCK TABLE session_rollups, session_dim_rollups, session_hour_rollups, session_last_seen, tool_rollups, tool_hour_rollups, filter_values, ingest_totals IN EXCLUSIVE MODE');
    await c.query('DELETE FROM session_rollups; DELETE FROM session_dim_rollups; DELETE FROM session_hour_rollups; DELETE FROM session_last_seen; DELETE FROM tool_rollups; DELETE FROM tool_hour_rollups; DELETE FROM filter_values; DELETE FROM ingest_totals');
    const delta = new RollupDelta();
    let sessions = 0;
    // A cursor-free walk by id in pages: bounded memory for the rows, whatever the table's size.
    let lastId = '';
    for (;;) {
      const page = (await c.query('SELECT * FROM harness_sessions WHERE id > $1 ORDER BY id LIMIT 5000', [lastId])).rows;
      if (page.length === 0) break;
      for (const r of page) delta.diff(null, asSession(r));
      sessions += page.length;
      lastId = page[page.length - 1]!.id as string;
    }
    await this.writeRollups(c, delta);
    // Tool calls from the stored events in time order: each call's first report counts it, as at ingest.
    const toolHours = toolHourRollups((await c.query(`${TOOL_EVENTS_SQL} COLLATE "C"`)).rows.map(toolEventOf), new Map());
    // In pages; a day row whose hours fall into two pages is added to twice, which sums the same.
    const tools = toolDays(toolHours);
    for (let i = 0; i < toolHours.length; i += 5000) await this.writeToolRollups(c, toolHours.slice(i, i + 5000));
    await c.query(
      `INSERT INTO ingest_totals (name, shard, value)
       SELECT 'events', 0, coalesce(sum(value), 0) FROM counters WHERE metric = 'events_total'
       UNION ALL SELECT 'duplicates', 0, coalesce(sum(value), 0) FROM counters WHERE metric = 'duplicates_total'`,
    );
    await c.query("INSERT INTO aggregates_state (name, value) VALUES ('rebuild', 'done') ON CONFLICT (name) DO UPDATE SET value = excluded.value");
    return { sessions, rollupRows: delta.rows().length + delta.dimRows().length + delta.hourRows().length, toolCalls: tools.reduce((a, t) => a + t.calls, 0), toolRows: tools.length, filterValues: delta.filters().length };
  }

  async eventCount(): Promise<number> {
    return Number((await this.query<{ n: number }>('SELECT count(*) AS n FROM harness_events'))[0]!.n);
  }

  /**
   * Retention, once per period across replicas: a replica claims the period in
   * collector_jobs (a row lock decides between replicas sweeping at once); the
   * others find it claimed and skip. A changed retention setting claims at once.
   * The claiming replica then deletes in transactions of at most SWEEP_CHUNK rows,
   * so ingest never waits behind more than one chunk's row locks; a deleted
   * session's contribution leaves the rollups in its chunk's transaction (rows
   * locked in id order, as ingest locks them). A replica stopped half-way leaves
   * the rest to the next period.
   */
  async sweep(retentionDays: number, now = Date.now(), signal?: AbortSignal, beforeChunk?: () => Promise<void>): Promise<SweepResult> {
    const cutoff = now - retentionDays * 86_400_000;
    const claimed = await this.tx(async (c) => {
      const claim = await c.query(
        `INSERT INTO collector_jobs AS j (name, last_run_ms, setting) VALUES ('retention', $1, $2)
         ON CONFLICT (name) DO UPDATE SET last_run_ms = excluded.last_run_ms, setting = excluded.setting
         WHERE j.last_run_ms <= $3 OR j.setting IS DISTINCT FROM excluded.setting RETURNING name`,
        // A minute of slack: replicas' hourly timers drift.
        [now, String(retentionDays), now - SWEEP_PERIOD_MS + 60_000],
      );
      return (claim.rowCount ?? 0) > 0;
    });
    if (!claimed) return { events: 0, sessions: 0, facts: 0, skipped: true };
    // A sweep stopped or failed part-way gives its claim back, so the next start (of any replica)
    // goes on from what is left instead of waiting out the period.
    const release = () => this.query(`UPDATE collector_jobs SET last_run_ms = 0 WHERE name = 'retention' AND last_run_ms = $1`, [now]).catch(() => undefined);
    try {
      const out = await this.sweepClaimed(cutoff, signal, beforeChunk);
      if (out.stopped) await release();
      return out;
    } catch (err) {
      await release();
      throw err;
    }
  }

  private async sweepClaimed(cutoff: number, signal: AbortSignal | undefined, beforeChunk: (() => Promise<void>) | undefined): Promise<SweepResult> {
    const out: SweepResult = { events: 0, sessions: 0, facts: 0, chunks: 0, longestChunkMs: 0 };
    const chunked = async (step: (c: PoolClient) => Promise<number>): Promise<number> => {
      let total = 0;
      for (;;) {
        await beforeChunk?.();
        if (signal?.aborted) return total;
        const t0 = performance.now();
        const n = await this.tx(step);
        out.longestChunkMs = Math.max(out.longestChunkMs!, Math.round(performance.now() - t0));
        if (n === 0) return total;
        total += n;
        out.chunks!++;
      }
    };
    out.sessions = await chunked(async (c) => {
      const gone = await c.query(
        `DELETE FROM harness_sessions WHERE id IN (SELECT id FROM harness_sessions WHERE last_seen_ms < $1 ORDER BY id LIMIT $2 FOR UPDATE) RETURNING *`,
        [cutoff, SWEEP_CHUNK],
      );
      const delta = new RollupDelta();
      for (const r of gone.rows) delta.diff(asSession(r), null);
      await this.writeRollups(c, delta);
      return gone.rowCount ?? 0;
    });
    out.events = await chunked(async (c) => (await c.query('DELETE FROM harness_events WHERE ctid = ANY(ARRAY(SELECT ctid FROM harness_events WHERE ts_ms < $1 LIMIT $2))', [cutoff, SWEEP_CHUNK])).rowCount ?? 0);
    // Facts have no time index (migration 7): each chunk reads the next SWEEP_CHUNK in key order
    // and deletes the old ones among them; `ts_ms < cutoff` again in the DELETE, so a fact an
    // ingest made fresh meanwhile is kept (the condition is checked on the row's latest version).
    let at: [number, number, string] | null = null;
    let walked = false;
    await chunked(async (c) => {
      if (walked) return 0;
      const rows = (
        await c.query<{ sid: number; kind: number; khash: string; ts_ms: string }>(
          at === null
            ? 'SELECT sid, kind, khash, ts_ms FROM harness_facts ORDER BY sid, kind, khash LIMIT $1'
            : 'SELECT sid, kind, khash, ts_ms FROM harness_facts WHERE (sid, kind, khash) > ($2, $3, $4) ORDER BY sid, kind, khash LIMIT $1',
          at === null ? [SWEEP_CHUNK] : [SWEEP_CHUNK, ...at],
        )
      ).rows;
      if (rows.length < SWEEP_CHUNK) walked = true;
      if (rows.length === 0) return 0;
      const last = rows[rows.length - 1]!;
      at = [last.sid, last.kind, last.khash];
      const old = rows.filter((r) => Number(r.ts_ms) < cutoff);
      if (old.length > 0) {
        const gone = await c.query(
          'DELETE FROM harness_facts WHERE (sid, kind, khash) IN (SELECT * FROM unnest($1::integer[], $2::smallint[], $3::bigint[])) AND ts_ms < $4',
          [old.map((r) => r.sid), old.map((r) => r.kind), old.map((r) => r.khash), cutoff],
        );
        out.facts += gone.rowCount ?? 0;
      }
      return rows.length;
    });
    if (signal?.aborted) return { ...out, stopped: true };
    // Tool calls of whole days before the cutoff (their events are gone).
    await this.query('DELETE FROM tool_rollups WHERE day < $1', [utcDay(cutoff)]);
    await this.query('DELETE FROM tool_hour_rollups WHERE hour < $1', [utcDay(cutoff)]);
    // Every session last seen before the cutoff is gone: so is any last-seen entry that old (it can only be too high, never too low).
    await this.query('DELETE FROM session_last_seen WHERE last_seen_ms < $1', [cutoff]);
    if (out.sessions > 0) {
      // Rows every session has left add nothing; they would only be read.
      const zero = ROLLUP_VALUES.map((v) => `${v} = 0`).join(' AND ');
      await this.query(`DELETE FROM session_rollups WHERE ${zero}`);
      await this.query(`DELETE FROM session_dim_rollups WHERE ${zero}`);
      await this.query(`DELETE FROM session_hour_rollups WHERE ${zero}`);
      await this.query('DELETE FROM filter_values WHERE sessions = 0');
    }
    return out;
  }

  private reads: PostgresSessionReads | undefined;
  sessionReads(): PostgresSessionReads {
    return (this.reads ??= new PostgresSessionReads((sql, params) => this.query(sql, params), this.parts));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
