/**
 * harness_sessions carries the plan's `started_at` / `completed_at` (ISO-8601 UTC, in step with
 * started_ms / completed_ms), and a database written by the previous schema (v1, frozen in
 * test/fixtures/db/schema-v1.sql) is carried over without losing a value, then keeps folding.
 */
import Database from 'better-sqlite3';
import { Client } from 'pg';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { daily, dailyFromSessions, summary, summaryFromSessions } from '../src/collector/api';
import { HarnessEventSchema, type HarnessEvent } from '../src/event';
import { usageEventId, uuidv7 } from '../src/ids';
import { sessionKey } from '../src/collector/normalize';
import { rawEvent, resolveSession, sessionHeader, sessionSteps, waitingSessions } from '../src/collector/session-api';
import { decodeBody, factKeyHash, joinState } from '../src/collector/store/event-codec';
import { factOf } from '../src/collector/fold';
import { SQLITE_MIGRATIONS } from '../src/collector/store/migrations/sqlite';
import { EVENT_COLUMNS, eventValues } from '../src/collector/store/rows';
import { SqliteStore } from '../src/collector/store/sqlite';
import type { Store } from '../src/collector/store/index';
import { POSTGRES_MIGRATIONS } from '../src/collector/store/migrations/postgres';
import { PostgresStore } from '../src/collector/store/postgres';
import { useStore } from './helpers/stores';
import { getJson, postJson, ROOT, startServe, tempHome, type TempHome } from './helpers/cli';

const V1 = readFileSync(join(ROOT, 'test', 'fixtures', 'db', 'schema-v1.sql'), 'utf8');
/** The query a router team writes against the table the plan describes. */
const PLAN_QUERY = 'select id, source, project, label, task_id, started_at, completed_at, duration_ms, success, tool_calls_count, error from harness_sessions';
/** Retention would sweep rows this old at start; these tests are about the migration. */
const KEEP_OLD_ROWS = ['--retention-days', '36500'];
const TABLES = { harness_events: 'event_id', harness_sessions: 'id', counters: 'metric, labels' } as const;

let t: TempHome;
beforeEach(() => {
  t = tempHome('cm-migrate-');
});
afterEach(() => t.cleanup());

