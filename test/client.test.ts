/**
 * `claude-metrics/client` against a real `serve` (and against servers that
 * misbehave): the data equals what the JSON API returns, every failure is an
 * error value (never a throw), the package's `exports` resolve for require and
 * import, and the collector's handlers still produce the client's types (a
 * compile-time check: `npm run typecheck` fails when they drift).
 */
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiConfig, Daily, DailyRow, Filters, HarnessClient, Session, SessionsPage, Summary } from '../src/client/index';
import type { daily, summary } from '../src/collector/api';
import type { SessionRow, Store } from '../src/collector/store';
import { uuidv7 } from '../src/ids';
import { deadPort, getJson, postJson, ROOT, startServe, tempHome, type ServeHandle, type TempHome } from './helpers/cli';

// The client's types are the collector's: each assignment fails `tsc` when a field is renamed, retyped or dropped on either side.
type Exact<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sessionRowIsSession: Exact<SessionRow, Session> = true;
const sessionsPage: Exact<Awaited<ReturnType<Store['sessions']>>, SessionsPage> = true;
const filters: Exact<Awaited<ReturnType<Store['filters']>>, Filters> = true;
type S = Awaited<ReturnType<typeof summary>>;
const today: Exact<S['today'], Summary['today']> = true;
const week: Exact<S['last_7d'], Summary['last_7d']> = true;
const active: Exact<S['active'], Summary['active']> = true;
const ingest: Exact<S['ingest'], Summary['ingest']> = true;
const tools: Exact<S['top_tools'], Summary['top_tools']> = true;
type D = Awaited<ReturnType<typeof daily>>;
const dailyRow: Exact<D['days'][number], DailyRow> = true;
const dailyFrom: Exact<D['from'], Daily['from']> = true;
const unpriced: Exact<NonNullable<S['unpriced_models']>, NonNullable<Summary['unpriced_models']>> = true;
void [sessionRowIsSession, sessionsPage, filters, today, week, active, ingest, tools, dailyRow, dailyFrom, unpriced];

const { createClient } = require(join(ROOT, 'dist', 'client.cjs')) as typeof import('../src/client/index');

let home: TempHome;
let serve: ServeHandle;
const TOKEN = 'client-test-token-123';
const auth = { authorization: `Bearer ${TOKEN}` };

beforeAll(async () => {
  home = tempHome('cm-client-');
  serve = await startServe(home.env, ['--db', join(home.home, 'c.db'), '--token', TOKEN]);
  const now = Date.now();
  const at = (ms: number) => new Date(ms).toISOString();
  const events = [
    { event: 'ralph_task_started', source: 'ralph', run_id: 'r1', task_id: 'T-1', label: 'nightly', project: 'api', timestamp: at(now - 120_000) },
    { event: 'ralph_task_completed', source: 'ralph', run_id: 'r1', task_id: 'T-1', label: 'nightly', project: 'api', success: true, duration_ms: 60_000, timestamp: at(now - 60_000) },
    { event: 'ralph_task_started', source: 'ralph', run_id: 'r2', task_id: 'T-2', label: 'nightly', project: 'api', timestamp: at(now - 30_000) },
    { event: 'usage', source: 'interactive', session_id: 's1', project: 'web', model: 'claude-sonnet-4-5', usage: { input_tokens: 100, output_tokens: 20 }, cost_usd: 0.5, timestamp: at(now - 20_000) },
    { event: 'SessionEnd', source: 'interactive', session_id: 's1', project: 'web', timestamp: at(now - 10_000) },
  ].map((e) => ({ event_id: uuidv7(), ...e }));
  expect((await postJson(serve.endpoint, { events }, auth)).status).toBe(200);
});
afterAll(async () => {
  await serve.stop();
  home.cleanup();
});

