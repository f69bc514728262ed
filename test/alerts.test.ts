/**
 * Alert rules validated and unit-tested by promtool (Debian's prometheus), and
 * every metric the rules and the Grafana dashboard use exists in a real
 * collector's /metrics once it has seen events.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/ids';
import { getJson, postJson, ROOT, startServe, tempHome, type ServeHandle, type TempHome } from './helpers/cli';

const DEPLOY = join(ROOT, 'deploy');
const promtool = (...args: string[]) => execFileSync('promtool', args, { cwd: join(DEPLOY, 'prometheus'), encoding: 'utf8' });

describe('Prometheus alert rules', () => {
  it('pass promtool check rules', () => {
    expect(promtool('check', 'rules', 'alerts.yml')).toMatch(/SUCCESS: 4 rules found/);
  });
  it('pass their promtool unit tests (fire when they should, stay quiet otherwise)', () => {
    expect(promtool('test', 'rules', 'alerts.test.yml')).toMatch(/SUCCESS/);
  });
});

describe('metrics referenced by the rules and the Grafana dashboard', () => {
  let home: TempHome;
  let serve: ServeHandle;
  beforeAll(async () => {
    home = tempHome();
    serve = await startServe(home.env, ['--db', join(home.home, 'c.db')]);
    const now = Date.now();
    const at = (ms: number) => new Date(ms).toISOString();
    const events = [
      { event: 'ralph_task_started', source: 'ralph', run_id: 'r1', task_id: 'T', label: 'l', project: 'p', timestamp: at(now - 60_000) },
      { event: 'PostToolUse', source: 'ralph', run_id: 'r1', tool_name: 'Bash', success: true, duration_ms: 10, label: 'l', project: 'p', timestamp: at(now - 50_000) },
      { event: 'usage', source: 'ralph', run_id: 'r1', model: 'claude-sonnet-4-5', usage: { input_tokens: 1, output_tokens: 2 }, cost_usd: 0.01, label: 'l', project: 'p', timestamp: at(now - 40_000) },
      { event: 'ralph_task_completed', source: 'ralph', run_id: 'r1', task_id: 'T', success: true, cost_usd: 0.02, label: 'l', project: 'p', timestamp: at(now - 30_000) },
      { event: 'ralph_task_started', source: 'ralph', run_id: 'r2', task_id: 'U', label: 'l', project: 'p', timestamp: at(now - 20_000) },
    ].map((e) => ({ event_id: uuidv7(), ...e }));
    await postJson(serve.endpoint, { events });
    await postJson(serve.endpoint, events[0]); // a duplicate
    await postJson(serve.endpoint, '{not json'); // a reject
  });
  afterAll(async () => {
    await serve.stop();
    home.cleanup();
  });

  it('all exist in /metrics', async () => {
    const exposed = new Set(
      ((await getJson(`${serve.url}/metrics`)).body as string)
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => l.split(/[{ ]/)[0]!),
    );
    const referenced = new Set<string>();
    for (const file of [join(DEPLOY, 'prometheus', 'alerts.yml'), join(DEPLOY, 'grafana', 'claude-harness.json')]) {
      for (const m of readFileSync(file, 'utf8').matchAll(/claude_harness_[a-z_]+/g)) referenced.add(m[0]);
    }
    expect(referenced.size).toBeGreaterThan(8);
    const missing = [...referenced].filter((m) => !exposed.has(m));
    expect(missing).toEqual([]);
  });

  it('the Grafana dashboard is importable JSON with a datasource input and filter variables', () => {
    const d = JSON.parse(readFileSync(join(DEPLOY, 'grafana', 'claude-harness.json'), 'utf8')) as { __inputs: Array<{ name: string }>; templating: { list: Array<{ name: string }> }; panels: Array<{ title: string; targets: unknown[] }> };
    expect(d.__inputs[0]!.name).toBe('DS_PROMETHEUS');
    expect(d.templating.list.map((v) => v.name)).toEqual(['DS_PROMETHEUS', 'source', 'project', 'label']);
    for (const p of d.panels) expect(p.targets.length, p.title).toBeGreaterThan(0);
  });
});
