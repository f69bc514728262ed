/**
 * Test plumbing shared by every suite: the built CLI as a real process, a temp
 * HOME (never the real ~/.claude), and a capture server on 127.0.0.1:0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';

export const ROOT = resolve(__dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'claude-metrics');
export const DIST_CLI = join(ROOT, 'dist', 'cli.cjs');

export interface TempHome {
  home: string;
  stateDir: string;
  /** An env for the CLI that points every path into the temp home. */
  env: Record<string, string>;
  cleanup(): void;
}

/** A fresh HOME with XDG dirs inside it, and an env with nothing from the developer's machine that could leak in. */
export function tempHome(prefix = 'cm-test-'): TempHome {
  const home = mkdtempSync(join(tmpdir(), prefix));
  const stateDir = join(home, '.local', 'state', 'claude-metrics');
  // Its own temp dir: the private fallback state dir (<TMPDIR>/claude-metrics-<uid>) is per test, not shared.
  mkdirSync(join(home, 'tmp'), { mode: 0o700 });
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    TZ: 'UTC',
    XDG_STATE_HOME: join(home, '.local', 'state'),
    XDG_CONFIG_HOME: join(home, '.config'),
    CLAUDE_CONFIG_DIR: join(home, '.claude'),
    // Never the default 127.0.0.1:8013: a test that wants a collector points at its own. This one is
    // the leak guard's sentinel (test/helpers/leak-guard.ts): reaching it fails the run.
    CLAUDE_METRICS_ENDPOINT: process.env.CM_GUARD_ENDPOINT ?? 'http://127.0.0.1:1/metrics/harness',
    // Marks this run's processes for the sentinel on 8013 (other runs on the machine have their own).
    ...(process.env.CM_LEAK_RUN ? { CM_LEAK_RUN: process.env.CM_LEAK_RUN } : {}),
    TMPDIR: join(home, 'tmp'),
    // Not the machine's /etc/claude-code policy file (install and doctor look at it): one inside the temp home, absent.
    CLAUDE_METRICS_MANAGED_SETTINGS: join(home, 'etc', 'claude-code', 'managed-settings.json'),
    // A drainer the fast hook starts leaves soon after its last file, not 30 s later.
    CLAUDE_METRICS_DRAIN_IDLE_MS: '300',
  };
  if (process.env.NODE_EXTRA_CA_CERTS) env.NODE_EXTRA_CA_CERTS = process.env.NODE_EXTRA_CA_CERTS;
  return { home, stateDir, env, cleanup: () => removeTempHome(home) };
}

/**
 * A detached worker a test started (a drainer finishing its idle wait, a transcript worker) may
 * still be creating files while we clean up, so one rmdir can meet ENOTEMPTY: try again for a few
 * seconds, then leave the directory to the OS's temp cleanup. A temp dir left behind is not a
 * failure of the code under test.
 */
