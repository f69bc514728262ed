/**
 * Aggregates kept at ingest (rollups.ts) answer exactly what recomputing from
 * the stored sessions and events answers: after a randomized storm (seeded;
 * every event twice, shuffled, random batches to two collector processes on one
 * database at once, sessions completing late and moving between days, facts
 * reported twice), after a chunked retention sweep, and after
 * `serve --rebuild-aggregates`; on SQLite and on PostgreSQL.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { daily, dailyFromSessions, summary, summaryFromSessions } from '../src/collector/api';
import { openStore, type SessionFilter, type Store } from '../src/collector/store';
import { uuidv7 } from '../src/ids';
import { postJson, runCli, startServe, tempHome, type ServeHandle, type TempHome } from './helpers/cli';
import { STORES, useStore } from './helpers/stores';
import { rng, shuffle } from './helpers/random';
import { SQLITE_MIGRATIONS } from '../src/collector/store/migrations/sqlite';
import { POSTGRES_MIGRATIONS } from '../src/collector/store/migrations/postgres';

const DAY = 86_400_000;


const PROJECTS = ['web', 'api', '', null];
const LABELS = ['nightly', 'fix', null];

/** Sessions over the last 12 days: tools (some reported again by OTel, some failing later), usage (twice, as transcript and OTel), late and moving completions. */
function storm(now: number, r: () => number, sessions = 70): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  const pickOf = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  for (let s = 0; s < sessions; s++) {
    const start = now - Math.floor(r() * 12 * DAY);
    const at = (ms: number) => new Date(start + ms).toISOString();
    const ralph = s % 4 === 0;
    const base: Record<string, unknown> = { source: ralph ? 'ralph' : pickOf(['interactive', 'api', 'cron']), session_id: `cc-${s}` };
    const project = pickOf(PROJECTS);
    const label = pickOf(LABELS);
    if (project !== null) base.project = project;
    if (label !== null) base.label = label;
    if (ralph) Object.assign(base, { task_id: `T-${s}`, run_id: `run-${s}` });
    const e = (ms: number, over: Record<string, unknown>) => out.push({ event_id: uuidv7(), timestamp: at(ms), ...base, ...over });
    e(0, { event: ralph ? 'ralph_task_started' : 'SessionStart' });
    const tools = 1 + Math.floor(r() * 5);
    for (let k = 0; k < tools; k++) {
      const t = 1000 + k * 1000;
      const ok = r() > 0.2;
      const tool = pickOf(['Bash', 'Read', 'Edit', 'bash']);
      const duration = r() > 0.1 ? Math.floor(r() * 500) : undefined;
      e(t, { event: ok ? 'PostToolUse' : 'PostToolUseFailure', tool_name: tool, tool_use_id: `tu-${s}-${k}`, success: ok, ...(duration !== undefined ? { duration_ms: duration } : {}) });
      // The same call reported again the same moment (OTel), sometimes as failed where the hook said success.
      if (r() < 0.4) e(t, { event: 'tool_result', tool_name: tool, tool_use_id: `tu-${s}-${k}`, success: ok && r() > 0.3, ...(duration !== undefined ? { duration_ms: duration } : {}) });
    }
    for (let k = 0; k < 1 + Math.floor(r() * 3); k++) {
      const usage = { input_tokens: Math.floor(r() * 1000), output_tokens: Math.floor(r() * 300), cache_read_input_tokens: Math.floor(r() * 5000), cache_creation_input_tokens: Math.floor(r() * 100) };
      const cost = Math.round(r() * 1e7) / 1e9;
      e(10_000 + k, { event: 'usage', request_id: `req-${s}-${k}`, model: 'claude-sonnet-4-5', usage, cost_usd: cost });
      if (r() < 0.5) e(10_000 + k, { event: 'usage', request_id: `req-${s}-${k}`, model: 'claude-sonnet-4-5', usage, cost_usd: cost * 1.1, cost_source: 'claude_code' });
    }
    const fate = r();
    // Completed the same day, a day or two later (moving between days), never (running or stale), or completed then seen again later.
    const end = fate < 0.4 ? 60_000 : fate < 0.7 ? Math.floor((1 + r()) * DAY) : -1;
    if (end >= 0 && start + end < now) {
      const success = r() > 0.3;
      e(end, ralph ? { event: 'ralph_task_completed', success, duration_ms: end } : { event: 'SessionEnd', success, exit_code: success ? 0 : 1 });
      if (r() < 0.3 && start + end + DAY < now) e(end + DAY, { event: 'Notification', message: 'late' });
    } else if (r() < 0.3) e(Math.min(now - start - 1000, 20 * 60_000), { event: 'UserPromptSubmit' });
  }
  return out;
}

