/**
 * hooks-templates/api-harness: the Python middleware in a harness app
 * (test/fixtures/api-harness/harness_app.py) under Debian's python3-fastapi and
 * uvicorn, with real HTTP to a real `claude-metrics serve`: each request recorded
 * once with its project, session, model, status and duration; X-Project enforced
 * only when asked; streams keep streaming; a 500 is a failed request; a job started
 * in one process and ended in another is one session; an outage of the collector
 * loses nothing and counts nothing twice. Also `emit --wire`, which the middleware
 * hands events to, and the rebuilt example claude_api.py.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { decodeBody, type StoredParts } from '../src/collector/store/event-codec';
import { BODY_PARTS } from '../src/collector/store/migrations/sqlite-compact-events';
import { afterEach, describe, expect, it } from 'vitest';
import { HarnessEventSchema } from '../src/event';
import { parseWireEvents } from '../src/emit/wire';
import { completionOf } from '../src/collector/fold';
import { completesSession } from '../src/collector/normalize';
import { BIN, deadPort, getJson, postJson, ROOT, runCli, runProcess, startServe, tempHome, waitFor, type ServeHandle, type TempHome } from './helpers/cli';

const PY = '/usr/bin/python3';
const MIDDLEWARE_DIR = join(ROOT, 'hooks-templates', 'api-harness');
const APP_DIR = join(ROOT, 'test', 'fixtures', 'api-harness');
const hasFastapi = spawnSync(PY, ['-c', 'import fastapi, uvicorn'], { stdio: 'ignore' }).status === 0;

/** Everything a test started, stopped in afterEach whatever happened. */
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function home(prefix: string): TempHome {
  const t = tempHome(prefix);
  cleanups.push(() => t.cleanup());
  return t;
}

/** PATH with `claude-metrics` (the built CLI) and optionally a fake `claude`. */
function binDir(t: TempHome, claudeScript?: string): string {
  const bin = join(t.home, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'claude-metrics'), `#!/bin/sh\nexec '${process.execPath}' '${BIN}' "$@"\n`);
  chmodSync(join(bin, 'claude-metrics'), 0o755);
  if (claudeScript) {
    writeFileSync(join(bin, 'claude'), claudeScript);
    chmodSync(join(bin, 'claude'), 0o755);
  }
  return bin;
}

async function serve(t: TempHome, args: string[] = [], token = 'tok'): Promise<ServeHandle> {
  const s = await startServe({ ...t.env, CLAUDE_METRICS_TOKEN: token }, ['--db', join(t.home, 'collector.db'), ...args]);
  cleanups.push(() => s.stop());
  return s;
}

interface App {
  url: string;
  child: ChildProcess;
  stderr: () => string;
}

/** Starts a uvicorn app with Debian's python3; resolves once it answers. */
async function uvicorn(appDir: string, target: string, env: Record<string, string>, factory = false): Promise<App> {
  const port = await deadPort();
  const child = spawn(PY, ['-m', 'uvicorn', ...(factory ? ['--factory'] : []), target, '--app-dir', appDir, '--host', '127.0.0.1', '--port', String(port), '--log-level', 'warning'], {
    env: { PYTHONDONTWRITEBYTECODE: '1', ...env } as NodeJS.ProcessEnv,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        if (child.exitCode !== null) throw new Error(`uvicorn exited: ${err}`);
        const req = request(`${url}/docs`, (res) => {
          res.resume();
          resolve(true);
        });
        req.on('error', () => resolve(false));
        req.end();
      }),
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  return { url, child, stderr: () => err };
}

function harness(t: TempHome, endpoint: string, extra: Record<string, string> = {}): Promise<App> {
  const env = { ...t.env, PATH: `${binDir(t)}:/usr/bin:/bin`, HARNESS_MIDDLEWARE_DIR: MIDDLEWARE_DIR, CLAUDE_METRICS_ENDPOINT: endpoint, CLAUDE_METRICS_TOKEN: 'tok', ...extra };
  return uvicorn(APP_DIR, 'harness_app:app', env);
}

