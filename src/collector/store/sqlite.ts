/**
 * The SQLite store (the default): better-sqlite3 in WAL mode, versioned
 * migrations, prepared statements. Synchronous underneath; the Store interface
 * is async because PostgreSQL's is, and a resolved promise costs nothing here.
 */
import Database from 'better-sqlite3';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { MetricSlot } from '../metric-limits';
import type { HarnessEvent } from '../../event';
import { LabelSets } from './label-sets';
import { applyCompletions, CounterSet, factIdText, factsOf, foldEvents, labelsText, type CompletionState, type FactRow } from '../fold';
import { checkedLastSeen, dimValue, RollupDelta, ROLLUP_VALUES, rollupSql, toolDays, toolHourRollups, toolRollupSql, toRollupSum, utcDay, type LastSeen, type LastSeenRow, type RollupQuery, type RollupSum, type ToolHourRow, type ToolRollupQuery, type ToolRollupRow } from '../rollups';
import { nextSweepChunk, SWEEP_CHUNK_FIRST, SWEEP_PAUSE_FACTOR, type CounterTotal, type Filters, type IngestOutcome, type IngestTotals, type RebuildResult, type SessionFilter, type SessionRow, type Store, type SweepResult, type ToolRow, type ToolSum } from './index';
import { columnsOf, factKeyHash, joinState } from './event-codec';
import { SQLITE_MIGRATIONS } from './migrations/sqlite';
import { compactEvents, factValues, GET_FACT, INSERT_FACT, INSERT_ROW, Names, rowValues } from './migrations/sqlite-compact-events';
import { sessionKey } from '../normalize';
import { SqliteSessionReads } from './session-reads-sqlite';
import { BACKSTOP_PAGES, WAL_SIZE_LIMIT_BYTES, WalCheckpointer } from './wal-checkpointer';
import { completionSet, pageOf, SESSION_DELTA_COLUMNS, sessionMergeSet, sessionWhere, TOOL_EVENTS_SQL, toolEventOf, toolSumsSql, toolWhere, topToolsSql, toSession, ACTIVE_WINDOW_MS } from './rows';

const q = () => '?';
/** A stored session row as rollups.ts reads it (the `now` of toSession only decides `active`, which rollups do not use). */
const asSession = (r: Record<string, unknown> | undefined): SessionRow | null => (r === undefined || r.last_seen_ms === null ? null : toSession(r, 0));
/** SQLite pages incremental_vacuum gives back per step (1 MB at the default page size): a bounded pause for ingest. */
const VACUUM_STEP_PAGES = 256;

/**
 * The sweep's pause between chunks. It ends in setImmediate, which runs after the poll phase: a request
 * that arrived during the pause is read and ingested before the next chunk, not after it (a timer alone
 * fires before that I/O is looked at).
 */
const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(() => setImmediate(resolve), ms));

/**
 * WAL mode. Switching a new file to it takes an exclusive lock without waiting on the busy
 * timeout, so a second collector opening the same new file at that moment got "database is
 * locked": it retries for a few seconds instead (the switch itself takes milliseconds).
 */
function walMode(db: Database.Database): void {
  const wait = new Int32Array(new SharedArrayBuffer(4));
  for (let attempt = 0; ; attempt++) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || attempt >= 250) throw err;
      Atomics.wait(wait, 0, 0, 20);
    }
  }
}

