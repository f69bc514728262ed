#!/usr/bin/env node
// The Python middleware's added latency per request: the same FastAPI harness app
// (test/fixtures/api-harness/harness_app.py) under uvicorn with and without
// ClaudeMetricsMiddleware, each POST /v1/chat/completions timed at the client,
// N requests to each over C concurrent keep-alive connections, a live `claude-metrics
// serve` receiving the events. The two apps take turns in blocks of B requests, so a
// machine whose speed drifts (this VM's does, by a third) slows both alike; the
// percentiles are over all N of each. Then bench/middleware_asgi.py measures the CPU
// the middleware adds per request, its sender thread included, without the network.
// Usage: node bench/middleware.mjs [--requests 2000] [--concurrency 20] [--block 200] [--sink]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : def);
const N = arg('--requests', 2000);
const C = arg('--concurrency', 20);
const BLOCK = arg('--block', 200);
const PY = '/usr/bin/python3';

if (spawnSync(PY, ['-c', 'import fastapi, uvicorn'], { stdio: 'ignore' }).status !== 0) {
  console.log('skipped: needs python3-fastapi and python3-uvicorn (npm test installs them)');
  process.exit(0);
}

const home = mkdtempSync(join(tmpdir(), 'cm-bench-mw-'));
const children = [];
const stopAll = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
};
process.on('exit', () => {
  stopAll();
  rmSync(home, { recursive: true, force: true });
});

const env = { PATH: '/usr/bin:/bin', HOME: home, XDG_STATE_HOME: join(home, 'state'), XDG_CONFIG_HOME: join(home, 'config'), PYTHONDONTWRITEBYTECODE: '1' };
if (process.env.NODE_EXTRA_CA_CERTS) env.NODE_EXTRA_CA_CERTS = process.env.NODE_EXTRA_CA_CERTS;

const freePort = () =>
  new Promise((r) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => r(p));
    });
  });

function get(url) {
  return new Promise((resolveGet) => {
    const req = request(url, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolveGet({ status: res.statusCode, body: b }));
    });
    req.on('error', () => resolveGet(null));
    req.end();
  });
}

