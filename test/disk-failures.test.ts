/**
 * When the disk says no, on real file systems: a tmpfs mounted for the test,
 * read-only or filled to the last byte (as root; elsewhere the file re-runs
 * itself in an unprivileged user + mount namespace, or says why it skips).
 *
 * - the fast hook delivers with a reachable collector from a read-only and from
 *   a full HOME: through the private fallback inbox, and straight through
 *   `emit` when nothing at all can be written; nothing is left behind;
 * - an empty drainer.pid is not a live drainer;
 * - doctor fails with a one-line fix;
 * - the collector on a full disk answers 503 + Retry-After + a reason, /healthz
 *   is not ok, /metrics counts the failures, and once space returns it recovers
 *   by itself with every acknowledged event stored.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/ids';
import { StorageHealth } from '../src/collector/storage-health';
import { DIST_CLI, getJson, postJson, ROOT, runCli, runProcess, startCaptureServer, startServe, waitFor, type CaptureServer, type ServeHandle } from './helpers/cli';
import { mountTmpfs, mountUnavailable, tempDir, userNamespaceUnavailable, type Tmpfs } from './helpers/mount';
import { startPostgres, type PgCluster } from './helpers/postgres';
import { Client } from 'pg';

const HOOK = join(ROOT, 'bin', 'claude-metrics-hook');
const cannotMount = mountUnavailable();
const IN_NS = process.env.CM_TEST_IN_MOUNT_NS === '1';

/** Every file under dir (relative), for "nothing left behind". */
function walk(dir: string, prefix = ''): string[] {
  let out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    const rel = prefix ? `${prefix}/${n}` : n;
    out.push(rel);
    out = out.concat(walk(join(dir, n), rel));
  }
  return out;
}

