/**
 * `install --scope managed`: Claude Code's policy settings file, for every user.
 * Through the built CLI in a temp HOME, with the file's path moved by
 * CLAUDE_METRICS_MANAGED_SETTINGS (never the real /etc here), then the real
 * Claude Code reading hooks that exist only in /etc/claude-code (root only:
 * the pinned client reads no other path; the file is backed up and restored).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeAnthropic } from './fake-anthropic/server';
import { parse as parseJsonc } from '../src/install/jsonc';
import { DEFAULT_EVENTS, findOurHooks } from '../src/install/settings-edit';
import { BIN, deadPort, getJson, ROOT, runCli, runProcess, startServe, tempHome, waitFor, type TempHome } from './helpers/cli';

const CLAUDE = join(ROOT, 'node_modules', '.bin', 'claude');
let t: TempHome;
let managed: string;
let env: Record<string, string>;

beforeEach(() => {
  t = tempHome('cm-managed-');
  managed = join(t.home, 'etc', 'claude-code', 'managed-settings.json');
  env = { ...t.env, CLAUDE_METRICS_MANAGED_SETTINGS: managed };
});
afterEach(() => t.cleanup());

// What an administrator's policy file looks like before we touch it: comments, other keys, their own hook.
const ADMIN_POLICY = `// Company policy, managed by config management
{
    "permissions": { "deny": ["WebFetch"] },
    "env": { "CLAUDE_METRICS_ENDPOINT": "https://metrics.example.com/metrics/harness" },
    "hooks": {
        "PreToolUse": [ { "matcher": "Bash", "hooks": [ { "type": "command", "command": "/usr/local/bin/audit-bash" } ] } ]
    },
    "cleanupPeriodDays": 90
}
`;

describe('install --scope managed', () => {
  it('creates the policy file 0644 in a 0755 dir (every user reads it) with our hooks; uninstall removes it again', async () => {
    const r = await runCli(['install', '--scope', 'managed'], { env, cwd: t.home });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`created ${managed}`);
    expect(r.stdout).toContain('undo: claude-metrics uninstall --scope managed');
    expect(statSync(managed).mode & 0o777).toBe(0o644);
    expect(statSync(dirname(managed)).mode & 0o777).toBe(0o755);
    expect(findOurHooks(readFileSync(managed, 'utf8'), managed).commands.map((c) => c.event).sort()).toEqual([...DEFAULT_EVENTS].sort());
    // Nothing in the user's own settings.
    expect(existsSync(join(t.home, '.claude', 'settings.json'))).toBe(false);

    const un = await runCli(['uninstall', '--scope', 'managed'], { env, cwd: t.home });
    expect(un.code, un.stderr).toBe(0);
    expect(existsSync(managed)).toBe(false);
  });

  it("keeps the administrator's keys, comments and hooks byte for byte; idempotent; uninstall gives the original back", async () => {
    mkdirSync(dirname(managed), { recursive: true });
    writeFileSync(managed, ADMIN_POLICY, { mode: 0o644 });
    const first = await runCli(['install', '--scope', 'managed'], { env, cwd: t.home });
    expect(first.code, first.stderr).toBe(0);
    const installed = readFileSync(managed, 'utf8');
    expect(installed.startsWith('// Company policy, managed by config management\n{\n    "permissions": { "deny": ["WebFetch"] },\n    "env": { "CLAUDE_METRICS_ENDPOINT": "https://metrics.example.com/metrics/harness" },')).toBe(true);
    expect(installed).toContain('"command": "/usr/local/bin/audit-bash"');
    expect(installed).toContain('"cleanupPeriodDays": 90');
    expect(statSync(managed).mode & 0o777).toBe(0o644);

    const second = await runCli(['install', '--scope', 'managed'], { env, cwd: t.home });
    expect(second.stdout).toMatch(/already installed/);
    expect(readFileSync(managed, 'utf8')).toBe(installed);

    const un = await runCli(['uninstall', '--scope', 'managed'], { env, cwd: t.home });
    expect(un.code, un.stderr).toBe(0);
    expect(readFileSync(managed, 'utf8')).toBe(ADMIN_POLICY);
  });

  it('uninstall after the administrator edited the file removes exactly our entries', async () => {
    mkdirSync(dirname(managed), { recursive: true });
    writeFileSync(managed, ADMIN_POLICY, { mode: 0o644 });
    expect((await runCli(['install', '--scope', 'managed'], { env, cwd: t.home })).code).toBe(0);
    // Config management adds a key after our install.
    writeFileSync(managed, readFileSync(managed, 'utf8').replace('"cleanupPeriodDays": 90', '"cleanupPeriodDays": 120,\n    "allowManagedHooksOnly": true'));
    const un = await runCli(['uninstall', '--scope', 'managed'], { env, cwd: t.home });
    expect(un.code, un.stderr).toBe(0);
    const after = readFileSync(managed, 'utf8');
    const edited = ADMIN_POLICY.replace('"cleanupPeriodDays": 90', '"cleanupPeriodDays": 120,\n    "allowManagedHooksOnly": true');
    // The same settings (the array our install touched may be laid out anew), the comment and the untouched lines as they were.
    expect(parseJsonc(after)).toEqual(parseJsonc(edited));
    expect(findOurHooks(after, managed).commands).toEqual([]);
    for (const line of edited.split('\n').filter((l) => !l.includes('PreToolUse'))) expect(after).toContain(line);
  });

  it('warns when the file is not readable by other users, and when a user scope already has our hooks', async () => {
    mkdirSync(dirname(managed), { recursive: true });
    writeFileSync(managed, '{}\n', { mode: 0o600 });
    chmodSync(managed, 0o600);
    expect((await runCli(['install'], { env, cwd: t.home })).code).toBe(0);
    const r = await runCli(['install', '--scope', 'managed'], { env, cwd: t.home });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`${managed} is 0600: Claude Code running as other users cannot read it`);
    expect(r.stderr).toMatch(/our hooks are also in user \(.*settings\.json\).*counted twice/);
    // And the other way round: a user install beside a managed one.
    const again = await runCli(['install', '--scope', 'project'], { env, cwd: t.home });
    expect(again.stderr).toMatch(/also in .*managed \(/);
  });

  it.skipIf(process.getuid?.() !== 0)('as a user who cannot write /etc: a clear error naming root, nothing changed', async () => {
    // The temp dir must be reachable by nobody to get as far as the permission check.
    const dir = mkdtempShared();
    try {
      const file = join(dir, 'claude-code', 'managed-settings.json');
      mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
      writeFileSync(file, ADMIN_POLICY, { mode: 0o644 });
      const home = join(dir, 'home');
      mkdirSync(home, { mode: 0o777 });
      chmodSync(home, 0o777);
      const r = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, BIN, 'install', '--scope', 'managed'], {
        env: { PATH: process.env.PATH, HOME: home, CLAUDE_METRICS_MANAGED_SETTINGS: file },
        encoding: 'utf8',
      });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/permission denied.*managed settings are root's to change: run this with sudo/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(readFileSync(file, 'utf8')).toBe(ADMIN_POLICY);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function mkdtempShared(): string {
  const dir = join(tmpdir(), `cm-managed-shared-${process.pid}-${Date.now()}`);
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  return dir;
}

describe('doctor and managed settings', () => {
  // doctor probes the collector: a dead port of this test's own, not the leak guard's sentinel.
  let doctorEnv: Record<string, string>;
  beforeEach(async () => {
    doctorEnv = { ...env, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${await deadPort()}/metrics/harness` };
  });
  it('reports a managed install; hooks also in the user scope are a double-counting problem', async () => {
    expect((await runCli(['install', '--scope', 'managed'], { env, cwd: t.home })).code).toBe(0);
    const ok = await runCli(['doctor', '--json'], { env: doctorEnv, cwd: t.home });
    const facts = JSON.parse(ok.stdout) as { scopes: Array<{ scope: string; path: string; commands: Array<{ events: string[] }> }>; problems: string[] };
    const m = facts.scopes.find((s) => s.scope === 'managed');
    expect(m?.path).toBe(managed);
    expect(m?.commands[0]?.events.length).toBe(DEFAULT_EVENTS.length);
    expect(facts.problems.join('\n')).not.toMatch(/counted/);

    expect((await runCli(['install'], { env, cwd: t.home })).code).toBe(0);
    const twice = await runCli(['doctor'], { env: doctorEnv, cwd: t.home });
    expect(twice.code).toBe(1);
    expect(twice.stdout).toMatch(/✗ claude-metrics hooks are in the managed settings \(.*\) and also in user \(.*\): Claude Code runs both, so every hook event is counted twice.*uninstall --scope user/);
  });

  it('with "allowManagedHooksOnly": true the user copy is ignored by Claude Code: a note, not a problem', async () => {
    mkdirSync(dirname(managed), { recursive: true });
    writeFileSync(managed, '{ "allowManagedHooksOnly": true }\n', { mode: 0o644 });
    expect((await runCli(['install', '--scope', 'managed'], { env, cwd: t.home })).code).toBe(0);
    expect((await runCli(['install'], { env, cwd: t.home })).code).toBe(0);
    const r = await runCli(['doctor', '--json'], { env: doctorEnv, cwd: t.home });
    const facts = JSON.parse(r.stdout) as { problems: string[]; notes: string[] };
    expect(facts.problems.join('\n')).not.toMatch(/counted twice/);
    expect(facts.notes.join('\n')).toMatch(/ignores \("allowManagedHooksOnly": true/);
  });
});

describe('the rollout recipe: the endpoint in a settings file\'s "env" block', () => {
  it('reaches the hooks of a real claude -p session and wins over the environment it was started with', async () => {
    // Measured in user settings (a temp HOME); Claude Code applies every scope's "env" the same way,
    // managed included, and doing it in /etc here would redirect other processes' hooks meanwhile.
    const serve = await startServe(t.env, ['--db', join(t.home, 'c.db')]);
    const fake = await startFakeAnthropic({ model: 'claude-sonnet-4-5-20250929', main: [{ kind: 'text', text: 'done' }] });
    try {
      const settings = join(t.home, '.claude', 'settings.json');
      mkdirSync(dirname(settings), { recursive: true });
      writeFileSync(settings, JSON.stringify({ env: { CLAUDE_METRICS_ENDPOINT: serve.endpoint } }, null, 2));
      expect((await runCli(['install'], { env: t.env, cwd: t.home })).code).toBe(0);
      const project = join(t.home, 'work', 'env-app');
      mkdirSync(project, { recursive: true });
      const run = await runProcess(CLAUDE, ['-p', 'hi', '--output-format', 'json', '--model', 'claude-sonnet-4-5-20250929'], {
        env: { ...t.env, ANTHROPIC_API_KEY: 'sk-ant-dummy-env', ANTHROPIC_BASE_URL: fake.url, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1', CLAUDE_METRICS_ENDPOINT: 'http://127.0.0.1:9/metrics/harness', CLAUDE_METRICS_SETTLE_MS: '300' },
        cwd: project,
        killAfterMs: 90_000,
      });
      expect(run.code, run.stderr).toBe(0);
      const id = `session:${(JSON.parse(run.stdout) as { session_id: string }).session_id}`;
      const row = await waitFor(async () => (await getJson(`${serve.url}/api/sessions`)).body.sessions?.find((x: { id: string; completed_at: string | null }) => x.id === id && x.completed_at), { timeoutMs: 45_000, intervalMs: 250 });
      expect(row.project).toBe('env-app');
    } finally {
      await fake.close();
      await serve.stop();
    }
  });
});

/**
 * The pinned Claude Code (2.1.331) reads policy settings only from
 * /etc/claude-code/managed-settings.json (no override is compiled in; measured:
 * CLAUDE_CODE_MANAGED_SETTINGS_PATH is ignored), so this needs root. Other
 * Claude Code processes on the machine read that file too while it exists:
 * each of our commands there only acts when this test's nonce is in its env.
 */