async function waitUp(url, child) {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`${url}: exited ${child.exitCode}`);
    if (await get(url)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url}: not up after 30 s`);
}

// The collector: the real `serve`, or with --sink a stand-in that only reads, counts and
// acknowledges (ids kept, so "every event once" is still checked). The difference between the
// two runs is the collector's own ingest CPU, on the same 2 cores as the apps and the load.
const SINK = process.argv.includes('--sink');
const SINK_SRC = `
const ids = new Set();
require('node:http').createServer((req, res) => {
  if (req.method === 'GET') { res.end(JSON.stringify({ events: ids.size })); return; }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks));
    let accepted = 0;
    for (const e of Array.isArray(body) ? body : body.events ?? [body]) if (!ids.has(e.event_id)) (ids.add(e.event_id), accepted++);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ accepted, duplicates: 0, rejected: [] }));
  });
}).listen(0, '127.0.0.1', function () { console.error('listening on http://127.0.0.1:' + this.address().port); });`;
const collector = SINK
  ? spawn(process.execPath, ['-e', SINK_SRC], { env, stdio: ['ignore', 'ignore', 'pipe'] })
  : spawn(process.execPath, [join(root, 'bin', 'claude-metrics'), 'serve', '--port', '0', '--db', join(home, 'collector.db')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
children.push(collector);
const collectorUrl = await new Promise((r, j) => {
  let err = '';
  collector.stderr.on('data', (c) => {
    err += c;
    const m = /listening on (http:\/\/\S+)/.exec(err);
    if (m) r(m[1]);
  });
  collector.once('exit', (code) => j(new Error(`collector exited ${code}: ${err}`)));
});

async function startApp(metrics) {
  const port = await freePort();
  const child = spawn(PY, ['-m', 'uvicorn', 'harness_app:app', '--app-dir', join(root, 'test', 'fixtures', 'api-harness'), '--host', '127.0.0.1', '--port', String(port), '--log-level', 'warning', '--no-access-log'], {
    env: { ...env, HARNESS_METRICS: metrics ? '1' : '0', HARNESS_MIDDLEWARE_DIR: join(root, 'hooks-templates', 'api-harness'), CLAUDE_METRICS_ENDPOINT: `${collectorUrl}/metrics/harness` },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  await waitUp(`${url}/healthz`, child);
  pids[url] = child.pid;
  return url;
}
const pids = {};
const TICK_MS = 1000 / Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);
/** CPU time (user + system, ms) a process has used so far: independent of how busy the machine is. */
function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * TICK_MS;
}

const body = JSON.stringify({ model: 'claude-bench', messages: [{ role: 'user', content: 'hi' }] });
const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-project': 'bench', 'x-session-id': 'bench-session' };

/** n requests over c keep-alive connections; each request's latency in ms. */
async function load(url, n, c) {
  const agent = new Agent({ keepAlive: true, maxSockets: c });
  const lat = [];
  let next = 0;
  let failed = 0;
  const one = () =>
    new Promise((r) => {
      const t = process.hrtime.bigint();
      const req = request(`${url}/v1/chat/completions`, { method: 'POST', agent, headers }, (res) => {
        res.resume();
        res.on('end', () => {
          lat.push(Number(process.hrtime.bigint() - t) / 1e6);
          if (res.statusCode !== 200) failed++;
          r();
        });
      });
      req.on('error', () => {
        failed++;
        r();
      });
      req.end(body);
    });
  await Promise.all(Array.from({ length: c }, async () => {
    while (next < n) {
      next++;
      await one();
    }
  }));
  agent.destroy();
  if (failed) throw new Error(`${url}: ${failed} requests failed`);
  return lat;
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const median = (xs) => pct(xs, 50);

const base = await startApp(false);
const withMw = await startApp(true);
await load(base, 300, C); // warm-up: imports, thread pools, connections
await load(withMw, 300, C);

/** The app's garbage-collector pauses so far, per generation (the fixture's /gc: gc.callbacks). */
const gcNow = async (url) => JSON.parse((await get(`${url}/gc`)).body);
const gc0 = { base: await gcNow(base), mw: await gcNow(withMw) };
const lat = { base: [], mw: [] };
const cpu = { base: 0, mw: 0 };
const pairs = [];
for (let done = 0, turn = 0; done < N; turn++) {
  const n = Math.min(BLOCK, N - done);
  const order = turn % 2 === 0 ? ['base', 'mw'] : ['mw', 'base'];
  const block = {};
  for (const k of order) {
    const url = k === 'base' ? base : withMw;
    const c0 = cpuMs(pids[url]);
    block[k] = await load(url, n, Math.min(C, n));
    lat[k].push(...block[k]);
    cpu[k] += cpuMs(pids[url]) - c0;
  }
  // Paired: the two apps' blocks ran back to back, under about the same machine load.
  pairs.push({ d50: pct(block.mw, 50) - pct(block.base, 50), d99: pct(block.mw, 99) - pct(block.base, 99) });
  done += n;
}

const gc1 = { base: await gcNow(base), mw: await gcNow(withMw) };
// Every recorded request reached the collector, none twice.
const sent = 300 + N;
let stats;
for (let i = 0; i < 100; i++) {
  stats = JSON.parse((await get(`${withMw}/stats`)).body);
  if (stats.sent >= sent) break;
  await new Promise((r) => setTimeout(r, 100));
}
const health = JSON.parse((await get(`${collectorUrl}/healthz`)).body); // the sink answers any GET with its count

const b50 = pct(lat.base, 50);
const b99 = pct(lat.base, 99);
const w50 = pct(lat.mw, 50);
const w99 = pct(lat.mw, 99);
const f = (x) => x.toFixed(2);
console.log(`middleware added latency: ${N} POST /v1/chat/completions to each app, ${C} concurrent, keep-alive, alternating blocks of ${BLOCK}; events to ${SINK ? 'a stand-in collector that only counts (--sink)' : 'a real claude-metrics serve on the same machine'}`);
console.log('| | without middleware | with middleware | added | ratio | target |');
console.log('|---|---|---|---|---|---|');
console.log(`| p50 | ${f(b50)} ms | ${f(w50)} ms | ${f(w50 - b50)} ms | ${(w50 / b50).toFixed(3)}× | added ≤ 1 ms: ${w50 - b50 <= 1 ? 'met' : 'MISSED'} |`);
console.log(`| p99 | ${f(b99)} ms | ${f(w99)} ms | ${f(w99 - b99)} ms | ${(w99 / b99).toFixed(3)}× | added ≤ 5 ms: ${w99 - b99 <= 5 ? 'met' : 'MISSED'} |`);
// The sender's work trails the requests a little: give it the time to finish, then count it.
await new Promise((r) => setTimeout(r, 1000));
const cpuBase = cpu.base / N;
const cpuMw = (cpu.mw + 0) / N;
console.log(`| added, median of ${pairs.length} paired blocks | | | p50 ${f(median(pairs.map((x) => x.d50)))} ms, p99 ${f(median(pairs.map((x) => x.d99)))} ms | | p50 ≤ 1 ms: ${median(pairs.map((x) => x.d50)) <= 1 ? 'met' : 'MISSED'}; p99 ≤ 5 ms: ${median(pairs.map((x) => x.d99)) <= 5 ? 'met' : 'MISSED'} |`);
console.log(`| CPU per request (server process, /proc) | ${(cpuBase * 1000).toFixed(0)} µs | ${(cpuMw * 1000).toFixed(0)} µs | ${((cpuMw - cpuBase) * 1000).toFixed(0)} µs | ${(cpuMw / cpuBase).toFixed(3)}× | |`);
const gcLine = (k) =>
  ['0', '1', '2'].map((g) => {
    const n = gc1[k][g].count - gc0[k][g].count;
    return `gen ${g}: ${n} (${(gc1[k][g].total_ms - gc0[k][g].total_ms).toFixed(1)} ms${g === '2' && n ? `, longest ${gc1[k][g].max_ms.toFixed(1)} ms` : ''})`;
  }).join(', ');
console.log(`| garbage collections during the measured blocks (gc.callbacks) | ${gcLine('base')} | ${gcLine('mw')} | | | |`);
const loadavg = (await import('node:os')).loadavg()[0];
console.log(`(1-minute load average during the run: ${loadavg.toFixed(1)} on ${(await import('node:os')).cpus().length} cores)`);
console.log(`events: ${stats.recorded} recorded, ${stats.sent} sent, ${stats.dropped_queue_full} dropped (queue full), ${stats.spooled} spooled; collector holds ${health.events} (expected ${sent})`);
const asgi = spawnSync(PY, [join(root, 'bench', 'middleware_asgi.py'), `${collectorUrl}/metrics/harness`], { env: { ...env, HARNESS_MIDDLEWARE_DIR: join(root, 'hooks-templates', 'api-harness') }, encoding: 'utf8' });
process.stdout.write(asgi.stdout);
if (asgi.status !== 0) process.stderr.write(asgi.stderr);
stopAll();
if (stats.sent !== sent || health.events !== sent || stats.dropped_queue_full !== 0) {
  console.error('middleware bench: events missing or dropped');
  process.exit(1);
}