/** Facts a retention chunk walks per row the other phases' chunks delete (the facts have no time index: it walks them in key order). */
const FACT_SCAN_FACTOR = 10;

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly location: string;
  activeWindowMs = ACTIVE_WINDOW_MS;
  readonly db: Database.Database;
  private readonly stmts: ReturnType<SqliteStore['prepare']>;
  /** Counter labels parsed once per text (label-sets.ts): /metrics reads every counter at each scrape. */
  private readonly labelSets = new LabelSets();
  /** Interned strings of harness_event_rows (shared with the session reads of this connection). */
  readonly names: Names;
  /** Checkpoints the WAL on a worker thread (wal-checkpointer.ts); null in memory, or where workers cannot run. */
  private checkpointer: WalCheckpointer | null = null;

  constructor(path: string, sync: 'normal' | 'full' = process.env.CLAUDE_METRICS_DB_SYNC === 'full' ? 'full' : 'normal') {
    this.location = path;
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      const fresh = !existsSync(path);
      this.db = new Database(path);
      if (fresh) chmodSync(path, 0o600);
      // A new file gives the pages retention frees back to the file system (`PRAGMA incremental_vacuum`
      // after a sweep). It must be set before the first table; an older file keeps NONE (docs/administrators.md: VACUUM).
      if (fresh) this.db.pragma('auto_vacuum = INCREMENTAL');
    } else this.db = new Database(path);
    walMode(this.db);
    // WAL + NORMAL: a commit is in the WAL file before we answer, so an
    // acknowledged event survives a killed or crashed collector (tested with
    // kill -9). FULL would also survive power loss, at an fsync per request
    // (measured: single-event ingest 4x slower); CLAUDE_METRICS_DB_SYNC=full opts in.
    this.db.pragma(`synchronous = ${sync === 'full' ? 'FULL' : 'NORMAL'}`);
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
    if (path !== ':memory:' && process.env.CLAUDE_METRICS_WAL_WORKER !== '0') {
      this.checkpointer = WalCheckpointer.start({
        path,
        sync: sync === 'full' ? 'FULL' : 'NORMAL',
        // Back to checkpointing on this connection, as without the worker.
        onFailure: () => this.db.open && this.db.pragma('wal_autocheckpoint = 1000'),
      });
      if (this.checkpointer) {
        this.db.pragma(`wal_autocheckpoint = ${BACKSTOP_PAGES}`);
        this.db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
      }
    }
    this.names = new Names(this.db);
    this.stmts = this.prepare();
    // A migration that added aggregate tables leaves them to be filled from the stored sessions.
    const state = this.db.prepare("SELECT value FROM aggregates_state WHERE name = 'rebuild'").get() as { value: string } | undefined;
    if (state?.value === 'due') this.rebuildSync();
  }

  /**
   * Applies the migrations this collector knows, all in one IMMEDIATE transaction that
   * reads the version inside it: two collectors starting at once on a new file take
   * turns, and the second finds nothing left to do.
   */
  private migrate(): void {
    const version = this.db
      .transaction(() => {
        const version = this.db.pragma('user_version', { simple: true }) as number;
        if (version > SQLITE_MIGRATIONS.length) throw new Error(`database schema version ${version} is newer than this collector (${SQLITE_MIGRATIONS.length}); upgrade claude-metrics`);
        for (let v = version; v < SQLITE_MIGRATIONS.length; v++) {
          const m = SQLITE_MIGRATIONS[v]!;
          if (typeof m === 'string') this.db.exec(m);
          else m(this.db);
          this.db.pragma(`user_version = ${v + 1}`);
        }
        return version;
      })
      .immediate();
    // An existing file just rewritten into compact rows holds its old pages as free space: give them back once.
    const compacted = SQLITE_MIGRATIONS.indexOf(compactEvents);
    // VACUUM is also when auto_vacuum can change on an existing file: it gets INCREMENTAL, as a new one.
    if (version > 0 && version <= compacted && this.location !== ':memory:') this.db.exec('PRAGMA auto_vacuum = INCREMENTAL; VACUUM');
  }

  private prepare() {
    const db = this.db;
    return {
      insertEvent: db.prepare(INSERT_ROW),
      upsertSession: db.prepare(`INSERT INTO harness_sessions (${SESSION_DELTA_COLUMNS.map(([c]) => c).join(', ')})
        VALUES (${SESSION_DELTA_COLUMNS.map(([, f]) => `@${f}`).join(', ')})
        ON CONFLICT(id) DO UPDATE SET ${sessionMergeSet('harness_sessions', 'min', 'max')} RETURNING *`),
      completionState: db.prepare('SELECT started_ms, completed_ms, completion_event_id FROM harness_sessions WHERE id = ?'),
      setCompletion: db.prepare(`UPDATE harness_sessions SET ${completionSet('harness_sessions', (n) => `@${n}`)} WHERE id = @id RETURNING *`),
      getFact: db.prepare(GET_FACT),
      putFact: db.prepare(INSERT_FACT),
      bump: db.prepare('INSERT INTO counters (metric, labels, value) VALUES (?, ?, ?) ON CONFLICT(metric, labels) DO UPDATE SET value = value + excluded.value'),
      // Rows as arrays: a scrape reads every counter, and an object per row cost twice the read.
      counters: db.prepare('SELECT metric, labels, value FROM counters').raw(true),
      sessionRow: db.prepare('SELECT * FROM harness_sessions WHERE id = ?'),
      addRollup: db.prepare(`INSERT INTO session_rollups (day, seen_day, source, project, label, ${ROLLUP_VALUES.join(', ')})
        VALUES (@day, @seen_day, @source, @project, @label, ${ROLLUP_VALUES.map((v) => `@${v}`).join(', ')})
        ON CONFLICT(day, seen_day, source, project, label) DO UPDATE SET ${ROLLUP_VALUES.map((v) => `${v} = ${v} + excluded.${v}`).join(', ')}`),
      addDimRollup: db.prepare(`INSERT INTO session_dim_rollups (dim, value, day, seen_day, ${ROLLUP_VALUES.join(', ')})
        VALUES (@dim, @value, @day, @seen_day, ${ROLLUP_VALUES.map((v) => `@${v}`).join(', ')})
        ON CONFLICT(dim, value, day, seen_day) DO UPDATE SET ${ROLLUP_VALUES.map((v) => `${v} = ${v} + excluded.${v}`).join(', ')}`),
      addTool: db.prepare(`INSERT INTO tool_rollups (dim, value, day, tool, calls, failures, dur_sum, dur_count) VALUES (@dim, @value, @day, @tool, @calls, @failures, @dur_sum, @dur_count)
        ON CONFLICT(dim, value, day, tool) DO UPDATE SET calls = calls + excluded.calls, failures = failures + excluded.failures, dur_sum = dur_sum + excluded.dur_sum, dur_count = dur_count + excluded.dur_count`),
      addHourRollup: db.prepare(`INSERT INTO session_hour_rollups (hour, source, project, label, ${ROLLUP_VALUES.join(', ')})
        VALUES (@hour, @source, @project, @label, ${ROLLUP_VALUES.map((v) => `@${v}`).join(', ')})
        ON CONFLICT(hour, source, project, label) DO UPDATE SET ${ROLLUP_VALUES.map((v) => `${v} = ${v} + excluded.${v}`).join(', ')}`),
      addHourTool: db.prepare(`INSERT INTO tool_hour_rollups (dim, value, hour, tool, calls, failures, dur_sum, dur_count) VALUES (@dim, @value, @hour, @tool, @calls, @failures, @dur_sum, @dur_count)
        ON CONFLICT(dim, value, hour, tool) DO UPDATE SET calls = calls + excluded.calls, failures = failures + excluded.failures, dur_sum = dur_sum + excluded.dur_sum, dur_count = dur_count + excluded.dur_count`),
      // A MAX: whichever order sessions are written in, and however often, the same row.
      raiseLastSeen: db.prepare(`INSERT INTO session_last_seen (source, project, label, last_seen_ms) VALUES (@source, @project, @label, @last_seen_ms)
        ON CONFLICT(source, project, label) DO UPDATE SET last_seen_ms = excluded.last_seen_ms WHERE excluded.last_seen_ms > last_seen_ms`),
      lastSeenFrom: db.prepare('SELECT source, project, label, last_seen_ms FROM session_last_seen WHERE last_seen_ms >= ?'),
      sessionsSeenAt: db.prepare('SELECT source, project, label, last_seen_ms FROM harness_sessions WHERE last_seen_ms IN (SELECT value FROM json_each(?))'),
      lastSeenOfSessions: db.prepare('SELECT source, project, label, max(last_seen_ms) AS last_seen_ms FROM harness_sessions WHERE last_seen_ms >= ? GROUP BY source, project, label'),
      dropLastSeen: db.prepare('DELETE FROM session_last_seen WHERE source = ? AND project = ? AND label = ? AND last_seen_ms <= ?'),
      latestOfCombo: db.prepare('SELECT max(last_seen_ms) AS m FROM harness_sessions WHERE source IS ? AND project IS ? AND label IS ?'),
      deleteOldLastSeen: db.prepare('DELETE FROM session_last_seen WHERE last_seen_ms < ?'),
      addFilter: db.prepare('INSERT INTO filter_values (dim, value, sessions) VALUES (@dim, @value, @sessions) ON CONFLICT(dim, value) DO UPDATE SET sessions = sessions + excluded.sessions'),
      addTotal: db.prepare('INSERT INTO ingest_totals (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value'),
      totals: db.prepare('SELECT name, value FROM ingest_totals'),
      rejects: db.prepare("SELECT labels, value FROM counters WHERE metric = 'rejects_total'"),
      filterValues: db.prepare('SELECT value FROM filter_values WHERE dim = ? AND sessions > 0 ORDER BY value LIMIT 500'),
      oldSessions: db.prepare('SELECT * FROM harness_sessions WHERE last_seen_ms < ? LIMIT ?'),
      deleteSession: db.prepare('DELETE FROM harness_sessions WHERE id = ?'),
      deleteEvents: db.prepare('DELETE FROM harness_event_rows WHERE seq IN (SELECT seq FROM harness_event_rows WHERE ts_ms < ? LIMIT ?)'),
      deleteOldTools: db.prepare('DELETE FROM tool_rollups WHERE (dim, value, day, tool) IN (SELECT dim, value, day, tool FROM tool_rollups WHERE day < ? LIMIT ?)'),
      deleteZeroRollups: db.prepare(`DELETE FROM session_rollups WHERE (day, seen_day, source, project, label) IN (SELECT day, seen_day, source, project, label FROM session_rollups WHERE ${ROLLUP_VALUES.map((v) => `${v} = 0`).join(' AND ')} LIMIT ?)`),
      deleteZeroDimRollups: db.prepare(`DELETE FROM session_dim_rollups WHERE (dim, value, day, seen_day) IN (SELECT dim, value, day, seen_day FROM session_dim_rollups WHERE ${ROLLUP_VALUES.map((v) => `${v} = 0`).join(' AND ')} LIMIT ?)`),
      deleteOldHourTools: db.prepare('DELETE FROM tool_hour_rollups WHERE (dim, value, hour, tool) IN (SELECT dim, value, hour, tool FROM tool_hour_rollups WHERE hour < ? LIMIT ?)'),
      deleteZeroHourRollups: db.prepare(`DELETE FROM session_hour_rollups WHERE (hour, source, project, label) IN (SELECT hour, source, project, label FROM session_hour_rollups WHERE ${ROLLUP_VALUES.map((v) => `${v} = 0`).join(' AND ')} LIMIT ?)`),
      deleteZeroFilters: db.prepare('DELETE FROM filter_values WHERE (dim, value) IN (SELECT dim, value FROM filter_values WHERE sessions = 0 LIMIT ?)'),
      // Retention's walk over the facts in key order (they have no time index): the key N rows on, then the old ones up to it.
      factAhead: db.prepare('SELECT sid, kind, khash FROM harness_fact_rows WHERE (sid, kind, khash) > (?, ?, ?) ORDER BY sid, kind, khash LIMIT 1 OFFSET ?').raw(),
      deleteOldFacts: db.prepare('DELETE FROM harness_fact_rows WHERE (sid, kind, khash) > (?, ?, ?) AND (sid, kind, khash) <= (?, ?, ?) AND ts_ms < ?'),
      deleteOldFactsToEnd: db.prepare('DELETE FROM harness_fact_rows WHERE (sid, kind, khash) > (?, ?, ?) AND ts_ms < ?'),
      metricSlots: db.prepare('SELECT dimension, slot, value FROM metric_label_slots'),
      claimSlot: db.prepare('INSERT INTO metric_label_slots (dimension, slot, value) VALUES (?, ?, ?) ON CONFLICT DO NOTHING'),
      eventCount: db.prepare('SELECT count(*) AS n FROM harness_event_rows'),
    };
  }

  async ingestMany(groups: HarnessEvent[][], receivedMs = Date.now()): Promise<IngestOutcome[]> {
    try {
      // IMMEDIATE: the transaction reads (interned names, facts) before it writes, and a reader
      // cannot become the writer after another process's commit (SQLITE_BUSY at once, no busy
      // wait); taking the write lock first makes a second collector on the file wait its turn.
      const out = this.db.transaction(() => this.ingestSync(groups, receivedMs)).immediate();
      this.names.commit();
      return out;
    } catch (err) {
      this.names.rollback();
      throw err;
    }
  }

  /** One transaction: insert, fold what was new, write sessions, completions, counters. */
  private ingestSync(groups: HarnessEvent[][], receivedMs: number): IngestOutcome[] {
    const stored: HarnessEvent[] = [];
    let duplicates = 0;
    const outcomes = groups.map((g) => {
      const o = { accepted: 0, duplicates: 0 };
      for (const e of g) {
        const row = rowValues(this.names, columnsOf(e), e as Record<string, unknown>, receivedMs, sessionKey(e));
        if (this.stmts.insertEvent.run(row).changes === 0) o.duplicates++;
        else (o.accepted++, stored.push(e));
      }
      duplicates += o.duplicates;
      return o;
    });
    const facts = new Map<string, FactRow>();
    for (const f of factsOf(stored)) {
      const sid = this.names.find(f.session_id);
      const kind = sid === undefined ? undefined : this.names.find(f.kind);
      const row = kind === undefined ? undefined : (this.stmts.getFact.get(sid, kind, factKeyHash(f.key)) as (Omit<FactRow, 'state'> & { shape: string; vals: string }) | undefined);
      if (row) facts.set(factIdText(f), { session_key: row.session_key, model: row.model, ts_ms: row.ts_ms, unpriced: row.unpriced, state: joinState(row.shape, row.vals) });
    }
    // Before the fold: it updates `facts` in place, and a call is new when its fact was not stored.
    const toolHours = toolHourRollups(stored, facts);
    const fold = foldEvents(stored, facts, duplicates);
    this.writeToolRollups(toolHours);
    for (const f of fold.facts) this.stmts.putFact.run(factValues(this.names, f));
    // Each touched session as it was, to move its rollup contribution to what it becomes (rollups.ts).
    const before = fold.sessions.map((d) => this.stmts.sessionRow.get(d.id) as Record<string, unknown> | undefined);
    const after = new Map<string, Record<string, unknown>>();
    for (const d of fold.sessions) after.set(d.id, this.stmts.upsertSession.get(d) as Record<string, unknown>);
    if (fold.completions.length > 0) {
      const states = new Map<string, CompletionState>();
      // The rows as upserted above are the state each completion is placed on.
      for (const c of fold.completions) if (!states.has(c.id)) states.set(c.id, (after.get(c.id) ?? this.stmts.completionState.get(c.id)) as CompletionState);
      for (const { labels: _, ...c } of applyCompletions(states, fold.completions, fold.counters)) after.set(c.id, this.stmts.setCompletion.get(c) as Record<string, unknown>);
    }
    this.writeCounters(fold.counters);
    const delta = new RollupDelta();
    fold.sessions.forEach((d, i) => delta.diff(asSession(before[i]), asSession(after.get(d.id))));
    this.writeRollups(delta);
    if (stored.length > 0) this.stmts.addTotal.run('events', stored.length);
    if (duplicates > 0) this.stmts.addTotal.run('duplicates', duplicates);
    return outcomes;
  }

  private writeRollups(delta: RollupDelta): void {
    for (const r of delta.rows()) this.stmts.addRollup.run(r);
    for (const r of delta.dimRows()) this.stmts.addDimRollup.run(r);
    for (const r of delta.hourRows()) this.stmts.addHourRollup.run(r);
    for (const r of delta.lastSeen()) this.stmts.raiseLastSeen.run(r);
    for (const f of delta.filters()) this.stmts.addFilter.run(f);
  }

  private writeToolRollups(hours: ToolHourRow[]): void {
    for (const t of toolDays(hours)) this.stmts.addTool.run(t);
    for (const t of hours) this.stmts.addHourTool.run(t);
  }

  private writeCounters(c: CounterSet): void {
    for (const r of c.rows()) this.stmts.bump.run(r.metric, r.labels, r.by);
  }

  async countRejects(reason: string, n = 1): Promise<void> {
    if (n > 0) this.stmts.bump.run('rejects_total', labelsText({ reason }), n);
  }

  async bump(metric: string, labels: Record<string, string>, by = 1): Promise<void> {
    if (by !== 0) this.stmts.bump.run(metric, labelsText(labels), by);
  }

  async metricSlots(): Promise<MetricSlot[]> {
    return this.stmts.metricSlots.all() as MetricSlot[];
  }

  async claimMetricSlots(slots: MetricSlot[]): Promise<void> {
    this.db.transaction(() => {
      for (const s of slots) this.stmts.claimSlot.run(s.dimension, s.slot, s.value);
    })();
  }

  async counters(): Promise<CounterTotal[]> {
    return (this.stmts.counters.all() as Array<[string, string, number]>).map(([metric, labels, value]) => ({ metric, labels: this.labelSets.of(labels), value }));
  }

  async sessions(f: SessionFilter, now = Date.now()): Promise<{ sessions: SessionRow[]; total: number }> {
    const w = sessionWhere(f, q);
    const { limit, offset } = pageOf(f);
    const total = (this.db.prepare(`SELECT count(*) AS n FROM harness_sessions ${w.sql}`).get(...w.params) as { n: number }).n;
    const rows = this.db.prepare(`SELECT * FROM harness_sessions ${w.sql} ORDER BY started_ms DESC, id LIMIT ? OFFSET ?`).all(...w.params, limit, offset) as Array<Record<string, unknown>>;
    return { sessions: rows.map((r) => toSession(r, now, this.activeWindowMs)), total };
  }

  async allSessions(f: SessionFilter, now = Date.now()): Promise<SessionRow[]> {
    const w = sessionWhere(f, q);
    return (this.db.prepare(`SELECT * FROM harness_sessions ${w.sql}`).all(...w.params) as Array<Record<string, unknown>>).map((r) => toSession(r, now, this.activeWindowMs));
  }

  async topTools(f: SessionFilter, limit = 10): Promise<ToolRow[]> {
    const w = toolWhere(f, q);
    const rows = this.db.prepare(topToolsSql(w.sql, '?')).all(...w.params, limit) as ToolRow[];
    return rows.map((r) => ({ ...r, avg_duration_ms: r.avg_duration_ms === null ? null : Math.round(r.avg_duration_ms) }));
  }

  async unpricedModels(limit = 20): Promise<Array<{ model: string; requests: number }>> {
    return this.db
      .prepare(`SELECT coalesce((SELECT n.name FROM harness_names n WHERE n.id = f.model), 'unknown') AS model, count(*) AS requests FROM harness_fact_rows f INDEXED BY harness_facts_unpriced
        WHERE f.unpriced = 1 GROUP BY f.model ORDER BY requests DESC, model LIMIT ?`)
      .all(limit) as Array<{ model: string; requests: number }>;
  }

  async filters(): Promise<Filters> {
    const col = (dim: string) => (this.stmts.filterValues.all(dim) as Array<{ value: string }>).map((r) => r.value);
    return { sources: col('source'), projects: col('project'), labels: col('label') };
  }

  async toolRollupSums(query: ToolRollupQuery): Promise<ToolSum[] | null> {
    const w = toolRollupSql(query, q);
    return w === null ? null : (this.db.prepare(w.sql).all(...w.params) as ToolSum[]);
  }

  async toolSums(f: SessionFilter): Promise<ToolSum[]> {
    const w = toolWhere(f, q);
    return this.db.prepare(toolSumsSql(w.sql)).all(...w.params) as ToolSum[];
  }

  async rollupSums(query: RollupQuery): Promise<RollupSum[]> {
    const { sql, params } = rollupSql(query, q);
    return (this.db.prepare(sql).all(...params) as Array<Record<string, unknown>>).map(toRollupSum);
  }

  async ingestTotals(): Promise<IngestTotals> {
    const t = new Map((this.stmts.totals.all() as Array<{ name: string; value: number }>).map((r) => [r.name, r.value]));
    const rejects: Record<string, number> = {};
    for (const r of this.stmts.rejects.all() as Array<{ labels: string; value: number }>) {
      const reason = (JSON.parse(r.labels) as { reason?: string }).reason ?? 'unknown';
      rejects[reason] = (rejects[reason] ?? 0) + r.value;
    }
    return { events: t.get('events') ?? 0, duplicates: t.get('duplicates') ?? 0, rejects };
  }

  async lastSeen(sinceMs: number): Promise<LastSeen[]> {
    const { latest, stale } = await checkedLastSeen(
      this.stmts.lastSeenFrom.all(sinceMs) as LastSeenRow[],
      async (times) => this.stmts.sessionsSeenAt.all(JSON.stringify(times)) as LastSeen[],
      async () => this.stmts.lastSeenOfSessions.all(sinceMs) as LastSeen[],
    );
    if (stale.length > 0) this.repairLastSeen(stale);
    return latest;
  }

  /**
   * Stale session_last_seen entries set to their combination's true latest time, in one IMMEDIATE
   * transaction (no other writer between the read and the write), so the next scrape finds them exact.
   */
  private repairLastSeen(stale: LastSeenRow[]): void {
    try {
      this.db
        .transaction(() => {
          for (const e of stale) {
            this.stmts.dropLastSeen.run(e.source, e.project, e.label, e.last_seen_ms);
            const t = this.stmts.latestOfCombo.get(dimValue(e.source), dimValue(e.project), dimValue(e.label)) as { m: number | null };
            if (t.m !== null) this.stmts.raiseLastSeen.run({ source: e.source, project: e.project, label: e.label, last_seen_ms: t.m });
          }
        })
        .immediate();
    } catch {
      // A file that takes no writes now still answered exactly (from the sessions); a later scrape repairs.
    }
  }

  async rebuildAggregates(): Promise<RebuildResult> {
    return this.rebuildSync();
  }

  /** The aggregates from scratch: every stored session's contribution, and the totals from the counters (monotonic, so they survive retention). */
  private rebuildSync(): RebuildResult {
    return this.db.transaction(() => {
      this.db.exec('DELETE FROM session_rollups; DELETE FROM session_dim_rollups; DELETE FROM session_hour_rollups; DELETE FROM session_last_seen; DELETE FROM tool_rollups; DELETE FROM tool_hour_rollups; DELETE FROM filter_values; DELETE FROM ingest_totals');
      const delta = new RollupDelta();
      let sessions = 0;
      for (const r of this.db.prepare('SELECT * FROM harness_sessions').iterate() as Iterable<Record<string, unknown>>) {
        sessions++;
        delta.diff(null, asSession(r));
      }
      this.writeRollups(delta);
      // Tool calls from the stored events in time order: each call's first report counts it, as at ingest.
      const toolHours = toolHourRollups((this.db.prepare(TOOL_EVENTS_SQL).all() as Array<Record<string, unknown>>).map(toolEventOf), new Map());
      this.writeToolRollups(toolHours);
      const tools = toolDays(toolHours);
      const sum = (metric: string) => (this.db.prepare('SELECT coalesce(sum(value), 0) AS v FROM counters WHERE metric = ?').get(metric) as { v: number }).v;
      this.stmts.addTotal.run('events', sum('events_total'));
      this.stmts.addTotal.run('duplicates', sum('duplicates_total'));
      this.db.prepare("INSERT INTO aggregates_state (name, value) VALUES ('rebuild', 'done') ON CONFLICT(name) DO UPDATE SET value = excluded.value").run();
      return { sessions, rollupRows: delta.rows().length + delta.dimRows().length + delta.hourRows().length, toolCalls: tools.reduce((a, t: ToolRollupRow) => a + t.calls, 0), toolRows: tools.length, filterValues: delta.filters().length };
    }).immediate();
  }

  async eventCount(): Promise<number> {
    return (this.stmts.eventCount.get() as { n: number }).n;
  }

  /**
   * Retention in chunks of at most SWEEP_CHUNK rows (fewer when a chunk runs over
   * SWEEP_CHUNK_TARGET_MS), each its own transaction, with a pause of SWEEP_PAUSE_FACTOR
   * times what the chunk took between them, so that ingest (in this process or another on
   * the same file) gets the write lock in between, never waits for more than one chunk, and
   * keeps at least three quarters of the time. A deleted session's contribution leaves the rollups in its chunk's
   * transaction. Then the freed pages go back to the file system (auto_vacuum=INCREMENTAL).
   */
  async sweep(retentionDays: number, now = Date.now(), signal?: AbortSignal, beforeChunk?: () => Promise<void>): Promise<SweepResult> {
    const cutoff = now - retentionDays * 86_400_000;
    const out: SweepResult = { events: 0, sessions: 0, facts: 0, chunks: 0, reclaimedPages: 0, longestChunkMs: 0 };
    // Each chunk is an IMMEDIATE transaction: it reads, then deletes, and begun as a reader it could
    // not become the writer after another process's commit (SQLITE_BUSY at once, no busy wait). After
    // it, the sweeper checkpoints the WAL itself (PASSIVE: never waits): otherwise the pages it wrote
    // pile up until the commit that crosses wal_autocheckpoint, an ingest commit as often as not,
    // pays for copying them all back. The pause that follows is three times what both took.
    // Each chunk's row limit follows how long the last took (nextSweepChunk): at 10M events a chunk
    // of 1,000 took up to 250 ms on a loaded machine, and in-process that is the event loop too.
    const chunked = async (step: (limit: number) => number): Promise<number> => {
      let total = 0;
      let limit = SWEEP_CHUNK_FIRST;
      const once = this.db.transaction(step);
      for (;;) {
        await beforeChunk?.();
        if (signal?.aborted) return total;
        const t0 = performance.now();
        const n = once.immediate(limit);
        if (n > 0 && this.location !== ':memory:' && !this.checkpointer?.running) this.db.pragma('wal_checkpoint(PASSIVE)');
        const took = performance.now() - t0;
        out.longestChunkMs = Math.max(out.longestChunkMs!, Math.round(took));
        if (n === 0) return total;
        total += n;
        out.chunks!++;
        limit = nextSweepChunk(limit, took);
        await pause(Math.max(2, took * SWEEP_PAUSE_FACTOR));
      }
    };
    out.sessions = await chunked((limit) => {
      const rows = this.stmts.oldSessions.all(cutoff, limit) as Array<Record<string, unknown>>;
      const delta = new RollupDelta();
      for (const r of rows) {
        delta.diff(asSession(r), null);
        this.stmts.deleteSession.run(r.id);
      }
      this.writeRollups(delta);
      return rows.length;
    });
    out.events = await chunked((limit) => this.stmts.deleteEvents.run(cutoff, limit).changes);
    // Facts have no time index (migration 9): each chunk walks on in key order from where the last
    // stopped, FACT_SCAN_FACTOR rows per row a chunk of the other phases deletes (the walk runs in
    // SQLite; a row read costs a small part of a row deleted), and deletes the old ones among them.
    let at: [number, number, number] | null = [-1, -1, -1];
    await chunked((limit) => {
      if (at === null) return 0;
      const ahead = this.stmts.factAhead.get(...at, limit * FACT_SCAN_FACTOR - 1) as [number, number, number] | undefined;
      out.facts += ahead ? this.stmts.deleteOldFacts.run(...at, ...ahead, cutoff).changes : this.stmts.deleteOldFactsToEnd.run(...at, cutoff).changes;
      at = ahead ?? null; // past the last key: the walk is done after this chunk
      return 1;
    });
    // Tool calls of whole days before the cutoff (their events are gone), and rollup rows every
    // session has left (they add nothing, they would only be read): in chunks as well.
    const cutoffDay = utcDay(cutoff);
    await chunked((limit) => this.stmts.deleteOldTools.run(cutoffDay, limit).changes);
    await chunked((limit) => this.stmts.deleteOldHourTools.run(cutoffDay, limit).changes);
    // Every session last seen before the cutoff is gone: so is any last-seen entry that old (it can only be too high, never too low).
    this.stmts.deleteOldLastSeen.run(cutoff);
    if (out.sessions > 0) {
      await chunked((limit) => this.stmts.deleteZeroRollups.run(limit).changes);
      await chunked((limit) => this.stmts.deleteZeroDimRollups.run(limit).changes);
      await chunked((limit) => this.stmts.deleteZeroHourRollups.run(limit).changes);
      await chunked((limit) => this.stmts.deleteZeroFilters.run(limit).changes);
    }
    if (this.db.pragma('auto_vacuum', { simple: true }) === 2) {
      for (;;) {
        const free = this.db.pragma('freelist_count', { simple: true }) as number;
        if (free === 0 || signal?.aborted) break;
        await beforeChunk?.();
        const t0 = performance.now();
        this.db.pragma(`incremental_vacuum(${VACUUM_STEP_PAGES})`);
        out.reclaimedPages! += Math.min(free, VACUUM_STEP_PAGES);
        if (!this.checkpointer?.running) this.db.pragma('wal_checkpoint(PASSIVE)');
        const took = performance.now() - t0;
        out.longestChunkMs = Math.max(out.longestChunkMs!, Math.round(took)); // a vacuum step holds the writer too
        await pause(Math.max(2, took * SWEEP_PAUSE_FACTOR));
      }
    }
    if (signal?.aborted) out.stopped = true;
    return out;
  }

  private reads: SqliteSessionReads | undefined;
  sessionReads(): SqliteSessionReads {
    return (this.reads ??= new SqliteSessionReads(this.db, this.names));
  }

  async close(): Promise<void> {
    await this.checkpointer?.stop();
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      /* closing anyway */
    }
    this.db.close();
  }
}
