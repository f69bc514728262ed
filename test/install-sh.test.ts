/**
 * install.sh end to end, in a temp HOME, from a clean clone of the committed
 * state (git clone of this repo's HEAD). node_modules is symlinked from this
 * checkout instead of `npm ci` (which compiles better-sqlite3 for minutes);
 * install.sh sees complete dependencies and skips that step, as on a re-run.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_EVENTS, findOurHooks } from '../src/install/settings-edit';
import { deadPort, ROOT, runProcess, waitFor } from './helpers/cli';

let base: string;
let repo: string;
let home: string;
let env: Record<string, string>;
let port: number;
const pidFile = () => join(home, '.local', 'state', 'claude-metrics', 'serve.pid');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function getStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'cm-installsh-'));
  repo = join(base, 'clone');
  home = join(base, 'home');
  mkdirSync(home);
  execFileSync('git', ['clone', '-q', ROOT, repo]);
  symlinkSync(join(ROOT, 'node_modules'), join(repo, 'node_modules'));
  // install.sh runs `npm ci` when `npm ls` finds node_modules incomplete, and through this symlink
  // that would empty the checkout's own node_modules: refuse to go on instead.
  try {
    execFileSync('npm', ['ls', '--depth=0'], { cwd: repo, stdio: 'ignore' });
  } catch {
    rmSync(join(repo, 'node_modules'));
    throw new Error('node_modules does not match the committed package.json/lock: run `npm ci` first (install.sh would reinstall it through the symlink)');
  }
  port = await deadPort();
  // A PATH with node and npm, nothing from the developer's ~/.local/bin.
  env = { HOME: home, PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, TZ: 'UTC' };
});

afterAll(() => {
  try {
    const pid = Number(readFileSync(pidFile(), 'utf8'));
    if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
  } catch {
    /* never started */
  }
  rmSync(base, { recursive: true, force: true });
});

describe('install.sh from a clean clone', () => {
  it('installs the launcher, the hooks and the collector, and says how to undo it', async () => {
    const r = await runProcess('bash', [join(repo, 'install.sh'), '--with-collector', '--port', String(port)], { env, cwd: home });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const launcher = join(home, '.local', 'bin', 'claude-metrics');
    expect(r.stdout).toContain(`wrote ${launcher}`);
    expect(r.stdout).toMatch(/Undo it: +claude-metrics uninstall; rm .*\.local\/bin\/claude-metrics; kill/);
    expect(r.stdout).toMatch(/\.local\/bin is not on your PATH/);
    // The launcher runs the clone's CLI.
    expect(execFileSync(launcher, ['--version'], { env, encoding: 'utf8' }).trim()).toMatch(/^\d+\.\d+\.\d+$/);
    // Hooks point at the clone, absolute.
    const settings = readFileSync(join(home, '.claude', 'settings.json'), 'utf8');
    const hooks = findOurHooks(settings, 'settings.json').commands;
    expect(hooks).toHaveLength(DEFAULT_EVENTS.length);
    expect(hooks[0]!.command).toBe(`/bin/sh ${join(repo, 'bin', 'claude-metrics-hook')} ${process.execPath} ${join(repo, 'dist', 'cli.cjs')}`.replace(/\/\//g, '/'));
    // The collector is up.
    const pid = Number(readFileSync(pidFile(), 'utf8'));
    expect(alive(pid)).toBe(true);
    expect(await waitFor(async () => (await getStatus(`http://127.0.0.1:${port}/healthz`)) === 200, { timeoutMs: 15_000 })).toBe(true);
  });

  it('re-running changes nothing and starts no second collector', async () => {
    const settingsBefore = readFileSync(join(home, '.claude', 'settings.json'), 'utf8');
    const pidBefore = readFileSync(pidFile(), 'utf8');
    const r = await runProcess('bash', [join(repo, 'install.sh'), '--with-collector', '--port', String(port)], { env, cwd: home });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/bin\/claude-metrics is up to date/);
    expect(r.stdout).toMatch(/already installed in .*settings\.json .*; nothing changed/);
    expect(r.stdout).toMatch(/collector already running/);
    expect(readFileSync(join(home, '.claude', 'settings.json'), 'utf8')).toBe(settingsBefore);
    expect(readFileSync(pidFile(), 'utf8')).toBe(pidBefore);
    expect(readdirSync(join(home, '.claude')).filter((f) => f.includes('.bak-'))).toEqual([]);
  });

  it('the undo line undoes it', async () => {
    const launcher = join(home, '.local', 'bin', 'claude-metrics');
    const un = spawnSync(launcher, ['uninstall'], { env, encoding: 'utf8' });
    expect(un.status).toBe(0);
    // install created the settings file, so uninstall removes it.
    expect(existsSync(join(home, '.claude', 'settings.json'))).toBe(false);
    const pid = Number(readFileSync(pidFile(), 'utf8'));
    process.kill(pid, 'SIGTERM');
    expect(await waitFor(() => !alive(pid), { timeoutMs: 10_000 })).toBe(true);
  });

  it('--no-hooks --systemd installs the launcher only and prints a user unit for the collector', async () => {
    const r = await runProcess('bash', [join(repo, 'install.sh'), '--no-hooks', '--systemd', '--port', '8099'], { env, cwd: home });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`ExecStart=${join(home, '.local', 'bin', 'claude-metrics')} serve --port 8099`);
    expect(r.stdout).toMatch(/systemctl --user enable --now claude-metrics/);
    expect(existsSync(join(home, '.claude', 'settings.json'))).toBe(false);
  });

  it('rejects a bad scope and an old node clearly', async () => {
    const bad = await runProcess('bash', [join(repo, 'install.sh'), '--scope', 'global'], { env, cwd: home });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe("install.sh: --scope must be user, project or local, got 'global'\n");
    // A fake node 18 first on PATH.
    const fakeBin = join(base, 'oldnode');
    mkdirSync(fakeBin);
    execFileSync('sh', ['-c', `printf '#!/bin/sh\\ncase "$1" in -p) echo 18;; *) echo v18.0.0;; esac\\n' > ${fakeBin}/node && chmod +x ${fakeBin}/node`]);
    const old = await runProcess('bash', [join(repo, 'install.sh')], { env: { ...env, PATH: `${fakeBin}:${env.PATH}` }, cwd: home });
    expect(old.code).toBe(1);
    expect(old.stderr).toMatch(/Node\.js 20 or newer is required; .* is v18\.0\.0/);
  });
});