describe.skipIf(cannotMount !== null)('on real read-only and full file systems', () => {
  const mounts: Tmpfs[] = [];
  const temps: string[] = [];
  let capture: CaptureServer;
  beforeAll(async () => {
    capture = await startCaptureServer();
  });
  afterAll(async () => {
    await capture.close();
    for (const m of mounts) m.unmount();
    for (const t of temps) rmSync(t, { recursive: true, force: true });
  });
  const mount = (kb: number) => {
    const m = mountTmpfs(kb);
    mounts.push(m);
    return m;
  };
  const temp = (p: string) => {
    const t = tempDir(p);
    temps.push(t);
    return t;
  };
  /** The env a Claude Code hook would have: HOME and TMPDIR as given, no XDG overrides. */
  const envFor = (home: string, tmp: string, extra: Record<string, string> = {}) => ({
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    TMPDIR: tmp,
    TZ: 'UTC',
    CLAUDE_CONFIG_DIR: join(home, '.claude'),
    CLAUDE_METRICS_ENDPOINT: capture.endpoint,
    CLAUDE_METRICS_DRAIN_IDLE_MS: '300',
    ...(process.env.NODE_EXTRA_CA_CERTS ? { NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS } : {}),
    ...extra,
  });
  // Not spawnSync: the capture server in this process must answer while the hook runs.
  const hook = async (env: Record<string, string>, name: string, tag: string) => {
    const r = await runProcess('/bin/sh', [HOOK, process.execPath, DIST_CLI], { input: JSON.stringify({ session_id: `s-${tag}`, cwd: '/', hook_event_name: name, prompt: tag }), env, cwd: '/', killAfterMs: 20_000 });
    return { status: r.code, stdout: r.stdout, stderr: r.stderr };
  };
  const delivered = async (tag: string) => waitFor(() => capture.events().filter((e) => e.session_id === `s-${tag}`).length > 0, { timeoutMs: 15_000 });
  const noDrainer = (inbox: string) => waitFor(() => !existsSync(join(inbox, 'drainer.pid')), { timeoutMs: 15_000 });

  describe('a read-only HOME', () => {
    let home: Tmpfs;
    beforeAll(() => {
      home = mount(1024);
      mkdirSync(join(home.dir, '.claude'), { recursive: true });
      home.setReadOnly(true);
    });

    it('the fast hook delivers through the private fallback inbox under TMPDIR, exits 0, prints nothing', async () => {
      const tmp = temp('cm-ro-tmp-');
      const r = await hook(envFor(home.dir, tmp), 'UserPromptSubmit', 'ro-fallback');
      expect([r.status, r.stdout, r.stderr]).toEqual([0, '', '']);
      await delivered('ro-fallback');
      const fb = join(tmp, `claude-metrics-${process.getuid!()}`);
      await noDrainer(join(fb, 'inbox'));
      expect(readdirSync(join(fb, 'inbox')).filter((f) => f.endsWith('.hook'))).toEqual([]);
      // Private: a 0700 directory of ours.
      expect(spawnSync('stat', ['-c', '%a', fb], { encoding: 'utf8' }).stdout.trim()).toBe('700');
      // It says so in the log of the state dir it used.
      expect(walk(fb)).toContain('claude-metrics.log');
    });

    it('with nothing writable at all, the fast hook hands the input to emit, which delivers it now', async () => {
      const tmp = join(home.dir, 'tmp'); // inside the read-only mount: no fallback either
      const r = await hook(envFor(home.dir, tmp), 'Stop', 'ro-direct');
      expect([r.status, r.stdout, r.stderr]).toEqual([0, '', '']);
      const evs = capture.events().filter((e) => e.session_id === 's-ro-direct');
      expect(evs.map((e) => e.event)).toEqual(['Stop']); // delivered before the hook returned: no drainer involved
    });

    it('doctor exits 1 naming the unwritable state dir and the fix', async () => {
      const tmp = join(home.dir, 'tmp');
      const r = await runCli(['doctor'], { env: envFor(home.dir, tmp) });
      expect(r.code).toBe(1);
      const lines = r.stdout.split('\n').filter((l) => l.includes('✗') && l.includes('cannot write to the state dir'));
      expect(lines.length).toBe(1);
      expect(lines[0]).toMatch(/read-only file system/);
      expect(lines[0]).toMatch(/set CLAUDE_METRICS_STATE_DIR to a writable directory/);
      expect(r.stdout).toMatch(/state dir: +\S+: NOT writable \(read-only file system/);
    });

    it('doctor with a writable TMPDIR reports the fallback in use as a problem with its fix', async () => {
      const tmp = temp('cm-ro-doc-');
      const r = await runCli(['doctor'], { env: envFor(home.dir, tmp) });
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/✗ state dir \S+ cannot be written \(read-only file system at \S+\); hooks use the private fallback \S+claude-metrics-\d+, which a reboot may clear: set CLAUDE_METRICS_STATE_DIR/);
      expect(r.stdout).toMatch(/state dir: +\S+claude-metrics-\d+: writable/);
    });
  });

  describe('a full HOME', () => {
    let home: Tmpfs;
    let stateDir: string;
    beforeAll(() => {
      home = mount(2048);
      stateDir = join(home.dir, '.local', 'state', 'claude-metrics');
      mkdirSync(join(stateDir, 'inbox'), { recursive: true, mode: 0o700 });
      home.fill();
    });

    it('with no fallback either, the fast hook delivers through emit and leaves no empty or temp file behind', async () => {
      const tmp = join(home.dir, 'tmp'); // on the full disk too
      const r = await hook(envFor(home.dir, tmp), 'PostToolUse', 'full-direct');
      expect([r.status, r.stdout, r.stderr]).toEqual([0, '', '']);
      expect(capture.events().filter((e) => e.session_id === 's-full-direct').map((e) => e.event)).toEqual(['PostToolUse']);
      // No half-written inbox file, temp file of an atomic write, empty lock or spool file (the log may exist, empty).
      expect(walk(stateDir).filter((f) => /\.(hook|tmp|json)$|drainer\.pid$|breaker/.test(f))).toEqual([]);
    });

    it('with a writable TMPDIR, through the fallback inbox', async () => {
      const tmp = temp('cm-full-tmp-');
      const r = await hook(envFor(home.dir, tmp), 'PostToolUse', 'full-fallback');
      expect([r.status, r.stdout]).toEqual([0, '']);
      await delivered('full-fallback');
      await noDrainer(join(tmp, `claude-metrics-${process.getuid!()}`, 'inbox'));
    });

    it('doctor exits 1 with the device full and its fix', async () => {
      const r = await runCli(['doctor'], { env: envFor(home.dir, join(home.dir, 'tmp')) });
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/✗ cannot write to the state dir \S+ \(no space left on device at \S+\): .*free space on that disk \(df -h /);
    });

    it('once space returns, an empty drainer.pid (a failed write) is not taken for a live drainer', async () => {
      home.unfill();
      writeFileSync(join(stateDir, 'inbox', 'drainer.pid'), '');
      const r = await hook(envFor(home.dir, join(home.dir, 'tmp')), 'SessionEnd', 'after-full');
      expect(r.status).toBe(0);
      await delivered('after-full'); // one hook, no second one to wake a drainer: it must have run
      await noDrainer(join(stateDir, 'inbox'));
      expect(walk(stateDir).filter((f) => f.endsWith('.tmp') || f.endsWith('.hook'))).toEqual([]);
    });
  });

  describe('a disk that fills while the hook writes', () => {
    it('emit gets what reached the file plus the rest of the input: the event arrives, marked truncated, and no file stays', async () => {
      const disk = mount(1024);
      const state = join(disk.dir, 'state');
      mkdirSync(join(state, 'inbox'), { recursive: true, mode: 0o700 });
      writeFileSync(join(disk.dir, 'room'), Buffer.alloc(4096)); // one page to give back
      disk.fill();
      rmSync(join(disk.dir, 'room')); // the file's head fits, a 64 KiB input does not
      const input = JSON.stringify({ session_id: 's-torn', cwd: '/', hook_event_name: 'PostToolUse', tool_name: 'Read', tool_use_id: 'toolu_torn', tool_response: { content: 'y'.repeat(64 * 1024) } });
      const r = await runProcess('/bin/sh', [HOOK, process.execPath, DIST_CLI], { input, env: envFor(disk.dir, join(disk.dir, 'tmp'), { CLAUDE_METRICS_STATE_DIR: state }), cwd: '/', killAfterMs: 20_000 });
      expect([r.code, r.stdout, r.stderr]).toEqual([0, '', '']);
      const [e] = capture.events().filter((x) => x.session_id === 's-torn');
      expect(e).toMatchObject({ event: 'PostToolUse', tool_name: 'Read', tool_use_id: 'toolu_torn', hook: { input_truncated: true } });
      expect(walk(state).filter((f) => f.endsWith('.hook') || f.endsWith('.tmp'))).toEqual([]);
    });
  });

  describe('the collector on a disk that fills up', () => {
    let disk: Tmpfs;
    let serve: ServeHandle;
    let state: string;
    const acked: string[] = [];
    const refused: Array<ReturnType<typeof batch>> = [];
    const batch = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ event_id: uuidv7(), event: 'PostToolUse', source: 'api', session_id: `c-${tag}`, tool_name: 'Bash', success: true, timestamp: new Date().toISOString(), attrs: { i, pad: 'x'.repeat(200) } }));
    beforeAll(async () => {
      disk = mount(8 * 1024);
      state = temp('cm-serve-state-');
      // The real write path (SQLITE_FULL), not only the free-space pre-check.
      serve = await startServe({ PATH: process.env.PATH, HOME: state, CLAUDE_METRICS_STATE_DIR: state, CLAUDE_METRICS_ENDPOINT: process.env.CM_GUARD_ENDPOINT ?? 'http://127.0.0.1:1/metrics/harness', CLAUDE_METRICS_STORE_MIN_FREE_BYTES: '0' }, ['--db', join(disk.dir, 'c.db')]);
    });
    afterAll(async () => {
      await serve?.stop();
    });

    it('answers 503 with Retry-After and the reason while full, /healthz is not ok, /metrics counts it; then recovers with every acknowledged event stored', async () => {
      const first = batch(100, 'before');
      expect((await postJson(serve.endpoint, { events: first })).status).toBe(200);
      acked.push(...first.map((e) => e.event_id));
      disk.fill();
      let sawRefusal: { status: number; body: unknown; retryAfter: string | null } | null = null;
      for (let i = 0; i < 60 && !sawRefusal; i++) {
        const events = batch(200, `full-${i}`);
        const res = await fetch(serve.endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ events }) });
        const body = await res.json();
        if (res.status === 200) acked.push(...events.map((e) => e.event_id));
        else {
          refused.push(events);
          sawRefusal = { status: res.status, body, retryAfter: res.headers.get('retry-after') };
        }
      }
      expect(sawRefusal).toEqual({ status: 503, body: { error: 'storage unavailable: no space left on device', reason: 'no_space' }, retryAfter: '10' });
      // Bad input still gets its 4xx, not a 5xx, while the disk is full.
      expect((await postJson(serve.endpoint, '{nope')).status).toBe(400);
      const hz = await getJson(`${serve.url}/healthz`);
      expect(hz.status).toBe(503);
      expect(hz.body).toMatchObject({ ok: false, error: 'storage unavailable: no space left on device' });
      const metrics = (await getJson(`${serve.url}/metrics`)).body as string;
      expect(metrics).toMatch(/^claude_harness_store_available 0$/m);
      const failures = Number(/^claude_harness_store_write_failures_total\{reason="no_space"\} (\d+)$/m.exec(metrics)?.[1]);
      expect(failures).toBeGreaterThanOrEqual(1);
      // Still full: a retry is refused again (at once, without touching the store).
      const again = await postJson(serve.endpoint, { events: refused[0] });
      expect(again.status).toBe(503);

      disk.unfill();
      // Recovers by itself: the probe finds writes work again.
      await waitFor(async () => (await getJson(`${serve.url}/healthz`)).status === 200, { timeoutMs: 15_000, intervalMs: 200 });
      for (const events of refused) {
        const r = await postJson(serve.endpoint, { events });
        expect(r.status).toBe(200);
        acked.push(...events.map((e) => e.event_id));
      }
      const after = (await getJson(`${serve.url}/metrics`)).body as string;
      expect(after).toMatch(/^claude_harness_store_available 1$/m);
      expect(Number(/^claude_harness_store_write_failures_total\{reason="no_space"\} (\d+)$/m.exec(after)?.[1])).toBeGreaterThanOrEqual(failures);
      expect(await serve.stop()).toBe(0);
      const db = new Database(join(disk.dir, 'c.db'), { readonly: true });
      try {
        const stored = new Set((db.prepare('SELECT event_id FROM harness_events').all() as Array<{ event_id: string }>).map((r) => r.event_id));
        expect(acked.filter((id) => !stored.has(id))).toEqual([]);
        expect(stored.size).toBe(acked.length);
      } finally {
        db.close();
      }
    });

    it('a nearly full disk is reported before a write fails (the free-space check)', async () => {
      const d = mount(1024);
      let probes = 0;
      const health = new StorageHealth({ probeWrite: () => void probes++, dataDir: d.dir });
      expect(await health.check()).toBe(false); // 1 MiB free is under the 2 MiB bound
      expect(health.unavailable).toMatchObject({ reason: 'no_space' });
      const roomy = new StorageHealth({ probeWrite: () => void probes++, dataDir: d.dir, minFreeBytes: 1024 });
      expect(await roomy.check()).toBe(true);
      d.fill();
      expect(await roomy.check()).toBe(false);
      d.unfill();
      await new Promise((r) => setTimeout(r, 1100)); // probes are at most one a second
      expect(await roomy.check()).toBe(true);
      expect(probes).toBe(1);
    });
  });
});