/** Random batches to random collectors, `concurrency` requests in flight. */
async function spray(events: Array<Record<string, unknown>>, endpoints: string[], r: () => number, concurrency = 6): Promise<void> {
  const batches: Array<Array<Record<string, unknown>>> = [];
  for (let i = 0; i < events.length; ) {
    const n = 1 + Math.floor(r() * 30);
    batches.push(events.slice(i, i + n));
    i += n;
  }
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < batches.length) {
        const i = next++;
        const res = await postJson(endpoints[Math.floor(r() * endpoints.length)]!, { events: batches[i] });
        expect(res.status).toBe(200);
      }
    }),
  );
}

/** Every question the dashboard asks, from the rollups and recomputed, side by side. */
async function compare(store: Store, now: number, projects: string[], opts: { toolsBefore?: number } = {}) {
  const filters: SessionFilter[] = [{}, { source: 'ralph' }, { source: 'interactive' }, { label: 'nightly' }, { project: 'web', label: 'fix' }, ...projects.map((project) => ({ project }))];
  const stored = await store.allSessions({}, now);
  // Windows that start just before some session's last event: its hour is read raw, the hours after it from the hourly rollups.
  const edges = stored.filter((_, i) => i % 9 === 0).map((s) => Date.parse(s.last_seen_at!) - 1);
  const sinces = [undefined, now - 36 * 3_600_000, now - 3 * DAY, Math.floor(now / DAY) * DAY - 2 * DAY, now - 30 * DAY, ...edges];
  for (const base of filters) {
    for (const sinceMs of sinces) {
      const f = { ...base, sinceMs };
      const got = await summary(store, f, now);
      const want = await summaryFromSessions(store, f, now);
      // Retention removes whole days of tool rollups (documented). (A call reported under two sources counts under its first report's; the storm reports each under one.)
      const toolsComparable = (opts.toolsBefore === undefined || (sinceMs ?? now - 6 * DAY) >= opts.toolsBefore);
      if (!toolsComparable) {
        got.top_tools = [];
        want.top_tools = [];
      }
      expect({ f, ...got }).toEqual({ f, ...want });
    }
    for (const days of [1, 3, 7, 30]) expect(await daily(store, base, days, now)).toEqual(await dailyFromSessions(store, base, days, now));
  }
  // /metrics' last-event gauges: the latest last-seen time per (source, project, label) of the week's sessions.
  const week = now - 7 * DAY;
  const latest = new Map<string, number>();
  for (const s of await store.allSessions({ sinceMs: week }, now)) {
    const k = JSON.stringify([s.source, s.project, s.label]);
    latest.set(k, Math.max(latest.get(k) ?? 0, Date.parse(s.last_seen_at!)));
  }
  const byKey = (xs: Array<[string, number]>) => xs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  expect(byKey((await store.lastSeen(week)).map((l) => [JSON.stringify([l.source, l.project, l.label]), l.last_seen_ms]))).toEqual(byKey([...latest.entries()]));
  // /api/filters: the distinct values of the stored sessions.
  const all = stored;
  const distinct = (k: 'source' | 'project' | 'label') => [...new Set(all.map((s) => s[k]).filter((v): v is string => v !== null))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  expect(await store.filters()).toEqual({ sources: distinct('source'), projects: distinct('project'), labels: distinct('label') });
  // The ingest totals: what the counters say.
  const counters = await store.counters();
  const sum = (m: string) => counters.filter((c) => c.metric === m).reduce((a, c) => a + c.value, 0);
  const totals = await store.ingestTotals();
  expect([totals.events, totals.duplicates]).toEqual([sum('events_total'), sum('duplicates_total')]);
}

describe.each(STORES)('aggregates kept at ingest on %s', (backend) => {
  const stores = useStore(backend);
  let home: TempHome;
  const serves: ServeHandle[] = [];
  beforeEach(() => {
    home = tempHome('cm-rollups-');
  });
  afterEach(async () => {
    await Promise.all(serves.splice(0).map((s) => s.stop()));
    home.cleanup();
  });

  it('after a storm over two collectors, a retention sweep and a rebuild, the rollups answer what recomputation answers', async () => {
    const db = await stores.fresh(home);
    const now = Date.now();
    const r = rng(17);
    const events = storm(now, r);
    // Both start at once on the new database; each is stopped after the test even if the other failed to start.
    const start = async () => {
      const s = await startServe(home.env, ['--db', db, '--retention-days', '365']);
      serves.push(s);
      return s;
    };
    const [a, b] = await Promise.all([start(), start()]);
    await spray(shuffle(events, r), [a!.endpoint, b!.endpoint], r);
    await spray(shuffle(events, r), [a!.endpoint, b!.endpoint], r); // every event again: duplicates
    await Promise.all(serves.splice(0).map((s) => s.stop()));

    const store = await openStore(db);
    try {
      expect((await store.allSessions({}, now)).length).toBeGreaterThan(50);
      const totals = await store.ingestTotals();
      expect([totals.events, totals.duplicates]).toEqual([events.length, events.length]);
      await compare(store, now, ['', 'api']);

      // Retention in chunks subtracts what it deletes: the rollups still equal the recomputation.
      const swept = await store.sweep(8, now);
      expect(swept.sessions).toBeGreaterThan(0);
      expect(swept.events).toBeGreaterThan(0);
      await compare(store, now, ['', 'api'], { toolsBefore: Math.floor((now - 8 * DAY) / DAY) * DAY + DAY });
    } finally {
      await store.close();
    }

    // The one-off rebuild derives the same tables again and says what it did.
    const rebuilt = await runCli(['serve', '--db', db, '--rebuild-aggregates'], { env: home.env });
    expect(rebuilt.code).toBe(0);
    expect(rebuilt.stdout).toMatch(/^claude-metrics serve --rebuild-aggregates: \d+ sessions → \d+ session rollup rows, \d+ tool calls → \d+ tool rollup rows, \d+ filter values/);
    const again = await openStore(db);
    try {
      await compare(again, now, ['', 'api'], { toolsBefore: Math.floor((now - 8 * DAY) / DAY) * DAY + DAY });
    } finally {
      await again.close();
    }
  }, 240_000);

  it('a database from before the hourly rollups (SQLite 7, PostgreSQL 6) is filled by the migration, and answers as recomputation does', async () => {
    const db = await stores.fresh(home);
    const now = Date.now();
    const r = rng(29);
    const events = storm(now, r, 40);
    let store = await openStore(db);
    try {
      for (let i = 0; i < events.length; i += 50) await store.ingestMany([events.slice(i, i + 50) as never]);
      // Back to the schema before: the migration's tables dropped, its version unrecorded, the rollups of migration 5 / 4 left as they are.
      const drop = 'DROP TABLE session_hour_rollups; DROP TABLE tool_hour_rollups; DROP TABLE session_last_seen;';
      if (store.kind === 'sqlite') {
        const sdb = (store as unknown as { db: { exec(s: string): void; pragma(s: string): unknown } }).db;
        sdb.exec(drop);
        sdb.pragma(`user_version = ${SQLITE_MIGRATIONS.findIndex((m) => typeof m === 'string' && m.includes('CREATE TABLE session_hour_rollups'))}`);
      } else {
        const version = POSTGRES_MIGRATIONS.findIndex((m) => m.sql.includes('CREATE TABLE session_hour_rollups')) + 1;
        await (store as unknown as { pool: { query(s: string): Promise<unknown> } }).pool.query(`${drop} DELETE FROM claude_metrics_migrations WHERE version >= ${version}`);
      }
    } finally {
      await store.close();
    }
    store = await openStore(db);
    try {
      await compare(store, now, ['', 'api']);
    } finally {
      await store.close();
    }
  }, 120_000);

  it('retention walks the facts in key order (no time index): every fact older than the cutoff goes, across many chunks, and every newer one stays', async () => {
    const db = await stores.fresh(home);
    const store = await openStore(db);
    const sql = async <R,>(text: string): Promise<R[]> =>
      store.kind === 'sqlite'
        ? ((store as unknown as { db: { prepare(s: string): { all(): unknown[] } } }).db.prepare(text).all() as R[])
        : ((await (store as unknown as { pool: { query(s: string): Promise<{ rows: R[] }> } }).pool.query(text)).rows);
    try {
      const now = Date.now();
      const cutoff = now - 7 * DAY;
      // Old and new tool calls interleaved over sessions, so that every chunk of the walk meets both.
      const events = Array.from({ length: 3000 }, (_, i) => ({
        event_id: uuidv7(), event: 'PostToolUse', source: 'interactive', session_id: `walk-${i % 7}`, tool_name: 'Bash', tool_use_id: `tu-${i}`, success: true,
        timestamp: new Date(i % 3 === 0 ? now - 30 * DAY + i : now - 3_600_000 + i).toISOString(),
      }));
      for (let i = 0; i < events.length; i += 500) await store.ingestMany([events.slice(i, i + 500) as never]);
      const table = store.kind === 'sqlite' ? 'harness_fact_rows' : 'harness_facts';
      const count = async (where = '') => Number((await sql<{ n: number | string }>(`SELECT count(*) AS n FROM ${table} ${where}`))[0]!.n);
      const old = await count(`WHERE ts_ms < ${cutoff}`);
      const all = await count();
      expect(old).toBe(1000);
      expect(all).toBeGreaterThanOrEqual(3000);
      const indexes = store.kind === 'sqlite'
        ? (await sql<{ name: string }>(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '${table}'`)).map((r) => r.name)
        : (await sql<{ name: string }>(`SELECT indexname AS name FROM pg_indexes WHERE tablename = '${table}'`)).map((r) => r.name);
      expect(indexes).not.toContain('harness_facts_ts');
      expect(indexes.length).toBeGreaterThan(0);

      const swept = await store.sweep(7, now);
      expect(swept.facts).toBe(old);
      expect(swept.chunks).toBeGreaterThan(3);
      expect(await count(`WHERE ts_ms < ${cutoff}`)).toBe(0);
      expect(await count()).toBe(all - old);
      // The calls that stay are still known by their facts: reported again (new event ids, as a
      // second path would), none is a new call; an old one reported again is (its fact is gone).
      const calls = async () => (await store.allSessions({}, now)).reduce((a, s) => a + s.tool_calls_count, 0);
      const before = await calls();
      const again = (i: number) => ({ ...events[i]!, event_id: uuidv7() });
      await store.ingestMany([[1, 2, 4, 5, 7].map(again) as never]);
      expect(await calls()).toBe(before);
      await store.ingestMany([[3].map(again) as never]);
      expect(await calls()).toBe(before + 1);
    } finally {
      await store.close();
    }
  }, 120_000);

  it('a last-seen entry left behind (a session that learned its project later) is answered from the sessions, then repaired; retention takes old entries', async () => {
    const db = await stores.fresh(home);
    const store = await openStore(db);
    try {
      const now = Date.now();
      const at = (ms: number) => new Date(now - ms).toISOString();
      const ev = (over: Record<string, unknown>) => ({ event_id: uuidv7(), source: 'interactive', session_id: 'late-project', ...over });
      // First without a project (an OTel event before the hook's), then with one: (interactive, null, null) is left behind.
      await store.ingestMany([[ev({ event: 'tool_result', timestamp: at(60_000), tool_name: 'Bash', tool_use_id: 'tu-1', success: true }) as never]]);
      await store.ingestMany([[ev({ event: 'UserPromptSubmit', timestamp: at(30_000), project: 'web' }) as never]]);
      await store.ingestMany([[ev({ event: 'SessionStart', timestamp: at(9 * DAY), session_id: 'old', project: 'api' }) as never]]);
      const week = now - 7 * DAY;
      const want = [{ source: 'interactive', project: 'web', label: null, last_seen_ms: Date.parse(at(30_000)) }];
      expect(await store.lastSeen(week)).toEqual(want);
      // Repaired by that read: the entry left behind is gone (the next read holds without grouping the sessions), and says the same.
      const entries = async () => {
        const sql = 'SELECT DISTINCT project FROM session_last_seen ORDER BY project';
        const rows = store.kind === 'sqlite' ? ((store as unknown as { db: { prepare(s: string): { all(): unknown[] } } }).db.prepare(sql).all() as Array<{ project: string }>) : ((await (store as unknown as { pool: { query(s: string): Promise<{ rows: Array<{ project: string }> }> } }).pool.query(sql)).rows);
        return rows.map((r) => r.project);
      };
      expect(await entries()).toEqual(['.api', '.web']);
      expect((await store.lastSeen(week)).map((l) => [l.project, l.last_seen_ms])).toEqual([['web', Date.parse(at(30_000))]]);
      expect((await store.lastSeen(now - 10 * DAY)).map((l) => l.project).sort()).toEqual(['api', 'web']);
      await store.sweep(8, now);
      expect((await store.lastSeen(0)).map((l) => l.project)).toEqual(['web']);
    } finally {
      await store.close();
    }
  }, 120_000);
});
