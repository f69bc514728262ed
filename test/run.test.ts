/**
 * `claude-metrics run` around a fake `claude` (test/fixtures/fake-claude.mjs):
 * the events it records, stdout byte for byte, exit codes, signals, env.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, deadPort, runCli, runProcess, startCaptureServer, tempHome, waitFor, type CaptureServer, type TempHome } from './helpers/cli';

const FAKE = join(__dirname, 'fixtures', 'fake-claude.mjs');
let home: TempHome;
let server: CaptureServer;
let env: Record<string, string>;

beforeEach(async () => {
  home = tempHome();
  server = await startCaptureServer();
  env = { ...home.env, CLAUDE_METRICS_ENDPOINT: server.endpoint, CLAUDE_METRICS_TIMEOUT_MS: '5000' };
});
afterEach(async () => {
  await server.close();
  home.cleanup();
});

const byEvent = () => Object.fromEntries(server.events().map((e) => [e.event as string, e]));

describe('run', () => {
  it('records start and completion with the claude -p result, and passes stdout through byte for byte', async () => {
    const direct = await runProcess(process.execPath, [FAKE, '-p', 'task'], { env: { ...env, FAKE_CLAUDE_MODE: 'ok' } });
    const wrapped = await runCli(['run', '--task-id', 'T-1', '--label', 'nightly', '--project', 'app', '--', process.execPath, FAKE, '-p', 'task'], { env: { ...env, FAKE_CLAUDE_MODE: 'ok' } });
    expect(wrapped.code).toBe(0);
    expect(Buffer.from(wrapped.stdout)).toEqual(Buffer.from(direct.stdout));
    const { ralph_task_started: start, ralph_task_completed: done } = byEvent();
    expect(start).toMatchObject({ source: 'ralph', task_id: 'T-1', label: 'nightly', project: 'app' });
    expect(done).toMatchObject({
      run_id: start!.run_id, task_id: 'T-1', label: 'nightly', success: true, exit_code: 0, num_turns: 4, duration_api_ms: 1800, cost_usd: 0.0123,
      result_subtype: 'success', is_error: false, session_id: '11111111-2222-4333-8444-555555555555', model: 'claude-sonnet-4-5-20250929',
      usage: { input_tokens: 1200, output_tokens: 789, cache_creation_input_tokens: 3400, cache_read_input_tokens: 56000 },
    });
    expect(done!.duration_ms).toEqual(expect.any(Number));
  });

  it('reads the result from stream-json output too', async () => {
    await runCli(['run', '--', process.execPath, FAKE], { env: { ...env, FAKE_CLAUDE_MODE: 'stream' } });
    expect(byEvent().ralph_task_completed).toMatchObject({ success: true, num_turns: 2 });
  });

  it('an error result or a non-zero exit is a failed task, and run exits with the command’s code', async () => {
    const err = await runCli(['run', '--', process.execPath, FAKE], { env: { ...env, FAKE_CLAUDE_MODE: 'error' } });
    expect(err.code).toBe(1);
    expect(byEvent().ralph_task_completed).toMatchObject({ success: false, is_error: true, result_subtype: 'error_max_turns', error: 'claude: error_max_turns', exit_code: 1 });
    const three = await runCli(['run', '--source', 'api', '--', process.execPath, FAKE], { env: { ...env, FAKE_CLAUDE_MODE: 'exit3' } });
    expect(three.code).toBe(3);
    expect(three.stdout).toBe('plain text, no JSON\n');
    const last = server.events().at(-1)!;
    expect(last).toMatchObject({ event: 'ralph_task_completed', source: 'api', success: false, exit_code: 3, error: 'exit code 3' });
  });

  it('a command that is not found: exit 127, a clear line, a failed task', async () => {
    const r = await runCli(['run', '--', 'no-such-command-xyz'], { env });
    expect(r.code).toBe(127);
    expect(r.stderr).toContain('command not found: no-such-command-xyz');
    expect(byEvent().ralph_task_completed).toMatchObject({ success: false, exit_code: 127 });
  });

  it('gives the child the task through the environment (so its hooks join the task)', async () => {
    const r = await runCli(['run', '--task-id', 'T-9', '--label', 'L', '--', process.execPath, FAKE], { env: { ...env, FAKE_CLAUDE_MODE: 'env' } });
    const seen = JSON.parse(r.stdout) as Record<string, string>;
    expect(seen).toMatchObject({ CLAUDE_METRICS_TASK_ID: 'T-9', CLAUDE_METRICS_LABEL: 'L', CLAUDE_METRICS_SOURCE: 'ralph', CLAUDE_METRICS_RUN_ID: byEvent().ralph_task_started!.run_id });
  });

  it('passes stdin through', async () => {
    const r = await runCli(['run', '--', process.execPath, FAKE], { env: { ...env, FAKE_CLAUDE_MODE: 'stdin' }, input: 'from the loop\n' });
    expect(r.stdout).toBe('from the loop\n');
  });

  it('forwards SIGTERM: the task is recorded as killed and run exits 143', async () => {
    const child = spawn(process.execPath, [BIN, 'run', '--task-id', 'K', '--', process.execPath, FAKE], { env: { ...env, FAKE_CLAUDE_MODE: 'sleep' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    await waitFor(() => out.includes('working'));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(143);
    expect(byEvent().ralph_task_completed).toMatchObject({ task_id: 'K', success: false, error: 'killed by SIGTERM' });
  });

  it('a child that ignores SIGTERM keeps running; run waits for it and reports its real exit', async () => {
    const child = spawn(process.execPath, [BIN, 'run', '--', process.execPath, FAKE], { env: { ...env, FAKE_CLAUDE_MODE: 'ignore-term' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    await waitFor(() => out.includes('working'));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    child.kill('SIGTERM');
    await waitFor(() => out.includes('ignoring SIGTERM'));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(byEvent().ralph_task_completed).toMatchObject({ success: true, exit_code: 0 });
  });

  it('works the same with the collector down: both events are spooled', async () => {
    const down = { ...env, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${await deadPort()}/metrics/harness` };
    const r = await runCli(['run', '--task-id', 'D', '--', process.execPath, FAKE], { env: { ...down, FAKE_CLAUDE_MODE: 'ok' } });
    expect(r.code).toBe(0);
    const dir = join(home.stateDir, 'spool', 'new');
    expect(existsSync(dir) ? readdirSync(dir).length : 0).toBe(2);
  });

  it('without a command: a usage error', async () => {
    const r = await runCli(['run'], { env });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/command/);
  });
});
