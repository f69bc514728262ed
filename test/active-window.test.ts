/**
 * `serve --active-window-ms`: a session that never ended (its client was
 * killed before SessionEnd) stops counting as active once it has been silent
 * for the window, in /api/sessions, /api/summary and the Prometheus gauge.
 * Timestamps are set in the past instead of waiting.
 */
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/ids';
import { getJson, postJson, runCli, startServe, tempHome, type ServeHandle, type TempHome } from './helpers/cli';
import { startPostgres, type PgCluster } from './helpers/postgres';

let home: TempHome;
let serve: ServeHandle | undefined;
beforeEach(() => {
  home = tempHome();
});
afterEach(async () => {
  await serve?.stop();
  serve = undefined;
  home.cleanup();
});

const start = (session: string, agoMs: number) => ({ event_id: uuidv7(), event: 'SessionStart', source: 'interactive', timestamp: new Date(Date.now() - agoMs).toISOString(), session_id: session, project: 'p' });

async function activeState(url: string) {
  const rows = (await getJson(`${url}/api/sessions`)).body.sessions as Array<{ claude_session_id: string; active: boolean }>;
  const metrics = (await getJson(`${url}/metrics`)).body as string;
  return {
    byId: Object.fromEntries(rows.map((r) => [r.claude_session_id, r.active])),
    total: (await getJson(`${url}/api/summary`)).body.active.total as number,
    gauge: Number(/^claude_harness_active_sessions\{[^}]*\} (\d+)$/m.exec(metrics)?.[1]),
    help: /^# HELP claude_harness_active_sessions (.*)$/m.exec(metrics)?.[1],
  };
}

describe.each(['sqlite', 'postgres'] as const)('serve --active-window-ms on %s', (backend) => {
  let pg: PgCluster | undefined;
  beforeAll(async () => {
    if (backend === 'postgres') pg = await startPostgres();
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it('a silent, unended session is stale after the window; the default window is 30 minutes', async () => {
    const db = backend === 'sqlite' ? join(home.home, 'collector.db') : await pg!.createDb();
    serve = await startServe(home.env, ['--db', db]);
    expect((await postJson(serve.endpoint, { events: [start('quiet', 120_000), start('busy', 0)] })).status).toBe(200);
    expect(await activeState(serve.url)).toEqual({ byId: { quiet: true, busy: true }, total: 2, gauge: 2, help: expect.stringContaining('in the last 30 minutes') });
    await serve.stop();

    serve = await startServe(home.env, ['--db', db, '--active-window-ms', '60000']);
    expect(await activeState(serve.url)).toEqual({ byId: { quiet: false, busy: true }, total: 1, gauge: 1, help: expect.stringContaining('in the last 1 minute') });
    await serve.stop();

    serve = await startServe({ ...home.env, CLAUDE_METRICS_ACTIVE_WINDOW_MS: '60000' }, ['--db', db]);
    expect((await activeState(serve.url)).byId).toEqual({ quiet: false, busy: true });
  });
});

describe('serve --active-window-ms, bad values', () => {
  it('a bad flag is a usage error; a bad environment value warns and keeps the default', async () => {
    for (const bad of ['10', 'abc', '-5']) {
      const r = await runCli(['serve', '--port', '0', '--db', join(home.home, 'x.db'), '--active-window-ms', bad], { env: home.env });
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toMatch(/--active-window-ms/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    serve = await startServe({ ...home.env, CLAUDE_METRICS_ACTIVE_WINDOW_MS: 'soon' }, ['--db', join(home.home, 'collector.db')]);
    expect(serve.stderr()).toMatch(/warning: CLAUDE_METRICS_ACTIVE_WINDOW_MS="soon"/);
    expect((await activeState(serve.url)).help).toContain('in the last 30 minutes');
  });
});
