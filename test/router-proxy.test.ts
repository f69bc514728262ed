/**
 * hooks-templates/router/harness_proxy.py under Debian's python3 (FastAPI +
 * uvicorn) in front of a real `serve` with a token: the browser side
 * (`claude-metrics/client`, as the panel uses it) reads the API through the
 * router with no token of its own; only the read-only API passes; a dead
 * collector is a 502 with a reason.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/ids';
import { deadPort, getJson, postJson, ROOT, startServe, tempHome, waitFor, type ServeHandle, type TempHome } from './helpers/cli';

const PY = '/usr/bin/python3';
const hasFastapi = spawnSync(PY, ['-c', 'import fastapi, uvicorn'], { stdio: 'ignore' }).status === 0;
const { createClient } = require(join(ROOT, 'dist', 'client.cjs')) as typeof import('../src/client/index');
const TOKEN = 'router-held-token';

async function startProxy(collector: string, token?: string): Promise<{ url: string; child: ChildProcess }> {
  const port = await deadPort();
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HARNESS_COLLECTOR_URL: collector };
  if (token) env.HARNESS_TOKEN = token;
  const child = spawn(PY, ['-m', 'uvicorn', '--factory', 'harness_proxy:create_app', '--app-dir', join(ROOT, 'hooks-templates', 'router'), '--host', '127.0.0.1', '--port', String(port), '--log-level', 'warning'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`uvicorn exited: ${err}`);
    try {
      return (await fetch(`${url}/docs`)).ok;
    } catch {
      return false;
    }
  }, { timeoutMs: 30_000, intervalMs: 100 });
  return { url, child };
}

describe.skipIf(!hasFastapi)('router proxy (router/harness_proxy.py)', () => {
  let home: TempHome;
  let serve: ServeHandle;
  let proxy: { url: string; child: ChildProcess };
  beforeAll(async () => {
    home = tempHome('cm-proxy-');
    serve = await startServe(home.env, ['--db', join(home.home, 'c.db'), '--token', TOKEN]);
    const now = Date.now();
    await postJson(serve.endpoint, { events: [
      { event_id: uuidv7(), event: 'ralph_task_started', source: 'ralph', run_id: 'r 1', task_id: 'T', label: 'nightly', project: 'router', timestamp: new Date(now - 5000).toISOString() },
      { event_id: uuidv7(), event: 'ralph_task_completed', source: 'ralph', run_id: 'r 1', task_id: 'T', label: 'nightly', project: 'router', success: true, timestamp: new Date(now - 1000).toISOString() },
    ] }, { authorization: `Bearer ${TOKEN}` });
    proxy = await startProxy(serve.endpoint, TOKEN); // the emitter's URL works too: /metrics/harness is dropped
  });
  afterAll(async () => {
    proxy?.child.kill('SIGTERM');
    await serve?.stop();
    home?.cleanup();
  });

  it('the client reads summary, sessions, daily, filters through /harness with no token of its own', async () => {
    const c = createClient({ endpoint: `${proxy.url}/harness` });
    const direct = createClient({ endpoint: serve.url, token: TOKEN });
    const [a, b] = await Promise.all([c.summary(), direct.summary()]);
    expect(a.ok && b.ok).toBe(true);
    if (a.ok && b.ok) expect({ ...a.data, generated_at: 0 }).toEqual({ ...b.data, generated_at: 0 });
    const s = await c.sessions({ label: 'nightly', limit: 5 });
    expect(s.ok && s.data.sessions.map((x) => x.id)).toEqual(['run:r 1']);
    expect((await c.daily({ days: 3 })).ok).toBe(true);
    expect((await c.filters()).ok).toBe(true);
    // A bad filter: the collector's own 400 and reason come through.
    const bad = await c.sessions({ since: 'soon' });
    expect(!bad.ok && bad.error).toMatchObject({ kind: 'bad_request', status: 400 });
    // Session detail: the collector's answer (the session, or 404 before it has the route), an id with a space quoted.
    const one = await c.session('run:r 1');
    if (one.ok) expect(one.data.id).toBe('run:r 1');
    else expect(one.error.kind).toBe('not_found');
  });

  it('passes only the read-only API: no ingest, no /metrics, nothing outside /api', async () => {
    for (const path of ['/harness/api/../metrics', '/harness/api/metrics', '/harness/api/events', '/harness/metrics/harness']) {
      const r = await getJson(`${proxy.url}${path}`);
      expect(r.status, path).toBe(404);
    }
    const post = await fetch(`${proxy.url}/harness/api/summary`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(post.status).toBe(405);
  });

  it('a wrong router token or a dead collector: 502 with a reason the panel shows', async () => {
    const wrong = await startProxy(serve.url, 'not-the-token');
    const dead = await startProxy(`http://127.0.0.1:${await deadPort()}`);
    try {
      const w = await createClient({ endpoint: `${wrong.url}/harness` }).summary();
      expect(!w.ok && w.error).toMatchObject({ kind: 'http', status: 502 });
      expect(!w.ok && w.error.message).toMatch(/refused the router's token/);
      const d = await createClient({ endpoint: `${dead.url}/harness` }).summary();
      expect(!d.ok && d.error).toMatchObject({ kind: 'http', status: 502 });
      expect(!d.ok && d.error.message).toMatch(/is unreachable/);
    } finally {
      wrong.child.kill('SIGTERM');
      dead.child.kill('SIGTERM');
    }
  });
});
