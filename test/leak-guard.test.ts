/**
 * The leak guard (test/helpers/leak-guard.ts) can fail: nested suites under it, with its sentinel
 * on a free port standing in for 8013. A clean suite passes; a process reaching the default port,
 * a test that forgot its endpoint, and a process started with the ambient environment each fail
 * the run, with the offending request named. A port already taken is reported, not failed.
 * The outer run is itself guarded: a collector on 127.0.0.1:8013 receives nothing from it.
 */
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deadPort, ROOT, runProcess, tempHome } from './helpers/cli';

async function nested(fixture: string, sentinelPort: number) {
  const home = tempHome('cm-nested-');
  try {
    // The nested run's own guard re-roots its environment; this one only has to be hermetic.
    const env = { ...home.env, CM_LEAK_REPORT: join(home.home, 'leaks.json'), CM_LEAK_FIXTURE: fixture, CM_LEAK_SENTINEL_PORT: String(sentinelPort), FORCE_COLOR: '0', NO_COLOR: '1' };
    return await runProcess(process.execPath, [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', join(ROOT, 'test', 'fixtures', 'leak-guard', 'vitest.config.mts')], { env, cwd: ROOT });
  } finally {
    home.cleanup();
  }
}

describe('the leak guard', () => {
  it('passes a suite that keeps to its own servers', async () => {
    const r = await nested('clean', await deadPort());
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/leak guard/);
  });

  it('fails the run when a process reaches the default port, naming the request', async () => {
    const r = await nested('default-port', await deadPort());
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/leak guard: 1 connection\(s\) reached a sentinel/);
    expect(r.stdout + r.stderr).toMatch(/POST \/metrics\/harness .*"event":"leaked"/);
  });

  it('fails the run when a test forgets its endpoint, or spawns the CLI with the ambient environment', async () => {
    const forgot = await nested('no-endpoint', await deadPort());
    expect(forgot.code).not.toBe(0);
    expect(forgot.stdout + forgot.stderr).toMatch(/guard endpoint: POST \/metrics\/harness .*"event":"forgot"/);
    const ambient = await nested('ambient', await deadPort());
    expect(ambient.code).not.toBe(0);
    expect(ambient.stdout + ambient.stderr).toMatch(/guard endpoint: POST \/metrics\/harness .*"event":"ambient"/);
    expect(ambient.stdout).toMatch(/1 passed/); // the test ran: only the guard failed it
  });

  it('a port already in use (another run’s sentinel, a collector) is said, not failed', async () => {
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    try {
      const port = (taken.address() as { port: number }).port;
      const r = await nested('clean', port);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stderr).toMatch(new RegExp(`leak guard: 127\\.0\\.0\\.1:${port} is already in use`));
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
  });

  it('this run is guarded too', () => {
    expect(process.env.CM_LEAK_GUARD).toMatch(/^(watching 127\.0\.0\.1:8013|127\.0\.0\.1:8013 in use)$/);
    expect(process.env.HOME).toMatch(/cm-ambient-/);
    expect(tempHome().env.CLAUDE_METRICS_ENDPOINT).toBe(process.env.CM_GUARD_ENDPOINT);
  });
});
