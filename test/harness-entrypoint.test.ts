/**
 * deploy/claude-harness/entrypoint.sh as a real process (no Docker daemon here):
 * a temp HOME stands in for the container's, claude-metrics is on PATH as in the
 * image. Started twice (wired once), with a fake command (its status comes back,
 * its stdin and the env reach it), SIGTERM (forwarded; the spool flushed before
 * exit, seen by a collector), a read-only HOME, and a real `claude -p` inside it
 * whose session reaches `claude-metrics serve`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeAnthropic } from './fake-anthropic/server';
import { DEFAULT_EVENTS, findOurHooks } from '../src/install/settings-edit';
import { getJson, ROOT, runProcess, startCaptureServer, startServe, tempHome, waitFor, type TempHome } from './helpers/cli';

const ENTRYPOINT = join(ROOT, 'deploy', 'claude-harness', 'entrypoint.sh');

let homes: TempHome[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.length = 0;
  for (const h of homes) h.cleanup();
  homes = [];
});

/** A container-like world: HOME, and a bin dir on PATH holding claude-metrics (and claude) as the image does. */
function container(extra: Record<string, string> = {}) {
  const t = tempHome('cm-harness-');
  homes.push(t);
  const bin = join(t.home, 'usr-local-bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'claude-metrics'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(join(ROOT, 'bin', 'claude-metrics'))} "$@"\n`);
  chmodSync(join(bin, 'claude-metrics'), 0o755);
  symlinkSync(join(ROOT, 'node_modules', '.bin', 'claude'), join(bin, 'claude'));
  const env: Record<string, string> = { ...t.env, PATH: `${bin}:${t.env.PATH}`, ...extra };
  // The container's env has no XDG overrides: the entrypoint picks the state dir itself.
  delete env.XDG_STATE_HOME;
  // Nor our CLI's endpoint variable: the entrypoint takes METRICS_ENDPOINT (or its default) and exports it.
  delete env.CLAUDE_METRICS_ENDPOINT;
  return { t, env, settings: join(t.home, '.claude', 'settings.json'), stateDir: join(t.home, '.local', 'state', 'claude-metrics') };
}

const entry = (args: string[], env: Record<string, string>, input?: string) => runProcess('/bin/sh', [ENTRYPOINT, ...args], { env, input, killAfterMs: 60_000 });

describe('entrypoint.sh', () => {
  it('started twice: hooks wired once, the command runs with the endpoint and state dir exported, its stdin and exit status pass through', async () => {
    const c = container({ METRICS_ENDPOINT: 'http://127.0.0.1:9/metrics/harness' });
    const cmd = ['sh', '-c', 'read line; echo "got:$line endpoint:$CLAUDE_METRICS_ENDPOINT state:$CLAUDE_METRICS_STATE_DIR"; exit 3'];
    const first = await entry(cmd, c.env, 'hello\n');
    expect(first.code, first.stderr).toBe(3);
    expect(first.stdout).toBe(`got:hello endpoint:http://127.0.0.1:9/metrics/harness state:${c.stateDir}\n`);
    expect(first.stderr).toMatch(/claude-harness: claude-metrics: created .*settings\.json/);
    const wired = readFileSync(c.settings, 'utf8');
    expect(findOurHooks(wired, c.settings).commands.map((h) => h.event).sort()).toEqual([...DEFAULT_EVENTS].sort());

    const second = await entry(cmd, c.env, 'again\n');
    expect(second.code).toBe(3);
    expect(second.stdout).toMatch(/^got:again /);
    // Restarted: not wired twice, no new backup, nothing said about the hooks.
    expect(readFileSync(c.settings, 'utf8')).toBe(wired);
    expect(readdirSync(join(c.t.home, '.claude')).filter((f) => f.includes('.bak-'))).toEqual([]);
    expect(second.stderr).not.toMatch(/settings\.json/);
  });

  it("defaults to the router's endpoint http://llm-router:8013/metrics/harness", async () => {
    const c = container();
    const r = await entry(['sh', '-c', 'echo "$CLAUDE_METRICS_ENDPOINT $METRICS_ENDPOINT"'], { ...c.env, CLAUDE_METRICS_STOP_FLUSH_MS: '200' });
    expect(r.stdout).toBe('http://llm-router:8013/metrics/harness http://llm-router:8013/metrics/harness\n');
  });

  it('SIGTERM (docker stop) reaches the command, and the spool is flushed to the collector before the entrypoint exits', async () => {
    const collector = await startCaptureServer();
    try {
      // The collector refuses for now (503): the command's event waits in the spool.
      let up = false;
      collector.respond((req, res) => {
        res.writeHead(up ? 200 : 503, { 'content-type': 'application/json' });
        res.end(up ? JSON.stringify({ accepted: 1, duplicates: 0, rejected: [] }) : '{"error":"starting"}');
      });
      const c = container({ METRICS_ENDPOINT: collector.endpoint, CLAUDE_METRICS_TOKEN: 'tok-123', CLAUDE_METRICS_FLUSH_INTERVAL: '3600' });
      const script = 'claude-metrics emit --source ralph --event ralph_task_started --task-id T-TERM --label harness; trap \'echo got-term; exit 0\' TERM; echo ready; while :; do sleep 0.1; done';
      const child = spawn('/bin/sh', [ENTRYPOINT, 'sh', '-c', script], { env: c.env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let out = '';
      let err = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      await waitFor(() => out.includes('ready'));
      await waitFor(() => existsSync(join(c.stateDir, 'spool', 'new')) && readdirSync(join(c.stateDir, 'spool', 'new')).length > 0);
      const delivered = () => collector.requests.filter((r) => r.method === 'POST' && r.body.includes('T-TERM'));
      const refused = delivered().length;
      up = true;
      child.kill('SIGTERM');
      const code = await exited;
      // Already there when the entrypoint is gone: the final flush happened before exit.
      const sent = delivered().slice(refused);
      expect(code, err).toBe(0);
      expect(out).toContain('got-term');
      expect(sent.length).toBeGreaterThan(0);
      expect(sent[0]!.headers.authorization).toBe('Bearer tok-123');
      expect(readdirSync(join(c.stateDir, 'spool', 'new'))).toEqual([]);
    } finally {
      await collector.close();
    }
  });

  it('a read-only HOME: state in $TMPDIR/claude-metrics-<uid>, the failure to wire hooks said, and the command still runs', async () => {
    const c = container({ HOME: '/dev/null/home', CLAUDE_CONFIG_DIR: '/dev/null/home/.claude', CLAUDE_METRICS_STOP_FLUSH_MS: '200', METRICS_ENDPOINT: 'http://127.0.0.1:9/metrics/harness' });
    const r = await entry(['sh', '-c', 'echo "state:$CLAUDE_METRICS_STATE_DIR"; exit 0'], { ...c.env, TMPDIR: c.t.home });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`state:${c.t.home}/claude-metrics-${process.getuid?.() ?? 0}\n`);
    expect(r.stderr).toMatch(/\/dev\/null\/home\/\.local\/state\/claude-metrics is not writable/);
    expect(r.stderr).toMatch(/hooks not wired, sessions will not be recorded: claude-metrics: cannot (read|write) \/dev\/null\/home\/\.claude\/settings\.json/);
  });

  it('a command that does not exist: 127; no command at all: 64 with a message', async () => {
    const c = container({ CLAUDE_METRICS_STOP_FLUSH_MS: '200', METRICS_ENDPOINT: 'http://127.0.0.1:9/metrics/harness' });
    expect((await entry(['no-such-command-xyz'], c.env)).code).toBe(127);
    const none = await entry([], c.env);
    expect(none.code).toBe(64);
    expect(none.stderr).toMatch(/no command given/);
  });

  it('a real claude -p inside it: the session reaches the collector through the hooks the entrypoint wired', async () => {
    const c = container();
    const serve = await startServe(c.t.env, ['--db', join(c.t.home, 'c.db')]);
    const fake = await startFakeAnthropic({
      model: 'claude-sonnet-4-5-20250929',
      main: [
        { kind: 'tool', name: 'Bash', input: { command: 'echo in-container', description: 'say it' }, usage: { input_tokens: 700, output_tokens: 30, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 } },
        { kind: 'text', text: 'done', usage: { input_tokens: 800, output_tokens: 20, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 } },
      ],
    });
    try {
      const project = join(c.t.home, 'work', 'harness-app');
      mkdirSync(project, { recursive: true });
      const env = { ...c.env, METRICS_ENDPOINT: serve.endpoint, ANTHROPIC_API_KEY: 'sk-ant-dummy-harness', ANTHROPIC_BASE_URL: fake.url, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_AUTOUPDATER: '1', CLAUDE_METRICS_SETTLE_MS: '300' };
      const r = await runProcess('/bin/sh', [ENTRYPOINT, 'claude', '-p', 'say it', '--output-format', 'json', '--allowedTools', 'Bash', '--model', 'claude-sonnet-4-5-20250929'], { env, cwd: project, killAfterMs: 90_000 });
      expect(r.code, r.stderr).toBe(0);
      const result = JSON.parse(r.stdout) as { session_id: string };
      const served = fake.totals();
      const s = await waitFor(
        async () => {
          const row = (await getJson(`${serve.url}/api/sessions`)).body.sessions?.find((x: { id: string }) => x.id === `session:${result.session_id}`);
          return row?.completed_at && row.input_tokens === served.input_tokens ? row : undefined;
        },
        { timeoutMs: 45_000, intervalMs: 250 },
      );
      expect(s).toMatchObject({ project: 'harness-app', success: true, tool_calls_count: 1, output_tokens: served.output_tokens });
    } finally {
      await fake.close();
      await serve.stop();
    }
  });
});