/** Every stored event of a kind, parsed from the collector's database (read-only). */
function stored(t: TempHome, event?: string): Array<Record<string, any>> {
  const db = new Database(join(t.home, 'collector.db'), { readonly: true, fileMustExist: true });
  try {
    // harness_events is a view of compact rows: each body is rebuilt from its parts, as the collector's reads do.
    const rows = (event ? db.prepare(`SELECT ${BODY_PARTS} FROM harness_events WHERE event = ?`).all(event) : db.prepare(`SELECT ${BODY_PARTS} FROM harness_events`).all()) as StoredParts[];
    return rows.map((r) => JSON.parse(decodeBody(r)) as Record<string, any>);
  } finally {
    db.close();
  }
}

/** waitFor for a value: resolves to what fn returned once it is not null/false. */
async function until<T>(fn: () => T | null | undefined | false | Promise<T | null | undefined | false>, opts?: { timeoutMs?: number; intervalMs?: number }): Promise<T> {
  return (await waitFor(fn, opts)) as T;
}

const auth = { authorization: 'Bearer tok' };

async function sessions(s: ServeHandle): Promise<Array<Record<string, any>>> {
  const r = await getJson(`${s.url}/api/sessions?source=api&limit=1000`, auth);
  expect(r.status).toBe(200);
  return r.body.sessions;
}

