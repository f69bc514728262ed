/**
 * vitest globalSetup: no test may reach a real collector, the real HOME or the real ~/.claude.
 *
 * - A sentinel listens on 127.0.0.1:8013, the default endpoint (what `install.sh --with-collector`
 *   starts): anything that connects during the run fails it. When 8013 is taken (a collector of
 *   the user's, or another test run's sentinel on this machine) the run says so and relies on the
 *   checks below; it never fails for that alone.
 * - A second sentinel on a free port is the endpoint every test environment gets by default
 *   (tempHome sets CLAUDE_METRICS_ENDPOINT to it): a test that forgets to point the CLI at its own
 *   server reaches it, and the run fails, whoever holds 8013.
 * - The environment the test processes inherit is re-rooted in a temp directory (HOME, XDG dirs,
 *   CLAUDE_CONFIG_DIR, no CLAUDE_METRICS_* of the developer's) with the guard endpoint, so even a
 *   process spawned with the ambient environment touches nothing real. test/helpers/cli.ts checks
 *   every environment it spawns with (see assertHermeticEnv).
 *
 * CM_LEAK_SENTINEL_PORT overrides 8013 and CM_LEAK_REPORT the report file (.test-output/leaks.json):
 * test/leak-guard.test.ts runs nested suites with them.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..');

interface Hit {
  sentinel: string;
  at: string;
  request: string;
}

/**
 * The process at the other end of a connection to us, from /proc (Linux): the socket of the
 * client's port, then the process holding it. The client waits for our answer, so it is there.
 */
function peerProcess(remotePort: number, localPort: number): { pid: number; env: string; cmdline: string } | null {
  try {
    const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
    let inode = '';
    for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
      for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f[1]?.endsWith(`:${hex(remotePort)}`) && f[2]?.endsWith(`:${hex(localPort)}`)) inode = f[9] ?? '';
      }
    }
    if (!inode || inode === '0') return null;
    const target = `socket:[${inode}]`;
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      let fds: string[];
      try {
        fds = readdirSync(`/proc/${pid}/fd`);
      } catch {
        continue;
      }
      for (const fd of fds) {
        try {
          if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== target) continue;
        } catch {
          continue;
        }
        return { pid: Number(pid), env: readFileSync(`/proc/${pid}/environ`, 'latin1'), cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ') };
      }
    }
  } catch {
    /* no /proc: every connection counts */
  }
  return null;
}

