/**
 * install / uninstall through the built CLI as a real process, in a temp HOME:
 * backups, idempotence, exact original bytes back, dry runs, malformed files,
 * scopes, permission errors.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findOurHooks, DEFAULT_EVENTS } from '../src/install/settings-edit';
import { BIN, ROOT, runCli, tempHome, type TempHome } from './helpers/cli';

const FIX = join(__dirname, 'fixtures', 'settings');
let t: TempHome;
let settings: string;

beforeEach(() => {
  t = tempHome('cm-install-');
  settings = join(t.home, '.claude', 'settings.json');
});
afterEach(() => t.cleanup());

const backups = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((f) => f.includes('.bak-')) : []);

describe.each(['empty', 'braces', 'comments', 'tabs', 'crlf-four-spaces', 'no-trailing-newline', 'unrelated-hooks'])('fixture %s', (name) => {
  it('install backs up, is idempotent, and uninstall gives back the original bytes', async () => {
    mkdirSync(join(t.home, '.claude'), { recursive: true });
    copyFileSync(join(FIX, `${name}.json`), settings);
    const original = readFileSync(settings);

    const first = await runCli(['install'], { env: t.env, cwd: t.home });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const installed = readFileSync(settings, 'utf8');
    expect(findOurHooks(installed, settings).commands.map((c) => c.event).sort()).toEqual([...DEFAULT_EVENTS].sort());
    const [backup] = backups(join(t.home, '.claude'));
    expect(backup).toBeDefined();
    expect(readFileSync(join(t.home, '.claude', backup!))).toEqual(original);
    expect(statSync(join(t.home, '.claude', backup!)).mode & 0o777).toBe(0o600);
    expect(first.stdout).toContain(backup!);

    const second = await runCli(['install'], { env: t.env, cwd: t.home });
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/already installed/);
    expect(readFileSync(settings, 'utf8')).toBe(installed);
    expect(backups(join(t.home, '.claude'))).toHaveLength(1);

    const un = await runCli(['uninstall'], { env: t.env, cwd: t.home });
    expect(un.code).toBe(0);
    expect(readFileSync(settings)).toEqual(original);
    const again = await runCli(['uninstall'], { env: t.env, cwd: t.home });
    expect(again.stdout).toMatch(/nothing changed/);
  });
});

describe('install', () => {
  it('creates a missing settings file 0600 in a 0700 dir with absolute commands; uninstall removes it again', async () => {
    const r = await runCli(['install'], { env: t.env, cwd: t.home });
    expect(r.code).toBe(0);
    expect(statSync(settings).mode & 0o777).toBe(0o600);
    expect(statSync(join(t.home, '.claude')).mode & 0o777).toBe(0o700);
    const text = readFileSync(settings, 'utf8');
    const parsed = JSON.parse(text) as { hooks: Record<string, Array<{ matcher?: string; hooks: Array<{ command: string; timeout: number }> }>> };
    expect(Object.keys(parsed.hooks).sort()).toEqual([...DEFAULT_EVENTS].sort());
    expect(parsed.hooks.PostToolUse![0]!.matcher).toBe('*');
    expect(parsed.hooks.SessionStart![0]!.matcher).toBeUndefined();
    const cmd = parsed.hooks.Stop![0]!.hooks[0]!.command;
    expect(cmd).toBe(`/bin/sh ${join(ROOT, 'bin', 'claude-metrics-hook')} ${process.execPath} ${join(ROOT, 'dist', 'cli.cjs')}`);
    expect(cmd).not.toMatch(/npx/);
    expect(parsed.hooks.Stop![0]!.hooks[0]!.timeout).toBe(5);
    // The written command really runs emit: exit 0, nothing on stdout.
    const hook = spawnSync('/bin/sh', ['-c', cmd], { input: '{"hook_event_name":"SessionStart","session_id":"s1","source":"startup"}', env: { ...t.env, CLAUDE_METRICS_ENDPOINT: 'http://127.0.0.1:9/metrics/harness' }, encoding: 'utf8' });
    expect(hook.status).toBe(0);
    expect(hook.stdout).toBe('');

    const un = await runCli(['uninstall'], { env: t.env, cwd: t.home });
    expect(un.code).toBe(0);
    expect(existsSync(settings)).toBe(false);

    // --hook emit: one Node process per hook, which sends the event itself.
    expect((await runCli(['install', '--hook', 'emit'], { env: t.env, cwd: t.home })).code).toBe(0);
    const emitCmd = (JSON.parse(readFileSync(settings, 'utf8')) as { hooks: Record<string, Array<{ hooks: Array<{ command: string }> }>> }).hooks.Stop![0]!.hooks[0]!.command;
    expect(emitCmd).toBe(`${process.execPath} ${BIN} emit`);
    // Switching back replaces our command in place (one entry per event, not two).
    expect((await runCli(['install'], { env: t.env, cwd: t.home })).code).toBe(0);
    const stop = (JSON.parse(readFileSync(settings, 'utf8')) as { hooks: Record<string, Array<{ hooks: Array<{ command: string }> }>> }).hooks.Stop!;
    expect(stop.flatMap((g) => g.hooks.map((h) => h.command))).toEqual([cmd]);
    expect((await runCli(['uninstall'], { env: t.env, cwd: t.home })).code).toBe(0);
  });

  it('uninstall after the user edited the file removes only our entries and keeps the edit', async () => {
    mkdirSync(join(t.home, '.claude'));
    writeFileSync(settings, '{\n  // mine\n  "model": "opus"\n}\n');
    await runCli(['install'], { env: t.env, cwd: t.home });
    const edited = readFileSync(settings, 'utf8').replace('"model": "opus"', '"model": "sonnet"');
    writeFileSync(settings, edited);
    const un = await runCli(['uninstall'], { env: t.env, cwd: t.home });
    expect(un.code).toBe(0);
    expect(readFileSync(settings, 'utf8')).toBe('{\n  // mine\n  "model": "sonnet"\n}\n');
  });

  it('--dry-run prints a unified diff and changes nothing', async () => {
    mkdirSync(join(t.home, '.claude'));
    writeFileSync(settings, '{\n  "model": "opus"\n}\n');
    const r = await runCli(['install', '--dry-run', '--events', 'Stop'], { env: t.env, cwd: t.home });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^--- .*settings\.json\n\+\+\+ .*settings\.json\n@@ -1,3 \+1,16 @@\n \{\n- {2}"model": "opus"\n\+ {2}"model": "opus",\n\+ {2}"hooks": \{\n/);
    expect(readFileSync(settings, 'utf8')).toBe('{\n  "model": "opus"\n}\n');
    expect(backups(join(t.home, '.claude'))).toHaveLength(0);
  });

  it('a malformed file is reported with line and column and left untouched', async () => {
    mkdirSync(join(t.home, '.claude'));
    copyFileSync(join(FIX, 'malformed.json'), settings);
    const before = readFileSync(settings);
    for (const cmd of ['install', 'uninstall']) {
      const r = await runCli([cmd], { env: t.env, cwd: t.home });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/settings\.json:5:3: not valid JSON .*left untouched\n$/);
      expect(r.stderr.split('\n')).toHaveLength(2);
      expect(r.stdout).toBe('');
      expect(readFileSync(settings)).toEqual(before);
      expect(backups(join(t.home, '.claude'))).toHaveLength(0);
    }
  });

  it('--scope project and local write .claude/ in the current directory; --settings a given file', async () => {
    const proj = join(t.home, 'proj');
    mkdirSync(proj);
    expect((await runCli(['install', '--scope', 'project', '--events', 'Stop'], { env: t.env, cwd: proj })).code).toBe(0);
    expect(Object.keys(JSON.parse(readFileSync(join(proj, '.claude', 'settings.json'), 'utf8')).hooks)).toEqual(['Stop']);
    expect((await runCli(['install', '--scope', 'local'], { env: t.env, cwd: proj })).code).toBe(0);
    expect(existsSync(join(proj, '.claude', 'settings.local.json'))).toBe(true);
    expect((await runCli(['install', '--settings', 'x/s.json', '--async'], { env: t.env, cwd: proj })).stderr).toMatch(/warning: async hooks are killed when `claude -p` exits/);
    expect(readFileSync(join(proj, 'x', 's.json'), 'utf8')).toMatch(/"async": true/);
    expect(existsSync(settings)).toBe(false);
    // A second scope with our hooks would count every event twice: install says so.
    const user = await runCli(['install', '--events', 'Stop'], { env: t.env, cwd: proj });
    expect(user.code).toBe(0);
    expect(user.stderr).toMatch(/^claude-metrics: warning: our hooks are also in project \(.*\), local \(.*\): .*counted twice/);
  });

  it('rejects unknown events and bad timeouts with exit 2', async () => {
    const r = await runCli(['install', '--events', 'Stop,PostToolUsed'], { env: t.env, cwd: t.home });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown hook event PostToolUsed/);
    expect((await runCli(['install', '--timeout', '0'], { env: t.env, cwd: t.home })).code).toBe(2);
    expect(existsSync(settings)).toBe(false);
  });

  it('a settings file we may not write is a clear error naming the file', async () => {
    // Root ignores file modes: run the CLI as nobody against a root-owned file.
    const dir = join(t.home, 'ro');
    mkdirSync(dir);
    const file = join(dir, 'settings.json');
    writeFileSync(file, '{}\n');
    chmodSync(t.home, 0o755);
    chmodSync(dir, 0o755);
    chmodSync(file, 0o644);
    const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const r = spawnSync(process.execPath, [BIN, 'install', '--settings', file], { env: { ...t.env, XDG_STATE_HOME: join(dir, 'state-unwritable') }, encoding: 'utf8', ...asNobody });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`claude-metrics: cannot back up ${file}: permission denied (EACCES)\n`);
    expect(readFileSync(file, 'utf8')).toBe('{}\n');
  });
});

describe('concurrent installs', () => {
  let tc: TempHome;
  beforeEach(() => {
    tc = tempHome('cm-install-conc-');
  });
  afterEach(() => tc.cleanup());

  it('four installs at once leave one valid file with one hook per event (atomic rename, same result)', async () => {
    mkdirSync(join(tc.home, '.claude'));
    const file = join(tc.home, '.claude', 'settings.json');
    writeFileSync(file, '{\n  // keep me\n  "model": "opus"\n}\n');
    const results = await Promise.all([0, 1, 2, 3].map(() => runCli(['install'], { env: tc.env, cwd: tc.home })));
    expect(results.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('// keep me');
    const ours = findOurHooks(text, file).commands;
    expect(ours.map((c) => c.event).sort()).toEqual([...DEFAULT_EVENTS].sort());
    expect(readdirSync(join(tc.home, '.claude')).filter((f) => f.includes('.tmp'))).toEqual([]);
  });
});

describe('symlinked settings', () => {
  let th: TempHome;
  beforeEach(() => {
    th = tempHome('cm-install-link-');
  });
  afterEach(() => th.cleanup());

  it('edits the target and keeps the link a link (dotfile repos)', async () => {
    const { lstatSync, symlinkSync } = await import('node:fs');
    const dotfiles = join(th.home, 'dotfiles');
    mkdirSync(dotfiles);
    writeFileSync(join(dotfiles, 'claude-settings.json'), '{\n  "model": "opus"\n}\n');
    mkdirSync(join(th.home, '.claude'));
    const link = join(th.home, '.claude', 'settings.json');
    symlinkSync(join(dotfiles, 'claude-settings.json'), link);
    expect((await runCli(['install', '--events', 'Stop'], { env: th.env, cwd: th.home })).code).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(findOurHooks(readFileSync(join(dotfiles, 'claude-settings.json'), 'utf8'), 'x').commands).toHaveLength(1);
    expect((await runCli(['uninstall'], { env: th.env, cwd: th.home })).code).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(link, 'utf8')).toBe('{\n  "model": "opus"\n}\n');
  });
});