/** A collector database as the v1 collector left it: a finished task, a running session, a run. */
function writeV1(path: string): void {
  const db = new Database(path);
  db.exec(V1);
  db.pragma('user_version = 1');
  const session = db.prepare(`INSERT INTO harness_sessions (id, claude_session_id, run_id, source, project, label, task_id, started_ms, last_seen_ms, completed_ms, completion_event_id,
      duration_ms, success, exit_code, error, error_ms, tool_calls_count, tool_failures, model, model_ms, num_turns, events_count, usage_events, input_tokens, output_tokens,
      cache_creation_input_tokens, cache_read_input_tokens, cost_usd, result_input_tokens, result_output_tokens, result_cache_creation_input_tokens, result_cache_read_input_tokens, result_cost_usd)
    VALUES (@id, @claude_session_id, @run_id, @source, @project, @label, @task_id, @started_ms, @last_seen_ms, @completed_ms, @completion_event_id,
      @duration_ms, @success, @exit_code, @error, @error_ms, @tool_calls_count, @tool_failures, @model, @model_ms, @num_turns, @events_count, @usage_events, @input_tokens, @output_tokens,
      @cache_creation_input_tokens, @cache_read_input_tokens, @cost_usd, @result_input_tokens, @result_output_tokens, @result_cache_creation_input_tokens, @result_cache_read_input_tokens, @result_cost_usd)`);
  const base = { claude_session_id: null, run_id: null, project: null, label: null, task_id: null, completed_ms: null, completion_event_id: null, duration_ms: null, success: null, exit_code: null, error: null, error_ms: null, tool_calls_count: 0, tool_failures: 0, model: null, model_ms: null, num_turns: null, events_count: 1, usage_events: 0, input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, cost_usd: 0, result_input_tokens: null, result_output_tokens: null, result_cache_creation_input_tokens: null, result_cache_read_input_tokens: null, result_cost_usd: null };
  session.run({ ...base, id: 'task:ralph:nightly:T1', source: 'ralph', project: 'web', label: 'nightly', task_id: 'T1', started_ms: 1764640800123, last_seen_ms: 1764640805678, completed_ms: 1764640805678, completion_event_id: 'e-done', duration_ms: 5555, success: 1, exit_code: 0, tool_calls_count: 3, events_count: 2, num_turns: 4, result_input_tokens: 10, result_output_tokens: 20, result_cost_usd: 0.0123 });
  session.run({ ...base, id: 'session:S-running', claude_session_id: 'S-running', source: 'interactive', project: 'api', started_ms: 1764640000000, last_seen_ms: 1764640099001, error: 'Bash: exit 1', error_ms: 1764640099001, tool_calls_count: 7, tool_failures: 1, model: 'claude-opus-4-5', model_ms: 1764640050000, events_count: 9, usage_events: 2, input_tokens: 1200, output_tokens: 340, cache_read_input_tokens: 9000, cost_usd: 0.0456 });
  session.run({ ...base, id: 'run:run-0', run_id: 'run-0', source: 'api', started_ms: 999, last_seen_ms: 1000, completed_ms: 1000, duration_ms: 1, success: 0, exit_code: 2, error: 'timeout' });
  const event = db.prepare(`INSERT INTO harness_events (event_id, event, source, ts, ts_ms, received_ms, session_key, session_id, task_id, label, project, success, duration_ms, body)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  event.run('e-start', 'ralph_task_started', 'ralph', new Date(1764640800123).toISOString(), 1764640800123, 1764640800200, 'task:ralph:nightly:T1', null, 'T1', 'nightly', 'web', null, null, '{"event":"ralph_task_started"}');
  event.run('e-done', 'ralph_task_completed', 'ralph', new Date(1764640805678).toISOString(), 1764640805678, 1764640805700, 'task:ralph:nightly:T1', null, 'T1', 'nightly', 'web', 1, 5555, '{"event":"ralph_task_completed"}');
  event.run('e-tool', 'PostToolUse', 'interactive', new Date(1764640099001).toISOString(), 1764640099001, 1764640099100, 'session:S-running', 'S-running', null, null, 'api', 0, 12, '{"event":"PostToolUse"}');
  db.prepare('INSERT INTO counters (metric, labels, value) VALUES (?, ?, ?)').run('events_total', '{"source":"ralph","project":"web","label":"nightly","event":"ralph_task_completed"}', 1);
  db.prepare('INSERT INTO counters (metric, labels, value) VALUES (?, ?, ?)').run('sessions_completed_total', '{"source":"ralph","project":"web","label":"nightly","outcome":"success"}', 1);
  db.close();
}

function snapshot(path: string, columnsOf?: Record<string, string[]>): Record<string, Array<Record<string, unknown>>> {
  const db = new Database(path, { readonly: true });
  try {
    const out: Record<string, Array<Record<string, unknown>>> = {};
    for (const [table, key] of Object.entries(TABLES)) {
      const wanted = columnsOf?.[table];
      const compact = table === 'harness_events' && wanted?.includes('body') && (db.pragma('user_version', { simple: true }) as number) >= 4;
      // After migration 4 harness_events is a view without `body`: the body is rebuilt from its parts, as the readers do.
      const cols = compact ? [...wanted!.filter((c) => c !== 'body'), 'tuple', 'layout', 'residue'].join(', ') : (wanted?.join(', ') ?? '*');
      const rows = db.prepare(`SELECT ${cols} FROM ${table} ORDER BY ${key}`).all() as Array<Record<string, unknown>>;
      out[table] = compact
        ? rows.map(({ tuple, layout, residue, ...r }) => {
            const body = decodeBody({ ...(r as object), tuple, layout, residue } as never);
            return Object.fromEntries(wanted!.map((c) => [c, c === 'body' ? body : r[c]]));
          })
        : rows;
    }
    return out;
  } finally {
    db.close();
  }
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

describe('harness_sessions migration from schema v1', () => {
  it('keeps every stored value, adds started_at / completed_at equal to the ms columns, and the plan query works', async () => {
    const path = join(t.home, 'collector.db');
    writeV1(path);
    const before = snapshot(path);
    const v1Columns = Object.fromEntries(Object.entries(before).map(([table, rows]) => [table, Object.keys(rows[0]!)]));

    // The collector migrates at start; a second start finds nothing left to do.
    for (let i = 0; i < 2; i++) await (await startServe(t.env, ['--db', path, ...KEEP_OLD_ROWS])).stop();

    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('user_version', { simple: true })).toBeGreaterThan(1);
      const rows = db.prepare(`${PLAN_QUERY} ORDER BY id`).all() as Array<Record<string, unknown>>;
      const ms = db.prepare('SELECT id, started_ms, completed_ms FROM harness_sessions ORDER BY id').all() as Array<{ id: string; started_ms: number; completed_ms: number | null }>;
      expect(rows.map((r) => [r.id, r.started_at, r.completed_at])).toEqual(ms.map((m) => [m.id, iso(m.started_ms), iso(m.completed_ms)]));
      expect(rows).toEqual([
        { id: 'run:run-0', source: 'api', project: null, label: null, task_id: null, started_at: '1970-01-01T00:00:00.999Z', completed_at: '1970-01-01T00:00:01.000Z', duration_ms: 1, success: 0, tool_calls_count: 0, error: 'timeout' },
        { id: 'session:S-running', source: 'interactive', project: 'api', label: null, task_id: null, started_at: '2025-12-02T01:46:40.000Z', completed_at: null, duration_ms: null, success: null, tool_calls_count: 7, error: 'Bash: exit 1' },
        { id: 'task:ralph:nightly:T1', source: 'ralph', project: 'web', label: 'nightly', task_id: 'T1', started_at: '2025-12-02T02:00:00.123Z', completed_at: '2025-12-02T02:00:05.678Z', duration_ms: 5555, success: 1, tool_calls_count: 3, error: null },
      ]);
      // The plan's columns read like the router's: ISO text, ordered as time.
      expect(db.prepare("SELECT count(*) AS n FROM harness_sessions WHERE started_at >= '2025-12-02T02:00:00.000Z'").get()).toEqual({ n: 1 });
    } finally {
      db.close();
    }
    expect(snapshot(path, v1Columns)).toEqual(before);
  });

  it('a migrated database keeps folding: a completion sets completed_at in step, the API agrees', async () => {
    const path = join(t.home, 'collector.db');
    writeV1(path);
    const serve = await startServe(t.env, ['--db', path, ...KEEP_OLD_ROWS]);
    try {
      const ended = '2025-12-02T03:00:00.250Z';
      const r = await postJson(serve.endpoint, { event_id: uuidv7(), event: 'SessionEnd', source: 'interactive', timestamp: ended, session_id: 'S-running', project: 'api' });
      expect(r).toEqual({ status: 200, body: { accepted: 1, duplicates: 0, rejected: [] } });
      const api = (await getJson(`${serve.url}/api/sessions?limit=10`)).body.sessions as Array<Record<string, unknown>>;
      expect(api.find((s) => s.id === 'session:S-running')).toMatchObject({ started_at: '2025-12-02T01:46:40.000Z', completed_at: ended, tool_calls_count: 7, events_count: 10, input_tokens: 1200 });
      expect(api.find((s) => s.id === 'task:ralph:nightly:T1')).toMatchObject({ completed_at: '2025-12-02T02:00:05.678Z', success: true, cost_usd: 0.0123 });
      // The old counters (stored per source × project × label) are served in the bounded families.
      const metrics = (await getJson(`${serve.url}/metrics`)).body as string;
      expect(metrics).toMatch(/^claude_harness_events_by_project_total\{project="web"\} 1$/m);
      expect(metrics).toMatch(/^claude_harness_ralph_tasks_completed_total\{label="nightly",outcome="success",project="web"\} 1$/m);
      expect(metrics).toMatch(/^claude_harness_sessions_completed_total\{outcome="success",source="ralph"\} 1$/m);
    } finally {
      await serve.stop();
    }
    const db = new Database(path, { readonly: true });
    try {
      const row = db.prepare('SELECT started_at, completed_at, completed_ms, events_count FROM harness_sessions WHERE id = ?').get('session:S-running');
      expect(row).toEqual({ started_at: '2025-12-02T01:46:40.000Z', completed_at: '2025-12-02T03:00:00.250Z', completed_ms: Date.parse('2025-12-02T03:00:00.250Z'), events_count: 10 });
      expect((db.prepare("SELECT value FROM counters WHERE metric = 'events_total' AND labels LIKE '%ralph_task_completed%'").get() as { value: number }).value).toBe(1);
    } finally {
      db.close();
    }
  });

  it('a new database has the same columns, and the reference router schema keeps the plan’s shape', async () => {
    const path = join(t.home, 'fresh.db');
    const serve = await startServe(t.env, ['--db', path]);
    try {
      const done = { event_id: uuidv7(), event: 'ralph_task_completed', source: 'ralph', timestamp: new Date(Date.now() - 5000).toISOString(), task_id: 'T', label: 'L', success: true, duration_ms: 10 };
      expect((await postJson(serve.endpoint, done)).status).toBe(200);
      await serve.stop();
      const db = new Database(path, { readonly: true });
      try {
        expect(db.prepare(PLAN_QUERY).all()).toEqual([{ id: 'task:ralph:L:T', source: 'ralph', project: null, label: 'L', task_id: 'T', started_at: done.timestamp, completed_at: done.timestamp, duration_ms: 10, success: 1, tool_calls_count: 0, error: null }]);
      } finally {
        db.close();
      }
    } finally {
      await serve.stop();
    }
    const router = new Database(':memory:');
    try {
      router.exec(readFileSync(join(ROOT, 'hooks-templates', 'router', 'schema.sql'), 'utf8'));
      expect(router.prepare(PLAN_QUERY).all()).toEqual([]);
    } finally {
      router.close();
    }
  });

  it('the aggregates (schema 5): a database from the previous schema is filled from its sessions by the migration, and the API answers as before', async () => {
    const path = join(t.home, 'collector.db');
    const now = Date.now();
    const at = (h: number) => new Date(now - h * 3_600_000).toISOString();
    // A collector of the previous schema with data: this one's tables but the aggregates (migration 5 adds only those).
    const serve = await startServe(t.env, ['--db', path, ...KEEP_OLD_ROWS]);
    const events: Array<Record<string, unknown>> = [];
    for (let s = 0; s < 12; s++) {
      const base = { source: s % 3 ? 'interactive' : 'ralph', session_id: `m-${s}`, project: s % 2 ? 'web' : 'api', ...(s % 4 ? { label: `l${s % 3}` } : {}) };
      const h = s * 20 + 1;
      events.push({ event_id: uuidv7(), event: 'SessionStart', timestamp: at(h), ...base });
      events.push({ event_id: uuidv7(), event: 'PostToolUse', timestamp: at(h - 0.1), tool_name: s % 2 ? 'Bash' : 'Read', tool_use_id: `tu-${s}`, success: s % 5 !== 0, duration_ms: 10 * s, ...base });
      events.push({ event_id: uuidv7(), event: 'usage', timestamp: at(h - 0.2), request_id: `r-${s}`, model: 'claude-sonnet-4-5', usage: { input_tokens: 100 * s, output_tokens: 7 * s }, cost_usd: 0.001 * s, ...base });
      if (s % 3 !== 2) events.push({ event_id: uuidv7(), event: 'SessionEnd', timestamp: at(h - 0.5), success: s % 4 !== 1, ...base });
    }
    expect((await postJson(serve.endpoint, { events })).status).toBe(200);
    const answers = async (url: string) => {
      const out: Record<string, unknown> = {};
      for (const q of ['summary', 'summary?since=7d', 'summary?since=30d&project=web', 'daily?days=30', 'daily?days=7&source=ralph', 'filters']) {
        const { generated_at: _, ...body } = (await getJson(`${url}/api/${q}`)).body as Record<string, unknown>;
        out[q] = body;
      }
      return out;
    };
    const before = await answers(serve.url);
    await serve.stop();
    const db = new Database(path);
    // The schema before the aggregates' migration: its tables and those of every migration after it
    // (the metrics limiter's slots) dropped. A migration added later must be undone here too.
    db.exec('DROP TABLE session_rollups; DROP TABLE session_dim_rollups; DROP TABLE tool_rollups; DROP TABLE filter_values; DROP TABLE ingest_totals; DROP TABLE aggregates_state; DROP TABLE metric_label_slots');
    db.exec('DROP TABLE session_hour_rollups; DROP TABLE tool_hour_rollups; DROP TABLE session_last_seen');
    // …the narrower session index (its migration adds no table) back to its schema-4 form, and the facts' time index back.
    db.exec('DROP INDEX harness_events_session; CREATE INDEX harness_events_session ON harness_event_rows(skey, ts_ms, eid)');
    db.exec('CREATE INDEX harness_facts_ts ON harness_fact_rows(ts_ms)');
    const aggregates = SQLITE_MIGRATIONS.findIndex((m) => typeof m === 'string' && m.includes('CREATE TABLE session_rollups'));
    expect(SQLITE_MIGRATIONS.slice(aggregates + 1).map((m) => typeof m === 'string' && /CREATE TABLE (\w+)/.exec(m)?.[1])).toEqual(['metric_label_slots', 'session_hour_rollups', undefined, undefined, false]);
    db.pragma(`user_version = ${aggregates}`);
    db.close();

    const migrated = await startServe(t.env, ['--db', path, ...KEEP_OLD_ROWS]);
    try {
      expect(await answers(migrated.url)).toEqual(before);
      expect((before.summary as { ingest: { events: number } }).ingest.events).toBe(events.length);
    } finally {
      await migrated.stop();
    }
    const after = new Database(path, { readonly: true });
    expect(after.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'harness_facts_ts'").all()).toEqual([]);
    after.close();
    // …and exactly what recomputing from the stored sessions answers, for the old fixture as well.
    writeV1(join(t.home, 'v1.db'));
    for (const [file, when] of [[path, now], [join(t.home, 'v1.db'), 1764640900000]] as const) {
      const store = new SqliteStore(file);
      try {
        expect(store.db.pragma('user_version', { simple: true })).toBe(SQLITE_MIGRATIONS.length);
        for (const f of [{}, { sinceMs: when - 30 * 86_400_000 }, { project: 'web' }, { source: 'ralph', sinceMs: when - 36 * 3_600_000 }]) {
          expect(await summary(store, f, when)).toEqual(await summaryFromSessions(store, f, when));
          expect(await daily(store, f, 30, when)).toEqual(await dailyFromSessions(store, f, 30, when));
        }
      } finally {
        await store.close();
      }
    }
  });

  it('the hourly rollups and latest last-seen times (schema 7): a database of schema 6 is filled by the migration; windows starting mid-hour and /metrics answer as before', async () => {
    const path = join(t.home, 'collector.db');
    const now = Date.now();
    const at = (h: number) => new Date(now - h * 3_600_000).toISOString();
    const serve = await startServe(t.env, ['--db', path, ...KEEP_OLD_ROWS]);
    const events: Array<Record<string, unknown>> = [];
    // Sessions every 50 minutes over three days: windows of 36 h and 2 d start inside an hour with sessions in it.
    for (let s = 0; s < 80; s++) {
      const base = { source: s % 3 ? 'interactive' : 'ralph', session_id: `h-${s}`, project: s % 2 ? 'web' : 'api', ...(s % 4 ? { label: `l${s % 3}` } : {}) };
      const h = (s * 50) / 60 + 0.2;
      events.push({ event_id: uuidv7(), event: 'SessionStart', timestamp: at(h), ...base });
      events.push({ event_id: uuidv7(), event: 'PostToolUse', timestamp: at(h - 0.05), tool_name: s % 2 ? 'Bash' : 'Read', tool_use_id: `tu-${s}`, success: s % 5 !== 0, duration_ms: 10 * s, ...base });
      if (s % 3 !== 2) events.push({ event_id: uuidv7(), event: 'SessionEnd', timestamp: at(h - 0.1), success: s % 4 !== 1, ...base });
    }
    expect((await postJson(serve.endpoint, { events })).status).toBe(200);
    const metricsOf = async (url: string) => (await (await fetch(`${url}/metrics`)).text()).split('\n').filter((l) => /^claude_harness_(active_sessions|ralph_active|last_event|ralph_last_event)/.test(l)).sort();
    const before = await metricsOf(serve.url);
    expect(before.some((l) => l.startsWith('claude_harness_last_event_by_project_timestamp_seconds{project="web"}'))).toBe(true);
    await serve.stop();
    const db = new Database(path);
    db.exec('DROP TABLE session_hour_rollups; DROP TABLE tool_hour_rollups; DROP TABLE session_last_seen');
    const hourly = SQLITE_MIGRATIONS.findIndex((m) => typeof m === 'string' && m.includes('CREATE TABLE session_hour_rollups'));
    db.pragma(`user_version = ${hourly}`);
    db.close();

    const migrated = await startServe(t.env, ['--db', path, ...KEEP_OLD_ROWS]);
    try {
      expect(await metricsOf(migrated.url)).toEqual(before);
    } finally {
      await migrated.stop();
    }
    const store = new SqliteStore(path);
    try {
      expect(store.db.pragma('user_version', { simple: true })).toBe(SQLITE_MIGRATIONS.length);
      expect((store.db.prepare('SELECT count(*) AS n FROM session_hour_rollups').get() as { n: number }).n).toBeGreaterThan(20);
      for (const f of [{ sinceMs: now - 36 * 3_600_000 }, { sinceMs: now - 2 * 86_400_000 + 17 * 60_000 }, { project: 'web', sinceMs: now - 50 * 3_600_000 }, { source: 'ralph', label: 'l0', sinceMs: now - 30 * 3_600_000 }]) {
        expect(await summary(store, f, now)).toEqual(await summaryFromSessions(store, f, now));
      }
    } finally {
      await store.close();
    }
  });
});

/** Every kind of event the collector takes, with odd fields: what the compact rows (migration 4) must carry over whole. */
function variedEvents(): HarnessEvent[] {
  const t0 = Date.parse('2025-12-02T10:00:00.000Z');
  const at = (s: number) => new Date(t0 + s * 1000).toISOString();
  const ctx = { host: 'h1', user: 'u', cwd: '/src/api', git_branch: 'main', git_commit: 'abc', claude_version: '2.1.0', permission_mode: 'default', emitter_version: '0.1.0', extra_ctx: 7 };
  const s = { source: 'interactive' as const, session_id: 'S-1', project: 'api', label: 'fix', context: ctx };
  const raw: Array<Record<string, unknown>> = [
    { schema_version: 1, event_id: uuidv7(t0), event: 'SessionStart', ...s, timestamp: at(0), model: 'claude-opus-4-5', hook: { start_source: 'startup' } },
    { schema_version: 1, event_id: uuidv7(t0 + 1), event: 'UserPromptSubmit', ...s, timestamp: at(1), hook: { prompt_size: 12 } },
    { schema_version: 1, event_id: uuidv7(t0 + 2), event: 'PreToolUse', ...s, timestamp: at(2), tool_name: 'Bash', tool_use_id: 'toolu_1', hook: { tool_input_size: 3 } },
    { schema_version: 1, event_id: uuidv7(t0 + 3), event: 'PostToolUse', ...s, timestamp: at(3), tool_name: 'Bash', tool_use_id: 'toolu_1', success: true, duration_ms: 812.5 },
    { schema_version: 1, event_id: uuidv7(t0 + 4), event: 'PreToolUse', ...s, timestamp: at(4), tool_name: 'Edit', tool_use_id: 'toolu_2' },
    { schema_version: 1, event_id: uuidv7(t0 + 5), event: 'PostToolUseFailure', ...s, timestamp: at(5), tool_name: 'Edit', tool_use_id: 'toolu_2', success: false, error: 'File has not been read ✗ "quoted"', duration_ms: 0 },
    { event_id: 'otel-tool-2', event: 'tool_result', source: 'interactive', session_id: 'S-1', timestamp: '2025-12-02T10:00:05.5+00:00', tool_name: 'Edit', tool_use_id: 'toolu_2', success: false, attrs: { decision: 'reject', 'odd key': null } },
    { event_id: 'otel-dec-2', event: 'tool_decision', source: 'interactive', session_id: 'S-1', timestamp: at(5), tool_use_id: 'toolu_2', attrs: { decision: 'reject', source: 'user' } },
    { schema_version: 1, event_id: uuidv7(t0 + 6), event: 'PermissionRequest', ...s, timestamp: at(6), tool_name: 'Write' },
    { schema_version: 1, event_id: uuidv7(t0 + 7), event: 'Notification', ...s, timestamp: at(7), hook: { message: 'Claude needs your permission' } },
    { event_id: usageEventId('S-1', 'msg_1', 'req_1'), event: 'usage', source: 'interactive', session_id: 'S-1', project: 'api', timestamp: at(8), model: 'claude-opus-4-5', message_id: 'msg_1', request_id: 'req_1', usage: { input_tokens: 10, output_tokens: 20, cache_read_input_tokens: 300 }, cost_usd: 0.0123, cost_source: 'estimate' },
    { event_id: usageEventId('S-1', 'msg_2', 'req_2'), event: 'usage', source: 'interactive', session_id: 'S-1', project: 'api', timestamp: at(9), model: 'mystery-model', message_id: 'msg_2', request_id: 'req_2', usage: { output_tokens: 5, input_tokens: 1 } },
    { event_id: 'sub-1', event: 'PreToolUse', source: 'interactive', session_id: 'S-1', agent_id: 'agent-a', timestamp: at(10), tool_name: 'Read', tool_use_id: 'toolu_3', hook: { agent_type: 'explorer' } },
    { event_id: 'sub-usage', event: 'usage', source: 'interactive', session_id: 'S-1', agent_id: 'agent-a', timestamp: at(11), model: 'claude-haiku-4-5', usage: { input_tokens: 4, output_tokens: 4, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }, cost_usd: 0.0001, cost_source: 'claude_code' },
    { event_id: 'metric-1', event: 'otel_metric', source: 'interactive', session_id: 'S-1', timestamp: at(12), attrs: { name: 'claude_code.lines_of_code.count', value: 3 } },
    { event_id: 'weird-1', event: 'some_future_kind', source: 'interactive', session_id: 'S-1', timestamp: at(13), unknown_top: { a: [1, 2, { b: null }] }, '42': 'numeric key', 'ü': '\u2028\u0007', success: null, exit_code: null, label: null, usage: null, context: null },
    { schema_version: 1, event_id: uuidv7(t0 + 14), event: 'Stop', ...s, context: { ...ctx, cwd: '/src/api/sub' }, timestamp: at(14) },
    { schema_version: 1, event_id: uuidv7(t0 + 15), event: 'SessionEnd', ...s, timestamp: at(15), hook: { reason: 'logout' } },
    // a wait that nobody answered in another session, so the waiting list has a row
    { schema_version: 1, event_id: uuidv7(t0 + 16), event: 'PermissionRequest', source: 'interactive', session_id: 'S-2', timestamp: at(16), tool_name: 'Bash' },
    { schema_version: 1, event_id: uuidv7(t0 + 17), event: 'Notification', source: 'interactive', session_id: 'S-2', timestamp: at(17) },
    // a Ralph task and a run, an api request of its own, an upper-case id
    { event_id: 'F3C1D2E4-0000-4000-8000-00000000000A', event: 'ralph_task_started', source: 'ralph', timestamp: at(18), task_id: 'T-9', label: 'nightly', project: 'web', run_id: null, attrs: { command: 'claude' } },
    { event_id: 'ralph-done', event: 'ralph_task_completed', source: 'ralph', timestamp: at(19), task_id: 'T-9', label: 'nightly', project: 'web', success: true, exit_code: 0, duration_ms: 1000, num_turns: 3, model: 'claude-sonnet-4-5', usage: { input_tokens: 1, output_tokens: 2, cache_creation_input_tokens: 3, cache_read_input_tokens: 4 }, cost_usd: 0.5, is_error: false, result_subtype: 'success' },
    { event_id: 'api-1', event: 'api_request', source: 'api', timestamp: at(20), model: 'claude-haiku-4-5', success: false, error: 'overloaded', duration_ms: 33, usage: { input_tokens: 2 } },
    { event_id: 'run-step', event: 'PreToolUse', source: 'cron', run_id: 'run-7', timestamp: at(21), tool_name: 'Bash', tool_use_id: 'toolu_r', context: { host: 'cron-box' } },
  ];
  return raw.map((e) => HarnessEventSchema.parse(e));
}

/** What the API says about every session and event of a store, at a fixed time. */
async function answers(store: Store, events: HarnessEvent[], now: number): Promise<unknown> {
  const reads = store.sessionReads();
  const out: Record<string, unknown> = { sessions: await store.sessions({ limit: 100 }, now), tools: await store.topTools({}), unpriced: await store.unpricedModels(), filters: await store.filters(), waiting: await waitingSessions(reads, now, 10 * 365 * 86_400_000) };
  const keys = new Set(events.map((e) => sessionKey(e)));
  for (const key of keys) {
    const s = await resolveSession(reads, key);
    out[`header ${key}`] = await sessionHeader(reads, key, now);
    const pages: unknown[] = [];
    let after: string | null = null;
    do {
      const p = await sessionSteps(reads, s!.key, s!.done, after, 3);
      pages.push(p);
      after = 'error' in p ? null : ((p as { next?: string | null }).next ?? null);
    } while (after);
    out[`steps ${key}`] = pages;
    out[`since ${key}`] = await reads.since(key, { seq: 0 }, 1000);
    out[`changed`] = await reads.changedSince(0, 100);
  }
  for (const e of events) out[`event ${e.event_id}`] = await rawEvent(reads, e.event_id);
  return out;
}

/** Each fact's key text by its session, kind and stored hash: what the events report (fold.ts factOf). */
function factKeysOf(events: HarnessEvent[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of events) {
    const f = factOf(e);
    if (f) out.set(`${f.session_id}\u0000${f.kind}\u0000${factKeyHash(f.key)}`, f.key);
  }
  return out;
}

/** Fact rows in one order whatever the table's (its primary key's) order. */
const byFactId = <T extends Record<string, unknown>>(rows: T[]): T[] =>
  [...rows].sort((a, b) => `${a.session_id}\u0000${a.kind}\u0000${a.khash}`.localeCompare(`${b.session_id}\u0000${b.kind}\u0000${b.khash}`));

describe('facts keyed by their text (schema 9) to their key hash (migration 10)', () => {
  it('every fact is carried over, found again by a later report, and counted once', async () => {
    const events = variedEvents();
    const now = Date.parse('2025-12-02T10:30:00.000Z');
    const received = Date.parse('2025-12-02T10:00:30.000Z');
    const fresh = new SqliteStore(join(t.home, 'fresh.db'));
    for (const e of events) await fresh.ingestMany([[e]], received);
    const path = join(t.home, 'v9.db');
    await fresh.db.backup(path);
    // A later report of facts already stored (the same tool calls and requests, new event ids): counted once, or not at all.
    const again = events.filter((e) => factOf(e) !== null).map((e) => ({ ...e, event_id: uuidv7() }) as HarnessEvent);
    expect(again.length).toBeGreaterThanOrEqual(5);
    await fresh.ingestMany([again], received);
    const expected = await answers(fresh, [...events, ...again], now);
    await fresh.close();

    // Back to schema 9: the facts' key text where its hash is now.
    const keyOf = factKeysOf(events);
    const old = new Database(path);
    const before = byFactId(old.prepare('SELECT * FROM harness_facts').all() as Array<Record<string, unknown>>);
    expect(before.length).toBeGreaterThanOrEqual(5);
    old.exec(`
      DROP VIEW harness_facts; ALTER TABLE harness_fact_rows RENAME TO hashed;
      CREATE TABLE harness_fact_rows (sid INTEGER NOT NULL, kind INTEGER NOT NULL, key TEXT NOT NULL, skey INTEGER NOT NULL, model INTEGER, ts_ms INTEGER NOT NULL,
        unpriced INTEGER NOT NULL DEFAULT 0, shape INTEGER NOT NULL, vals TEXT NOT NULL, PRIMARY KEY (sid, kind, key)) WITHOUT ROWID, STRICT;
      DROP INDEX harness_facts_unpriced; CREATE INDEX harness_facts_unpriced ON harness_fact_rows(model) WHERE unpriced = 1;`);
    const put = old.prepare('INSERT INTO harness_fact_rows SELECT h.sid, h.kind, ?, h.skey, h.model, h.ts_ms, h.unpriced, h.shape, h.vals FROM hashed h WHERE h.sid = ? AND h.kind = ? AND h.khash = ?');
    const name = old.prepare('SELECT name FROM harness_names WHERE id = ?').pluck();
    for (const h of old.prepare('SELECT sid, kind, khash FROM hashed').all() as Array<{ sid: number; kind: number; khash: number }>) {
      const key = keyOf.get(`${name.get(h.sid)}\u0000${name.get(h.kind)}\u0000${h.khash}`);
      expect(key).toBeDefined();
      expect(put.run(key, h.sid, h.kind, h.khash).changes).toBe(1);
    }
    old.exec(`DROP TABLE hashed; CREATE VIEW harness_facts AS SELECT f.sid, f.kind, f.key FROM harness_fact_rows f; PRAGMA user_version = ${SQLITE_MIGRATIONS.length - 1}`);
    old.close();

    const migrated = new SqliteStore(path);
    try {
      expect(migrated.db.pragma('user_version', { simple: true })).toBe(SQLITE_MIGRATIONS.length);
      expect(byFactId(migrated.db.prepare('SELECT * FROM harness_facts').all() as Array<Record<string, unknown>>)).toEqual(before);
      await migrated.ingestMany([again], received);
      expect(await answers(migrated, [...events, ...again], now)).toEqual(expected);
    } finally {
      await migrated.close();
    }
  });
});

describe('events of the previous schema (v3) into compact rows (migration 4)', () => {
  it('every stored event and every API answer stays the same', async () => {
    const events = variedEvents();
    const now = Date.parse('2025-12-02T10:30:00.000Z');
    const received = Date.parse('2025-12-02T10:00:30.000Z');
    // The reference: a collector of this version fed the events.
    const fresh = new SqliteStore(join(t.home, 'fresh.db'));
    for (const e of events) await fresh.ingestMany([[e]], received);
    const expected = await answers(fresh, events, now);
    await fresh.close();

    // The same events as the v3 collector stored them (its columns and whole bodies), with the folded tables it wrote.
    const path = join(t.home, 'v3.db');
    const old = new Database(path);
    for (const m of SQLITE_MIGRATIONS.slice(0, 3)) old.exec(m as string);
    old.pragma('user_version = 3');
    const insert = old.prepare(`INSERT INTO harness_events (${EVENT_COLUMNS.join(', ')}) VALUES (${EVENT_COLUMNS.map(() => '?').join(', ')})`);
    for (const e of events) insert.run(eventValues(e, received));
    old.exec(`ATTACH '${join(t.home, 'fresh.db')}' AS f`);
    // This version keeps a fact's key as its hash: the v3 collector stored the text, which the events give back.
    const keyOf = factKeysOf(events);
    for (const f of old.prepare('SELECT * FROM f.harness_facts').all() as Array<Record<string, unknown> & { session_id: string; kind: string; khash: number; shape: string; vals: string }>) {
      const { shape, vals, khash, ...rest } = f;
      const key = keyOf.get(`${f.session_id}\u0000${f.kind}\u0000${khash}`);
      expect(key).toBeDefined();
      old.prepare('INSERT INTO main.harness_facts (session_id, kind, key, session_key, model, ts_ms, unpriced, state) VALUES (@session_id, @kind, @key, @session_key, @model, @ts_ms, @unpriced, @state)').run({ ...rest, key, state: JSON.stringify(joinState(shape, vals)) });
    }
    for (const table of ['harness_sessions', 'counters']) {
      const cols = (old.prepare(`PRAGMA f.table_info(${table})`).all() as Array<{ name: string }>).map((c) => c.name).join(', ');
      old.exec(`INSERT INTO main.${table} (${cols}) SELECT ${cols} FROM f.${table}`);
    }
    old.exec('DETACH f');
    const stored = old.prepare('SELECT rowid AS seq, * FROM harness_events ORDER BY rowid').all();
    const storedFacts = byFactId((old.prepare('SELECT * FROM harness_facts').all() as Array<Record<string, unknown> & { key: string }>).map(({ key, ...f }) => ({ ...f, khash: factKeyHash(key) })));
    expect(storedFacts.length).toBeGreaterThanOrEqual(5);
    old.close();

    const migrated = new SqliteStore(path);
    try {
      expect(migrated.db.pragma('user_version', { simple: true })).toBe(SQLITE_MIGRATIONS.length);
      expect(migrated.db.pragma('freelist_count', { simple: true })).toBe(0); // the old pages given back (VACUUM after the rewrite)
      // Every stored event whole: its old columns from the view, its body rebuilt byte for byte.
      const rows = migrated.db.prepare(`SELECT seq, ${EVENT_COLUMNS.filter((c) => c !== 'body').join(', ')}, tuple, layout, residue FROM harness_events ORDER BY seq`).all() as Array<Record<string, unknown>>;
      expect(rows.map(({ tuple, layout, residue, ...r }) => ({ ...r, body: decodeBody({ ...(r as object), tuple, layout, residue } as never) }))).toEqual(stored);
      const facts = migrated.db.prepare('SELECT * FROM harness_facts').all() as Array<Record<string, unknown> & { shape: string; vals: string }>;
      expect(byFactId(facts.map(({ shape, vals, ...f }) => ({ ...f, state: JSON.stringify(joinState(shape, vals)) })))).toEqual(storedFacts);
      expect(await answers(migrated, events, now)).toEqual(expected);
      // And it keeps taking events.
      expect(await migrated.ingestMany([[HarnessEventSchema.parse({ event_id: uuidv7(), event: 'Stop', source: 'interactive', session_id: 'S-2', timestamp: new Date(now).toISOString() })]])).toEqual([{ accepted: 1, duplicates: 0 }]);
    } finally {
      await migrated.close();
    }
  });
});

/**
 * The positions in an answer are the storing transactions' ids on PostgreSQL: the same events in
 * another database get others. Everything else must be equal.
 */
function withoutPositions(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutPositions);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(Object.entries(v).filter(([k]) => !['seq', 'ord', 'next', 'cursor', 'snapshot', 'live'].includes(k)).map(([k, x]) => [k, withoutPositions(x)]));
}

describe('PostgreSQL events of the previous schema (7) into compact rows (migration 8), facts keyed by ids (9) and counters by series id (10)', () => {
  const cluster = useStore('postgres');
  it('every stored event and every API answer stays the same; new events are stored compact beside the old ones', async () => {
    const events = variedEvents();
    const later = variedEvents().map((e) => ({ ...e, event_id: `${e.event_id}-later`, timestamp: new Date(Date.parse(e.timestamp) + 60_000).toISOString() }));
    const now = Date.parse('2025-12-02T10:30:00.000Z');
    const received = Date.parse('2025-12-02T10:00:30.000Z');
    // The reference: a collector of this version fed the events, then the later ones.
    const fresh = await PostgresStore.open(await cluster.pg!.createDb());
    for (const e of events) await fresh.ingestMany([[e]], received);
    const expectedOld = withoutPositions(await answers(fresh, events, now));

    // The same events as the schema-7 collector stored them (its columns and whole bodies), with the folded tables it wrote.
    const url = await cluster.pg!.createDb();
    const old = new Client({ connectionString: url });
    await old.connect();
    await old.query('CREATE TABLE claude_metrics_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())');
    for (const [i, m] of POSTGRES_MIGRATIONS.slice(0, 7).entries()) {
      await old.query(m.sql);
      await old.query('INSERT INTO claude_metrics_migrations (version, name) VALUES ($1, $2)', [i + 1, m.name]);
    }
    for (const e of events) await old.query(`INSERT INTO harness_events (${EVENT_COLUMNS.join(', ')}) VALUES (${EVENT_COLUMNS.map((_c, i) => `$${i + 1}`).join(', ')})`, eventValues(e, received));
    for (const table of ['harness_sessions', 'harness_facts', 'counters']) {
      const cols = (await old.query<{ column_name: string }>("SELECT column_name FROM information_schema.columns WHERE table_name = $1 AND is_generated = 'NEVER' ORDER BY ordinal_position", [table])).rows.map((r) => r.column_name).join(', ');
      // This version's facts name their session and its own by interned ids, the kind by a code and
      // the key by its hash; schema 7 by their texts (the keys' texts are what the events report).
      const keyOf = factKeysOf(events);
      const rows =
        table === 'harness_facts'
          ? (
              await fresh.pool.query(
                "SELECT i.text AS session_id, (ARRAY['usage', 'tool', 'metric'])[f.kind] AS kind, f.khash, k.text AS session_key, f.model, f.ts_ms, f.unpriced, f.state FROM harness_facts f JOIN harness_event_parts k ON k.id = f.skey JOIN harness_event_parts i ON i.id = f.sid",
              )
            ).rows.map(({ khash, ...f }) => ({ ...f, key: keyOf.get(`${f.session_id}\u0000${f.kind}\u0000${khash}`) ?? expect.fail(`no key for ${JSON.stringify(f)}`) }))
          : (await fresh.pool.query(`SELECT ${cols} FROM ${table}`)).rows;
      await old.query(`INSERT INTO ${table} (${cols}) SELECT ${cols} FROM json_populate_recordset(NULL::${table}, $1::json)`, [JSON.stringify(rows)]);
    }
    const stored = (await old.query('SELECT event_id, body FROM harness_events ORDER BY event_id')).rows as Array<{ event_id: string; body: string }>;
    await old.end();
    const countersOf = async (store: Store) => (await store.counters()).map((c) => `${c.metric} ${JSON.stringify(c.labels)} ${c.value}`).sort();
    const expectedOldCounters = await countersOf(fresh);
    expect(expectedOldCounters.length).toBeGreaterThanOrEqual(10);
    for (const e of later) await fresh.ingestMany([[e]], received);
    const expectedAll = withoutPositions(await answers(fresh, [...events, ...later], now));
    const expectedCounters = await countersOf(fresh);
    await fresh.close();

    const migrated = await PostgresStore.open(url);
    try {
      const version = (await migrated.pool.query('SELECT max(version) AS v FROM claude_metrics_migrations')).rows[0].v;
      expect(Number(version)).toBe(POSTGRES_MIGRATIONS.length);
      const cols = (await migrated.pool.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'harness_events'")).rows.map((r) => r.column_name as string);
      expect(cols).not.toContain('body');
      expect(cols).not.toContain('ts');
      expect(cols).not.toContain('session_key');
      const factCols = (await migrated.pool.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'harness_facts'")).rows.map((r) => r.column_name as string);
      expect(factCols).toContain('skey');
      expect(factCols).not.toContain('session_key');
      expect(factCols).toContain('khash');
      expect(factCols).not.toContain('key');
      expect(factCols).not.toContain('session_id');
      // Every fact carried over: found under its new key (the hash computed in SQL is the one JS computes).
      const carried = (await migrated.pool.query('SELECT count(*)::int AS n FROM harness_facts')).rows[0].n as number;
      expect(carried).toBe(factKeysOf(events).size);
      // Every stored event whole, byte for byte, through the session reads.
      const reads = migrated.sessionReads();
      for (const { event_id, body } of stored) expect((await reads.event(event_id))?.body).toBe(body);
      expect(withoutPositions(await answers(migrated, events, now))).toEqual(expectedOld);
      // The counters moved to series ids (migration 10): every series and value as before, and they keep counting.
      expect(await countersOf(migrated)).toEqual(expectedOldCounters);
      expect((await migrated.pool.query("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'counter_values'")).rows[0].n).toBe(1);
      // It keeps taking events, stored compact (no row of the new ones is kept whole), and answers as the reference.
      for (const e of later) expect(await migrated.ingestMany([[e]], received)).toEqual([{ accepted: 1, duplicates: 0 }]);
      const kinds = (await migrated.pool.query(`SELECT (event_id LIKE '%-later') AS later, layout_id = 1 AS whole, count(*)::int AS n FROM harness_events GROUP BY 1, 2 ORDER BY 1, 2`)).rows;
      expect(kinds).toEqual([{ later: false, whole: true, n: events.length }, { later: true, whole: false, n: later.length }]);
      expect(withoutPositions(await answers(migrated, [...events, ...later], now))).toEqual(expectedAll);
      expect(await countersOf(migrated)).toEqual(expectedCounters);
    } finally {
      await migrated.close();
    }
  }, 120_000);
});
