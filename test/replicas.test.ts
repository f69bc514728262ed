/**
 * Several `serve` replicas on one PostgreSQL (a throw-away cluster): migrations
 * applied once by replicas starting together; events spread over two replicas
 * concurrently, in random order and twice, fold into the rows one SQLite
 * collector gives; a replica killed mid-storm loses no acknowledged event; a
 * PostgreSQL restart gives 503 + Retry-After (emitters spool) and the replicas
 * recover by themselves; retention runs once per period across replicas.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { POSTGRES_MIGRATIONS } from '../src/collector/store/migrations/postgres';
import { PostgresStore } from '../src/collector/store/postgres';
import type { HarnessEvent } from '../src/event';
import { uuidv7 } from '../src/ids';
import { deadPort, getJson, postJson, runCli, startServe, tempHome, waitFor, type ServeHandle, type TempHome } from './helpers/cli';
import { startPostgres, type PgCluster } from './helpers/postgres';
import { rng, shuffle } from './helpers/random';

let pg: PgCluster;
let home: TempHome;
const serves: ServeHandle[] = [];
const start = async (args: string[]) => {
  const s = await startServe(home.env, args);
  serves.push(s);
  return s;
};

beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
});
beforeEach(() => {
  home = tempHome();
});
afterEach(async () => {
  await Promise.all(serves.splice(0).map((s) => s.stop()));
  home.cleanup();
});


/**
 * Sessions as they arrive in real life: hooks, transcript usage and Claude
 * Code's own OTel reports of the same requests and tool calls (facts), errors,
 * model changes, a ralph run wrapping a session, and two completions each.
 */
function workload(sessions: number): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  const t0 = Date.UTC(2026, 10, 25, 1, 0, 0);
  for (let s = 0; s < sessions; s++) {
    const at = (sec: number) => new Date(t0 + s * 60_000 + sec * 1000).toISOString();
    const base = { source: s % 3 === 0 ? 'ralph' : 'interactive', session_id: `cc-${s}`, project: `p${s % 4}`, label: `l${s % 2}`, ...(s % 3 === 0 ? { run_id: `run-${s}`, task_id: `T-${s}` } : {}) };
    const e = (sec: number, over: Record<string, unknown>) => out.push({ event_id: uuidv7(), timestamp: at(sec), ...base, ...over });
    e(0, { event: 'SessionStart' });
    for (let k = 0; k < 5; k++) {
      e(1 + k, { event: k === 3 ? 'PostToolUseFailure' : 'PostToolUse', tool_name: k % 2 ? 'Read' : 'Bash', tool_use_id: `tu-${s}-${k}`, success: k !== 3, duration_ms: 10 + k, ...(k === 3 ? { error: `exit ${s}` } : {}) });
      // Claude Code's OTel report of the same call
      e(1 + k, { event: 'tool_result', source: 'api', tool_name: k % 2 ? 'Read' : 'Bash', tool_use_id: `tu-${s}-${k}`, success: k !== 3 });
    }
    for (let k = 0; k < 3; k++) {
      const model = k < 2 ? 'claude-sonnet-4-5' : 'claude-opus-4-5';
      e(10 + k, { event: 'usage', request_id: `req-${s}-${k}`, model, usage: { input_tokens: 100 + k, output_tokens: 20 + s, cache_read_input_tokens: 1000 }, cost_usd: 0.01 * (k + 1) });
      e(10 + k, { event: 'usage', request_id: `req-${s}-${k}`, model, usage: { input_tokens: 100 + k, output_tokens: 20 + s, cache_read_input_tokens: 1000 }, cost_usd: 0.011 * (k + 1), cost_source: 'claude_code' });
    }
    e(30, { event: 'SessionEnd', success: s % 5 !== 0, exit_code: s % 5 === 0 ? 1 : 0 });
    e(31, { event: 'SessionEnd', success: true, duration_ms: 31_000 });
  }
  return out;
}

