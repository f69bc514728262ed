/**
 * The single binary (`npm run package`, Node SEA): built once into a temp dir,
 * then run from an empty directory with no node_modules around: emit (live and
 * dead collector), flush, help, install, the detached flush at Stop, and serve
 * (a clear error without better-sqlite3; works with a node_modules beside it).
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findOurHooks } from '../src/install/settings-edit';
import { VERSION } from '../src/version';
import { deadPort, ROOT, runProcess, startCaptureServer, tempHome, waitFor, type TempHome } from './helpers/cli';

let dir: string;
let exe: string;
let t: TempHome;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cm-binary-'));
  exe = join(dir, 'bin', 'claude-metrics');
  mkdirSync(join(dir, 'bin'));
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'package.mjs')], { env: { ...process.env, SEA_OUT: exe }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm run package failed: ${r.stderr}`);
  t = tempHome('cm-binary-home-');
});

afterAll(() => {
  t?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const HOOK = (event: string) => JSON.stringify({ session_id: 'bin-s1', hook_event_name: event, tool_name: 'Bash', tool_use_id: 'toolu_1', tool_input: { command: 'ls' }, tool_response: { stdout: '' }, cwd: '/tmp' });
const run = (args: string[], opts: { env?: Record<string, string>; input?: string; cwd?: string } = {}) => runProcess(exe, args, { env: opts.env ?? t.env, input: opts.input, cwd: opts.cwd ?? join(dir, 'bin') });

describe('single binary', () => {
  it('runs from an empty directory: --version, flush --help, serve --help', async () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect((await run(['--version'], { cwd: empty })).stdout.trim()).toBe(VERSION);
    for (const cmd of ['flush', 'serve']) {
      const r = await run([cmd, '--help'], { cwd: empty });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: claude-metrics ${cmd} \\[options\\]`));
    }
  });

  it('emit delivers a hook event, prints nothing, exits 0; with the collector down it spools and flush delivers', async () => {
    const cap = await startCaptureServer();
    try {
      const live = await run(['emit'], { env: { ...t.env, CLAUDE_METRICS_ENDPOINT: cap.endpoint }, input: HOOK('PostToolUse') });
      expect([live.code, live.stdout]).toEqual([0, '']);
      expect(cap.events()).toHaveLength(1);
      expect(cap.events()[0]).toMatchObject({ event: 'PostToolUse', session_id: 'bin-s1', tool_name: 'Bash' });

      const down = { ...t.env, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${await deadPort()}/metrics/harness` };
      const r = await run(['emit', '--event', 'ralph_task_started', '--source', 'ralph', '--task-id', 'T9'], { env: down });
      expect([r.code, r.stdout]).toEqual([0, '']);
      expect(readdirSync(join(t.stateDir, 'spool', 'new'))).toHaveLength(1);
      const f = await run(['flush', '--endpoint', cap.endpoint]);
      expect(f.code).toBe(0);
      expect(cap.events().map((e) => e.task_id)).toContain('T9');
    } finally {
      await cap.close();
    }
  });

  it('at Stop with a waiting spool, the detached flush is the binary itself', async () => {
    const h = tempHome('cm-binary-stop-');
    const cap = await startCaptureServer();
    try {
      const down = { ...h.env, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${await deadPort()}/metrics/harness` };
      await run(['emit', '--event', 'ralph_task_started', '--source', 'ralph', '--task-id', 'spooled'], { env: down });
      // The collector is back; the breaker file is for the dead URL, so this Stop goes straight out and starts a flush.
      const stop = await run(['emit'], { env: { ...h.env, CLAUDE_METRICS_ENDPOINT: cap.endpoint }, input: HOOK('Stop') });
      expect(stop.code).toBe(0);
      const spooled = await waitFor(() => cap.events().find((e) => e.task_id === 'spooled'), { timeoutMs: 20_000 });
      expect(spooled).toMatchObject({ event: 'ralph_task_started' });
    } finally {
      await cap.close();
      await waitFor(() => readdirSync(join(h.stateDir, 'spool', 'new')).length === 0, { timeoutMs: 10_000 }).catch(() => undefined);
      h.cleanup();
    }
  });

  it('install writes the fast hook with the binary as its drainer, and the hook delivers; --hook emit writes the binary itself', async () => {
    const settings = join(t.home, 'bin-settings.json');
    const r = await run(['install', '--settings', settings]);
    expect(r.code).toBe(0);
    const script = join(t.home, '.local', 'share', 'claude-metrics', 'claude-metrics-hook');
    const cmds = findOurHooks(readFileSync(settings, 'utf8'), settings).commands;
    expect(new Set(cmds.map((c) => c.command))).toEqual(new Set([`/bin/sh ${script} ${exe}`]));
    expect(readFileSync(script, 'utf8')).toBe(readFileSync(join(ROOT, 'bin', 'claude-metrics-hook'), 'utf8'));
    expect(statSync(script).mode & 0o777).toBe(0o700);
    // The command as Claude Code runs it: sh -c, the hook JSON on stdin.
    const capture = await startCaptureServer();
    try {
      const hook = spawnSync('/bin/sh', ['-c', cmds[0]!.command], { input: HOOK('PostToolUse'), env: { ...t.env, CLAUDE_METRICS_ENDPOINT: capture.endpoint }, encoding: 'utf8' });
      expect([hook.status, hook.stdout]).toEqual([0, '']);
      await waitFor(() => capture.events().some((e) => e.event === 'PostToolUse' && e.session_id === 'bin-s1'), { timeoutMs: 15_000 });
      await waitFor(() => !existsSync(join(t.stateDir, 'inbox', 'drainer.pid')), { timeoutMs: 15_000 });
    } finally {
      await capture.close();
    }
    expect((await run(['install', '--hook', 'emit', '--settings', settings])).code).toBe(0);
    expect(new Set(findOurHooks(readFileSync(settings, 'utf8'), settings).commands.map((c) => c.command))).toEqual(new Set([`${exe} emit`]));
  });

  it('install --scope managed puts the hook script where every user can run it (<prefix>/share/claude-metrics, 0755), and warns when they cannot reach it', async () => {
    const managed = join(t.home, 'etc', 'claude-code', 'managed-settings.json');
    const r = await run(['install', '--scope', 'managed'], { env: { ...t.env, CLAUDE_METRICS_MANAGED_SETTINGS: managed } });
    expect(r.code, r.stderr).toBe(0);
    const script = join(dir, 'share', 'claude-metrics', 'claude-metrics-hook');
    expect(statSync(script).mode & 0o777).toBe(0o755);
    expect(readFileSync(managed, 'utf8')).toContain(`"command": "/bin/sh ${script} ${exe}"`);
    // mkdtemp made the prefix 0700: other users could not run it, and install says so.
    expect(r.stderr).toMatch(/the hook command uses .*claude-metrics.*which other users cannot read/);
  });

  it('serve without better-sqlite3 beside it says so; with a node_modules beside it, it serves', async () => {
    const r = await run(['serve', '--port', '0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^claude-metrics: serve needs the native better-sqlite3 module.*npm install/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);

    const withModules = join(dir, 'with-modules');
    mkdirSync(withModules);
    copyFileSync(exe, join(withModules, 'claude-metrics'));
    spawnSync('chmod', ['755', join(withModules, 'claude-metrics')]);
    symlinkSync(join(ROOT, 'node_modules'), join(withModules, 'node_modules'));
    const child = spawn(join(withModules, 'claude-metrics'), ['serve', '--port', '0'], { env: t.env, stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      let err = '';
      child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
      const line = await waitFor(() => /listening on http:\/\/127\.0\.0\.1:\d+/.exec(err)?.[0], { timeoutMs: 20_000 });
      expect(line).toMatch(/listening on/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
