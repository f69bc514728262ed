/**
 * `claude-metrics show` and `tail` as real processes against a real `serve`:
 * the timeline as aligned text with failures marked, --json, every id kind,
 * unknown ids, an unreachable collector and a missing token (clear line,
 * non-zero exit); tail follows live with filters and survives a collector
 * restart without losing what arrived meanwhile.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/ids';
import { deadPort, postJson, runCli, spawnCli, startServe, tempHome, waitFor, type ServeHandle, type TempHome } from './helpers/cli';
import { STORES, useStore } from './helpers/stores';

let home: TempHome;
let serve: ServeHandle | undefined;
const kill: Array<() => void> = [];
beforeEach(() => {
  home = tempHome();
});
afterEach(async () => {
  for (const k of kill.splice(0)) k();
  await serve?.stop();
  serve = undefined;
  home.cleanup();
});

const T0 = Date.parse('2026-12-01T09:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
function seed() {
  const b = { source: 'ralph', run_id: 'R-9', session_id: 'cc-9', task_id: 'T-9', project: 'billing', label: 'nightly' };
  const ev = (o: Record<string, unknown>) => ({ event_id: uuidv7(), ...b, ...o });
  return [
    ev({ event: 'ralph_task_started', timestamp: at(0) }),
    ev({ event: 'PreToolUse', tool_name: 'Bash', tool_use_id: 'a', timestamp: at(1) }),
    ev({ event: 'PostToolUse', tool_name: 'Bash', tool_use_id: 'a', success: true, duration_ms: 1234, timestamp: at(2.3) }),
    ev({ event: 'PreToolUse', tool_name: 'Read', tool_use_id: 'b', timestamp: at(3) }),
    ev({ event: 'PostToolUseFailure', tool_name: 'Read', tool_use_id: 'b', success: false, error: 'File does not exist.\u001b[31m', timestamp: at(3.01) }),
    ev({ event: 'PreToolUse', tool_name: 'Grep', tool_use_id: 'c', agent_id: 'ag', timestamp: at(4) }),
    ev({ event: 'PostToolUse', tool_name: 'Grep', tool_use_id: 'c', agent_id: 'ag', success: true, duration_ms: 80_000, timestamp: at(84) }),
    ev({ event: 'usage', model: 'claude-opus-5-5', usage: { input_tokens: 100, output_tokens: 10, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }, cost_usd: 0.0123, timestamp: at(85) }),
    ev({ event: 'ralph_task_completed', success: false, exit_code: 1, error: 'error_max_turns', duration_ms: 90_000, timestamp: at(90) }),
  ];
}

describe.each(STORES)('show and tail on %s', (backend) => {
  const store = useStore(backend);
  let db = '';
  beforeEach(async () => {
    db = await store.fresh(home);
  });

  describe('show', () => {
    it('prints the timeline aligned, failures marked, by any id; --json for scripts', async () => {
      serve = await startServe(home.env, ['--db', db]);
      expect((await postJson(serve.endpoint, { events: seed() })).status).toBe(200);
      const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: serve.endpoint };
      const r = await runCli(['show', 'T-9'], { env });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^session\s+run:R-9$/m);
      expect(r.stdout).toMatch(/^outcome\s+FAILED \(error_max_turns\)$/m);
      expect(r.stdout).toMatch(/^cost\s+\$0\.0123 \(estimate\)$/m);
      const lines = r.stdout.split('\n');
      const bash = lines.find((l) => / tool +Bash /.test(l))!;
      const read = lines.find((l) => / tool +Read /.test(l))!;
      const grep = lines.find((l) => /↳ Grep/.test(l))!;
      expect(bash).toMatch(/^\+0:01 +✓ +tool +Bash +1\.2 s$/);
      expect(read).toMatch(/^\+0:03 +✗ +tool +Read +\d+ ms +File does not exist\.\?\[31m$/); // no raw escape reaches the terminal
      expect(grep).toMatch(/1m20s/);
      // Durations end in the same column.
      const end = (l: string, d: string) => l.indexOf(d) + d.length;
      expect(end(bash, '1.2 s')).toBe(end(grep, '1m20s'));
      expect(r.stdout).toMatch(/6 steps, 2 failed \(✗\)/);
      for (const id of ['R-9', 'run:R-9', 'cc-9']) expect((await runCli(['show', id], { env })).stdout).toMatch(/^session\s+run:R-9$/m);
      const j = await runCli(['show', 'T-9', '--json'], { env });
      const parsed = JSON.parse(j.stdout);
      expect(parsed.session).toMatchObject({ id: 'run:R-9', task_id: 'T-9', tool_failures: 1 });
      expect(parsed.steps.map((s: any) => s.kind)).toEqual(['task', 'tool', 'tool', 'tool', 'request', 'task']);
    });

    it('unknown id, unreachable collector, missing token: one clear line and a non-zero exit', async () => {
      serve = await startServe(home.env, ['--db', db, '--token', 'tk']);
      const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: serve.endpoint };
      const noTok = await runCli(['show', 'x'], { env });
      expect(noTok).toMatchObject({ code: 1, stdout: '' });
      expect(noTok.stderr).toMatch(/^claude-metrics: the collector needs a token: pass --token or set CLAUDE_METRICS_TOKEN/);
      const unknown = await runCli(['show', 'nope', '--token', 'tk'], { env });
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toBe('claude-metrics: no session, task or run with id "nope" on this collector (it may be older than the retention, or not sent yet)\n');
      const dead = await runCli(['show', 'x', '--endpoint', `http://127.0.0.1:${await deadPort()}/metrics/harness`], { env: home.env });
      expect(dead.code).toBe(75);
      expect(dead.stderr).toMatch(/^claude-metrics: the collector at http:\/\/127\.0\.0\.1:\d+ is not reachable \(ECONNREFUSED\); start it with `claude-metrics serve` or pass --endpoint\n$/);
      const usage = await runCli(['show'], { env });
      expect(usage.code).not.toBe(0);
      expect(usage.stderr).toMatch(/missing required argument 'id'/);
      const tailDead = await runCli(['tail', '--endpoint', `http://127.0.0.1:${await deadPort()}`], { env: home.env });
      expect(tailDead.code).toBe(75);
      expect(tailDead.stderr).toMatch(/is not reachable/);
    });
  });

  describe('tail', () => {
    it('follows live, filtered, and resumes after a collector restart without losing steps', async () => {
      serve = await startServe(home.env, ['--db', db]);
      const port = new URL(serve.url).port;
      const child = spawnCli(['tail', '--project', 'billing', '--endpoint', serve.url], { env: home.env });
      kill.push(() => child.kill('SIGKILL'));
      let out = '';
      let err = '';
      child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
      await waitFor(() => err.includes('following'));
      const ev = (o: Record<string, unknown>) => ({ event_id: uuidv7(), source: 'interactive', session_id: 'L-1', project: 'billing', timestamp: new Date().toISOString(), ...o });
      await postJson(serve.endpoint, { events: [ev({ event: 'PreToolUse', tool_name: 'Bash', tool_use_id: 'x1' }), ev({ event: 'PostToolUse', tool_name: 'Bash', tool_use_id: 'x1', success: true, duration_ms: 300 })] });
      await postJson(serve.endpoint, ev({ project: 'other', session_id: 'L-2', event: 'PostToolUseFailure', tool_name: 'Secret', success: false, error: 'not for this tail' }));
      await postJson(serve.endpoint, ev({ event: 'PostToolUseFailure', tool_name: 'Edit', tool_use_id: 'x2', success: false, error: 'old_string not found' }));
      await waitFor(() => out.includes('old_string not found'));
      expect(out).toMatch(/billing +✓ tool +Bash +300 ms/);
      expect(out).toMatch(/billing +✗ tool +Edit .*old_string not found/);
      expect(out).not.toContain('Secret');

      // The collector restarts on the same port; what arrives right after comes through.
      await serve.stop();
      serve = await startServe(home.env, ['--db', db, '--port', port]);
      await postJson(serve.endpoint, ev({ event: 'PostToolUse', tool_name: 'WebFetch', tool_use_id: 'x3', success: true, duration_ms: 40 }));
      await waitFor(() => out.includes('WebFetch'), { timeoutMs: 20_000 });
      expect(err).toContain('stream dropped; reconnecting');
      expect(out.split('\n').filter((l) => l.includes('Bash')).length).toBe(1); // nothing printed twice
      child.kill('SIGINT');
      const code = await new Promise((r) => child.on('exit', (c) => r(c)));
      expect(code).toBe(0);
    }, 60_000);
  });
});