function sentinel(name: string, hits: Hit[], foreign: Hit[], runId: string, privatePort: boolean): Server {
  return createServer((socket: Socket) => {
    // Only this run knows the guard endpoint's port: whatever reaches it is ours. Another test run
    // on this machine (another checkout) may reach 127.0.0.1:8013 too: there only a process shown
    // to be of this run (its environment carries the run's mark, or it runs this checkout's code)
    // fails this run; one gone before it could be looked up (a client past its deadline) is listed.
    const peer = privatePort || !socket.remotePort || !socket.localPort ? null : peerProcess(socket.remotePort, socket.localPort);
    const ours = privatePort || (peer !== null && (peer.env.split('\0').includes(`CM_LEAK_RUN=${runId}`) || peer.cmdline.includes(`${ROOT}/`)));
    const into = ours ? hits : foreign;
    const who = peer ? ` [pid ${peer.pid}: ${peer.cmdline.slice(0, 160)}]` : '';
    const chunks: Buffer[] = [];
    let size = 0;
    const record = () => {
      const text = Buffer.concat(chunks).toString('utf8');
      // The request line, the user agent and the start of the body say which command leaked.
      const [head = '', body = ''] = text.split('\r\n\r\n');
      const lines = head.split('\r\n');
      const ua = lines.find((l) => /^user-agent:/i.test(l)) ?? '';
      into.push({ sentinel: name, at: new Date().toISOString(), request: `${lines[0] ?? '(no request line)'} ${ua} ${body.slice(0, 300)}${who}`.trim() });
    };
    let recorded = false;
    const once = () => {
      if (!recorded) {
        recorded = true;
        record();
      }
    };
    socket.on('data', (c: Buffer) => {
      if (size < 4096) chunks.push(c);
      size += c.length;
      if (size >= 4096 || c.includes('\r\n\r\n')) {
        // Refuse in a way no client takes for a delivery: 503, then close.
        socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 30\r\nconnection: close\r\n\r\nclaude-metrics test sentinel\r\n');
        setTimeout(once, 20).unref();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', once);
  });
}

function listen(server: Server, port: number): Promise<number | NodeJS.ErrnoException> {
  return new Promise((resolvePort) => {
    server.once('error', (err: NodeJS.ErrnoException) => resolvePort(err));
    server.listen(port, '127.0.0.1', () => {
      const a = server.address();
      resolvePort(typeof a === 'object' && a ? a.port : port);
    });
  });
}

export default async function setup(): Promise<() => Promise<void>> {
  const hits: Hit[] = [];
  const foreign: Hit[] = [];
  const runId = randomUUID();
  const defaultPort = Number(process.env.CM_LEAK_SENTINEL_PORT || 8013);
  const onDefault = sentinel(`127.0.0.1:${defaultPort}`, hits, foreign, runId, false);
  const bound = await listen(onDefault, defaultPort);
  const guard = sentinel('guard endpoint', hits, foreign, runId, true);
  const guardPort = await listen(guard, 0);
  if (typeof guardPort !== 'number') throw new Error(`leak guard: cannot listen on 127.0.0.1: ${guardPort.message}`);
  if (typeof bound !== 'number') {
    process.stderr.write(
      `leak guard: 127.0.0.1:${defaultPort} is already in use (a collector, or another test run's sentinel); not watching it. ` +
        `Every test environment still points at this run's guard endpoint, which must receive nothing, and the CLI is only ever spawned with a temp HOME.\n`,
    );
  }

  // The environment test workers and their children inherit: nothing of the developer's.
  const ambient = mkdtempSync(join(tmpdir(), 'cm-ambient-'));
  for (const k of Object.keys(process.env)) if (k.startsWith('CLAUDE_METRICS_') || k === 'METRICS_ENDPOINT' || k === 'CLAUDE_CONFIG_DIR' || k.startsWith('XDG_')) delete process.env[k];
  mkdirSync(join(ambient, 'home'), { mode: 0o700 });
  process.env.HOME = join(ambient, 'home');
  process.env.XDG_STATE_HOME = join(ambient, 'home', '.local', 'state');
  process.env.XDG_CONFIG_HOME = join(ambient, 'home', '.config');
  process.env.XDG_DATA_HOME = join(ambient, 'home', '.local', 'share');
  process.env.CLAUDE_CONFIG_DIR = join(ambient, 'home', '.claude');
  process.env.CLAUDE_METRICS_ENDPOINT = `http://127.0.0.1:${guardPort}/metrics/harness`;
  process.env.CM_GUARD_ENDPOINT = process.env.CLAUDE_METRICS_ENDPOINT;
  process.env.CM_LEAK_RUN = runId;
  process.env.CM_LEAK_GUARD = typeof bound === 'number' ? `watching 127.0.0.1:${defaultPort}` : `127.0.0.1:${defaultPort} in use`;

  return async () => {
    await new Promise<void>((r) => guard.close(() => r()));
    if (typeof bound === 'number') await new Promise<void>((r) => onDefault.close(() => r()));
    // A connection still open at the end is recorded on close; give it a moment.
    await new Promise((r) => setTimeout(r, 50));
    rmSync(ambient, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    const report = process.env.CM_LEAK_REPORT || join(ROOT, '.test-output', 'leaks.json');
    try {
      mkdirSync(dirname(report), { recursive: true });
      writeFileSync(report, `${JSON.stringify({ ours: hits, other_runs: foreign }, null, 1)}\n`);
    } catch {
      /* the messages below say it all */
    }
    if (foreign.length > 0) process.stderr.write(`leak guard: ${foreign.length} connection(s) to ${defaultPort} not from this run (other test runs on this machine, or gone before they could be looked up; listed in ${report})\n`);
    if (hits.length === 0) return;
    // vitest only logs an error thrown here ("error during close"): the exit status is ours to set.
    process.exitCode = 1;
    const list = hits.slice(0, 10).map((h) => `  ${h.at} ${h.sentinel}: ${h.request}`).join('\n');
    throw new Error(`leak guard: ${hits.length} connection(s) reached a sentinel during the tests; a test used the default endpoint or the ambient environment:\n${list}`);
  };
}
