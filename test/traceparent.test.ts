/**
 * `claude-metrics run` hands the command a W3C TRACEPARENT: a new trace whose id
 * is the run id, or a child span of an incoming trace; the run's events carry
 * the trace and span ids. (What Claude Code does with it: its spans take the
 * trace id as their parent; see docs/collector.md.)
 */
import { afterEach, beforeEach, expect, it } from 'vitest';
import { runCli, startCaptureServer, tempHome, type CaptureServer, type TempHome } from './helpers/cli';

let home: TempHome;
let cap: CaptureServer;
beforeEach(async () => {
  home = tempHome();
  cap = await startCaptureServer();
});
afterEach(async () => {
  await cap.close();
  home.cleanup();
});

it('a new trace per run, its id the run id; an incoming trace is kept, with our span under it', async () => {
  const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: cap.endpoint };
  const r = await runCli(['run', '--task-id', 'T-t', '--', '/bin/sh', '-c', 'echo "tp=$TRACEPARENT"'], { env });
  expect(r.code).toBe(0);
  const tp = /tp=(\S+)/.exec(r.stdout)![1]!;
  expect(tp).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  const evs = cap.events();
  const started = evs.find((e) => e.event === 'ralph_task_started')!;
  const [, traceId, spanId] = tp.split('-');
  expect(traceId).toBe(String(started.run_id).replace(/-/g, ''));
  expect(started.attrs).toMatchObject({ trace_id: traceId, span_id: spanId });

  const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const r2 = await runCli(['run', '--', '/bin/sh', '-c', 'echo "tp=$TRACEPARENT"'], { env: { ...env, TRACEPARENT: incoming } });
  const tp2 = /tp=(\S+)/.exec(r2.stdout)![1]!;
  expect(tp2.split('-')[1]).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  expect(tp2.split('-')[2]).not.toBe('00f067aa0ba902b7');
  // A malformed one is replaced, not passed on.
  const r3 = await runCli(['run', '--', '/bin/sh', '-c', 'echo "tp=$TRACEPARENT"'], { env: { ...env, TRACEPARENT: 'garbage' } });
  expect(/tp=(\S+)/.exec(r3.stdout)![1]).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
});
