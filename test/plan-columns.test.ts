/**
 * The plan's `harness_sessions` columns on both stores: a router team's query against the table
 * the plan describes works on SQLite and on PostgreSQL, and started_at / completed_at are the
 * ISO-8601 UTC form of the millisecond columns (a migration test from schema v1 is in
 * store-migration.test.ts).
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/ids';
import { postJson, startServe, tempHome, type ServeHandle, type TempHome } from './helpers/cli';
import { startPostgres, type PgCluster } from './helpers/postgres';

const PLAN_QUERY = 'select id, source, project, label, task_id, started_at, completed_at, duration_ms, success, tool_calls_count, error from harness_sessions order by id';

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

describe.each(['sqlite', 'postgres'] as const)('the plan query on %s', (backend) => {
  let pg: PgCluster | undefined;
  beforeAll(async () => {
    if (backend === 'postgres') pg = await startPostgres();
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it('started_at / completed_at are the ms columns in ISO-8601 UTC, null while running', async () => {
    const db = backend === 'sqlite' ? join(home.home, 'collector.db') : await pg!.createDb('plan');
    serve = await startServe(home.env, ['--db', db, '--retention-days', '36500']);
    // Milliseconds that a float conversion would round wrong, a date before 2000, a leap day.
    const t0 = Date.parse('2024-02-29T23:59:59.999Z');
    const t1 = t0 + 1;
    const old = Date.parse('1999-12-31T12:00:00.007Z');
    const ev = (e: Record<string, unknown>) => ({ event_id: uuidv7(), source: 'ralph', label: 'nightly', project: 'web', ...e });
    const events = [
      ev({ event: 'ralph_task_started', task_id: 'T1', timestamp: new Date(t0).toISOString() }),
      ev({ event: 'ralph_task_completed', task_id: 'T1', timestamp: new Date(t1).toISOString(), success: false, exit_code: 1, duration_ms: 1, error: 'tests failed' }),
      ev({ event: 'ralph_task_started', task_id: 'T2', timestamp: new Date(old).toISOString() }),
    ];
    expect((await postJson(serve.endpoint, { events })).status).toBe(200);
    await serve.stop();
    serve = undefined;

    let rows: Array<Record<string, unknown>>;
    if (backend === 'sqlite') {
      const d = new Database(db, { readonly: true });
      rows = d.prepare(PLAN_QUERY).all() as Array<Record<string, unknown>>;
      d.close();
    } else rows = await pg!.query('plan', PLAN_QUERY);
    const plain = rows.map((r) => ({ ...r, duration_ms: r.duration_ms === null ? null : Number(r.duration_ms), success: r.success === null ? null : Number(r.success), tool_calls_count: Number(r.tool_calls_count) }));
    expect(plain).toEqual([
      { id: 'task:ralph:nightly:T1', source: 'ralph', project: 'web', label: 'nightly', task_id: 'T1', started_at: '2024-02-29T23:59:59.999Z', completed_at: '2024-03-01T00:00:00.000Z', duration_ms: 1, success: 0, tool_calls_count: 0, error: 'tests failed' },
      { id: 'task:ralph:nightly:T2', source: 'ralph', project: 'web', label: 'nightly', task_id: 'T2', started_at: '1999-12-31T12:00:00.007Z', completed_at: null, duration_ms: null, success: null, tool_calls_count: 0, error: null },
    ]);
  });
});