function removeTempHome(home: string): void {
  for (let i = 0; i < 10; i++) {
    try {
      rmSync(home, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
      return;
    } catch (err) {
      if (!['ENOTEMPTY', 'EBUSY', 'EPERM'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
    }
  }
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  input?: string | Buffer;
  /** Leave stdin open and never write (a loop or cron that passes a stdin that never closes). */
  stdinOpen?: boolean;
  cwd?: string;
  /** Kill after this long (the test then sees signal SIGKILL). */
  killAfterMs?: number;
}

/** Runs `bin/claude-metrics <args>` as a real process and collects its output. */
export function runCli(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runProcess(process.execPath, [BIN, ...args], opts);
}

const TMP = realpathSync(tmpdir());
const FIXTURES = join(ROOT, 'test', 'fixtures');
const within = (p: string, dir: string) => {
  let r = resolve(p);
  try {
    r = realpathSync(r);
  } catch {
    /* not there yet */
  }
  return r === dir || r.startsWith(dir + sep);
};
const isDefaultCollector = (url: string) => {
  try {
    const u = new URL(url);
    return ['127.0.0.1', 'localhost', '[::1]', '0.0.0.0'].includes(u.hostname) && u.port === '8013';
  } catch {
    return false;
  }
};

/**
 * Every process a test starts runs in a temp HOME, with Claude Code's and our directories inside
 * it (or in test/fixtures, read only), and an endpoint that is not the default collector. A test
 * that would leak the developer's environment, real files or real collector fails here, loudly.
 */
export function assertHermeticEnv(env: Record<string, string | undefined> | undefined, what: string, isOurCli = true): void {
  if (!env) throw new Error(`leak guard: ${what} was started without an env, so it would inherit the ambient one; pass tempHome().env`);
  const problems: string[] = [];
  // A path under /dev/null cannot be written (a read-only HOME in a test): nothing can leak there.
  const unwritable = (v: string) => v === '/dev/null' || v.startsWith('/dev/null/');
  if (!env.HOME || (!within(env.HOME, TMP) && !unwritable(env.HOME))) problems.push(`HOME=${env.HOME ?? '(unset)'} is not under ${TMP}`);
  for (const k of ['CLAUDE_CONFIG_DIR', 'XDG_STATE_HOME', 'XDG_CONFIG_HOME', 'XDG_DATA_HOME', 'CLAUDE_METRICS_STATE_DIR', 'CLAUDE_METRICS_CONFIG']) {
    const v = env[k];
    if (v && !within(v, TMP) && !within(v, FIXTURES) && !unwritable(v)) problems.push(`${k}=${v} is outside the temp dir`);
  }
  for (const k of ['CLAUDE_METRICS_ENDPOINT', 'METRICS_ENDPOINT']) {
    const v = env[k];
    if (v && isDefaultCollector(v)) problems.push(`${k}=${v} is the default collector`);
  }
  // Our CLI with no endpoint goes to the default; another program (install.sh, claude) may be given
  // its endpoint in a config file of the temp HOME, and the sentinels watch the network anyway.
  if (isOurCli && !env.CLAUDE_METRICS_ENDPOINT && !env.METRICS_ENDPOINT) problems.push('no CLAUDE_METRICS_ENDPOINT: the CLI would use the default 127.0.0.1:8013');
  if (problems.length > 0) throw new Error(`leak guard: ${what}: ${problems.join('; ')}`);
}

export function runProcess(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  assertHermeticEnv(opts.env, [cmd, ...args.slice(0, 2)].join(' '), cmd === process.execPath && args[0] === BIN);
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { env: opts.env as NodeJS.ProcessEnv, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.stdin.on('error', () => {
      /* the child may exit before reading all of stdin */
    });
    const killer = opts.killAfterMs ? setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs) : undefined;
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (killer) clearTimeout(killer);
      resolvePromise({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), ms: Date.now() - started });
    });
    if (opts.stdinOpen) return;
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** Spawns a long-running CLI process (e.g. `serve`) and returns the child. */
export function spawnCli(args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string } = {}): ChildProcess {
  assertHermeticEnv(opts.env, `claude-metrics ${args.slice(0, 2).join(' ')}`);
  return spawn(process.execPath, [BIN, ...args], { env: opts.env as NodeJS.ProcessEnv, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface CapturedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface CaptureServer {
  url: string;
  /** http://127.0.0.1:PORT/metrics/harness */
  endpoint: string;
  port: number;
  requests: CapturedRequest[];
  /** Every event received, batches unwrapped. */
  events(): Array<Record<string, unknown>>;
  /** Replace the responder (default: 200 {"accepted":n,"duplicates":0,"rejected":[]}). */
  respond(fn: (req: CapturedRequest, res: ServerResponse) => void): void;
  close(): Promise<void>;
  server: Server;
}

/** A real HTTP server on 127.0.0.1:0 that records every request. */
export async function startCaptureServer(port = 0): Promise<CaptureServer> {
  const requests: CapturedRequest[] = [];
  let responder = (req: CapturedRequest, res: ServerResponse) => {
    let n = 1;
    try {
      const parsed = JSON.parse(req.body) as { events?: unknown[] };
      if (Array.isArray(parsed.events)) n = parsed.events.length;
    } catch {
      n = 0;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ accepted: n, duplicates: 0, rejected: [] }));
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const captured = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(captured);
      responder(captured, res);
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    endpoint: `http://127.0.0.1:${bound}/metrics/harness`,
    port: bound,
    requests,
    server,
    events() {
      const out: Array<Record<string, unknown>> = [];
      for (const r of requests) {
        if (r.method !== 'POST') continue;
        try {
          const parsed = JSON.parse(r.body) as Record<string, unknown> & { events?: Array<Record<string, unknown>> };
          if (Array.isArray(parsed.events)) out.push(...parsed.events);
          else out.push(parsed);
        } catch {
          /* not JSON */
        }
      }
      return out;
    },
    respond(fn) {
      responder = fn;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}

/** A port that refuses connections: bind, note the port, close. */
export async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Polls until fn returns a truthy value or the time is up (bounded; never loops forever). */
export async function waitFor<T>(fn: () => T | Promise<T>, { timeoutMs = 15_000, intervalMs = 50 } = {}): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: T;
  do {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, intervalMs));
  } while (Date.now() < until);
  throw new Error(`waitFor: condition not met within ${timeoutMs} ms`);
}

/**
 * Waits until the emitter side of a state dir has nothing left to deliver: no hook
 * file in the inbox and no drainer, an empty spool, no transcript worker. After
 * this every event that will reach the collector has reached it (or is a loss).
 */
export async function waitDelivered(stateDir: string, timeoutMs = 60_000): Promise<void> {
  const ls = (dir: string) => (existsSync(join(stateDir, dir)) ? readdirSync(join(stateDir, dir)) : []);
  const left = () => [...ls('inbox').filter((f) => f.endsWith('.hook') || f === 'drainer.pid').map((f) => `inbox/${f}`), ...ls(join('spool', 'new')).map((f) => `spool/new/${f}`), ...ls(join('spool', 'cur')).map((f) => `spool/cur/${f}`), ...ls('transcripts').filter((f) => f.endsWith('.lock') || f.endsWith('.worker')).map((f) => `transcripts/${f}`)];
  await waitFor(() => left().length === 0, { timeoutMs, intervalMs: 200 }).catch(() => {
    throw new Error(`waitDelivered: still to deliver after ${timeoutMs} ms: ${left().join(', ')}`);
  });
}

export interface ServeHandle {
  url: string;
  endpoint: string;
  child: ChildProcess;
  stderr(): string;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `claude-metrics serve --port 0` as a real process and waits for its listening line. */
export async function startServe(env: Record<string, string | undefined>, args: string[] = []): Promise<ServeHandle> {
  const child = spawnCli(['serve', '--port', '0', ...args], { env });
  let err = '';
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 20_000);
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      const m = /listening on (http:\/\/[^\s]+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]!);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited ${code}: ${err}`));
    });
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return {
    url,
    endpoint: `${url}/metrics/harness`,
    child,
    stderr: () => err,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** POST JSON (or raw text) with fetch; returns status and parsed body. */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed };
}

export async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed };
}
