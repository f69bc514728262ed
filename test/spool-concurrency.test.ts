/**
 * The delivery invariant under concurrency and crashes, with real processes:
 * every event arrives at least once (none missing by event_id) and the spool's
 * claims keep concurrent flushers from sending the same file twice.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/ids';
import { statePaths } from '../src/paths';
import { Spool } from '../src/spool/spool';
import { BIN, runCli, tempHome, waitFor, type TempHome } from './helpers/cli';

/** A collector that can be taken down and brought back on the same port. */
class FlakyCollector {
  server: Server | null = null;
  port = 0;
  received: string[] = [];
  tasks: string[] = [];
  requests = 0;
  /** Requests fully received (answered or not). */
  arrived = 0;
  delayMs = 0;

  async start(port = 0): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.arrived++;
        this.requests++;
        type Ev = { event_id: string; task_id?: string };
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { events?: Ev[] } & Ev;
        const events = body.events ?? [body];
        const answer = (r: ServerResponse) => {
          for (const e of events) {
            this.received.push(e.event_id);
            if (e.task_id) this.tasks.push(e.task_id);
          }
          r.writeHead(200, { 'content-type': 'application/json' });
          r.end(JSON.stringify({ accepted: events.length, duplicates: 0, rejected: [] }));
        };
        if (this.delayMs > 0) setTimeout(() => answer(res), this.delayMs);
        else answer(res);
      });
    });
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}/metrics/harness`;
  }
}

let home: TempHome;
let collector: FlakyCollector;

beforeEach(async () => {
  home = tempHome();
  collector = new FlakyCollector();
  await collector.start();
});
afterEach(async () => {
  await collector.stop();
  home.cleanup();
});

/** Event files in new/, or claimed in cur/ (flushers claim into batch directories). */
const waiting = (h: TempHome, sub: 'new' | 'cur' = 'new'): number => {
  const d = join(h.stateDir, 'spool', sub);
  if (!existsSync(d)) return 0;
  let n = 0;
  for (const e of readdirSync(d, { withFileTypes: true })) {
    if (e.isDirectory()) n += readdirSync(join(d, e.name)).filter((f) => f.endsWith('.json')).length;
    else if (e.name.endsWith('.json')) n++;
  }
  return n;
};

/** Runs flush until the spool is drained (bounded). */
async function drain(env: Record<string, string>): Promise<void> {
  for (let i = 0; i < 10; i++) {
    const r = await runCli(['flush'], { env });
    if (r.code === 0 && waiting(home) === 0 && waiting(home, 'cur') === 0) return;
  }
  throw new Error('spool did not drain');
}

describe('no event lost, none sent twice by the spool', () => {
  it('20 concurrent emitters while the collector goes down and comes back', async () => {
    const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: collector.endpoint, CLAUDE_METRICS_SELF: '/bin/true', CLAUDE_METRICS_TIMEOUT_MS: '1000' };
    const PER_WORKER = 4;
    const expected = new Set<string>();
    const worker = async (w: number) => {
      for (let j = 0; j < PER_WORKER; j++) {
        const task = `w${w}-${j}`;
        expected.add(task);
        const r = await runCli(['emit', '--event', 'ralph_task_completed', '--task-id', task], { env });
        expect(r.code).toBe(0);
        expect(r.stdout).toBe('');
      }
    };
    const flap = (async () => {
      // Down and up twice while the emitters run.
      for (let k = 0; k < 2; k++) {
        await new Promise((r) => setTimeout(r, 400));
        const port = collector.port;
        await collector.stop();
        await new Promise((r) => setTimeout(r, 600));
        await collector.start(port);
      }
    })();
    await Promise.all([...Array.from({ length: 20 }, (_, w) => worker(w)), flap]);
    expect(collector.server).not.toBeNull();
    await drain(env);

    // Every emit's event arrived (by task), each as one distinct event id; a
    // duplicate delivery is allowed here, the collector dedupes by event_id.
    expect(new Set(collector.tasks)).toEqual(expected);
    expect(new Set(collector.received).size).toBe(expected.size);
  }, 120_000);

  it('emitters spooling while flushers claim the spool lose nothing (the claim races their renames)', async () => {
    const { deadPort } = await import('./helpers/cli');
    const spoolEnv = { ...home.env, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${await deadPort()}/metrics/harness`, CLAUDE_METRICS_SELF: '/bin/true', CLAUDE_METRICS_MAX_SPOOL_FILES: '1000000' };
    const flushEnv = { ...home.env, CLAUDE_METRICS_ENDPOINT: collector.endpoint, CLAUDE_METRICS_BATCH_SIZE: '7' };
    const expected = new Set<string>();
    let emitting = true;
    const emitters = Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let j = 0; j < 8; j++) {
          const task = `s${w}-${j}`;
          expected.add(task);
          expect((await runCli(['emit', '--event', 'e', '--task-id', task], { env: spoolEnv })).code).toBe(0);
        }
      }),
    ).finally(() => {
      emitting = false;
    });
    const flushers = Promise.all(
      [0, 1].map(async () => {
        for (let k = 0; emitting && k < 200; k++) await runCli(['flush'], { env: flushEnv });
      }),
    );
    await Promise.all([emitters, flushers]);
    await new Promise((r) => setTimeout(r, 100));
    await runCli(['flush', '--lease-ms', '1000'], { env: flushEnv });
    await new Promise((r) => setTimeout(r, 1100)); // a claim orphaned by nobody still ages out
    await drain({ ...flushEnv, CLAUDE_METRICS_LEASE_MS: '1000' });
    expect(new Set(collector.tasks)).toEqual(expected);
    expect(collector.tasks.length).toBe(expected.size); // and no flusher sent a file twice
  }, 120_000);

  it('two concurrent flushers deliver every spooled event exactly once between them', async () => {
    const paths = statePaths(home.stateDir);
    const spool = new Spool(paths);
    const ids: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const id = uuidv7(Date.now() + i);
      ids.push(id);
      const w = spool.write(id, JSON.stringify({ event_id: id, event: 'e', source: 'api', timestamp: new Date().toISOString(), attrs: { i } }));
      expect(w.ok).toBe(true);
    }
    const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: collector.endpoint, CLAUDE_METRICS_BATCH_SIZE: '100' };
    const [a, b] = await Promise.all([runCli(['flush'], { env }), runCli(['flush'], { env })]);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(collector.received.length).toBe(3000); // no file was sent by both
    expect(new Set(collector.received)).toEqual(new Set(ids));
    expect(waiting(home)).toBe(0);
  }, 120_000);

  it('kill -9 of a flusher mid-batch loses nothing: the lease returns its claims', async () => {
    const paths = statePaths(home.stateDir);
    const spool = new Spool(paths);
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) {
      const id = uuidv7(Date.now() + i);
      ids.push(id);
      spool.write(id, JSON.stringify({ event_id: id, event: 'e', source: 'api', timestamp: new Date().toISOString() }));
    }
    collector.delayMs = 5000; // the first batch hangs in flight
    const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: collector.endpoint, CLAUDE_METRICS_BATCH_SIZE: '100' };
    const child = spawn(process.execPath, [BIN, 'flush'], { env, stdio: 'ignore' });
    await waitFor(() => collector.arrived > 0); // the first batch is on the wire
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await exited;
    expect(waiting(home, 'cur')).toBe(300); // the whole claim, orphaned
    collector.delayMs = 0;

    // Inside the lease the claims are left alone (their owner might still be alive)...
    const early = await runCli(['flush', '--lease-ms', '60000'], { env });
    expect(early.code).toBe(0);
    expect(waiting(home, 'cur')).toBe(300);
    // ...after it they are reclaimed and delivered.
    await new Promise((r) => setTimeout(r, 1100));
    const late = await runCli(['flush', '--lease-ms', '1000'], { env });
    expect(late.code).toBe(0);
    expect(waiting(home, 'cur')).toBe(0);
    const missing = ids.filter((id) => !collector.received.includes(id));
    expect(missing).toEqual([]);
  }, 120_000);

  it('kill -9 of emitters at random moments never leaves a torn event in new/', async () => {
    const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: collector.endpoint, CLAUDE_METRICS_SELF: '/bin/true' };
    collector.delayMs = 2000; // emitters are in flight when killed
    await Promise.all(Array.from({ length: 10 }, (_, i) => runCli(['emit', '--event', `k${i}`], { env, killAfterMs: 40 + i * 15 })));
    collector.delayMs = 0;
    // Whatever was written is whole JSON (tmp → rename), and flush delivers it.
    const r = await runCli(['flush'], { env });
    expect(r.code).toBe(0);
    expect(waiting(home)).toBe(0);
    const { readdirSync: rd } = await import('node:fs');
    const dead = existsSync(join(home.stateDir, 'spool', 'dead')) ? rd(join(home.stateDir, 'spool', 'dead')) : [];
    expect(dead).toEqual([]);
  }, 60_000);
});