// Not root: the same file inside an unprivileged user + mount namespace, where the kernel allows it.
describe.skipIf(cannotMount === null || IN_NS)('on real file systems, without root', () => {
  const why = userNamespaceUnavailable();
  it.skipIf(why !== null)(`runs in a user + mount namespace (${cannotMount}${why ? `; skipped: ${why}` : ''})`, () => {
    const r = spawnSync('unshare', ['--user', '--map-root-user', '--mount', process.execPath, join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/disk-failures.test.ts'], {
      cwd: ROOT,
      env: { ...process.env, CM_TEST_IN_MOUNT_NS: '1' },
      encoding: 'utf8',
      timeout: 300_000,
    });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/Tests\s+\d+ passed/);
    expect(r.stdout).not.toMatch(/\d+ failed/);
  });
});

// PostgreSQL turned read-only (default_transaction_read_only, as a failover to a standby or an
// operator does): the same 503, /healthz and counter, recovering once it takes writes again.
describe.skipIf(IN_NS)('the collector on a PostgreSQL that turns read-only', () => {
  let pg: PgCluster;
  let serve: ServeHandle;
  let db: string;
  let state: string;
  beforeAll(async () => {
    pg = await startPostgres();
    db = await pg.createDb();
    state = tempDir('cm-pg-ro-');
    serve = await startServe({ PATH: process.env.PATH, HOME: state, CLAUDE_METRICS_STATE_DIR: state, CLAUDE_METRICS_ENDPOINT: process.env.CM_GUARD_ENDPOINT ?? 'http://127.0.0.1:1/metrics/harness' }, ['--db', db]);
  }, 120_000);
  afterAll(async () => {
    await serve?.stop();
    await pg?.stop();
    rmSync(state, { recursive: true, force: true });
  });
  /** ALTER SYSTEM + reload reaches the pooled sessions too; run from a session that stays writable. */
  const setReadOnly = async (on: boolean) => {
    const c = new Client({ connectionString: pg.url('postgres'), options: '-c default_transaction_read_only=off' });
    await c.connect();
    try {
      await c.query(on ? 'ALTER SYSTEM SET default_transaction_read_only = on' : 'ALTER SYSTEM RESET default_transaction_read_only');
      await c.query('SELECT pg_reload_conf()');
    } finally {
      await c.end();
    }
  };
  const ev = () => ({ event_id: uuidv7(), event: 'PostToolUse', source: 'api', session_id: 'pg-ro', tool_name: 'Bash', success: true, timestamp: new Date().toISOString() });

  it('answers 503 read_only with Retry-After, /healthz not ok, counted; recovers by itself with every acknowledged event stored', async () => {
    const acked: string[] = [];
    const first = ev();
    expect((await postJson(serve.endpoint, first)).status).toBe(200);
    acked.push(first.event_id);
    await setReadOnly(true);
    let refused: { status: number; body: unknown; retryAfter: string | null } | null = null;
    const refusedEvents: Array<ReturnType<typeof ev>> = [];
    for (let i = 0; i < 50 && !refused; i++) {
      const e = ev();
      const res = await fetch(serve.endpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(e) });
      const body = await res.json();
      if (res.status === 200) acked.push(e.event_id);
      else {
        refusedEvents.push(e);
        refused = { status: res.status, body, retryAfter: res.headers.get('retry-after') };
      }
      if (!refused) await new Promise((r) => setTimeout(r, 100)); // the reload reaches each session at its next statement
    }
    expect(refused).toMatchObject({ status: 503, body: { error: 'storage unavailable: the database is read-only', reason: 'read_only' } });
    expect(refused!.retryAfter).toMatch(/^\d+$/);
    expect((await getJson(`${serve.url}/healthz`)).status).toBe(503);
    const metrics = (await getJson(`${serve.url}/metrics`)).body as string;
    expect(metrics).toMatch(/^claude_harness_store_available 0$/m);
    expect(Number(/^claude_harness_store_write_failures_total\{reason="read_only"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);

    await setReadOnly(false);
    await waitFor(async () => (await getJson(`${serve.url}/healthz`)).status === 200, { timeoutMs: 20_000, intervalMs: 250 });
    for (const e of refusedEvents) {
      expect((await postJson(serve.endpoint, e)).status).toBe(200);
      acked.push(e.event_id);
    }
    const rows = await pg.query<{ event_id: string }>(db.slice(db.lastIndexOf('/') + 1), 'SELECT event_id FROM harness_events');
    const stored = new Set(rows.map((r) => r.event_id));
    expect(acked.filter((id) => !stored.has(id))).toEqual([]);
  }, 120_000);
});
