/**
 * Debian's Prometheus scraping two `serve` replicas on one PostgreSQL, with the
 * shipped alert rules loaded, queried over its HTTP API: both targets up, each
 * replica exposing the store's totals (the same series, the same values), the
 * rules' replica-safe aggregations giving the single-collector counts, and
 * every rule evaluating without error.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/ids';
import { deadPort, getJson, postJson, ROOT, startServe, tempHome, waitFor, type ServeHandle, type TempHome } from './helpers/cli';
import { startPostgres, type PgCluster } from './helpers/postgres';

let pg: PgCluster;
let home: TempHome;
let replicas: ServeHandle[] = [];
let prom: ChildProcess | undefined;
let promUrl = '';
let promDir = '';
let promLog = '';

/** An instant query; returns [labels, value] pairs. */
async function query(q: string): Promise<Array<[Record<string, string>, number]>> {
  const { status, body } = await getJson(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
  if (status !== 200 || body.status !== 'success') throw new Error(`query ${q}: ${status} ${JSON.stringify(body)}`);
  return (body.data.result as Array<{ metric: Record<string, string>; value: [number, string] }>).map((r) => [r.metric, Number(r.value[1])]);
}
const scalar = async (q: string) => (await query(q))[0]?.[1];

const TASKS = [
  { run: 'r1', ok: true },
  { run: 'r2', ok: false },
  { run: 'r3', ok: true },
  { run: 'r4', ok: false },
  { run: 'r5', ok: true },
];
const EVENTS = TASKS.flatMap(({ run, ok }, i) => {
  const at = (s: number) => new Date(Date.now() - 120_000 + i * 10_000 + s * 1000).toISOString();
  const base = { source: 'ralph', run_id: run, task_id: run, project: 'billing', label: 'nightly' };
  return [
    { event_id: uuidv7(), event: 'ralph_task_started', timestamp: at(0), ...base },
    { event_id: uuidv7(), event: 'PostToolUse', tool_name: 'Bash', tool_use_id: `${run}-t`, success: ok, timestamp: at(1), ...base },
    { event_id: uuidv7(), event: 'ralph_task_completed', success: ok, exit_code: ok ? 0 : 1, duration_ms: 4000, timestamp: at(4), ...base },
  ];
});

beforeAll(async () => {
  pg = await startPostgres();
  home = tempHome();
  const db = await pg.createDb();
  replicas = await Promise.all([startServe(home.env, ['--db', db]), startServe(home.env, ['--db', db])]);
  // Half of the events through each replica, as a load balancer would spread them.
  await postJson(replicas[0]!.endpoint, { events: EVENTS.filter((_, i) => i % 2 === 0) });
  await postJson(replicas[1]!.endpoint, { events: EVENTS.filter((_, i) => i % 2 === 1) });
  await postJson(replicas[1]!.endpoint, '{not json'); // one reject

  promDir = mkdtempSync(join(tmpdir(), 'cm-prom-'));
  const port = await deadPort();
  promUrl = `http://127.0.0.1:${port}`;
  const targets = replicas.map((r) => `'${new URL(r.url).host}'`).join(', ');
  writeFileSync(
    join(promDir, 'prometheus.yml'),
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'rule_files:',
      `  - '${join(ROOT, 'deploy', 'prometheus', 'alerts.yml')}'`,
      'scrape_configs:',
      '  - job_name: claude-metrics',
      `    static_configs: [{ targets: [${targets}] }]`,
      '',
    ].join('\n'),
  );
  prom = spawn('prometheus', [`--config.file=${join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(promDir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  prom.stderr!.on('data', (d: Buffer) => (promLog += d.toString()));
  await waitFor(async () => (await fetch(`${promUrl}/-/ready`).catch(() => undefined))?.status === 200, { timeoutMs: 60_000, intervalMs: 250 });
  // Both targets scraped at least once after the events were committed.
  await waitFor(async () => (await query('claude_harness_events_total')).length >= 2 * 3, { timeoutMs: 60_000, intervalMs: 500 });
}, 180_000);

afterAll(async () => {
  if (prom && prom.exitCode === null) {
    const exited = new Promise((r) => prom!.once('exit', r));
    prom.kill('SIGTERM');
    await exited;
  }
  await Promise.all(replicas.map((r) => r.stop()));
  home?.cleanup();
  await pg?.stop();
  if (promDir) rmSync(promDir, { recursive: true, force: true });
});

describe('Prometheus scraping two replicas on one PostgreSQL', () => {
  it('scrapes both targets', async () => {
    expect(await scalar('count(up{job="claude-metrics"} == 1)'), promLog).toBe(2);
  });

  it('every replica exposes the store totals: the same series with the same values', async () => {
    const perInstance = await query('sum by (instance) (claude_harness_events_total)');
    expect(perInstance.map(([, v]) => v)).toEqual([EVENTS.length, EVENTS.length]);
    expect(new Set(perInstance.map(([m]) => m.instance)).size).toBe(2);
    // A series that differs between replicas would show up here.
    expect(await query('count by (__name__) (max without (instance) (claude_harness_sessions_completed_total) != min without (instance) (claude_harness_sessions_completed_total))')).toEqual([]);
  });

  it('the rules aggregate across replicas without multiplying: max without (instance) gives one collector’s counts', async () => {
    const byOutcome = Object.fromEntries(
      (await query('sum by (outcome) (max without (instance) (claude_harness_sessions_completed_total{source="ralph"}))')).map(([m, v]) => [m.outcome, v]),
    );
    expect(byOutcome).toEqual({ success: 3, failure: 2 });
    expect(await scalar('sum(max without (instance) (claude_harness_events_total))')).toBe(EVENTS.length);
    expect(await scalar('sum(max without (instance) (claude_harness_rejects_total))')).toBe(1);
    // The naive sum over both targets counts every event twice: why the docs say "one target, or max by".
    expect(await scalar('sum(claude_harness_events_total)')).toBe(2 * EVENTS.length);
  });

  it('loads the shipped alert rules and evaluates every one without error', async () => {
    const SHIPPED = [...readFileSync(join(ROOT, 'deploy', 'prometheus', 'alerts.yml'), 'utf8').matchAll(/^\s*- alert: (\w+)/gm)].map((m) => m[1]!);
    expect(SHIPPED.length).toBeGreaterThanOrEqual(3);
    const read = async () => {
      const { body } = await getJson(`${promUrl}/api/v1/rules`);
      return (body.data.groups as Array<{ rules: Array<{ name: string; health: string; lastEvaluation: string; lastError?: string }> }>).flatMap((g) => g.rules);
    };
    const rules = (await waitFor(async () => {
      const rs = await read();
      return rs.length === SHIPPED.length && rs.every((r) => !r.lastEvaluation.startsWith('0001')) ? rs : undefined;
    }, { timeoutMs: 30_000, intervalMs: 500 }))!;
    expect(rules.map((r) => r.name).sort()).toEqual([...SHIPPED].sort());
    for (const r of rules) expect({ name: r.name, health: r.health, error: r.lastError ?? '' }).toEqual({ name: r.name, health: 'ok', error: '' });
  });
});
