/**
 * The fast hook (bin/claude-metrics-hook) and its drainer, as Claude Code runs
 * them: a real /bin/sh per hook, real files, a real collector or capture server
 * on 127.0.0.1, drainers killed with SIGKILL. Every event arrives, once.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseRawHook, RAW_END, RAW_HEADER } from '../src/inbox/raw';
import { processAlive } from '../src/proc';
import { deadPort, DIST_CLI, getJson, ROOT, runCli, startCaptureServer, startServe, tempHome, waitFor, type CaptureServer, type TempHome } from './helpers/cli';

const HOOK = join(ROOT, 'bin', 'claude-metrics-hook');

describe('the inbox file format', () => {
  const file = (env: string, input: string, end = RAW_END) => Buffer.from(`${RAW_HEADER}${env}\n${input}${end}`);
  it('reads the environment and the input; unfinished and foreign files are told apart', () => {
    expect(parseRawHook(file('A=1\0B=x=y\0EMPTY=\0', '{"hook_event_name":"Stop"}'))).toEqual({ complete: true, env: { A: '1', B: 'x=y', EMPTY: '' }, input: '{"hook_event_name":"Stop"}' });
    expect(parseRawHook(file('A=1\0', '{"hook_event_name":"St', ''))).toEqual({ complete: false, reason: 'unfinished' });
    expect(parseRawHook(Buffer.from('{"hook_event_name":"Stop"}'))).toEqual({ complete: false, reason: 'not a hook file' });
    // The input is kept byte for byte, newlines and NULs included.
    expect(parseRawHook(file('A=1\0', 'line1\nline2\0\n'))).toMatchObject({ complete: true, input: 'line1\nline2\0\n' });
  });
});

describe('the fast hook through /bin/sh', () => {
  let home: TempHome;
  let capture: CaptureServer;
  beforeEach(async () => {
    home = tempHome('cm-fast-');
    capture = await startCaptureServer();
  });
  afterEach(async () => {
    await waitFor(() => !existsSync(join(home.stateDir, 'inbox', 'drainer.pid')), { timeoutMs: 20_000 }).catch(() => undefined);
    await capture.close();
    home.cleanup();
  });

  const hook = (input: string | Buffer, env: Record<string, string> = {}) =>
    spawnSync('/bin/sh', [HOOK, process.execPath, DIST_CLI], { input, env: { ...home.env, CLAUDE_METRICS_ENDPOINT: capture.endpoint, ...env }, encoding: 'utf8', cwd: home.home });
  const payload = (name: string, extra: Record<string, unknown> = {}) => JSON.stringify({ session_id: 'sess-1', transcript_path: join(home.home, 'none.jsonl'), cwd: join(home.home, 'work', 'demo-app'), hook_event_name: name, ...extra });

  it('spools the input, exits 0 with nothing on stdout, and a drainer delivers the same event emit would send', async () => {
    mkdirSync(join(home.home, 'work', 'demo-app'), { recursive: true });
    const before = Date.now();
    const r = hook(payload('PostToolUse', { tool_name: 'Bash', tool_use_id: 'toolu_1', tool_input: { command: 'ls' }, tool_response: { stdout: 'secret-ish output' } }), {
      CLAUDE_CODE_ENTRYPOINT: 'sdk-cli',
      CLAUDE_METRICS_RUN_ID: 'run-9',
      CLAUDE_METRICS_TASK_ID: 'T-9',
      CLAUDE_METRICS_LABEL: 'nightly',
      AI_AGENT: 'claude-code_2-1-331_harness',
    });
    expect([r.status, r.stdout, r.stderr]).toEqual([0, '', '']);
    const [e] = (await waitFor(() => (capture.events().length > 0 ? capture.events() : undefined)))!;
    expect(e).toMatchObject({ event: 'PostToolUse', source: 'ralph', session_id: 'sess-1', run_id: 'run-9', task_id: 'T-9', label: 'nightly', project: 'demo-app', tool_name: 'Bash', tool_use_id: 'toolu_1', success: true });
    expect((e!.context as Record<string, unknown>).claude_version).toBe('2.1.331');
    expect((e!.context as Record<string, unknown>).entrypoint).toBe('sdk-cli');
    expect(Date.parse(e!.timestamp as string)).toBeGreaterThanOrEqual(before - 5);
    expect(JSON.stringify(e)).not.toContain('secret-ish output'); // metadata only, as with emit
    // The drainer leaves once the inbox is quiet, and the inbox is empty.
    await waitFor(() => !existsSync(join(home.stateDir, 'inbox', 'drainer.pid')), { timeoutMs: 10_000 });
    expect(readdirSync(join(home.stateDir, 'inbox')).filter((f) => f.endsWith('.hook'))).toEqual([]);
  });

  it('each event gets its own hook’s run and label, not those of the hook that started the drainer', async () => {
    expect(hook(payload('SessionStart', { source: 'startup' }), { CLAUDE_METRICS_RUN_ID: 'run-A', CLAUDE_METRICS_LABEL: 'loop-a', CLAUDE_METRICS_DRAIN_IDLE_MS: '5000' }).status).toBe(0);
    expect(hook(payload('UserPromptSubmit', { prompt: 'hi' }), {}).status).toBe(0);
    const events = (await waitFor(() => (capture.events().length === 2 ? capture.events() : undefined), { timeoutMs: 15_000 }))!;
    expect(events.find((e) => e.event === 'SessionStart')).toMatchObject({ run_id: 'run-A', label: 'loop-a', source: 'ralph' });
    const plain = events.find((e) => e.event === 'UserPromptSubmit')!;
    expect([plain.run_id, plain.label]).toEqual([undefined, undefined]);
  });

  it('bad input never fails the hook; the good event after it still arrives, once', async () => {
    const bad: Array<string | Buffer> = ['', 'not json', '{"truncated":', Buffer.from([0, 1, 2, 255, 254]), '[1,2,3]', `{"hook_event_name":"PostToolUse","tool_response":"${'x'.repeat(10 * 1024 * 1024)}"}`];
    for (const input of bad) expect([hook(input).status, hook(input).stdout]).toEqual([0, '']);
    expect(hook(payload('Stop', { stop_hook_active: false })).status).toBe(0);
    await waitFor(() => capture.events().some((e) => e.event === 'Stop'), { timeoutMs: 15_000 });
    await waitFor(() => !existsSync(join(home.stateDir, 'inbox', 'drainer.pid')), { timeoutMs: 15_000 });
    const events = capture.events();
    expect(events.filter((e) => e.event === 'Stop')).toHaveLength(1);
    // The 10 MB one is a hook event too (its content is not sent): two copies of it.
    expect(events.filter((e) => e.event === 'PostToolUse')).toHaveLength(2);
    expect(new Set(events.map((e) => e.event_id)).size).toBe(events.length);
  });

  it('20 hooks at once, collector down: all spooled; flush later delivers each exactly once', async () => {
    const port = await deadPort();
    const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${port}/metrics/harness` };
    await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) =>
          new Promise<void>((resolve) => {
            const c = spawn('/bin/sh', [HOOK, process.execPath, DIST_CLI], { env, stdio: ['pipe', 'ignore', 'ignore'] });
            c.on('exit', (code) => {
              expect(code).toBe(0);
              resolve();
            });
            c.stdin.end(payload('PostToolUse', { tool_name: 'Bash', tool_use_id: `toolu_${i}` }));
          }),
      ),
    );
    await waitFor(() => !existsSync(join(home.stateDir, 'inbox', 'drainer.pid')) && readdirSync(join(home.stateDir, 'inbox')).every((f) => !f.endsWith('.hook')), { timeoutMs: 20_000 });
    const serve = await startServe(home.env, ['--db', join(home.home, 'c.db'), '--port', String(port)]);
    try {
      expect((await runCli(['flush'], { env })).code).toBe(0);
      const s = (await getJson(`${serve.url}/api/sessions`)).body.sessions[0];
      expect(s.tool_calls_count).toBe(20);
      expect((await getJson(`${serve.url}/api/summary`)).body.ingest.duplicates).toBe(0);
    } finally {
      await serve.stop();
    }
  });

  it('a drainer killed with SIGKILL mid-delivery loses nothing and counts nothing twice', async () => {
    // A collector that takes 300 ms per request, so the kill lands while a batch is in flight.
    const serve = await startServe(home.env, ['--db', join(home.home, 'c.db')]);
    const slow = await startCaptureServer();
    slow.respond((req, res) => {
      setTimeout(() => {
        fetch(serve.endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: req.body })
          .then(async (r) => {
            res.writeHead(r.status, { 'content-type': 'application/json' });
            res.end(await r.text());
          })
          .catch(() => res.destroy());
      }, 300);
    });
    try {
      const env = { CLAUDE_METRICS_ENDPOINT: slow.endpoint, CLAUDE_METRICS_BATCH_SIZE: '10' };
      for (let i = 0; i < 60; i++) expect(hook(payload('PostToolUse', { tool_name: 'Bash', tool_use_id: `toolu_${i}` }), env).status).toBe(0);
      const pidFile = join(home.stateDir, 'inbox', 'drainer.pid');
      const pid = await waitFor(() => (existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) || undefined : undefined));
      await waitFor(() => slow.requests.length > 0, { timeoutMs: 10_000 }).catch(() => { throw new Error('no request reached the slow collector'); });
      process.kill(pid!, 'SIGKILL');
      // kill() returns before the process is gone: a hook run at once may still see it alive (and
      // rightly start none). Once it is dead (or a zombie), the next hook must start a new drainer.
      await waitFor(() => !processAlive(pid!), { timeoutMs: 10_000 });
      // The next hook finds the dead pid and starts a new drainer, which finishes the job.
      expect(hook(payload('PostToolUse', { tool_name: 'Bash', tool_use_id: 'toolu_last' }), { CLAUDE_METRICS_ENDPOINT: serve.endpoint }).status).toBe(0);
      await waitFor(() => !existsSync(pidFile) || Number(readFileSync(pidFile, 'utf8')) !== pid, { timeoutMs: 10_000 }).catch(() => { throw new Error('no new drainer'); });
      await waitFor(() => !existsSync(pidFile), { timeoutMs: 30_000 });
      expect((await runCli(['flush'], { env: { ...home.env, CLAUDE_METRICS_ENDPOINT: serve.endpoint } })).code).toBe(0);
      const s = (await getJson(`${serve.url}/api/sessions`)).body.sessions[0];
      expect(s.tool_calls_count).toBe(61);
      expect((await getJson(`${serve.url}/healthz`)).body.events).toBe(61);
    } finally {
      await slow.close();
      await serve.stop();
    }
  });

  it('a file whose writer was killed is removed after a minute, never sent; one being written is left alone', async () => {
    const inbox = join(home.stateDir, 'inbox');
    mkdirSync(inbox, { recursive: true });
    // The shell creates the file before writing its first byte: empty and young, it is left for later.
    const starting = join(inbox, '999998.0.hook');
    writeFileSync(starting, '');
    const torn = join(inbox, '999999.0.hook');
    writeFileSync(torn, `${RAW_HEADER}PWD=/x\0\n{"hook_event_name":"Stop","session_id":"s`);
    const old = new Date(Date.now() - 120_000);
    utimesSync(torn, old, old);
    expect(hook(payload('SessionStart', { source: 'startup' })).status).toBe(0);
    await waitFor(() => capture.events().some((e) => e.event === 'SessionStart'), { timeoutMs: 15_000 });
    await waitFor(() => !existsSync(torn), { timeoutMs: 10_000 });
    expect(capture.events().map((e) => e.event)).toEqual(['SessionStart']);
    expect(existsSync(starting)).toBe(true);
    // …and once its writer finishes it, it is an event like any other.
    writeFileSync(starting, `${RAW_HEADER}PWD=/x\0\n${payload('Notification', { message: 'hi' })}${RAW_END}`);
    expect(hook(payload('SessionEnd', { reason: 'other' })).status).toBe(0);
    await waitFor(() => capture.events().some((e) => e.event === 'Notification'), { timeoutMs: 15_000 });
  });

  it('flush drains hook files when no drainer could run', async () => {
    // A hook whose drainer command fails to start (a wrong path): the file waits in the inbox.
    const r = spawnSync('/bin/sh', [HOOK, '/nonexistent/node'], { input: payload('UserPromptSubmit', { prompt: 'hi' }), env: { ...home.env, CLAUDE_METRICS_ENDPOINT: capture.endpoint }, encoding: 'utf8' });
    expect([r.status, r.stdout]).toEqual([0, '']);
    const waiting = readdirSync(join(home.stateDir, 'inbox')).filter((f) => f.endsWith('.hook'));
    expect(waiting).toHaveLength(1);
    // doctor calls a file nobody drains for over a minute a problem.
    const old = new Date(Date.now() - 120_000);
    utimesSync(join(home.stateDir, 'inbox', waiting[0]!), old, old);
    const doc = await runCli(['doctor'], { env: { ...home.env, CLAUDE_METRICS_ENDPOINT: capture.endpoint } });
    expect(doc.code).not.toBe(0);
    expect(doc.stdout + doc.stderr).toMatch(/1 hook file\(s\) waiting in .*inbox with no drainer running, the oldest for 2 min/);
    expect((await runCli(['flush'], { env: { ...home.env, CLAUDE_METRICS_ENDPOINT: capture.endpoint } })).code).toBe(0);
    expect(capture.events().map((e) => e.event)).toEqual(['UserPromptSubmit']);
    expect(readdirSync(join(home.stateDir, 'inbox')).filter((f) => f.endsWith('.hook'))).toHaveLength(0);
  });
});