/** Posts events in random batches to random replicas, `concurrency` requests at a time; returns the statuses. */
async function spray(events: Array<Record<string, unknown>>, endpoints: string[], r: () => number, concurrency = 8): Promise<number[]> {
  const batches: Array<Array<Record<string, unknown>>> = [];
  for (let i = 0; i < events.length; ) {
    const n = 1 + Math.floor(r() * 40);
    batches.push(events.slice(i, i + n));
    i += n;
  }
  const targets = batches.map(() => endpoints[Math.floor(r() * endpoints.length)]!);
  const statuses: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < batches.length) {
        const i = next++;
        const b = batches[i]!;
        statuses.push((await postJson(targets[i]!, b.length === 1 ? b[0] : { events: b })).status);
      }
    }),
  );
  return statuses;
}

const sessionsOf = async (url: string) => (await getJson(`${url}/api/sessions?limit=1000&since=2026-11-01`)).body.sessions as Array<Record<string, unknown>>;
const counterLines = async (url: string) =>
  ((await getJson(`${url}/metrics`)).body as string).split('\n').filter((l) => l && !l.startsWith('#') && !/^claude_harness_(active_sessions|last_event|ralph_active_tasks|ralph_last_event)/.test(l));
const total = (lines: string[], metric: string) => lines.filter((l) => l.startsWith(`${metric}{`) || l.startsWith(`${metric} `)).reduce((a, l) => a + Number(l.split(' ').pop()), 0);

