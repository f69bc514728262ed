/**
 * One flusher per state directory, and none while the breaker says the collector is down: a
 * burst of Stop hooks (emit and the fast hook) against a blackholed collector leaves at most one
 * flushing process, and once the collector is back the spool arrives exactly once. Processes are
 * counted from /proc (only those with this test's HOME), flush runs from the debug log.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, deadPort, DIST_CLI, ROOT, runCli, runProcess, tempHome, waitFor, type TempHome } from './helpers/cli';

const HOOK = join(ROOT, 'bin', 'claude-metrics-hook');

/** A collector that can be blackholed (accepts, never answers) and brought back. */
async function switchableCollector() {
  let up = false;
  const held: ServerResponse[] = [];
  const sockets = new Set<Socket>();
  const received: Array<Record<string, unknown>> = [];
  let blackholed = 0;
  const server = createServer((req, res) => {
    if (!up) {
      blackholed++;
      held.push(res);
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'POST') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> & { events?: Array<Record<string, unknown>> };
        received.push(...(Array.isArray(body.events) ? body.events : [body]));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ accepted: Array.isArray(body.events) ? body.events.length : 1, duplicates: 0, rejected: [] }));
      } else res.writeHead(204).end();
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}/metrics/harness`,
    received,
    blackholedRequests: () => blackholed,
    /** Back up: what it held is dropped (those clients gave up long ago), new requests are answered. */
    up() {
      up = true;
      for (const r of held.splice(0)) r.destroy();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Our `flush` and `drain` processes alive now (by this test's HOME; the CLI as bin/ or dist/). */
function countProcesses(home: string): { flush: number; drain: number } {
  const n = { flush: 0, drain: 0 };
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const at = argv.findIndex((a) => a === DIST_CLI || a === BIN);
      if (at < 0) continue;
      const cmd = argv[at + 1];
      if (cmd !== 'flush' && cmd !== 'drain') continue;
      if (!readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`HOME=${home}`)) continue;
      n[cmd]++;
    } catch {
      /* gone meanwhile */
    }
  }
  return n;
}

/** Samples every 25 ms: the most `flush` and `drain` processes alive at once. */
function processSampler(home: string) {
  const max = { flush: 0, drain: 0, samples: 0 };
  const sample = () => {
    const n = countProcesses(home);
    max.flush = Math.max(max.flush, n.flush);
    max.drain = Math.max(max.drain, n.drain);
    max.samples++;
  };
  const timer = setInterval(sample, 25);
  return {
    max,
    stop() {
      clearInterval(timer);
      sample();
      return max;
    },
  };
}

const noneLeft = (home: string) => waitFor(() => {
  const n = countProcesses(home);
  return n.flush + n.drain === 0;
}, { timeoutMs: 20_000 });

/** The flush runs in the log, as [pid, start, end]; none may overlap another. */
function flushRuns(stateDir: string): Array<[number, number, number]> {
  const log = join(stateDir, 'claude-metrics.log');
  if (!existsSync(log)) return [];
  const open = new Map<number, number>();
  const runs: Array<[number, number, number]> = [];
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    if (!line) continue;
    const l = JSON.parse(line) as { msg: string; pid: number; time: number };
    if (l.msg === 'flush started') open.set(l.pid, l.time);
    if (l.msg === 'flush finished') {
      runs.push([l.pid, open.get(l.pid)!, l.time]);
      open.delete(l.pid);
    }
  }
  expect(open.size, 'a flush that never finished').toBe(0);
  return runs.sort((a, b) => a[1] - b[1]);
}

const logLines = (stateDir: string, msg: string) => readFileSync(join(stateDir, 'claude-metrics.log'), 'utf8').split('\n').filter((l) => l.includes(`"msg":"${msg}"`)).length;
const waiting = (stateDir: string) => ['new', 'cur'].flatMap((d) => (existsSync(join(stateDir, 'spool', d)) ? readdirSync(join(stateDir, 'spool', d)) : [])).filter((n) => !n.startsWith('.'));

let t: TempHome;
let collector: Awaited<ReturnType<typeof switchableCollector>>;
beforeEach(async () => {
  t = tempHome('cm-flusher-');
  collector = await switchableCollector();
});
afterEach(async () => {
  // Nothing of ours may outlive the test (a drainer leaves 300 ms after its last file).
  await noneLeft(t.home).catch(() => undefined);
  await collector.close();
  t.cleanup();
});

describe('one flusher per state directory', () => {
  it('a burst of Stop hooks (emit and the fast hook) against a blackholed collector leaves at most one flusher; back up, the spool arrives exactly once', async () => {
    // A roomy emit deadline: on a loaded machine 300 ms can pass before the request is even sent.
    const env = { ...t.env, CLAUDE_METRICS_ENDPOINT: collector.endpoint, CLAUDE_METRICS_BREAKER_MAX_BACKOFF_MS: '1500', CLAUDE_METRICS_TIMEOUT_MS: '2000', CLAUDE_METRICS_LOG_LEVEL: 'debug' };
    const stop = (session: string) => JSON.stringify({ session_id: session, cwd: t.home, hook_event_name: 'Stop', stop_hook_active: false });
    const fastHook = (input: string) => runProcess('/bin/sh', [HOOK, process.execPath, DIST_CLI], { input, env, cwd: t.home }).then((r) => r.code);
    const sampler = processSampler(t.home);
    try {
      // The outage: task events pile up (the first one costs a deadline and opens the breaker).
      for (let i = 0; i < 3; i++) expect((await runCli(['emit', '--source', 'ralph', '--event', 'ralph_task_started', '--task-id', `T${i}`], { env })).code).toBe(0);
      // Six Stops through emit and six through the fast hook, all at once.
      const burst = await Promise.all([
        ...Array.from({ length: 6 }, (_, i) => runCli(['emit'], { env, input: stop(`emit-${i}`) }).then((r) => r.code)),
        ...Array.from({ length: 6 }, (_, i) => fastHook(stop(`fast-${i}`))),
      ]);
      expect(burst).toEqual(Array(12).fill(0));
      // Every hook's event waits in the spool (or the inbox, for a drainer still at work).
      await waitFor(() => waiting(t.stateDir).length === 15, { timeoutMs: 20_000 });
      expect(collector.received).toEqual([]);

      // Back up. The first hooks after the breaker's probe time deliver, and start the one flusher.
      collector.up();
      const { openUntil } = JSON.parse(readFileSync(join(t.stateDir, 'breaker.json'), 'utf8')) as { openUntil: number };
      await waitFor(() => Date.now() > openUntil, { timeoutMs: 10_000 });
      const after = await Promise.all([
        ...Array.from({ length: 6 }, (_, i) => runCli(['emit'], { env, input: stop(`emit-after-${i}`) }).then((r) => r.code)),
        ...Array.from({ length: 3 }, (_, i) => fastHook(stop(`fast-after-${i}`))),
      ]);
      expect(after).toEqual(Array(9).fill(0));
      const delivered = () => collector.received.length >= 24 && waiting(t.stateDir).length === 0;
      // On a starved machine a hook may time out after all and leave its event for cron's flush.
      if (!(await waitFor(delivered, { timeoutMs: 20_000 }).catch(() => false))) expect((await runCli(['flush'], { env })).code).toBe(0);
      await waitFor(delivered, { timeoutMs: 30_000 });
      await noneLeft(t.home);
    } finally {
      sampler.stop();
    }
    // Every event arrives: 3 tasks + 12 Stops in the outage + 9 after it. (Delivery is at least once:
    // on a starved machine a hook can give up on an answer that then arrives, and its spooled copy
    // goes again; the collector's event_id makes that count once. So ids are counted, not requests.)
    const ids = collector.received.map((e) => e.event_id as string);
    expect(new Set(ids).size).toBe(24);
    // A resend is a timing accident, a resend loop is a bug: no event goes more than twice again.
    const copies = new Map<string, number>();
    for (const id of ids) copies.set(id, (copies.get(id) ?? 0) + 1);
    expect(Math.max(...copies.values()), 'copies of one event').toBeLessThanOrEqual(3);
    expect(new Set(collector.received.filter((e) => e.event === 'Stop').map((e) => e.event_id)).size).toBe(21);
    // Never two flushers, never two flush runs at once (in any process: flush, drainer). Hooks
    // racing to start a drainer may start a few that find one running and leave at once: the
    // drainer's pid file lets one work (test/fast-hook.test.ts), so they are not counted here.
    expect(sampler.max.samples).toBeGreaterThan(10);
    expect(sampler.max.flush).toBeLessThanOrEqual(1);
    const runs = flushRuns(t.stateDir);
    expect(runs.length).toBeGreaterThan(0);
    for (let i = 1; i < runs.length; i++) expect(runs[i]![1], `flush runs ${JSON.stringify(runs)}`).toBeGreaterThanOrEqual(runs[i - 1]![2]);
  });

  it('five background flushers at once: one sends, the others leave at once; a person’s flush waits its turn and delivers', async () => {
    const env = { ...t.env, CLAUDE_METRICS_ENDPOINT: collector.endpoint, CLAUDE_METRICS_LOG_LEVEL: 'debug', CLAUDE_METRICS_FLUSH_TIMEOUT_MS: '3000' };
    for (let i = 0; i < 3; i++) await runCli(['emit', '--event', `e${i}`], { env });
    expect(waiting(t.stateDir)).toHaveLength(3);
    const tried = collector.blackholedRequests();
    rmSync(join(t.stateDir, 'breaker.json')); // the breaker would keep them all off the network
    const background = await Promise.all(Array.from({ length: 5 }, () => runCli(['flush', '--background'], { env })));
    expect(background.map((r) => [r.code, r.stdout])).toEqual(Array(5).fill([0, '']));
    // One flusher tried the collector, once (and stopped there: the breaker says when to try again).
    expect(collector.blackholedRequests() - tried).toBe(1);
    // The others left without a try: the lock was held (or, started late, the breaker was open).
    const locked = logLines(t.stateDir, 'flush: another flusher holds the spool');
    const breakerOpen = logLines(t.stateDir, 'flush: breaker open, not trying');
    expect(locked + breakerOpen).toBe(4);
    expect(locked).toBeGreaterThan(0);
    expect(waiting(t.stateDir)).toHaveLength(3);

    // While the breaker is open a background flush does not even try.
    const before = collector.blackholedRequests();
    expect((await runCli(['flush', '--background'], { env })).code).toBe(0);
    expect(collector.blackholedRequests()).toBe(before);
    expect(logLines(t.stateDir, 'flush: breaker open, not trying')).toBeGreaterThan(breakerOpen);

    // A person's flush while a background one holds the spool: it waits its turn, then delivers.
    rmSync(join(t.stateDir, 'breaker.json'));
    const holder = runCli(['flush', '--background'], { env });
    await waitFor(() => collector.blackholedRequests() > before, { timeoutMs: 10_000 });
    const person = runCli(['flush', '--verbose'], { env });
    await waitFor(() => logLines(t.stateDir, 'flush: waiting for the flush in progress') > 0, { timeoutMs: 10_000 });
    collector.up();
    const mine = await person;
    expect(mine.code).toBe(0);
    expect(mine.stderr).toMatch(/flush: delivered 3,/);
    expect((await holder).code).toBe(0);
    expect(collector.received.map((e) => e.event).sort()).toEqual(['e0', 'e1', 'e2']);
    const runs = flushRuns(t.stateDir);
    for (let i = 1; i < runs.length; i++) expect(runs[i]![1]).toBeGreaterThanOrEqual(runs[i - 1]![2]);
  });

  it('a lock left by a dead flusher, or one far older than any flush runs, is taken over', async () => {
    const env = { ...t.env, CLAUDE_METRICS_LOG_LEVEL: 'debug', CLAUDE_METRICS_ENDPOINT: collector.endpoint };
    const down = { ...env, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${await deadPort()}/metrics/harness` };
    collector.up();
    await runCli(['emit', '--event', 'x'], { env: down });
    const lock = join(t.stateDir, 'flush.pid');
    // A pid that is gone (a finished child of ours).
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    writeFileSync(lock, dead);
    rmSync(join(t.stateDir, 'breaker.json'), { force: true });
    expect((await runCli(['flush'], { env })).code).toBe(0);
    expect(collector.received.map((e) => e.event)).toEqual(['x']);
    expect(existsSync(lock)).toBe(false);
    // A live pid (this test runner), but the file is older than twice the flush deadline plus a minute.
    await runCli(['emit', '--event', 'y'], { env: down });
    writeFileSync(lock, String(process.pid));
    const old = (Date.now() - 200_000) / 1000;
    utimesSync(lock, old, old);
    rmSync(join(t.stateDir, 'breaker.json'), { force: true });
    expect((await runCli(['flush'], { env: { ...env, CLAUDE_METRICS_FLUSH_TIMEOUT_MS: '10000' } })).code).toBe(0);
    expect(collector.received.map((e) => e.event)).toEqual(['x', 'y']);
    // A live holder that is not stale: a person's flush waits for it until its deadline, then says so.
    await runCli(['emit', '--event', 'z'], { env: down });
    writeFileSync(lock, String(process.pid));
    const r = await runCli(['flush', '--verbose', '--timeout-ms', '600'], { env });
    expect(r.code).toBe(75);
    expect(r.stderr).toContain(`another flush (pid ${process.pid}) is delivering the spool; 1 waiting`);
    rmSync(lock);
  });
});
