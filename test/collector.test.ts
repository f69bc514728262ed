/**
 * The collector as a real process on 127.0.0.1:0: ingest shapes, every bad
 * input, auth, folding, restarts, kill -9, retention, and the emitter's spool
 * flushing into it. Every case runs twice: on SQLite (a file) and on
 * PostgreSQL (a throw-away cluster, a fresh database per case).
 */
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/ids';
import { getJson, postJson, runCli, startServe, tempHome, waitFor, type ServeHandle, type TempHome } from './helpers/cli';
import { startPostgres, type PgCluster } from './helpers/postgres';

describe.each(['sqlite', 'postgres'] as const)('collector on %s', (backend) => {
  let home: TempHome;
  let serve: ServeHandle | undefined;
  let db: string;
  let pg: PgCluster | undefined;
  let dbs = 0;
  /** A new empty database: a SQLite file in the temp home, or a new PostgreSQL database. */
  const freshDb = async () => (backend === 'sqlite' ? join(home.home, `collector-${++dbs}.db`) : pg!.createDb());

  beforeAll(async () => {
    if (backend === 'postgres') pg = await startPostgres();
  });
  afterAll(async () => {
    await pg?.stop();
  });
  beforeEach(async () => {
    home = tempHome();
    db = await freshDb();
  });
  afterEach(async () => {
    await serve?.stop();
    serve = undefined;
    home.cleanup();
  });

  const now = () => new Date().toISOString();
  const ev = (over: Record<string, unknown> = {}) => ({ event_id: uuidv7(), event: 'PostToolUse', source: 'interactive', timestamp: now(), session_id: 'S1', project: 'p', tool_name: 'Bash', success: true, ...over });
  const metric = async (url: string, line: RegExp) => {
    const text = (await getJson(`${url}/metrics`)).body as string;
    const m = text.split('\n').find((l) => line.test(l));
    return m === undefined ? undefined : Number(m.split(' ').pop());
  };

  describe('ingest', () => {
    beforeEach(async () => {
      serve = await startServe(home.env, ['--db', db]);
    });

    it('accepts the bare shape a shell script sends, and a retried curl counts once', async () => {
      const bare = { source: 'ralph', event: 'ralph_task_completed', task_id: 'T', label: 'L', duration_ms: 1234, success: true, timestamp: '2026-11-20T10:00:00Z' };
      expect(await postJson(serve!.endpoint, bare)).toEqual({ status: 200, body: { accepted: 1, duplicates: 0, rejected: [] } });
      expect(await postJson(serve!.endpoint, bare)).toEqual({ status: 200, body: { accepted: 0, duplicates: 1, rejected: [] } });
      // …and without a timestamp (the receive time is used; the id still comes from the body)
      const noTs = { source: 'ralph', event: 'ralph_task_started', task_id: 'T2', label: 'L' };
      expect((await postJson(serve!.endpoint, noTs)).body.accepted).toBe(1);
      expect((await postJson(serve!.endpoint, noTs)).body.duplicates).toBe(1);
      const { body } = await getJson(`${serve!.url}/api/sessions?source=ralph`);
      expect(body.sessions.find((s: { task_id: string }) => s.task_id === 'T')).toMatchObject({ label: 'L', success: true, duration_ms: 1234, completed_at: '2026-11-20T10:00:00.000Z' });
    });

    it('single events, batches and duplicates by event_id', async () => {
      const a = ev();
      expect((await postJson(serve!.endpoint, a)).body).toEqual({ accepted: 1, duplicates: 0, rejected: [] });
      const batch = [a, ev({ tool_use_id: 't2' }), ev({ tool_use_id: 't3', success: false, event: 'PostToolUseFailure', error: 'exit 3' })];
      expect((await postJson(serve!.endpoint, { events: batch })).body).toEqual({ accepted: 2, duplicates: 1, rejected: [] });
      const s = (await getJson(`${serve!.url}/api/sessions`)).body.sessions[0];
      expect(s).toMatchObject({ id: 'session:S1', tool_calls_count: 3, tool_failures: 1, error: 'exit 3', events_count: 3 });
      expect(await metric(serve!.url, /^claude_harness_duplicates_total /)).toBe(1);
      expect(await metric(serve!.url, /^claude_harness_tool_calls_total\{.*outcome="failure"/)).toBe(1);
    });

    it('bad input: a clear 4xx with the reason, never a 5xx, nothing stored is lost', async () => {
      await postJson(serve!.endpoint, ev({ event_id: 'keep-me' }));
      const cases: Array<[string, () => Promise<{ status: number; body: any }>, number, RegExp]> = [
        ['invalid JSON', () => postJson(serve!.endpoint, '{"event":'), 400, /invalid JSON/],
        ['not an object', () => postJson(serve!.endpoint, '[1,2]'), 400, /array/],
        ['missing fields', () => postJson(serve!.endpoint, { event_id: 'x1', source: 'api' }), 422, /event/],
        ['unknown source', () => postJson(serve!.endpoint, { event: 'e', source: 'martian' }), 422, /source: must be one of interactive, ralph, api/],
        ['wrong types', () => postJson(serve!.endpoint, ev({ duration_ms: 'slow', success: 'yes' })), 422, /duration_ms/],
        ['bad timestamp', () => postJson(serve!.endpoint, ev({ timestamp: 'yesterday-ish' })), 422, /timestamp/],
        ['empty batch', () => postJson(serve!.endpoint, { events: [] }), 400, /empty batch/],
        ['batch too large', () => postJson(serve!.endpoint, { events: Array.from({ length: 1001 }, () => ev()) }), 400, /at most 1000/],
        ['all items invalid', () => postJson(serve!.endpoint, { events: [{ a: 1 }, 'x'] }), 422, /every event/],
        ['wrong content type', () => fetch(serve!.endpoint, { method: 'POST', body: JSON.stringify(ev()), headers: { 'content-type': 'text/plain' } }).then(async (r) => ({ status: r.status, body: await r.json() })), 415, /Content-Type/],
        ['body over 1 MiB', () => postJson(serve!.endpoint, { events: [ev({ error: 'x'.repeat(1_100_000) })] }), 413, /larger than/],
        ['wrong method', () => fetch(serve!.endpoint, { method: 'DELETE' }).then(async (r) => ({ status: r.status, body: await r.json() })), 405, /POST/],
        ['bad API filter', () => getJson(`${serve!.url}/api/sessions?since=whenever`), 400, /since/],
        ['bad days', () => getJson(`${serve!.url}/api/daily?days=0`), 400, /days/],
      ];
      for (const [name, call, status, reason] of cases) {
        const r = await call();
        expect(r.status, name).toBe(status);
        expect(JSON.stringify(r.body), name).toMatch(reason);
      }
      const { body } = await getJson(`${serve!.url}/api/sessions`);
      expect(body.total).toBe(1);
      expect((await getJson(`${serve!.url}/healthz`)).body).toMatchObject({ ok: true, events: 1 });
      expect(await metric(serve!.url, /^claude_harness_rejects_total\{reason="invalid_json"\}/)).toBe(1);
    });

    it('text with NUL characters is stored (PostgreSQL: as U+FFFD), never a 5xx; so is a filter with one', async () => {
      const body = '{"event_id":"nul-1","event":"PostToolUse","source":"api","timestamp":"2026-11-25T00:00:00Z","label":"a\\u0000b","session_id":"s\\u0000","tool_name":"B\\u0000","tool_use_id":"t\\u0000","error":"x\\u0000"}';
      expect(await postJson(serve!.endpoint, body)).toEqual({ status: 200, body: { accepted: 1, duplicates: 0, rejected: [] } });
      expect((await postJson(serve!.endpoint, body)).body.duplicates).toBe(1);
      const s = (await getJson(`${serve!.url}/api/sessions`)).body.sessions;
      expect(s).toHaveLength(1);
      expect(s[0]).toMatchObject({ tool_calls_count: 1, events_count: 1 });
      expect(s[0].label).toMatch(/^a(\u0000|\uFFFD)b$/);
      expect((await getJson(`${serve!.url}/api/sessions?label=a%00b`)).status).toBe(200);
      expect((await getJson(`${serve!.url}/api/summary?project=%00`)).status).toBe(200);
    });

    it('the largest numbers the schema allows are stored as sent', async () => {
      const big = Number.MAX_SAFE_INTEGER;
      const e = ev({ event: 'ralph_task_completed', source: 'ralph', task_id: 'big', session_id: undefined, exit_code: -2_147_483_649, num_turns: big, duration_ms: 1e300, cost_usd: 1e300, success: false });
      expect((await postJson(serve!.endpoint, { events: [e, ev({ event: 'usage', session_id: 'u', usage: { input_tokens: big, output_tokens: big }, cost_usd: 0 })] })).body.accepted).toBe(2);
      const s = (await getJson(`${serve!.url}/api/sessions`)).body.sessions as Array<Record<string, unknown>>;
      expect(s.find((x) => x.task_id === 'big')).toMatchObject({ exit_code: -2_147_483_649, num_turns: big, duration_ms: 1e300 });
      expect(s.find((x) => x.claude_session_id === 'u')).toMatchObject({ input_tokens: big, output_tokens: big });
    });

    it('a batch with some invalid items stores the valid ones and names the rejected', async () => {
      const good = ev();
      const r = await postJson(serve!.endpoint, { events: [good, { event_id: 'bad-1', event: 'e', source: 'api', timestamp: 'nope' }, ev({ tool_use_id: 'x' })] });
      expect(r.status).toBe(200);
      expect(r.body.accepted).toBe(2);
      expect(r.body.rejected).toEqual([{ index: 1, event_id: 'bad-1', reason: expect.stringMatching(/timestamp/) }]);
    });

    it('folds a session the same whatever the order, with tokens from usage events', async () => {
      const run = 'run-42';
      const events = [
        ev({ event: 'ralph_task_started', source: 'ralph', run_id: run, task_id: 'T-42', label: 'loop', timestamp: '2026-11-25T01:00:00Z', session_id: undefined }),
        ev({ event: 'PostToolUse', source: 'ralph', run_id: run, session_id: 'cc-1', timestamp: '2026-11-25T01:00:10Z', duration_ms: 30 }),
        ev({ event: 'usage', source: 'ralph', run_id: run, session_id: 'cc-1', model: 'claude-sonnet-4-5', usage: { input_tokens: 10, output_tokens: 20, cache_creation_input_tokens: 30, cache_read_input_tokens: 40 }, cost_usd: 0.5, timestamp: '2026-11-25T01:00:20Z' }),
        ev({ event: 'usage', source: 'ralph', run_id: run, session_id: 'cc-1', model: 'claude-sonnet-4-5', usage: { input_tokens: 1, output_tokens: 2, cache_creation_input_tokens: 3, cache_read_input_tokens: 4 }, cost_usd: 0.25, timestamp: '2026-11-25T01:00:30Z' }),
        ev({ event: 'ralph_task_completed', source: 'ralph', run_id: run, task_id: 'T-42', label: 'loop', success: false, exit_code: 2, duration_ms: 60_000, num_turns: 3, error: 'error_max_turns', cost_usd: 0.8, timestamp: '2026-11-25T01:01:00Z', session_id: 'cc-1' }),
      ];
      // In order into one collector…
      await postJson(serve!.endpoint, { events });
      const inOrder = (await getJson(`${serve!.url}/api/sessions`)).body.sessions[0];
      await serve!.stop();
      // …reversed, one by one, with replays, into another.
      serve = await startServe(home.env, ['--db', await freshDb()]);
      for (const e of [...events].reverse()) await postJson(serve.endpoint, e);
      for (const e of events) await postJson(serve.endpoint, e);
      const shuffled = (await getJson(`${serve.url}/api/sessions`)).body.sessions[0];
      expect(shuffled).toEqual(inOrder);
      expect(inOrder).toMatchObject({
        id: 'run:run-42', source: 'ralph', label: 'loop', task_id: 'T-42', claude_session_id: 'cc-1', success: false, exit_code: 2, duration_ms: 60_000,
        num_turns: 3, tool_calls_count: 1, input_tokens: 11, output_tokens: 22, cache_creation_input_tokens: 33, cache_read_input_tokens: 44,
        // The run result's total_cost_usd is Claude Code's own figure: it wins over the usage events' estimates.
        cost_usd: 0.8, cost_source: 'claude_code',
        started_at: '2026-11-25T01:00:00.000Z', completed_at: '2026-11-25T01:01:00.000Z', model: 'claude-sonnet-4-5', error: 'error_max_turns',
      });
      expect(await metric(serve.url, /^claude_harness_sessions_completed_total\{.*outcome="failure"/)).toBe(1);
      expect(await metric(serve.url, /^claude_harness_tokens_total\{.*kind="cache_read"/)).toBe(44);
    });
  });

  describe('auth', () => {
    it('requires the token on ingest, API and metrics, with a constant-time compare; healthz stays open', async () => {
      serve = await startServe(home.env, ['--db', db, '--token', 's3cret']);
      expect((await postJson(serve.endpoint, ev())).status).toBe(401);
      expect((await postJson(serve.endpoint, ev(), { authorization: 'Bearer wrong' })).status).toBe(401);
      expect((await postJson(serve.endpoint, ev(), { authorization: 'Bearer s3cret' })).status).toBe(200);
      expect((await getJson(`${serve.url}/api/summary`)).status).toBe(401);
      expect((await getJson(`${serve.url}/metrics`)).status).toBe(401);
      expect((await getJson(`${serve.url}/metrics`, { authorization: 'Bearer s3cret' })).status).toBe(200);
      expect((await getJson(`${serve.url}/healthz`)).status).toBe(200);
      // doctor's probe: GET answers 204 when authorized, stores nothing
      expect((await fetch(serve.endpoint, { headers: { authorization: 'Bearer s3cret' } })).status).toBe(204);
      expect((await fetch(serve.endpoint)).status).toBe(401);
      // the page: ?token= once sets an HttpOnly cookie that later requests carry
      const page = await fetch(`${serve.url}/?token=s3cret`);
      expect(page.headers.get('set-cookie')).toMatch(/cm_token=s3cret; HttpOnly; SameSite=Strict/);
      expect((await getJson(`${serve.url}/api/summary`, { cookie: 'cm_token=s3cret' })).status).toBe(200);
      expect((await fetch(`${serve.url}/?token=nope`)).status).toBe(401);
    });

    it('emit and flush carry the token', async () => {
      serve = await startServe(home.env, ['--db', db, '--token', 'tok']);
      const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: serve.endpoint, CLAUDE_METRICS_TOKEN: 'tok', CLAUDE_METRICS_SELF: '/bin/true', CLAUDE_METRICS_TIMEOUT_MS: '5000' };
      expect((await runCli(['emit', '--event', 'e', '--source', 'api'], { env })).code).toBe(0);
      expect((await getJson(`${serve.url}/healthz`)).body.events).toBe(1);
    });
  });

  describe('durability', () => {
    it('counters survive a restart; sessions and events too', async () => {
      serve = await startServe(home.env, ['--db', db]);
      await postJson(serve.endpoint, { events: [ev(), ev({ event: 'usage', usage: { input_tokens: 5 }, model: 'm', cost_usd: 0.1 })] });
      const before = (await getJson(`${serve.url}/metrics`)).body as string;
      expect(await serve.stop()).toBe(0); // SIGTERM: clean exit
      serve = await startServe(home.env, ['--db', db]);
      const after = (await getJson(`${serve.url}/metrics`)).body as string;
      const counters = (t: string) => t.split('\n').filter((l) => /_total/.test(l) && !l.startsWith('#'));
      expect(counters(after)).toEqual(counters(before));
      expect(counters(after).length).toBeGreaterThan(2);
    });

    it('kill -9 during ingest: every acknowledged event is there after restart, none twice', async () => {
      serve = await startServe(home.env, ['--db', db]);
      const acked = new Set<string>();
      const sent: string[] = [];
      let stop = false;
      const senders = Array.from({ length: 4 }, async () => {
        while (!stop) {
          const events = Array.from({ length: 50 }, () => ev({ session_id: `s-${sent.length % 7}` }));
          for (const e of events) sent.push(e.event_id as string);
          try {
            const r = await postJson(serve!.endpoint, { events });
            if (r.status === 200) for (const e of events) acked.add(e.event_id as string);
          } catch {
            return; // the server died mid-request: not acknowledged
          }
        }
      });
      // Mid-storm: once some batches are acknowledged (a loaded machine may take a while), with more in flight.
      await waitFor(() => acked.size >= 200, { timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 200));
      serve.child.kill('SIGKILL');
      stop = true;
      await Promise.all(senders);
      await serve.stop();
      expect(acked.size).toBeGreaterThan(0);
      serve = await startServe(home.env, ['--db', db]);
      const stored = (await getJson(`${serve.url}/healthz`)).body.events as number;
      // Read every stored id back through the sessions' counts: the sum of events equals the rows.
      const { body } = await getJson(`${serve.url}/api/sessions?limit=1000`);
      const folded = (body.sessions as Array<{ events_count: number }>).reduce((a, s) => a + s.events_count, 0);
      expect(folded).toBe(stored); // the fold saw each stored event exactly once
      expect(stored).toBeGreaterThanOrEqual(acked.size);
      // Re-sending everything that was acknowledged adds nothing: they are all there.
      const ackedList = [...acked];
      for (let i = 0; i < ackedList.length; i += 500) {
        const events = ackedList.slice(i, i + 500).map((id) => ev({ event_id: id }));
        const r = await postJson(serve.endpoint, { events });
        expect(r.body.accepted).toBe(0);
      }
    }, 60_000);

    it('retention deletes old events and sessions, counters stay', async () => {
      serve = await startServe(home.env, ['--db', db]);
      const old = new Date(Date.now() - 10 * 86_400_000).toISOString();
      await postJson(serve.endpoint, { events: [ev({ session_id: 'old', timestamp: old }), ev({ session_id: 'new' })] });
      const before = await metric(serve.url, /^claude_harness_events_total/);
      await serve.stop();
      // By default the first sweep waits a minute after start (a cold collector, clients flushing
      // their spools to it): nothing is deleted yet, and /healthz says when it will be.
      serve = await startServe(home.env, ['--db', db, '--retention-days', '7']);
      const waiting = (await getJson(`${serve.url}/healthz`)).body;
      expect(waiting.retention).toMatchObject({ days: 7, running: false, sweeps: 0 });
      const due = Date.parse(waiting.retention.next_at) - Date.now();
      expect(due).toBeGreaterThan(40_000);
      expect(due).toBeLessThanOrEqual(60_000);
      expect(waiting.events).toBe(2);
      await serve.stop();
      serve = await startServe(home.env, ['--db', db, '--retention-days', '7', '--retention-delay-ms', '0']);
      // With no delay the sweep runs once serve listens; /healthz says when it has finished and what it removed.
      const health = await waitFor(async () => {
        const h = (await getJson(`${serve!.url}/healthz`)).body;
        return h.retention?.sweeps >= 1 ? h : undefined;
      });
      expect(health.retention).toMatchObject({ days: 7, running: false, last: { events: 1, sessions: 1 } });
      expect(health.retention.last.error).toBeUndefined();
      const { body } = await getJson(`${serve.url}/api/sessions`);
      expect(body.sessions.map((s: { id: string }) => s.id)).toEqual(['session:new']);
      expect((await getJson(`${serve.url}/healthz`)).body.events).toBe(1);
      expect(await metric(serve.url, /^claude_harness_events_total/)).toBe(before);
      // What went is reported: a counter by table (with its help text) and the log line.
      expect(await metric(serve.url, /^claude_harness_retention_deleted_total\{table="events"\}/)).toBe(1);
      expect(await metric(serve.url, /^claude_harness_retention_deleted_total\{table="sessions"\}/)).toBe(1);
      expect((await getJson(`${serve.url}/metrics`)).body).toContain('# HELP claude_harness_retention_deleted_total ');
      // …and the dashboard's aggregates lost the session with it.
      const summary = (await getJson(`${serve.url}/api/summary?since=30d`)).body;
      expect(summary.by_project.reduce((a: number, p: { tool_calls: number }) => a + p.tool_calls, 0)).toBe(1);
      expect(summary.top_tools).toEqual([{ tool: 'Bash', calls: 1, failures: 0, avg_duration_ms: null }]);
      expect((await getJson(`${serve.url}/api/daily?days=30`)).body.days.length).toBe(1);
    });

    it('a long first sweep does not hold the collector back, and a stop in the middle of it loses nothing that stays', async () => {
      serve = await startServe(home.env, ['--db', db]);
      const old = Date.now() - 30 * 86_400_000;
      // 12 chunks' worth of old events (SWEEP_CHUNK is 1,000 rows), over 120 old sessions.
      for (let b = 0; b < 12; b++) {
        const events = Array.from({ length: 1000 }, (_, i) => ev({ session_id: `old-${b}-${i % 10}`, timestamp: new Date(old + b * 1000 + i).toISOString() }));
        expect((await postJson(serve.endpoint, { events })).body.accepted).toBe(1000);
      }
      await serve.stop();
      // Started with retention, then stopped at once: whatever part of the sweep ran, the exit is clean.
      serve = await startServe(home.env, ['--db', db, '--retention-days', '7', '--retention-delay-ms', '0']);
      const kept = ev({ session_id: 'new' });
      expect((await postJson(serve.endpoint, kept)).status).toBe(200); // answered while the sweep may still run
      expect(await serve.stop()).toBe(0);
      // The next start finishes the sweep; the new event stays, every old one goes, and the
      // counters report what went across both runs.
      serve = await startServe(home.env, ['--db', db, '--retention-days', '7', '--retention-delay-ms', '0']);
      await waitFor(async () => ((await getJson(`${serve!.url}/healthz`)).body.retention?.sweeps >= 1 ? true : undefined));
      expect((await getJson(`${serve.url}/healthz`)).body.events).toBe(1);
      expect((await getJson(`${serve.url}/api/sessions`)).body.sessions.map((s: { id: string }) => s.id)).toEqual(['session:new']);
      expect(await metric(serve.url, /^claude_harness_retention_deleted_total\{table="events"\}/)).toBe(12_000);
      expect(await metric(serve.url, /^claude_harness_retention_deleted_total\{table="sessions"\}/)).toBe(120);
    }, 60_000);
  });

  describe('the emitter end to end', () => {
    it('spooled while the collector is down, flushed into it once it is up, each exactly once', async () => {
      const { deadPort } = await import('./helpers/cli');
      const port = await deadPort();
      const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${port}/metrics/harness`, CLAUDE_METRICS_SELF: '/bin/true' };
      for (let i = 0; i < 5; i++) await runCli(['emit', '--source', 'ralph', '--event', i === 4 ? 'ralph_task_completed' : 'ralph_task_started', '--task-id', 'T9', '--label', 'nightly', '--success', 'true'], { env });
      serve = await startServe(home.env, ['--db', db, '--port', String(port)]); // the last --port wins
      expect((await runCli(['flush'], { env })).code).toBe(0);
      expect((await runCli(['flush'], { env })).code).toBe(0); // nothing left, nothing twice
      expect((await getJson(`${serve.url}/healthz`)).body.events).toBe(5);
      const s = (await getJson(`${serve.url}/api/sessions`)).body.sessions[0];
      expect(s).toMatchObject({ source: 'ralph', label: 'nightly', task_id: 'T9', success: true, events_count: 5 });
    });
  });

  describe('static dashboard', () => {
    it('serves the page with a strict CSP and no directory traversal', async () => {
      serve = await startServe(home.env, ['--db', db]);
      const page = await fetch(`${serve.url}/`);
      expect(page.status).toBe(200);
      const traversal = await fetch(`${serve.url}/dashboard/..%2f..%2fpackage.json`);
      expect(traversal.status).toBe(404);
      const dotdot = await fetch(`${serve.url}/dashboard/../../package.json`);
      expect([400, 404]).toContain(dotdot.status);
    });
  });
});