describe('replicas on one PostgreSQL', () => {
  it('replicas starting together apply the migrations exactly once', async () => {
    const db = await pg.createDb();
    const started = await Promise.all([0, 1, 2].map(() => start(['--db', db])));
    expect(started).toHaveLength(3);
    const name = new URL(db).pathname.slice(1);
    const rows = await pg.query<{ version: number; name: string }>(name, 'SELECT version, name FROM claude_metrics_migrations ORDER BY version');
    expect(rows.map((r) => r.version)).toEqual(POSTGRES_MIGRATIONS.map((_, i) => i + 1));
    // …and a replica that starts later finds them applied and changes nothing
    await start(['--db', db]);
    expect(await pg.query(name, 'SELECT version FROM claude_metrics_migrations')).toHaveLength(POSTGRES_MIGRATIONS.length);
  });

  it('events spread over two replicas, concurrently, in any order and twice, fold into the rows of one SQLite collector', async () => {
    const db = await pg.createDb();
    const [a, b] = await Promise.all([start(['--db', db, '--db-pool-size', '4']), start(['--db', db, '--db-pool-size', '4'])]);
    const reference = await start(['--db', join(home.home, 'reference.db')]);
    const events = workload(24);
    const r = rng(13);
    // The reference: one collector, in order, one batch at a time.
    for (let i = 0; i < events.length; i += 500) expect((await postJson(reference.endpoint, { events: events.slice(i, i + 500) })).status).toBe(200);
    // The replicas: shuffled, random batches to random replicas, 8 requests in flight; then every event again.
    const first = await spray(shuffle(events, r), [a!.endpoint, b!.endpoint], r);
    const again = await spray(shuffle(events, r), [a!.endpoint, b!.endpoint], r);
    expect([...first, ...again].every((s) => s === 200)).toBe(true);

    const [sa, sb, sr] = await Promise.all([sessionsOf(a!.url), sessionsOf(b!.url), sessionsOf(reference.url)]);
    expect(sa).toHaveLength(24);
    expect(sb).toEqual(sa); // the same answer from every replica
    expect(sa).toEqual(sr); // and the one a single collector gives
    // Facts: each request and each tool call counted once though reported twice and sent twice.
    const one = sa.find((s) => s.claude_session_id === 'cc-1')!;
    expect(one).toMatchObject({ tool_calls_count: 5, tool_failures: 1, input_tokens: 303, output_tokens: 63, cache_read_input_tokens: 3000, cost_usd: 0.066, cost_source: 'claude_code', events_count: 19 });

    // Counters are the store's totals: both replicas expose the same series and values.
    const [ma, mb, mr] = await Promise.all([counterLines(a!.url), counterLines(b!.url), counterLines(reference.url)]);
    expect(mb).toEqual(ma);
    expect(total(ma, 'claude_harness_events_total')).toBe(events.length);
    expect(total(ma, 'claude_harness_duplicates_total')).toBe(events.length);
    for (const m of ['claude_harness_tokens_total', 'claude_harness_sessions_completed_total', 'claude_harness_tool_calls_total', 'claude_harness_task_duration_seconds_count']) {
      expect(total(ma, m), m).toBe(total(mr, m));
    }
    // Summaries agree too (everything but the time they were made).
    const summary = async (url: string) => ({ ...(await getJson(`${url}/api/summary?since=2026-11-01`)).body, generated_at: undefined });
    expect(await summary(b!.url)).toEqual(await summary(a!.url));
    expect((await getJson(`${a!.url}/api/filters`)).body).toEqual((await getJson(`${reference.url}/api/filters`)).body);
  }, 120_000);

  it('a replica killed (SIGKILL) mid-storm loses no acknowledged event; the other keeps taking them', async () => {
    const db = await pg.createDb();
    const [a, b] = await Promise.all([start(['--db', db]), start(['--db', db])]);
    const acked = new Set<string>();
    let stop = false;
    let sent = 0;
    const ev = () => ({ event_id: uuidv7(), event: 'PostToolUse', source: 'interactive', timestamp: new Date().toISOString(), session_id: `s-${sent++ % 9}`, tool_name: 'Bash', tool_use_id: `tu-${sent}`, success: true });
    const senders = [a!, b!, a!, b!].map(async (target) => {
      while (!stop) {
        const events = Array.from({ length: 50 }, ev);
        try {
          const r = await postJson(target.endpoint, { events });
          if (r.status === 200) for (const e of events) acked.add(e.event_id);
        } catch {
          if (target === a) return; // the killed replica: not acknowledged
        }
      }
    });
    await waitFor(() => acked.size >= 400, { timeoutMs: 30_000 });
    a!.child.kill('SIGKILL');
    const atKill = acked.size;
    await waitFor(() => acked.size >= atKill + 400, { timeoutMs: 30_000 }); // the survivor carries on
    stop = true;
    await Promise.all(senders);

    const stored = (await getJson(`${b!.url}/healthz`)).body.events as number;
    const { body } = await getJson(`${b!.url}/api/sessions?limit=1000`);
    const folded = (body.sessions as Array<{ events_count: number; tool_calls_count: number }>).reduce((x, s) => x + s.events_count, 0);
    expect(folded).toBe(stored); // every stored event folded exactly once (none half-committed by the killed replica)
    expect(stored).toBeGreaterThanOrEqual(acked.size);
    const ids = [...acked];
    for (let i = 0; i < ids.length; i += 500) {
      const r = await postJson(b!.endpoint, { events: ids.slice(i, i + 500).map((id) => ({ ...ev(), event_id: id })) });
      expect(r.body.accepted).toBe(0); // all acknowledged ones are there
    }
  }, 120_000);

  it('a PostgreSQL restart: 503 + Retry-After while it is down (emit spools), the replicas recover by themselves', async () => {
    const db = await pg.createDb();
    const [a, b] = await Promise.all([start(['--db', db]), start(['--db', db])]);
    const ev = (over: Record<string, unknown> = {}) => ({ event_id: uuidv7(), event: 'PostToolUse', source: 'api', timestamp: new Date().toISOString(), session_id: 'R', tool_name: 'Bash', success: true, ...over });
    expect((await postJson(a!.endpoint, ev())).status).toBe(200);
    await pg.stopServer();
    try {
      for (const s of [a!, b!]) {
        const res = await fetch(s.endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ev()) });
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
        expect(((await res.json()) as { error: string; reason: string }).reason).toBe('unavailable');
        expect((await getJson(`${s.url}/healthz`)).status).toBe(503);
        expect((await getJson(`${s.url}/api/summary`)).status).toBe(503);
      }
      // The emitter treats the 503 as "try later": exit 0, nothing on stdout, the event in its spool.
      const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: a!.endpoint, CLAUDE_METRICS_SELF: '/bin/true', CLAUDE_METRICS_TIMEOUT_MS: '10000' };
      const emitted = await runCli(['emit', '--event', 'outage_event', '--source', 'api', '--session-id', 'R'], { env });
      expect(emitted.code).toBe(0);
      expect(emitted.stdout).toBe('');
      expect(readdirSync(join(home.stateDir, 'spool', 'new'))).toHaveLength(1);
    } finally {
      await pg.startServer();
    }
    // No restart of the replicas: the next requests get fresh connections.
    for (const s of [a!, b!]) await waitFor(async () => (await postJson(s.endpoint, ev())).status === 200, { timeoutMs: 30_000, intervalMs: 250 });
    const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: b!.endpoint, CLAUDE_METRICS_SELF: '/bin/true' };
    expect((await runCli(['flush'], { env })).code).toBe(0);
    const sessions = (await getJson(`${a!.url}/api/sessions`)).body.sessions as Array<{ id: string; events_count: number }>;
    expect(sessions.find((s) => s.id === 'session:R')?.events_count).toBeGreaterThanOrEqual(4); // 1 before, 1+ after each replica, the spooled one
    expect(a!.stderr() + b!.stderr()).not.toMatch(/TypeError|unhandled/i);
  }, 120_000);

  it('a database it cannot reach: one clear line without the password, a non-zero exit', async () => {
    const port = await deadPort();
    const r = await runCli(['serve', '--port', '0', '--db', `postgres://cm:hunter2@127.0.0.1:${port}/nowhere`], { env: home.env, killAfterMs: 30_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`cannot open the database postgres://cm:\\*\\*\\*@127\\.0\\.0\\.1:${port}/nowhere: .*ECONNREFUSED`));
    expect(r.stderr).not.toContain('hunter2');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('a counter spread over shards sums exactly, whole values and fractions alike, whatever order the rows are read in', async () => {
    const db = await pg.createDb();
    const store = await PostgresStore.open(db, { poolSize: 1 });
    const c = new Client({ connectionString: db });
    await c.connect();
    try {
      // As replicas leave them: one series' parts in several shards. Summed as doubles in
      // scan order, 0.1 + 0.2 + … is off in its last digits and can differ between two reads.
      const parts: Array<[string, string, number[]]> = [
        ['cost_usd_total', '{"source":"api","project":"p","label":"","model":"m"}', Array(10).fill(0.1)],
        ['events_total', '{"source":"api","project":"p","label":"","event":"x"}', [1, 2, 3, 2 ** 52]],
        ['task_duration_seconds_sum', '{"source":"api","project":"p","label":""}', [2, 0.25]],
      ];
      for (const [metric, labels, values] of parts) {
        const id = (await c.query('INSERT INTO counter_series (metric, labels) VALUES ($1, $2) RETURNING id', [metric, labels])).rows[0].id as number;
        for (const [shard, value] of values.entries()) await c.query('INSERT INTO counter_values (series, shard, value) VALUES ($1, $2, $3)', [id, shard, value]);
      }
      const read = async () => new Map((await store.counters()).map((t) => [t.metric, t.value]));
      const first = await read();
      expect(first.get('cost_usd_total')).toBe(1); // as doubles: 0.9999999999999999
      expect(first.get('events_total')).toBe(2 ** 52 + 6);
      expect(first.get('task_duration_seconds_sum')).toBe(2.25);
      // Another physical order of the same rows: the same totals, to the last bit.
      await c.query('UPDATE counter_values SET value = value WHERE shard % 2 = 0');
      expect(await read()).toEqual(first);
    } finally {
      await c.end();
      await store.close();
    }
  });

  it('retention runs once per period across replicas', async () => {
    const db = await pg.createDb();
    const stores = await Promise.all([PostgresStore.open(db, { poolSize: 2 }), PostgresStore.open(db, { poolSize: 2 })]);
    try {
      const now = Date.now();
      const old = (i: number): HarnessEvent => ({ event_id: `old-${i}`, event: 'PostToolUse', source: 'api', timestamp: new Date(now - 30 * 86_400_000).toISOString(), session_id: `old-${i % 3}` }) as HarnessEvent;
      await stores[0]!.ingestMany([Array.from({ length: 10 }, (_, i) => old(i))]);
      // Two replicas' timers fire at the same moment: one sweeps, the other finds the period taken.
      const [x, y] = await Promise.all(stores.map((s) => s.sweep(7, now)));
      expect([x!.skipped ?? false, y!.skipped ?? false].sort()).toEqual([false, true]);
      expect((x!.skipped ? y! : x!).events).toBe(10);
      expect(await stores[1]!.eventCount()).toBe(0);
      // Later in the same period: skipped; a period later, or with a new setting: runs.
      expect((await stores[1]!.sweep(7, now + 30 * 60_000)).skipped).toBe(true);
      expect((await stores[1]!.sweep(3, now + 31 * 60_000)).skipped).toBeUndefined();
      expect((await stores[0]!.sweep(3, now + 92 * 60_000)).skipped).toBeUndefined();
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });
});
