/**
 * hooks-templates/: the settings snippets stay what `install` writes; the Ralph
 * loop (fake `claude` on PATH) records its tasks against a live collector and
 * keeps going against a dead one; the reference FastAPI router (Debian's
 * python3) takes single, batch and bare events from the real CLI, dedupes, and
 * folds sessions.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson, deterministicId } from '../src/event';
import { isOurHookCommand } from '../src/install/hook-command';
import { DEFAULT_EVENTS, findOurHooks, planInstall } from '../src/install/settings-edit';
import { BIN, deadPort, ROOT, runCli, runProcess, startCaptureServer, tempHome, waitFor, type TempHome } from './helpers/cli';

const T = join(ROOT, 'hooks-templates');
const PY = '/usr/bin/python3';
const hasFastapi = spawnSync(PY, ['-c', 'import fastapi, uvicorn'], { stdio: 'ignore' }).status === 0;

describe('settings snippets', () => {
  it.each([
    ['settings.user.json', '/bin/sh /ABSOLUTE/PATH/TO/claude-metrics/bin/claude-metrics-hook /ABSOLUTE/PATH/TO/node /ABSOLUTE/PATH/TO/claude-metrics/dist/cli.cjs'],
    ['settings.project.json', 'claude-metrics emit'],
  ])('%s is exactly what install writes for that command', (file, command) => {
    const text = readFileSync(join(T, file), 'utf8');
    expect(text).toBe(planInstall('', { command, events: DEFAULT_EVENTS, timeoutS: 5, async: false }, file).text);
    expect(isOurHookCommand(command)).toBe(true);
    expect(findOurHooks(text, file).commands).toHaveLength(DEFAULT_EVENTS.length);
  });
  it('the crontab line runs flush every 5 minutes', () => {
    expect(readFileSync(join(T, 'crontab.txt'), 'utf8')).toMatch(/^\*\/5 \* \* \* \* \S*claude-metrics flush$/m);
  });
});

/** A temp HOME with `claude-metrics` (the built CLI) and a fake `claude` on PATH. */
function sandbox(t: TempHome, claudeScript: string): Record<string, string> {
  const bin = join(t.home, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'claude-metrics'), `#!/bin/sh\nexec '${process.execPath}' '${BIN}' "$@"\n`);
  writeFileSync(join(bin, 'claude'), claudeScript);
  chmodSync(join(bin, 'claude-metrics'), 0o755);
  chmodSync(join(bin, 'claude'), 0o755);
  return { ...t.env, PATH: `${bin}:/usr/bin:/bin` };
}

// Prints a result JSON like `claude -p --output-format json`; the second call fails.
const FAKE_CLAUDE = `#!/bin/sh
n=$(cat "$HOME/calls" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$HOME/calls"
echo "env: $CLAUDE_METRICS_TASK_ID $CLAUDE_METRICS_LABEL" >> "$HOME/claude-env"
if [ $n -eq 2 ]; then echo '{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":9,"total_cost_usd":0.5,"session_id":"s2","result":""}'; exit 1; fi
echo '{"type":"result","subtype":"success","is_error":false,"num_turns":3,"duration_ms":1200,"duration_api_ms":900,"total_cost_usd":0.0123,"session_id":"s'$n'","result":"done","usage":{"input_tokens":10,"output_tokens":20,"cache_creation_input_tokens":0,"cache_read_input_tokens":5}}'
`;