const ETC = '/etc/claude-code/managed-settings.json';
const canWriteEtc = process.getuid?.() === 0;
if (!canWriteEtc) console.log('managed.test: skipping the real Claude Code test: writing /etc/claude-code/managed-settings.json needs root');


/** Writes the policy file for the duration of fn, restoring what was there (or nothing). */
async function withPolicy<T>(policy: unknown, fn: () => Promise<T>): Promise<T> {
  const backup = existsSync(ETC) ? `${ETC}.cm-test-${process.pid}` : null;
  const hadDir = existsSync(dirname(ETC));
  if (backup) copyFileSync(ETC, backup);
  try {
    mkdirSync(dirname(ETC), { recursive: true, mode: 0o755 });
    writeFileSync(`${ETC}.tmp`, JSON.stringify(policy, null, 2), { mode: 0o644 });
    renameSync(`${ETC}.tmp`, ETC);
    return await fn();
  } finally {
    if (backup) renameSync(backup, ETC);
    else rmSync(ETC, { force: true });
    if (!hadDir) rmSync(dirname(ETC), { recursive: true, force: true });
  }
}

describe.skipIf(!canWriteEtc)('what a developer can and cannot turn off (the real Claude Code, /etc policy)', () => {
  it('their own "disableAllHooks": true does not stop managed hooks; "allowManagedHooksOnly" stops theirs', async () => {
    const fake = await startFakeAnthropic({ model: 'claude-sonnet-4-5-20250929', main: [{ kind: 'text', text: 'ok' }] });
    const nonce = `n${process.pid}${Date.now()}`;
    const marks = join(t.home, 'marks');
    mkdirSync(marks);
    const hook = (name: string) => [{ hooks: [{ type: 'command', command: `[ "\${CM_MANAGED_E2E-}" = ${nonce} ] || exit 0; touch ${marks}/${name}` }] }];
    const userSettings = join(t.home, '.claude', 'settings.json');
    mkdirSync(dirname(userSettings), { recursive: true });
    const claudeRun = () =>
      runProcess(CLAUDE, ['-p', 'hi', '--output-format', 'json', '--model', 'claude-sonnet-4-5-20250929'], {
        env: { ...t.env, CM_MANAGED_E2E: nonce, ANTHROPIC_API_KEY: 'sk-ant-dummy-policy', ANTHROPIC_BASE_URL: fake.url, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1' },
        cwd: t.home,
        killAfterMs: 90_000,
      });
    try {
      writeFileSync(userSettings, JSON.stringify({ disableAllHooks: true, hooks: { Stop: hook('user-1') } }));
      const one = await withPolicy({ hooks: { Stop: hook('managed-1') } }, claudeRun);
      expect(one.code, one.stderr).toBe(0);
      writeFileSync(userSettings, JSON.stringify({ hooks: { Stop: hook('user-2') } }));
      const two = await withPolicy({ allowManagedHooksOnly: true, hooks: { Stop: hook('managed-2') } }, claudeRun);
      expect(two.code, two.stderr).toBe(0);
      // The control: the same user hook runs when the policy does not forbid it.
      writeFileSync(userSettings, JSON.stringify({ hooks: { Stop: hook('user-3') } }));
      const three = await withPolicy({ hooks: { Stop: hook('managed-3') } }, claudeRun);
      expect(three.code, three.stderr).toBe(0);
      const fired = readdirSync(marks).sort();
      expect(fired).toContain('user-3');
      expect(fired).toContain('managed-3');
      console.log(`managed.test: hooks fired: ${fired.join(', ')}`);
      expect(fired).toContain('managed-2');
      expect(fired).not.toContain('user-2');
      expect(fired).not.toContain('user-1');
      expect(fired).toContain('managed-1');
    } finally {
      await fake.close();
    }
  });
});

describe.skipIf(!canWriteEtc)('the real Claude Code with hooks only in /etc/claude-code/managed-settings.json', () => {
  it('records a claude -p session while the user settings are empty', async () => {
    const serve = await startServe(t.env, ['--db', join(t.home, 'c.db')]);
    const fake = await startFakeAnthropic({ model: 'claude-sonnet-4-5-20250929', main: [{ kind: 'tool', name: 'Bash', input: { command: 'echo managed', description: 'say it' } }, { kind: 'text', text: 'done' }] });
    const backup = existsSync(ETC) ? `${ETC}.cm-test-${process.pid}` : null;
    const hadDir = existsSync(dirname(ETC));
    try {
      // install writes the file at a test path; the same text goes to /etc, each command behind a nonce guard.
      const staged = join(t.home, 'staged', 'managed-settings.json');
      const r = await runCli(['install', '--scope', 'managed'], { env: { ...t.env, CLAUDE_METRICS_MANAGED_SETTINGS: staged }, cwd: t.home });
      expect(r.code, r.stderr).toBe(0);
      const nonce = `n${process.pid}${Date.now()}`;
      const policy = JSON.parse(readFileSync(staged, 'utf8')) as { hooks: Record<string, Array<{ hooks: Array<{ command: string }> }>> };
      for (const groups of Object.values(policy.hooks)) for (const g of groups) for (const h of g.hooks) h.command = `[ "\${CM_MANAGED_E2E-}" = ${nonce} ] || exit 0; ${h.command}`;
      if (backup) copyFileSync(ETC, backup);
      mkdirSync(dirname(ETC), { recursive: true, mode: 0o755 });
      writeFileSync(`${ETC}.tmp`, JSON.stringify(policy, null, 2), { mode: 0o644 });
      renameSync(`${ETC}.tmp`, ETC);
      // The user's own settings: present and empty.
      mkdirSync(join(t.home, '.claude'), { recursive: true });
      writeFileSync(join(t.home, '.claude', 'settings.json'), '{}\n');
      const project = join(t.home, 'work', 'policy-app');
      mkdirSync(project, { recursive: true });

      const run = await runProcess(CLAUDE, ['-p', 'say it', '--output-format', 'json', '--allowedTools', 'Bash', '--model', 'claude-sonnet-4-5-20250929'], {
        env: { ...t.env, CM_MANAGED_E2E: nonce, ANTHROPIC_API_KEY: 'sk-ant-dummy-managed', ANTHROPIC_BASE_URL: fake.url, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1', CLAUDE_METRICS_ENDPOINT: serve.endpoint, CLAUDE_METRICS_SETTLE_MS: '300' },
        cwd: project,
        killAfterMs: 90_000,
      });
      expect(run.code, run.stderr).toBe(0);
      const result = JSON.parse(run.stdout) as { session_id: string };
      const s = await waitFor(
        async () => {
          const { body } = await getJson(`${serve.url}/api/sessions`);
          const row = body.sessions?.find((x: { id: string }) => x.id === `session:${result.session_id}`);
          return row?.completed_at && row.input_tokens > 0 ? row : undefined;
        },
        { timeoutMs: 45_000, intervalMs: 250 },
      );
      expect(s).toMatchObject({ project: 'policy-app', success: true, tool_calls_count: 1 });
      // Nothing came from the user's settings: they are still empty.
      expect(readFileSync(join(t.home, '.claude', 'settings.json'), 'utf8')).toBe('{}\n');
    } finally {
      if (backup) renameSync(backup, ETC);
      else rmSync(ETC, { force: true });
      if (!hadDir) rmSync(dirname(ETC), { recursive: true, force: true });
      await fake.close();
      await serve.stop();
    }
  });
});
