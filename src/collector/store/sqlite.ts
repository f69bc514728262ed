/**
 * The SQLite store (the default): better-sqlite3 in WAL mode, versioned
 * migrations, prepared statements. Synchronous underneath; the Store interface
 * is async because PostgreSQL's is, and a resolved promise costs nothing here.
 */
import Database from 'better-sqlite3';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { HarnessEvent } from '../../event';
import { applyCompletions, CounterSet, factIdText, factsOf, foldEvents, labelsText, type CompletionState, type FactRow } from '../fold';
import type { CounterTotal, Filters, IngestOutcome, SessionFilter, SessionRow, Store, SweepResult, ToolRow } from './index';
import { columnsOf, joinState } from './event-codec';
import { SQLITE_MIGRATIONS } from './migrations/sqlite';
import { compactEvents, factValues, GET_FACT, INSERT_FACT, INSERT_ROW, Names, rowValues } from './migrations/sqlite-compact-events';
import { sessionKey } from '../normalize';
import { SqliteSessionReads } from './session-reads-sqlite';
import { completionSet, pageOf, SESSION_DELTA_COLUMNS, sessionMergeSet, sessionWhere, toolWhere, topToolsSql, toSession, ACTIVE_WINDOW_MS } from './rows';

const q = () => '?';

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly location: string;
  activeWindowMs = ACTIVE_WINDOW_MS;
  readonly db: Database.Database;
  private readonly stmts: ReturnType<SqliteStore['prepare']>;
  /** Interned strings of harness_event_rows (shared with the session reads of this connection). */
  readonly names: Names;

  constructor(path: string, sync: 'normal' | 'full' = process.env.CLAUDE_METRICS_DB_SYNC === 'full' ? 'full' : 'normal') {
    this.location = path;
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
    this.names = new Names(this.db);
    this.stmts = this.prepare();
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SQLITE_MIGRATIONS.length) throw new Error(`database schema version ${version} is newer than this collector (${SQLITE_MIGRATIONS.length}); upgrade claude-metrics`);
    for (let v = version; v < SQLITE_MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        const m = SQLITE_MIGRATIONS[v]!;
        if (typeof m === 'string') this.db.exec(m);
        else m(this.db);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
    // An existing file just rewritten into compact rows holds its old pages as free space: give them back once.
    const compacted = SQLITE_MIGRATIONS.indexOf(compactEvents);
    if (version > 0 && version <= compacted && this.location !== ':memory:') this.db.exec('VACUUM');
  }

  private prepare() {
    const db = this.db;
    return {
      insertEvent: db.prepare(INSERT_ROW),
      upsertSession: db.prepare(`INSERT INTO harness_sessions (${SESSION_DELTA_COLUMNS.map(([c]) => c).join(', ')})
        VALUES (${SESSION_DELTA_COLUMNS.map(([, f]) => `@${f}`).join(', ')})
        ON CONFLICT(id) DO UPDATE SET ${sessionMergeSet('harness_sessions', 'min', 'max')}`),
      completionState: db.prepare('SELECT started_ms, completed_ms, completion_event_id FROM harness_sessions WHERE id = ?'),
      setCompletion: db.prepare(`UPDATE harness_sessions SET ${completionSet('harness_sessions', (n) => `@${n}`)} WHERE id = @id`),
      getFact: db.prepare(GET_FACT),
      putFact: db.prepare(INSERT_FACT),
      bump: db.prepare('INSERT INTO counters (metric, labels, value) VALUES (?, ?, ?) ON CONFLICT(metric, labels) DO UPDATE SET value = value + excluded.value'),
      counters: db.prepare('SELECT metric, labels, value FROM counters'),
      eventCount: db.prepare('SELECT count(*) AS n FROM harness_event_rows'),
    };
  }

  async ingestMany(groups: HarnessEvent[][], receivedMs = Date.now()): Promise<IngestOutcome[]> {
    try {
      const out = this.db.transaction(() => this.ingestSync(groups, receivedMs))();
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
      const row = kind === undefined ? undefined : (this.stmts.getFact.get(sid, kind, f.key) as (Omit<FactRow, 'state'> & { shape: string; vals: string }) | undefined);
      if (row) facts.set(factIdText(f), { session_key: row.session_key, model: row.model, ts_ms: row.ts_ms, unpriced: row.unpriced, state: joinState(row.shape, row.vals) });
    }
    const fold = foldEvents(stored, facts, duplicates);
    for (const f of fold.facts) this.stmts.putFact.run(factValues(this.names, f));
    for (const d of fold.sessions) this.stmts.upsertSession.run(d);
    if (fold.completions.length > 0) {
      const states = new Map<string, CompletionState>();
      for (const c of fold.completions) if (!states.has(c.id)) states.set(c.id, this.stmts.completionState.get(c.id) as CompletionState);
      for (const { labels: _, ...c } of applyCompletions(states, fold.completions, fold.counters)) this.stmts.setCompletion.run(c);
    }
    this.writeCounters(fold.counters);
    return outcomes;
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

  async counters(): Promise<CounterTotal[]> {
    return (this.stmts.counters.all() as Array<{ metric: string; labels: string; value: number }>).map((r) => ({ metric: r.metric, labels: JSON.parse(r.labels) as Record<string, string>, value: r.value }));
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
    const col = (c: string) => (this.db.prepare(`SELECT DISTINCT ${c} AS v FROM harness_sessions WHERE ${c} IS NOT NULL ORDER BY v LIMIT 500`).all() as Array<{ v: string }>).map((r) => r.v);
    return { sources: col('source'), projects: col('project'), labels: col('label') };
  }

  async eventCount(): Promise<number> {
    return (this.stmts.eventCount.get() as { n: number }).n;
  }

  async sweep(retentionDays: number, now = Date.now()): Promise<SweepResult> {
    const cutoff = now - retentionDays * 86_400_000;
    return this.db.transaction(() => ({
      events: this.db.prepare('DELETE FROM harness_event_rows WHERE ts_ms < ?').run(cutoff).changes,
      sessions: this.db.prepare('DELETE FROM harness_sessions WHERE last_seen_ms < ?').run(cutoff).changes,
      facts: this.db.prepare('DELETE FROM harness_fact_rows WHERE ts_ms < ?').run(cutoff).changes,
    }))();
  }

  private reads: SqliteSessionReads | undefined;
  sessionReads(): SqliteSessionReads {
    return (this.reads ??= new SqliteSessionReads(this.db, this.names));
  }

  async close(): Promise<void> {
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      /* closing anyway */
    }
    this.db.close();
  }
}