describe('createClient against a real collector', () => {
  it('summary, sessions, daily, filters and config equal the JSON API, filters passed through', async () => {
    const c: HarnessClient = createClient({ endpoint: serve.url, token: TOKEN });
    const s = await c.summary();
    expect(s.ok).toBe(true);
    if (!s.ok) return;
    const direct = (await getJson(`${serve.url}/api/summary`, auth)).body;
    expect({ ...s.data, generated_at: 0 }).toEqual({ ...direct, generated_at: 0 });
    expect(s.data.active.ralph).toBe(1);
    expect(s.data.today.tasks).toBe(2);

    const page = await c.sessions({ source: 'ralph', limit: 1 });
    expect(page.ok && page.data.total).toBe(2);
    expect(page.ok && page.data.sessions.length).toBe(1);
    expect(page.ok && page.data.sessions[0]!.source).toBe('ralph');

    const d = await c.daily({ days: 7, project: 'web' });
    expect(d.ok && d.data.days.map((r) => [r.source, r.cost_usd])).toEqual([['interactive', 0.5]]);
    const f = await c.filters();
    expect(f.ok && f.data).toEqual({ sources: ['interactive', 'ralph'], projects: ['api', 'web'], labels: ['nightly'] });
    const cfg = await c.config();
    expect(cfg.ok && (cfg.data as ApiConfig).auth).toBe(true);

    // since/until as Date or relative strings reach the collector.
    const none = await c.sessions({ until: new Date(Date.now() - 86_400_000) });
    expect(none.ok && none.data.total).toBe(0);
  });

  it("takes the emitter's endpoint (…/metrics/harness) and a trailing slash as the same collector", async () => {
    for (const endpoint of [serve.endpoint, `${serve.url}/`]) {
      const r = await createClient({ endpoint, token: TOKEN }).filters();
      expect(r.ok, endpoint).toBe(true);
    }
  });

  it('session detail: the session when the collector has GET /api/sessions/{id}; not_found as a value when it does not, or for an unknown id', async () => {
    const c = createClient({ endpoint: serve.url, token: TOKEN });
    const known = await c.session('run:r1');
    if (known.ok) expect(known.data.id).toBe('run:r1');
    else expect(known.error).toMatchObject({ kind: 'not_found', status: 404 });
    const unknown = await c.session('no-such-session');
    expect(unknown.ok).toBe(false);
    expect(!unknown.ok && unknown.error.kind).toBe('not_found');
  });

  it('a missing or wrong token is an unauthorized error value with the collector’s reason', async () => {
    for (const token of [undefined, 'wrong']) {
      const r = await createClient({ endpoint: serve.url, token }).summary();
      expect(r.ok).toBe(false);
      if (r.ok) continue;
      expect(r.error.kind).toBe('unauthorized');
      expect(r.error.status).toBe(401);
      expect(r.error.message).toMatch(/^HTTP 401: unauthorized/);
    }
  });

  it('a bad filter is a bad_request value carrying the reason', async () => {
    const r = await createClient({ endpoint: serve.url, token: TOKEN }).sessions({ since: 'yesterday-ish' });
    expect(!r.ok && r.error).toMatchObject({ kind: 'bad_request', status: 400 });
    expect(!r.ok && r.error.message).toMatch(/since: not a date or duration/);
  });
});

describe('failures are values', () => {
  let odd: Server;
  let oddUrl = '';
  beforeAll(async () => {
    odd = createServer((req, res) => {
      if (req.url?.startsWith('/hang/')) return; // never answers
      if (req.url?.startsWith('/html/')) {
        res.writeHead(200, { 'content-type': 'text/html' });
        return void res.end('<html>a login page</html>');
      }
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('Bad Gateway from the proxy');
    });
    await new Promise<void>((r) => odd.listen(0, '127.0.0.1', r));
    oddUrl = `http://127.0.0.1:${(odd.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    odd.closeAllConnections();
    await new Promise((r) => odd.close(r));
  });

  it('dead port → network; no answer → timeout within timeoutMs; HTML → invalid_response; 502 → http; bad endpoint → invalid_endpoint', async () => {
    const dead = await createClient({ endpoint: `http://127.0.0.1:${await deadPort()}` }).summary();
    expect(!dead.ok && dead.error.kind).toBe('network');
    expect(!dead.ok && dead.error.message).toMatch(/ECONNREFUSED/);

    const started = Date.now();
    const slow = await createClient({ endpoint: `${oddUrl}/hang`, timeoutMs: 300 }).summary();
    expect(!slow.ok && slow.error.kind).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(5000);

    const html = await createClient({ endpoint: `${oddUrl}/html` }).sessions();
    expect(!html.ok && html.error.kind).toBe('invalid_response');

    const bad = await createClient({ endpoint: oddUrl }).daily();
    expect(!bad.ok && bad.error).toMatchObject({ kind: 'http', status: 502, message: 'HTTP 502: Bad Gateway from the proxy' });

    for (const endpoint of ['not a url', 'ftp://x', '', '/relative-outside-a-browser']) {
      const r = await createClient({ endpoint }).summary();
      expect(!r.ok && r.error.kind, endpoint).toBe('invalid_endpoint');
    }
  });

  it("the caller's AbortSignal → aborted", async () => {
    const ctl = new AbortController();
    const p = createClient({ endpoint: `${oddUrl}/hang`, timeoutMs: 10_000 }).summary({}, { signal: ctl.signal });
    setTimeout(() => ctl.abort(), 50);
    const r = await p;
    expect(!r.ok && r.error.kind).toBe('aborted');
  });
});

describe('package exports', () => {
  it("resolve 'claude-metrics/client' for require and import, and the panel and the declarations exist", () => {
    const script = `
      const cjs = require('claude-metrics/client');
      import('claude-metrics/client').then(async (esm) => {
        const panel = await import('claude-metrics/panel');
        const pkg = require('claude-metrics/package.json');
        const fs = require('node:fs'), path = require('node:path');
        const types = ['./client', './panel'].map((k) => fs.existsSync(path.join(${JSON.stringify(ROOT)}, pkg.exports[k].types)));
        console.log(JSON.stringify({ cjs: typeof cjs.createClient, esm: typeof esm.createClient, panel: typeof panel.defineHarnessActivity, tag: panel.TAG, types }));
      });`;
    const r = spawnSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ cjs: 'function', esm: 'function', panel: 'function', tag: 'claude-harness-activity', types: [true, true] });
  });
});
