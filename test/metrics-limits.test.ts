/**
 * Bounded /metrics end to end (real `serve` processes, SQLite and PostgreSQL):
 * with small caps a collector serves at most cap + 1 values per label (`other`
 * carrying the rest), each family sums to the raw total, and no counter series
 * ever decreases — across scrapes, a restart, a newly busy value, and on
 * PostgreSQL across two replicas of one database.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/ids';
import { getJson, postJson, startServe, tempHome, type ServeHandle, type TempHome } from './helpers/cli';
import { startPostgres, type PgCluster } from './helpers/postgres';

const CAPS = ['--metrics-max-projects', '2', '--metrics-max-labels', '3', '--metrics-max-tools', '2', '--metrics-max-models', '1', '--metrics-max-loops', '2'];

/** Series of one /metrics text: "name{labels}" → value, counters only (gauges may go down). */
function counterSeries(text: string): Map<string, number> {
  const counters = new Set([...text.matchAll(/^# TYPE (\S+) (counter|histogram)$/gm)].map((m) => m[1]!));
  const out = new Map<string, number>();
  for (const l of text.split('\n')) {
    if (!l || l.startsWith('#')) continue;
    const i = l.lastIndexOf(' ');
    const key = l.slice(0, i);
    const name = key.split('{')[0]!.replace(/_(bucket|sum|count)$/, '');
    if (counters.has(name) || counters.has(key.split('{')[0]!)) out.set(key, Number(l.slice(i + 1)));
  }
  return out;
}

const valuesOf = (s: Map<string, number>, family: string, label: string) =>
  new Set([...s.keys()].filter((k) => k.startsWith(`${family}{`)).map((k) => new RegExp(`${label}="([^"]*)"`).exec(k)?.[1]));
const sumOf = (s: Map<string, number>, family: string) => [...s.entries()].filter(([k]) => k === family || k.startsWith(`${family}{`)).reduce((a, [, v]) => a + v, 0);

/** Events over `projects` × `labels`, project i having i + 1 sessions' worth (so the busiest are the last). */
function events(projects: string[], labels: string[], tools: string[], models: string[]) {
  const out: Array<Record<string, unknown>> = [];
  const t = new Date(Date.now() - 60_000).toISOString();
  projects.forEach((project, pi) => {
    for (let n = 0; n <= pi; n++) {
      const label = labels[(pi + n) % labels.length]!;
      const run_id = `r-${project}-${n}-${uuidv7()}`;
      const base = { source: 'ralph', run_id, project, label, timestamp: t };
      out.push({ ...base, event: 'ralph_task_started', task_id: 'T' });
      out.push({ ...base, event: 'PostToolUse', tool_name: tools[(pi + n) % tools.length], tool_use_id: uuidv7(), success: n % 2 === 0 });
      out.push({ ...base, event: 'usage', model: models[(pi + n) % models.length], usage: { input_tokens: 10, output_tokens: 5 }, cost_usd: 0.01 });
      out.push({ ...base, event: 'ralph_task_completed', task_id: 'T', success: n % 3 !== 0 });
    }
  });
  return out.map((e) => ({ event_id: uuidv7(), ...e }));
}

const metrics = async (s: ServeHandle) => counterSeries((await getJson(`${s.url}/metrics`)).body as string);

/** Every series of `before` is in `after` with a value at least as large. */
function neverDecreases(before: Map<string, number>, after: Map<string, number>) {
  const lower = [...before.entries()].filter(([k, v]) => !((after.get(k) ?? -1) >= v)).map(([k, v]) => `${k}: ${v} -> ${after.get(k)}`);
  expect(lower).toEqual([]);
}

function checkBounded(s: Map<string, number>, raw: { events: number; tools: number; tasks: number; tokens: number }) {
  for (const [family, label, cap] of [
    ['claude_harness_events_by_project_total', 'project', 2],
    ['claude_harness_events_by_label_total', 'label', 3],
    ['claude_harness_tool_calls_total', 'tool', 2],
    ['claude_harness_tokens_total', 'model', 1],
    ['claude_harness_ralph_tasks_completed_total', 'label', 2],
  ] as const) {
    const v = valuesOf(s, family, label);
    expect(v.size, family).toBeLessThanOrEqual(cap + 1);
    expect(v.has('other'), family).toBe(true);
  }
  for (const f of ['claude_harness_events_total', 'claude_harness_events_by_project_total', 'claude_harness_events_by_label_total']) expect(sumOf(s, f), f).toBe(raw.events);
  for (const f of ['claude_harness_tool_calls_total', 'claude_harness_tool_calls_by_project_total']) expect(sumOf(s, f), f).toBe(raw.tools);
  for (const f of ['claude_harness_sessions_completed_total', 'claude_harness_sessions_completed_by_project_total', 'claude_harness_sessions_completed_by_label_total', 'claude_harness_ralph_tasks_completed_total', 'claude_harness_task_duration_seconds_count'])
    expect(sumOf(s, f), f).toBe(raw.tasks);
  for (const f of ['claude_harness_tokens_total', 'claude_harness_tokens_by_project_total']) expect(sumOf(s, f), f).toBe(raw.tokens);
}

const P = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'];
const L = ['l1', 'l2', 'l3', 'l4', 'l5', 'l6'];
const T = ['Bash', 'Read', 'Edit', 'Grep'];
const M = ['claude-sonnet-4-5', 'claude-opus-4-1', 'claude-haiku-4-5'];
const rawOf = (evs: Array<Record<string, unknown>>) => ({
  events: evs.length,
  tools: evs.filter((e) => e.event === 'PostToolUse').length,
  tasks: evs.filter((e) => e.event === 'ralph_task_completed').length,
  tokens: evs.filter((e) => e.event === 'usage').length * 15,
});

describe.each(['sqlite', 'postgres'] as const)('bounded /metrics on %s', (backend) => {
  let home: TempHome;
  let pg: PgCluster | undefined;
  const serves: ServeHandle[] = [];
  const start = async (db: string) => {
    const s = await startServe(home.env, ['--db', db, ...CAPS]);
    serves.push(s);
    return s;
  };
  beforeAll(async () => {
    if (backend === 'postgres') pg = await startPostgres();
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

  it('caps each label, keeps totals exact, and no counter decreases across scrapes, a newly busy value, a restart and replicas', async () => {
    const db = backend === 'sqlite' ? join(home.home, 'c.db') : await pg!.createDb();
    let a = await start(db);
    const first = events(P, L, T, M);
    expect((await postJson(a.endpoint, { events: first })).status).toBe(200);
    const s1 = await metrics(a);
    checkBounded(s1, rawOf(first));
    // The busiest two projects got the slots.
    expect([...valuesOf(s1, 'claude_harness_events_by_project_total', 'project')].sort()).toEqual(['delta', 'epsilon', 'other']);

    // A project busier than any: it goes to other (slots are sticky), every series only grows.
    const second = events(['zeta', 'zeta', 'zeta', 'zeta', 'zeta', 'zeta', 'zeta'], L, ['Write', 'Glob'], M);
    await postJson(a.endpoint, { events: second });
    const s2 = await metrics(a);
    checkBounded(s2, rawOf([...first, ...second]));
    expect(valuesOf(s2, 'claude_harness_events_by_project_total', 'project').has('zeta')).toBe(false);
    neverDecreases(s1, s2);

    // A restart (and, on PostgreSQL, a second replica of the same database) serves the same series.
    let b: ServeHandle;
    if (backend === 'postgres') b = await start(db);
    else {
      await a.stop();
      serves.splice(serves.indexOf(a), 1);
      a = b = await start(db);
    }
    const s3 = await metrics(b);
    neverDecreases(s2, s3);
    expect(s3).toEqual(s2);
    const third = events(P, L, T, M);
    await postJson(b.endpoint, { events: third });
    const [s4a, s4b] = [await metrics(a), await metrics(b)];
    neverDecreases(s3, s4a);
    expect(s4b).toEqual(s4a);
    checkBounded(s4a, rawOf([...first, ...second, ...third]));
  });

  it('a raised cap (env, then config file) gives the next busiest values their own series; admitted ones keep theirs', async () => {
    const db = backend === 'sqlite' ? join(home.home, 'c.db') : await pg!.createDb();
    const noProjectFlag = CAPS.slice(2);
    const a = await startServe({ ...home.env, CLAUDE_METRICS_METRICS_MAX_PROJECTS: '1' }, ['--db', db, ...noProjectFlag]);
    serves.push(a);
    await postJson(a.endpoint, { events: events(P, L, T, M) });
    const before = valuesOf(await metrics(a), 'claude_harness_events_by_project_total', 'project');
    expect([...before].sort()).toEqual(['epsilon', 'other']);
    await a.stop();
    serves.splice(serves.indexOf(a), 1);
    const config = join(home.home, 'cm.json');
    writeFileSync(config, JSON.stringify({ metricsMaxProjects: 3 }));
    const s = await startServe(home.env, ['--db', db, '--config', config, ...noProjectFlag]);
    serves.push(s);
    const after = valuesOf(await metrics(s), 'claude_harness_events_by_project_total', 'project');
    expect([...after].sort()).toEqual(['delta', 'epsilon', 'gamma', 'other']);
  });
});
