/**
 * doctor: the pure judgement on hand-made facts, and the built CLI against the
 * real collector (serve, token accepted / rejected), a dead port, and settings
 * that defeat metrics.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assess, checkHookCommand, type DoctorFacts } from '../src/install/doctor';
import { DEFAULT_EVENTS } from '../src/install/settings-edit';
import { BIN, deadPort, runCli, spawnCli, startCaptureServer, tempHome, type TempHome } from './helpers/cli';

function facts(over: Partial<DoctorFacts> = {}): DoctorFacts {
  return {
    version: '0.0.0',
    configFile: '/c.json',
    configFileFound: false,
    config: [],
    configWarnings: [],
    endpoint: { url: 'http://h/metrics/harness', reachable: true, status: 204, latencyMs: 1, tokenSet: true },
    breaker: { failures: 0, openUntil: 0 },
    spoolDir: '/s/spool',
    spool: { depth: 0, bytes: 0, claimed: 0, dead: 0, drops: 0, oldestAgeMs: null },
    scopes: [{ scope: 'user', path: '/h/.claude/settings.json', exists: true, commands: [{ command: 'x emit', events: [...DEFAULT_EVENTS], async: false, runs: true, detail: 'runs' }], disableAllHooks: false }],
    claude: { path: '/bin/claude', version: '2.1.331 (Claude Code)' },
    expectedCommands: ['x emit'],
    log: { path: '/s/claude-metrics.log' },
    modes: { stateDir: 0o700, configFile: 0o600, tokenInFile: true },
    now: 1_000_000_000,
    ...over,
  };
}

describe('assess', () => {
  it('healthy facts have no problems', () => {
    expect(assess(facts())).toMatchObject({ healthy: true, problems: [] });
  });
  const cases: Array<[string, Partial<DoctorFacts>, RegExp]> = [
    ['unreachable', { endpoint: { url: 'u', reachable: false, error: 'ECONNREFUSED', tokenSet: false } }, /not reachable \(ECONNREFUSED\)/],
    ['token rejected', { endpoint: { url: 'u', reachable: true, status: 401, tokenSet: true } }, /rejects the token/],
    ['token missing', { endpoint: { url: 'u', reachable: true, status: 401, tokenSet: false } }, /requires a token/],
    ['server error', { endpoint: { url: 'u', reachable: true, status: 503, tokenSet: false } }, /HTTP 503/],
    ['dead letters', { spool: { depth: 0, bytes: 0, claimed: 0, dead: 2, drops: 0, oldestAgeMs: null } }, /2 event\(s\) rejected permanently/],
    ['drops', { spool: { depth: 0, bytes: 0, claimed: 0, dead: 0, drops: 5, oldestAgeMs: null } }, /5 event\(s\) dropped/],
    ['stale spool', { spool: { depth: 3, bytes: 9, claimed: 0, dead: 0, drops: 0, oldestAgeMs: 3 * 3600_000 } }, /oldest for 3 h/],
    ['no hooks', { scopes: [] }, /no settings file contains claude-metrics hooks/],
    ['hook does not run', { scopes: [{ ...facts().scopes[0]!, commands: [{ ...facts().scopes[0]!.commands[0]!, runs: false, detail: '/gone not found' }] }] }, /hook command does not run: \/gone not found/],
    ['disableAllHooks', { scopes: [...facts().scopes, { scope: 'local', path: '/p/.claude/settings.local.json', exists: true, commands: [], disableAllHooks: true }] }, /local settings .*"disableAllHooks": true/],
    ['cleanupPeriodDays', { scopes: [{ ...facts().scopes[0]!, cleanupPeriodDays: 7 }] }, /"cleanupPeriodDays": 7 deletes transcripts/],
    ['two scopes', { scopes: [facts().scopes[0]!, { ...facts().scopes[0]!, scope: 'project' }] }, /installed in 2 scopes .*counted more than once/],
    ['state dir open to others', { modes: { stateDir: 0o755, tokenInFile: false } }, /state dir \(spool, log\) is 0755, readable by other users: chmod 700 \/s$/],
    ['token file readable', { modes: { stateDir: 0o700, configFile: 0o644, tokenInFile: true } }, /\/c\.json holds the token and is 0644: chmod 600/],
    ['bad env', { configWarnings: ['CLAUDE_METRICS_TIMEOUT_MS: expected a whole number, got "x"; ignored'] }, /configuration: CLAUDE_METRICS_TIMEOUT_MS/],
  ];
  it.each(cases)('%s is a problem', (_name, over, message) => {
    const a = assess(facts(over));
    expect(a.healthy).toBe(false);
    expect(a.problems).toHaveLength(1);
    expect(a.problems[0]).toMatch(message);
  });
  it('404 on GET, an open breaker, a few waiting events and cleanupPeriodDays 30 are notes, not problems', () => {
    const a = assess(facts({ endpoint: { url: 'u', reachable: true, status: 404, tokenSet: false }, breaker: { failures: 2, openUntil: 1_000_030_000 }, spool: { depth: 2, bytes: 5, claimed: 0, dead: 0, drops: 0, oldestAgeMs: 1000 }, scopes: [{ ...facts().scopes[0]!, cleanupPeriodDays: 30 }] }));
    expect(a.problems).toEqual([]);
    expect(a.notes.join('\n')).toMatch(/token is not verified[\s\S]*breaker open for 30 s[\s\S]*2 event\(s\) waiting/);
  });
  it('notes a hook command that differs from this installation and the last logged problem', () => {
    const a = assess(facts({ expectedCommands: ['/new/node /new/bin/claude-metrics emit'], log: { path: '/s/l.log', lastProblem: { time: '2026-01-01T00:00:00.000Z', name: 'emit', msg: 'spool full' } } }));
    expect(a.healthy).toBe(true);
    expect(a.notes.join('\n')).toMatch(/in user settings differs from this installation's \(\/new\/node[\s\S]*last problem in \/s\/l\.log: 2026-01-01T00:00:00\.000Z emit: spool full/);
  });
  it('checkHookCommand: runs our launcher with --version; a missing program or script is named', () => {
    expect(checkHookCommand(`${process.execPath} ${BIN} emit`, process.env)).toMatchObject({ runs: true, detail: expect.stringMatching(/^runs \(claude-metrics \d+\.\d+\.\d+\)$/) });
    expect(checkHookCommand(`/nope/node ${BIN} emit`, process.env)).toEqual({ runs: false, detail: '/nope/node not found' });
    expect(checkHookCommand(`${process.execPath} /gone/bin/claude-metrics emit`, process.env)).toEqual({ runs: false, detail: '/gone/bin/claude-metrics not found' });
    expect(checkHookCommand('node /x/dist/emit.cjs', process.env).runs).toBe(false);
  });
});

describe('doctor CLI', () => {
  let t: TempHome;
  let serve: ChildProcess | undefined;
  beforeEach(() => {
    t = tempHome('cm-doctor-');
  });
  afterEach(() => {
    serve?.kill('SIGKILL');
    serve = undefined;
    t.cleanup();
  });

  async function startServe(token: string): Promise<string> {
    serve = spawnCli(['serve', '--port', '0', '--token', token], { env: t.env });
    let err = '';
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 20_000);
      serve!.stderr!.on('data', (c: Buffer) => {
        err += c.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
        if (m) {
          clearTimeout(timer);
          resolve(`${m[1]}/metrics/harness`);
        }
      });
    });
  }

  it('is healthy with hooks installed and the real collector accepting the token; never prints the token', async () => {
    expect((await runCli(['install'], { env: t.env, cwd: t.home })).code).toBe(0);
    const endpoint = await startServe('s3cret-token');
    const env = { ...t.env, CLAUDE_METRICS_ENDPOINT: endpoint, CLAUDE_METRICS_TOKEN: 's3cret-token' };
    const r = await runCli(['doctor'], { env, cwd: t.home });
    expect(r.stdout).toMatch(/healthy: no problems found\n$/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/endpoint +http:\/\/127\.0\.0\.1:\d+\/metrics\/harness +env \(CLAUDE_METRICS_ENDPOINT\)/);
    expect(r.stdout).toMatch(/token +\(set, 12 chars\) +env \(CLAUDE_METRICS_TOKEN\)/);
    expect(r.stdout).toMatch(/timeoutMs +300 +default/);
    expect(r.stdout).toMatch(/reachable in \d+ ms, HTTP 204, token accepted/);
    expect(r.stdout).toMatch(new RegExp(`user +.*settings\\.json: ${DEFAULT_EVENTS.length} event\\(s\\)[\\s\\S]*runs \\(claude-metrics \\d+\\.\\d+\\.\\d+\\)`));
    expect(r.stdout).not.toContain('s3cret-token');

    const bad = await runCli(['doctor', '--token', 'wrong'], { env, cwd: t.home });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/token +\(set, 5 chars\) +flag/);
    expect(bad.stdout).toMatch(/1 problem\(s\):\n {2}✗ collector .* rejects the token \(HTTP 401\)/);

    const json = await runCli(['doctor', '--json'], { env, cwd: t.home });
    const parsed = JSON.parse(json.stdout) as { healthy: boolean; endpoint: { status: number }; spool: { depth: number }; scopes: Array<{ scope: string; commands: unknown[] }> };
    expect(parsed.healthy).toBe(true);
    expect(parsed.endpoint.status).toBe(204);
    expect(parsed.spool.depth).toBe(0);
    expect(parsed.scopes.find((s) => s.scope === 'user')!.commands).toHaveLength(1);
    expect(json.stdout).not.toContain('s3cret-token');
  });

  it('reports a dead collector, spooled and dead events, and settings that defeat metrics, one line each', async () => {
    const port = await deadPort();
    const env = { ...t.env, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${port}/metrics/harness` };
    // Two events go to the spool (the collector is down); one dead letter by hand.
    for (const ev of ['a', 'b']) await runCli(['emit', '--event', 'ralph_task_started', '--source', 'ralph', '--task-id', ev], { env });
    mkdirSync(join(t.stateDir, 'spool', 'dead'), { recursive: true });
    writeFileSync(join(t.stateDir, 'spool', 'dead', '0190a1b2-0000-7000-8000-000000000000.10.json'), '{"bad":1}\n');
    const proj = join(t.home, 'proj');
    mkdirSync(join(proj, '.claude'), { recursive: true });
    writeFileSync(join(proj, '.claude', 'settings.local.json'), '{ "disableAllHooks": true, "cleanupPeriodDays": 3 }\n');
    const r = await runCli(['doctor'], { env, cwd: proj });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/waiting 2 event\(s\)/);
    const problems = r.stdout.split('\n').filter((l) => l.startsWith('  ✗ '));
    expect(problems).toHaveLength(5);
    expect(problems.join('\n')).toMatch(/not reachable \(ECONNREFUSED\)[\s\S]*1 event\(s\) rejected permanently[\s\S]*no settings file contains[\s\S]*disableAllHooks[\s\S]*"cleanupPeriodDays": 3/);
  });

  it('a GET answered 404 by another router is reachable with the token not verified', async () => {
    const cap = await startCaptureServer();
    cap.respond((_req, res) => {
      res.writeHead(404);
      res.end();
    });
    try {
      await runCli(['install', '--events', 'Stop'], { env: t.env, cwd: t.home });
      const r = await runCli(['doctor', '--endpoint', cap.endpoint], { env: t.env, cwd: t.home });
      expect(r.stdout).toMatch(/HTTP 404, token not verified/);
      expect(r.code).toBe(0);
      expect(cap.requests.map((q) => q.method)).toEqual(['GET']);
    } finally {
      await cap.close();
    }
  });
});