describe('ralph-wiggum.sh', () => {
  let t: TempHome;
  beforeEach(() => {
    t = tempHome('cm-ralph-');
    writeFileSync(join(t.home, 'PROMPT.md'), 'fix the next failing test\n');
  });
  afterEach(() => t.cleanup());

  it('passes bash -n', () => {
    expect(spawnSync('bash', ['-n', join(T, 'ralph-wiggum.sh')]).status).toBe(0);
  });

  it('emit mode: each iteration is a started/completed pair at a live collector; claude output passes through', async () => {
    const cap = await startCaptureServer();
    try {
      const env = { ...sandbox(t, FAKE_CLAUDE), CLAUDE_METRICS_ENDPOINT: cap.endpoint, MAX_ITERATIONS: '3', RALPH_MODE: 'emit', RALPH_LABEL: 'nightly' };
      const r = await runProcess('bash', [join(T, 'ralph-wiggum.sh')], { env, cwd: t.home });
      expect(r.code).toBe(0);
      expect(r.stdout.match(/"type":"result"/g)).toHaveLength(3);
      // Delivery is at-least-once: an emit whose answer came late under load spools its event and a
      // later flush sends it again, with the same id, which the collector drops. This capture server
      // keeps everything, so count each id once, as the collector would.
      const received = (await waitFor(() => (new Set(cap.events().map((e) => e.event_id)).size >= 6 ? cap.events() : null)))!;
      const events = [...new Map(received.map((e) => [e.event_id, e])).values()];
      const byEvent = (name: string) => events.filter((e) => e.event === name);
      expect(byEvent('ralph_task_started')).toHaveLength(3);
      const done = byEvent('ralph_task_completed');
      expect(done.map((e) => e.success)).toEqual([true, false, true]);
      expect(done.map((e) => e.exit_code)).toEqual([0, 1, 0]);
      for (const e of [...byEvent('ralph_task_started'), ...done]) expect(e).toMatchObject({ source: 'ralph', label: 'nightly' });
      expect(new Set(done.map((e) => e.task_id)).size).toBe(3);
      expect(done.every((e) => typeof e.duration_ms === 'number')).toBe(true);
      // Hooks inside the claude call are tied to the task through the environment.
      expect(readFileSync(join(t.home, 'claude-env'), 'utf8')).toMatch(/^env: \S+-1 nightly$/m);
    } finally {
      await cap.close();
    }
  });

  it('emit mode keeps looping when the collector is down; flush delivers everything later', async () => {
    const port = await deadPort();
    const env = { ...sandbox(t, FAKE_CLAUDE), CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${port}/metrics/harness`, MAX_ITERATIONS: '2', RALPH_MODE: 'emit' };
    const r = await runProcess('bash', [join(T, 'ralph-wiggum.sh')], { env, cwd: t.home });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/task \S+-2 exited 1/);
    const spooled = readdirSync(join(t.stateDir, 'spool', 'new'));
    expect(spooled).toHaveLength(4);
    const cap = await startCaptureServer();
    try {
      const f = await runCli(['flush', '--endpoint', cap.endpoint], { env });
      expect(f.code).toBe(0);
      expect(cap.events().map((e) => e.event).sort()).toEqual(['ralph_task_completed', 'ralph_task_completed', 'ralph_task_started', 'ralph_task_started']);
    } finally {
      await cap.close();
    }
  });

  it('still runs claude when claude-metrics is not installed', async () => {
    const env = { ...sandbox(t, FAKE_CLAUDE), MAX_ITERATIONS: '1', CLAUDE_METRICS: 'claude-metrics-not-installed' };
    const r = await runProcess('bash', [join(T, 'ralph-wiggum.sh')], { env, cwd: t.home });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/"result":"done"/);
  });

  it('run mode records each iteration through claude-metrics run', async () => {
    const cap = await startCaptureServer();
    try {
      const env = { ...sandbox(t, FAKE_CLAUDE), CLAUDE_METRICS_ENDPOINT: cap.endpoint, MAX_ITERATIONS: '2', RALPH_LABEL: 'loop' };
      const r = await runProcess('bash', [join(T, 'ralph-wiggum.sh')], { env, cwd: t.home });
      expect(r.code).toBe(0);
      const done = (await waitFor(() => {
        const d = cap.events().filter((e) => e.event === 'ralph_task_completed');
        return d.length >= 2 ? d : null;
      }))!;
      expect(done.map((e) => e.success)).toEqual([true, false]);
      expect(done[0]).toMatchObject({ source: 'ralph', label: 'loop', num_turns: 3, cost_usd: 0.0123 });
    } finally {
      await cap.close();
    }
  });
});

/** Starts a uvicorn app from hooks-templates with Debian's python3; resolves its base URL. */
async function startUvicorn(appDir: string, target: string, env: Record<string, string>, factory: boolean): Promise<{ url: string; child: ChildProcess }> {
  const port = await deadPort();
  const args = ['-m', 'uvicorn', ...(factory ? ['--factory'] : []), target, '--app-dir', appDir, '--host', '127.0.0.1', '--port', String(port), '--log-level', 'warning'];
  const child = spawn(PY, args, { env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        if (child.exitCode !== null) throw new Error(`uvicorn exited: ${err}`);
        const req = request(`${url}/docs`, { method: 'GET' }, (res) => {
          res.resume();
          resolve(true);
        });
        req.on('error', () => resolve(false));
        req.end();
      }),
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  return { url, child };
}

function post(url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe.skipIf(!hasFastapi)('reference FastAPI router (router/harness_router.py)', () => {
  let t: TempHome;
  let child: ChildProcess | undefined;
  afterEach(() => {
    child?.kill('SIGKILL');
    t.cleanup();
  });

  it('takes single, batch and bare events from the CLI, dedupes by event_id, folds sessions, checks the token', async () => {
    t = tempHome('cm-router-');
    const db = join(t.home, 'harness.db');
    const started = await startUvicorn(join(T, 'router'), 'harness_router:create_app', { PATH: '/usr/bin:/bin', HOME: t.home, HARNESS_DB: db, HARNESS_TOKEN: 'tok' }, true);
    child = started.child;
    const endpoint = `${started.url}/metrics/harness`;
    const env = { ...t.env, CLAUDE_METRICS_ENDPOINT: endpoint, CLAUDE_METRICS_TOKEN: 'tok' };

    // Single events straight from emit.
    await runCli(['emit', '--source', 'ralph', '--event', 'ralph_task_started', '--task-id', 'T1', '--label', 'L'], { env });
    await runCli(['emit', '--source', 'ralph', '--event', 'ralph_task_completed', '--task-id', 'T1', '--label', 'L', '--duration-ms', '1500', '--success', 'true'], { env });
    // A batch through the spool: emit while the router "is down", then flush.
    const dead = { ...env, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${await deadPort()}/metrics/harness` };
    for (const id of ['T2', 'T3']) await runCli(['emit', '--source', 'ralph', '--event', 'ralph_task_completed', '--task-id', id, '--label', 'L', '--success', 'false'], { env: dead });
    expect(readdirSync(join(t.stateDir, 'spool', 'new'))).toHaveLength(2);
    const f = await runCli(['flush', '--verbose'], { env: { ...env, CLAUDE_METRICS_BREAKER_MAX_BACKOFF_MS: '100' } });
    expect(f.stderr).toMatch(/delivered 2/);
    expect(f.code).toBe(0);
    // The bare shape a shell script curls, twice (a retry): one event, id as the TS collector derives it.
    const bare = { source: 'ralph', event: 'ralph_task_completed', task_id: 'T4', label: 'L', duration_ms: 1234, success: true, timestamp: '2026-01-02T03:04:05Z' };
    const first = await post(endpoint, JSON.stringify(bare), { authorization: 'Bearer tok' });
    const retry = await post(endpoint, JSON.stringify(bare), { authorization: 'Bearer tok' });
    expect([first.status, JSON.parse(first.body)]).toEqual([200, { accepted: 1, duplicates: 0, rejected: [] }]);
    expect(JSON.parse(retry.body)).toEqual({ accepted: 0, duplicates: 1, rejected: [] });
    // Batch with a bad item: 200, the bad one rejected by index.
    const mixed = await post(endpoint, JSON.stringify({ events: [{ ...bare, task_id: 'T5' }, { ...bare, source: 'nope' }] }), { authorization: 'Bearer tok' });
    expect(JSON.parse(mixed.body)).toMatchObject({ accepted: 1, rejected: [{ index: 1, reason: expect.stringMatching(/^source: must be one of/) }] });
    // Input errors are 4xx with a reason; no token is 401.
    expect((await post(endpoint, '{nope', { authorization: 'Bearer tok' })).status).toBe(400);
    expect((await post(endpoint, JSON.stringify({ source: 'ralph' }), { authorization: 'Bearer tok' })).status).toBe(422);
    expect((await post(endpoint, JSON.stringify(bare))).status).toBe(401);
    // doctor verifies the token with GET (stores nothing).
    await runCli(['install', '--events', 'Stop'], { env });
    const doc = await runCli(['doctor'], { env });
    expect(doc.stdout).toMatch(/HTTP 204, token accepted/);

    const sql = new Database(db, { readonly: true });
    try {
      const ids = (sql.prepare('SELECT event_id FROM harness_events').all() as Array<{ event_id: string }>).map((r) => r.event_id);
      expect(ids).toHaveLength(6);
      expect(ids).toContain(deterministicId('bare', canonicalJson(bare)));
      const sessions = sql.prepare("SELECT id, task_id, success, duration_ms, completed_at FROM harness_sessions WHERE label = 'L' ORDER BY task_id").all() as Array<Record<string, unknown>>;
      expect(sessions.map((s) => [s.task_id, s.success])).toEqual([
        ['T1', 1],
        ['T2', 0],
        ['T3', 0],
        ['T4', 1],
        ['T5', 1],
      ]);
      expect(sessions[0]).toMatchObject({ id: 'task:ralph:L:T1', duration_ms: 1500 });
    } finally {
      sql.close();
    }
  });
});

// The API harness example (api-harness/claude_api.py) and its middleware: test/api-harness.test.ts.

it('templates exist', () => {
  for (const f of ['README.md', 'ralph-wiggum.sh', 'crontab.txt', 'settings.user.json', 'settings.project.json', 'router/harness_router.py', 'router/schema.sql', 'api-harness/claude_api.py', 'api-harness/claude_metrics_middleware.py']) expect(existsSync(join(T, f))).toBe(true);
});