/** POST that yields the first body chunk before the response ends (to see streaming). */
function streamPost(url: string, body: unknown, onFirstChunk: () => Promise<void>): Promise<{ status: number; chunks: string[] }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: string[] = [];
      res.on('data', (c: Buffer) => {
        chunks.push(c.toString());
        if (chunks.length === 1) onFirstChunk().catch(reject);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, chunks }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('emit --wire', () => {
  it('keeps whole events: spooled with their own id and timestamp while the collector is down, delivered as they are by flush', async () => {
    const t = home('cm-wire-');
    const dead = `http://127.0.0.1:${await deadPort()}/metrics/harness`;
    const events = [0, 1].map((i) => ({ schema_version: 1, event_id: `0190a1b2-0000-7000-8000-00000000000${i}`, event: 'api_request', source: 'api', timestamp: `2026-01-02T03:04:0${i}.000Z`, duration_ms: 12.5, success: i === 0, project: 'p', attrs: { status: i === 0 ? 200 : 500 } }));
    const bad = { event: 'api_request' }; // no id: left out, logged
    const r = await runCli(['emit', '--wire'], { env: { ...t.env, CLAUDE_METRICS_ENDPOINT: dead }, input: JSON.stringify({ events: [...events, bad] }) });
    expect([r.code, r.stdout]).toEqual([0, '']);
    expect(readdirSync(join(t.stateDir, 'spool', 'new')).sort().map((n) => n.split('.')[0])).toEqual(events.map((e) => e.event_id));
    expect(readFileSync(join(t.stateDir, 'claude-metrics.log'), 'utf8')).toMatch(/event 2: event_id: missing/);

    const s = await serve(t);
    const f = await runCli(['flush'], { env: { ...t.env, CLAUDE_METRICS_ENDPOINT: s.endpoint, CLAUDE_METRICS_TOKEN: 'tok' } });
    expect(f.code).toBe(0);
    const got = stored(t, 'api_request').sort((a, b) => (a.event_id < b.event_id ? -1 : 1));
    expect(got).toHaveLength(2);
    got.forEach((e, i) => expect(e).toMatchObject(events[i]!));
  });

  it('exits 0 with nothing on stdout and nothing spooled for input that is not wire events', async () => {
    const t = home('cm-wire-bad-');
    for (const input of ['', 'not json', '42', '{"events":[{"event_id":"../x","event":"e","source":"api","timestamp":"2026-01-01T00:00:00Z"}]}']) {
      const r = await runCli(['emit', '--wire'], { env: { ...t.env, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${await deadPort()}/x` }, input });
      expect([r.code, r.stdout]).toEqual([0, '']);
    }
    expect(() => readdirSync(join(t.stateDir, 'spool', 'new'))).toSatisfy((f: () => string[]) => {
      try {
        return f().length === 0;
      } catch {
        return true;
      }
    });
  });

  it('parseWireEvents takes one event, a batch or an array, and says which it left out', () => {
    const e = { event_id: 'a', event: 'x', source: 'api', timestamp: '2026-01-01T00:00:00Z' };
    expect(parseWireEvents(JSON.stringify(e)).events).toEqual([e]);
    expect(parseWireEvents(JSON.stringify([e, e])).events).toHaveLength(2);
    const r = parseWireEvents(JSON.stringify({ events: [e, { ...e, source: 'web' }, { ...e, timestamp: 'soon' }] }));
    expect(r.events).toEqual([e]);
    expect(r.problems).toEqual([expect.stringMatching(/^event 1: source/), expect.stringMatching(/^event 2: timestamp/)]);
  });
});

describe('the collector and api_request events', () => {
  const req = { event_id: 'e1', event: 'api_request', source: 'api' as const, timestamp: '2026-01-01T00:00:00.000Z', duration_ms: 42, success: false };
  it('a request in no job, session or run completes its own row, with its outcome and duration; one inside them does not', () => {
    expect(completesSession(req)).toBe(true);
    expect(completionOf(req)).toMatchObject({ id: 'event:e1', success: 0 });
    for (const tie of [{ run_id: 'job:J' }, { session_id: 's' }, { task_id: 't' }]) expect(completesSession({ ...req, ...tie })).toBe(false);
    expect(completesSession({ ...req, event: 'PostToolUse' })).toBe(false);
    expect(completesSession({ ...req, event: 'ralph_task_completed', run_id: 'job:J' })).toBe(true);
  });
});

describe.skipIf(!hasFastapi)('ClaudeMetricsMiddleware in a harness app (uvicorn, real HTTP)', () => {
  it('records each request once: project, session, model, status, duration; streams stream; 500s fail; other paths untouched', async () => {
    const t = home('cm-mw-');
    const s = await serve(t);
    const app = await harness(t, s.endpoint);

    const ok = await postJson(`${app.url}/v1/chat/completions`, { model: 'claude-req-model', messages: [] }, { 'x-project': 'billing', 'x-session-id': 'conv-1' });
    expect(ok).toMatchObject({ status: 200, body: { model: 'claude-req-model' } });
    const anon = await postJson(`${app.url}/v1/chat/completions`, { reply_model: 'claude-reply-model' });
    expect(anon.status).toBe(200); // no X-Project: fine when not required
    const streamed = await streamPost(`${app.url}/v1/chat/completions`, { stream: true, stream_id: 'a', reply_model: 'claude-stream' }, async () => {
      // The first chunk is here while the handler is still waiting to send the rest.
      await postJson(`${app.url}/release/a`, {});
    });
    expect(streamed.status).toBe(200);
    expect(streamed.chunks.join('')).toMatch(/Hel.*lo.*\[DONE\]/s);
    expect((await postJson(`${app.url}/v1/chat/completions`, { fail: '500' }, { 'x-project': 'billing' })).status).toBe(500);
    expect((await postJson(`${app.url}/v1/chat/completions`, { fail: 'raise' }, { 'x-project': 'billing' })).status).toBe(500);
    expect((await getJson(`${app.url}/healthz`)).status).toBe(200);

    const events = await until(() => {
      const e = stored(t, 'api_request');
      return e.length >= 5 ? e : null;
    });
    await new Promise((r) => setTimeout(r, 500)); // nothing else may arrive
    expect(stored(t)).toHaveLength(5); // /healthz, /release, /stats are not recorded
    for (const e of events) expect(HarnessEventSchema.safeParse(e).success).toBe(true);
    const byModel = (m: string) => events.find((e) => e.model === m);
    expect(byModel('claude-req-model')).toMatchObject({ source: 'api', project: 'billing', session_id: 'conv-1', success: true, attrs: { method: 'POST', path: '/v1/chat/completions', status: 200 } });
    expect(byModel('claude-reply-model')).toMatchObject({ success: true, attrs: { status: 200 } });
    expect(byModel('claude-reply-model')!.project).toBeUndefined();
    const stream = byModel('claude-stream')!;
    expect(stream).toMatchObject({ success: true, attrs: { status: 200, chunks: 3 } });
    // Duration runs to the last chunk, which came after the client's release round trip.
    expect(stream.duration_ms).toBeGreaterThan(stream.attrs.ttfb_ms);
    const failed = events.filter((e) => e.success === false);
    expect(failed.map((e) => [e.attrs.status, e.error]).sort()).toEqual([
      [500, 'HTTP 500'],
      [500, 'RuntimeError'],
    ]);
    for (const e of events) expect(e.duration_ms).toBeGreaterThan(0);

    // In the collector: a request in no session or job is a completed task of its own, with its
    // outcome; the one with X-Session-ID is part of that session. Nothing is left "active" per request.
    const rows = await sessions(s);
    expect(rows).toHaveLength(5);
    const lone = rows.filter((r) => r.id.startsWith('event:'));
    expect(lone).toHaveLength(4);
    expect(lone.every((r) => r.completed_at !== null && r.active === false)).toBe(true);
    expect(lone.map((r) => r.success).sort()).toEqual([false, false, true, true]);
    expect(rows.find((r) => r.id === 'session:conv-1')).toMatchObject({ project: 'billing', completed_at: null });
    const stats = (await getJson(`${app.url}/stats`)).body;
    expect(stats).toMatchObject({ recorded: 5, sent: 5, spooled: 0, dropped_queue_full: 0, dropped_undeliverable: 0 });
  });

  it('require_project: a request without X-Project gets a 400 with a reason before the handler runs, and is recorded', async () => {
    const t = home('cm-mw-req-');
    const s = await serve(t);
    const app = await harness(t, s.endpoint, { HARNESS_REQUIRE_PROJECT: '1' });
    const missing = await postJson(`${app.url}/v1/chat/completions`, { model: 'm' });
    expect(missing.status).toBe(400);
    expect(missing.body.detail).toMatch(/X-Project header required/);
    const jobMissing = await postJson(`${app.url}/v1/jobs`, { job_id: 'never' });
    expect(jobMissing.status).toBe(400);
    expect((await getJson(`${app.url}/calls`)).body.n).toBe(0); // no handler ran
    const given = await postJson(`${app.url}/v1/chat/completions`, { model: 'm' }, { 'x-project': 'ops' });
    expect(given.status).toBe(200);
    expect((await getJson(`${app.url}/calls`)).body.n).toBe(1);
    expect((await getJson(`${app.url}/healthz`)).status).toBe(200); // outside `paths`: never enforced

    const events = await until(() => {
      const e = stored(t, 'api_request');
      return e.length >= 3 ? e : null;
    });
    expect(events.map((e) => [e.attrs.path, e.attrs.status, e.project ?? null]).sort()).toEqual([
      ['/v1/chat/completions', 200, 'ops'],
      ['/v1/chat/completions', 400, null],
      ['/v1/jobs', 400, null],
    ]);
    expect(stored(t, 'ralph_task_started')).toHaveLength(0);
  });

  it('a job started by a request to one process and ended by a later request to another is one session with its duration and outcome; a lost end goes stale', async () => {
    const t = home('cm-mw-jobs-');
    const s = await serve(t);
    const [a, b] = await Promise.all([harness(t, s.endpoint), harness(t, s.endpoint)]);

    const before = Date.now();
    expect((await postJson(`${a.url}/v1/jobs`, { job_id: 'J1', model: 'claude-job-model' }, { 'x-project': 'billing' })).status).toBe(202);
    // The start must be in the collector before the end arrives from the other replica.
    await waitFor(() => stored(t, 'ralph_task_started').length === 1);
    await new Promise((r) => setTimeout(r, 300));
    expect((await postJson(`${b.url}/v1/jobs/J1/end`, { success: false, error: 'claude: error_max_turns' }, { 'x-project': 'billing' })).status).toBe(200);
    const elapsed = Date.now() - before;
    // One job started and ended in the same process (async end): duration measured there.
    expect((await postJson(`${a.url}/v1/jobs`, { job_id: 'J2' }, { 'x-project': 'ops' })).status).toBe(202);
    expect((await postJson(`${a.url}/v1/jobs/J2/end`, { success: true })).status).toBe(200);
    // A job whose end never comes: started 31 minutes ago (no request tied to it), and one started now.
    expect((await postJson(`${a.url}/admin/jobs`, { job_id: 'J3', started_at: Date.now() / 1000 - 31 * 60 })).status).toBe(200);
    expect((await postJson(`${b.url}/v1/jobs`, { job_id: 'J4' })).status).toBe(202);

    const rows = await until(async () => {
      const r = await sessions(s);
      const j1 = r.find((x) => x.id === 'run:job:J1');
      const j2 = r.find((x) => x.id === 'run:job:J2');
      return j1?.events_count === 4 && j2?.completed_at && r.some((x) => x.id === 'run:job:J3') && r.some((x) => x.id === 'run:job:J4') ? r : null;
    });
    // Every request here belongs to a job: no session of its own.
    expect(rows.map((r) => r.id).sort()).toEqual(['run:job:J1', 'run:job:J2', 'run:job:J3', 'run:job:J4']);
    const j1 = rows.find((r) => r.id === 'run:job:J1')!;
    // start + the request that started it (process A), end + the request that ended it (process B)
    expect(j1).toMatchObject({ source: 'api', project: 'billing', task_id: 'J1', success: false, error: 'claude: error_max_turns', model: 'claude-job-model', active: false });
    expect(j1.duration_ms).toBeGreaterThanOrEqual(300);
    expect(j1.duration_ms).toBeLessThanOrEqual(elapsed);
    const j2 = rows.find((r) => r.id === 'run:job:J2')!;
    expect(j2).toMatchObject({ project: 'ops', success: true, active: false });
    expect(j2.duration_ms).toBeGreaterThan(0);
    expect(rows.find((r) => r.id === 'run:job:J3')).toMatchObject({ completed_at: null, active: false });
    expect(rows.find((r) => r.id === 'run:job:J4')).toMatchObject({ completed_at: null, active: true });
    const summary = (await getJson(`${s.url}/api/summary`, auth)).body;
    expect(summary.today).toMatchObject({ tasks: 2, succeeded: 1, failed: 1 });
  });

  it('collector down during the requests, then up: every request and job event arrives once (spooled through emit --wire, flushed after)', async () => {
    const t = home('cm-mw-down-');
    const port = await deadPort();
    const endpoint = `http://127.0.0.1:${port}/metrics/harness`;
    const app = await harness(t, endpoint);
    const n = 30;
    for (let i = 0; i < n; i++) {
      const r = await postJson(`${app.url}/v1/chat/completions`, { model: 'm', ...(i % 10 === 9 ? { fail: '500' } : {}) }, { 'x-project': 'billing', 'x-session-id': `down-${i}` });
      expect(r.status).toBe(i % 10 === 9 ? 500 : 200);
    }
    expect((await postJson(`${app.url}/v1/jobs`, { job_id: 'JD' })).status).toBe(202);
    expect((await postJson(`${app.url}/v1/jobs/JD/end`, { success: true })).status).toBe(200);
    const total = n + 4;
    await waitFor(async () => (await getJson(`${app.url}/stats`)).body.spooled === total, { timeoutMs: 30_000, intervalMs: 200 });
    const spooled = readdirSync(join(t.stateDir, 'spool', 'new'));
    expect(spooled).toHaveLength(total);

    // The collector comes back on the same port; the next request's batch gets through and
    // the middleware starts `claude-metrics flush` for what the spool kept.
    const s = await serve(t, ['--port', String(port)]);
    await waitFor(
      async () => {
        await postJson(`${app.url}/v1/chat/completions`, { model: 'm' }, { 'x-project': 'billing', 'x-session-id': 'after' });
        return stored(t).length >= total + 1;
      },
      { timeoutMs: 60_000, intervalMs: 1000 },
    );
    await until(async () => readdirSync(join(t.stateDir, 'spool', 'new')).length === 0 && (await getJson(`${app.url}/stats`)).body.queued === 0, { timeoutMs: 30_000, intervalMs: 200 });
    const all = stored(t);
    const down = all.filter((e) => /^down-/.test(e.session_id ?? ''));
    expect(down).toHaveLength(n);
    expect(new Set(down.map((e) => e.session_id)).size).toBe(n);
    expect(down.filter((e) => e.success === false)).toHaveLength(3);
    expect(all.filter((e) => e.run_id === 'job:JD')).toHaveLength(4);
    // Whatever the middleware re-sent, the collector counted once (the same event ids).
    const summary = (await getJson(`${s.url}/api/summary`, auth)).body;
    expect(summary.ingest.events).toBe(all.length);
    expect((await sessions(s)).find((r) => r.id === 'run:job:JD')).toMatchObject({ success: true, events_count: 4 });
    const st = (await getJson(`${app.url}/stats`)).body;
    expect(st).toMatchObject({ dropped_queue_full: 0, dropped_undeliverable: 0, rejected: 0 });
    expect(st.spooled).toBeGreaterThanOrEqual(total); // an 'after' request may have met the breaker still open
    expect(st.flushes_started).toBeGreaterThanOrEqual(1);
  });

  it('a collector that accepts connections and never answers: requests are answered as usual; after the timeout the events go to the spool', async () => {
    const t = home('cm-mw-hole-');
    const held: Socket[] = [];
    const hole = createNetServer((sock) => {
      held.push(sock);
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => {
      for (const c of held) c.destroy();
      hole.close(() => r());
    }));
    const app = await harness(t, `http://127.0.0.1:${(hole.address() as AddressInfo).port}/metrics/harness`);
    for (let i = 0; i < 5; i++) {
      const r = await postJson(`${app.url}/v1/chat/completions`, { model: 'm' }, { 'x-session-id': `hole-${i}` });
      expect(r.status).toBe(200);
    }
    expect((await getJson(`${app.url}/healthz`)).status).toBe(200); // the event loop is not stuck behind the POST
    const st = await until(async () => {
      const b = (await getJson(`${app.url}/stats`)).body;
      return b.spooled === 5 ? b : null;
    }, { timeoutMs: 30_000, intervalMs: 200 });
    expect(st).toMatchObject({ sent: 0, dropped_undeliverable: 0 });
    expect(st.post_failures).toBeGreaterThanOrEqual(1); // each a 2 s timeout, then the breaker's pause
    expect(readdirSync(join(t.stateDir, 'spool', 'new'))).toHaveLength(5);
    expect(held.length).toBeGreaterThanOrEqual(1);
  });

  it('SIGTERM: what is still queued is delivered on the way out', async () => {
    const t = home('cm-mw-term-');
    const s = await serve(t);
    // The sender would wait 60 s before its first batch: only the exit flush can deliver these.
    const app = await harness(t, s.endpoint, { HARNESS_LINGER_S: '60' });
    for (let i = 0; i < 3; i++) expect((await postJson(`${app.url}/v1/chat/completions`, { model: 'm' }, { 'x-session-id': `term-${i}` })).status).toBe(200);
    expect((await postJson(`${app.url}/v1/jobs`, { job_id: 'JT' })).status).toBe(202);
    expect(stored(t)).toHaveLength(0);
    const exited = new Promise<number | null>((r) => app.child.once('exit', (code) => r(code)));
    app.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    // three requests in their sessions, the job's start and the request that started it
    expect(stored(t).map((e) => e.session_id ?? e.event).sort()).toEqual(['api_request', 'ralph_task_started', 'term-0', 'term-1', 'term-2']);
  });

  it('against the reference router (router/harness_router.py) as the collector: lone requests are tasks of their own, a job one session', async () => {
    const t = home('cm-mw-router-');
    const db = join(t.home, 'router.db');
    const router = await uvicorn(join(ROOT, 'hooks-templates', 'router'), 'harness_router:create_app', { PATH: '/usr/bin:/bin', HOME: t.home, HARNESS_DB: db, HARNESS_TOKEN: 'tok', PYTHONDONTWRITEBYTECODE: '1' }, true);
    const app = await harness(t, `${router.url}/metrics/harness`);
    for (const fail of [undefined, '500']) await postJson(`${app.url}/v1/chat/completions`, { model: 'm', fail }, { 'x-project': 'p' });
    await postJson(`${app.url}/v1/jobs`, { job_id: 'JR' }, { 'x-project': 'p' });
    await postJson(`${app.url}/v1/jobs/JR/end`, { success: true }, { 'x-project': 'p' });
    const rows = await until(() => {
      const sql = new Database(db, { readonly: true });
      try {
        const r = sql.prepare('SELECT id, success, completed_at, duration_ms FROM harness_sessions ORDER BY id').all() as Array<Record<string, any>>;
        return r.length === 3 && r.every((x) => x.completed_at) ? r : null;
      } finally {
        sql.close();
      }
    });
    expect(rows.map((r) => `${r.id.replace(/^event:.*/, 'event')} ${r.success}`).sort()).toEqual(['event 0', 'event 1', 'job:JR 1']);
  });

  it('a full queue drops and counts instead of blocking; no claude-metrics binary: dropped and counted, never raised', () => {
    const script = `
import sys, json; sys.path.insert(0, ${JSON.stringify(MIDDLEWARE_DIR)})
import claude_metrics_middleware as cm
r = cm.Recorder(endpoint="http://127.0.0.1:9/x", max_queue=3, claude_metrics="/nonexistent/claude-metrics")
r._start = lambda: None  # no sender: nothing drains the queue
print(json.dumps([r.record({"event": "x"}) for _ in range(5)] + [r.stats()["dropped_queue_full"]]))
r2 = cm.Recorder(endpoint="http://127.0.0.1:9/x", claude_metrics="/nonexistent/claude-metrics")
r2.record({"event_id": cm.uuidv7(), "event": "api_request", "source": "api", "timestamp": "2026-01-01T00:00:00.000Z"})
print(json.dumps([r2.flush(10), r2.stats()["dropped_undeliverable"], r2.stats()["post_failures"]]))
`;
    const r = spawnSync(PY, ['-c', script], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent', PYTHONDONTWRITEBYTECODE: '1' } });
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([
      [true, true, true, false, false, 2],
      [true, 1, 1],
    ]);
  });
});

// Prints a result JSON like `claude -p --output-format json`; the second call fails.
const FAKE_CLAUDE = `#!/bin/sh
n=$(cat "$HOME/calls" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$HOME/calls"
echo "env: $CLAUDE_METRICS_RUN_ID $CLAUDE_METRICS_TASK_ID $CLAUDE_METRICS_PROJECT $CLAUDE_METRICS_SOURCE" >> "$HOME/claude-env"
if [ $n -eq 2 ]; then echo '{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":9,"total_cost_usd":0.5,"session_id":"s2","result":""}'; exit 1; fi
echo '{"type":"result","subtype":"success","is_error":false,"num_turns":3,"duration_ms":1200,"duration_api_ms":900,"total_cost_usd":0.0123,"session_id":"s'$n'","result":"done","usage":{"input_tokens":10,"output_tokens":20,"cache_creation_input_tokens":0,"cache_read_input_tokens":5}}'
`;

describe.skipIf(!hasFastapi)('the example harness (api-harness/claude_api.py) on the middleware', () => {
  it('/v1/run and a background /v1/jobs: each claude call is one session with its result; the requests fold into it', async () => {
    const t = home('cm-api-');
    const s = await serve(t);
    const env = { ...t.env, PATH: `${binDir(t, FAKE_CLAUDE)}:/usr/bin:/bin`, CLAUDE_METRICS_ENDPOINT: s.endpoint, CLAUDE_METRICS_TOKEN: 'tok' };
    const app = await uvicorn(MIDDLEWARE_DIR, 'claude_api:app', env);

    const run = await postJson(`${app.url}/v1/run`, { prompt: 'hi there' }, { 'x-project': 'billing', 'x-session-id': 'req-42' });
    expect(run.status).toBe(200);
    expect(run.body).toMatchObject({ status: 'succeeded', result: 'done', session_id: 's1', cost_usd: 0.0123 });
    const job = await postJson(`${app.url}/v1/jobs`, { prompt: 'again' }, { 'x-project': 'billing' });
    expect(job.status).toBe(202);
    const jobId = job.body.job_id as string;
    const done = await until(async () => {
      const r = await getJson(`${app.url}/v1/jobs/${jobId}`);
      return r.body.status !== 'running' ? r.body : null;
    });
    expect(done).toMatchObject({ status: 'failed', exit_code: 1 }); // the fake claude fails its second call
    expect((await postJson(`${app.url}/v1/run`, { prompt: '' }, { 'x-project': 'billing' })).status).toBe(400);
    expect((await getJson(`${app.url}/v1/jobs/nope`)).status).toBe(404);

    // claude ran with the job's run id, so its own hooks fold into the same session.
    expect(readFileSync(join(t.home, 'claude-env'), 'utf8').trim().split('\n')).toEqual([
      `env: job:${run.body.job_id} ${run.body.job_id} billing api`,
      `env: job:${jobId} ${jobId} billing api`,
    ]);
    const rows = await until(async () => {
      const r = await sessions(s);
      return r.filter((x) => x.completed_at).length >= 2 && r.length >= 4 ? r : null;
    });
    const runRow = rows.find((r) => r.id === `run:job:${run.body.job_id}`)!;
    expect(runRow).toMatchObject({ project: 'billing', label: 'api', success: true, num_turns: 3, cost_usd: 0.0123, input_tokens: 10, output_tokens: 20 });
    expect(runRow.events_count).toBe(3); // start, end, the /v1/run request
    const jobRow = rows.find((r) => r.id === `run:job:${jobId}`)!;
    expect(jobRow).toMatchObject({ project: 'billing', success: false, error: 'claude: error_max_turns', num_turns: 9 });
    expect(jobRow.events_count).toBeGreaterThanOrEqual(3); // start, end, the POST, the polls
    // The bad request and the 404 poll are tasks of their own; nothing else is.
    expect(rows.filter((r) => r.id.startsWith('event:')).map((r) => r.success)).toEqual([true, true]);
    expect(rows).toHaveLength(4);
  });
});

it('the middleware and the example compile under python3', async () => {
  const files = [join(MIDDLEWARE_DIR, 'claude_metrics_middleware.py'), join(MIDDLEWARE_DIR, 'claude_api.py'), join(APP_DIR, 'harness_app.py')];
  // compile() in memory: py_compile would write __pycache__ into the checkout.
  const th = tempHome('cm-pycompile-');
  try {
    const r = await runProcess(PY, ['-c', 'import sys\nfor f in sys.argv[1:]: compile(open(f).read(), f, "exec")', ...files], { env: th.env });
    expect([r.code, r.stderr]).toEqual([0, '']);
  } finally {
    th.cleanup();
  }
});
