/** `usage` with a model the price table does not know: tokens counted, cost left out and named; a newer model is never priced as an older one. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { runCli, tempHome, type TempHome } from './helpers/cli';

let home: TempHome;
beforeEach(() => (home = tempHome('cm-unpriced-')));
afterEach(() => home.cleanup());

const line = (session: string, n: number, model: string) =>
  JSON.stringify({ sessionId: session, cwd: '/w/app', type: 'assistant', requestId: `req_${n}`, timestamp: `2026-12-01T10:00:0${n}.000Z`, message: { id: `msg_${n}`, type: 'message', role: 'assistant', model, content: [], usage: { input_tokens: 2400 / 2, output_tokens: 80, cache_creation_input_tokens: 3000, cache_read_input_tokens: 500 } } });

it('an unknown model counts its tokens, leaves its cost out, and says so; claude-opus-4-8 gets its own price', async () => {
  const dir = join(home.home, 'projects', '-w-app');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'a.jsonl'), `${line('a', 1, 'claude-opus-4-8')}\n${line('a', 2, 'claude-opus-4-8')}\n`);
  writeFileSync(join(dir, 'b.jsonl'), `${line('b', 3, 'claude-opus-4-9')}\n`);
  const r = await runCli(['usage', '--projects-dir', join(home.home, 'projects'), '--json'], { env: home.env });
  expect(r.code, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout) as { sessions: Array<{ session_id: string; cost_usd: number; input_tokens: number }>; totals: { input_tokens: number; cost_usd: number }; unpriced_models: string[] };
  expect(out.unpriced_models).toEqual(['claude-opus-4-9']);
  expect(out.sessions.find((s) => s.session_id === 'a')!.cost_usd).toBeCloseTo(0.054, 9); // what Claude Code 2.1.197 charged
  expect(out.sessions.find((s) => s.session_id === 'b')).toMatchObject({ input_tokens: 1200, cost_usd: 0 });
  expect(out.totals.input_tokens).toBe(3600);
  expect(out.totals.cost_usd).toBeCloseTo(0.054, 9);
  expect(r.stderr).toMatch(/unpriced model\(s\) claude-opus-4-9: their tokens are counted, their cost is not/);
});
