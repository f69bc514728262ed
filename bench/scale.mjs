#!/usr/bin/env node
// The collector at scale (issue 17): fills a real `claude-metrics serve` with the
// generated mix (scale-gen.mjs: seeded sessions of ~66 events, Ralph tasks, over
// 90 days, 40 projects, 60 labels) and prints for each size: the ingest rate of the
// last 10% of the events relative to the first 10% (the last million of 10M),
// bytes per stored event, p50/p95 of every /api/* call the dashboard page makes
// and of /metrics (with its size and series count), and a retention pass that
// removes 30 days' worth of events while ingest goes on (its longest stall).
// Each size gets a fresh collector; ratios are against the smallest size of the
// same run (100k by default), with the targets beside them.
//
// Usage: node bench/scale.mjs [--sizes 100k,1m,10m] [--db sqlite|postgres] [--seed 17]
//                             [--reps 20] [--pass-rate 5000] [--keep]
// Default sizes: 100k,1m. Needs `npm run build` first (it runs bin/claude-metrics).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const opt = (name, def) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : def);
const parseSize = (s) => {
  const m = /^(\d+(?:\.\d+)?)([km]?)$/i.exec(s.trim());
  if (!m) throw new Error(`--sizes: expected sizes like 100k,1m,10m, got ${s}`);
  return Math.round(Number(m[1]) * { '': 1, k: 1e3, m: 1e6 }[m[2].toLowerCase()]);
};
let SIZES;
try {
  SIZES = opt('--sizes', '100k,1m').split(',').map(parseSize).sort((a, b) => a - b);
} catch (err) {
  console.error(err.message);
  process.exit(2);
}
const DB = opt('--db', 'sqlite');
if (DB !== 'sqlite' && DB !== 'postgres') {
  console.error(`--db: expected sqlite or postgres, got ${DB}`);
  process.exit(2);
}
const SEED = Number(opt('--seed', '17'));
const REPS = Number(opt('--reps', '20'));
const PASS_RATE = Number(opt('--pass-rate', '5000')); // events/s of steady ingest during the retention pass
const KEEP = argv.includes('--keep'); // keep the temp dirs (to look at a database afterwards)
const BATCH = 500;
const CONNECTIONS = 4;
const DAY = 86_400_000;
const RETENTION_DAYS = 90; // the collector's default: nothing generated is older
const PASS_RETENTION_DAYS = 60; // the pass removes the oldest 30 of the 90 days
const SWEEP_TIMEOUT_MS = 30 * 60_000;
// How long the retention pass watches ingest while the sweep runs: a first sweep of 30 days at 10M
// takes tens of minutes in the background (it yields three quarters of the time); its stalls are
// the same from its first minutes on, so the pass stops watching then and says the sweep still ran.
const PASS_WINDOW_MS = Number(opt('--pass-window-s', '180')) * 1000;
// The sweeping collector's first sweep waits this long after it listens (serve --retention-delay-ms);
// its ingest before that, from PASS_WARM_MS on (a new process is cold), is the baseline the sweep's is
// compared with: the same process, the same steady load, no sweep.
const PASS_DELAY_MS = 12_000;
const PASS_WARM_MS = 2_000;
const NO_SWEEP_MS = 86_400_000; // the filling collector never sweeps
const PROBE_RATE = 20; // single-event POSTs per second beside the batches: what one hook's emit waits
if (!existsSync(join(root, 'dist'))) {
  console.error('bench/scale.mjs runs bin/claude-metrics: npm run build first');
  process.exit(2);
}

const fmt = (n) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n));
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const ms = (x) => (x === undefined ? '-' : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : Math.round(x).toString());

/** `serve` on port 0; resolves once it prints its address (its first retention sweep comes `delayMs` later). */
function startServe(db, home, retentionDays, delayMs = NO_SWEEP_MS) {
  const child = spawn(process.execPath, [join(root, 'bin/claude-metrics'), 'serve', '--port', '0', '--db', db, '--retention-days', String(retentionDays), '--retention-delay-ms', String(delayMs)], {
    env: { PATH: process.env.PATH, HOME: home, TZ: 'UTC' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const exited = new Promise((res) => child.on('exit', res));
  const ready = new Promise((res, rej) => {
    child.stderr.on('data', (c) => {
      err += c;
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) res(m[1]);
    });
    child.on('exit', (code) => rej(new Error(`serve exited ${code}: ${err.slice(-2000)}`)));
  });
  ready.catch(() => undefined);
  return { child, ready, exited, stop: () => (child.exitCode === null ? child.kill('SIGTERM') : undefined, exited) };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function get(url) {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    http
      .get(url, { agent }, (r) => {
        let bytes = 0;
        const chunks = [];
        r.on('data', (d) => (bytes += d.length, chunks.push(d)));
        r.on('end', () => res({ status: r.statusCode, ms: performance.now() - t0, bytes, body: Buffer.concat(chunks).toString('utf8') }));
      })
      .on('error', rej)
      .setTimeout(60_000, function () {
        this.destroy(new Error(`GET ${url}: no answer in 60 s`));
      });
  });
}

/** Runs the load client; `onBatch` sees every acknowledged batch as it comes. */
function load(spec, onBatch) {
  const child = spawn(process.execPath, [join(root, 'bench/scale-load.mjs'), JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onBatch(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
  });
  const done = new Promise((res, rej) => child.on('exit', (code) => (code === 0 ? res() : rej(new Error(`load client exited ${code}`)))));
  return { done, stop: () => child.stdin.end() };
}

/** Events per second over the batches acknowledged between two fractions of the run's events. */
function windowRate(batches, total, from, to) {
  const byAck = batches.map((b) => ({ ack: b.t0 + b.ms, t0: b.t0, n: b.n })).sort((a, b) => a.ack - b.ack);
  let acked = 0;
  let startT;
  let endT;
  let n = 0;
  let prevAck = byAck[0].t0;
  for (const b of byAck) {
    const before = acked;
    acked += b.n;
    if (before >= from * total && startT === undefined) startT = prevAck;
    if (startT !== undefined && endT === undefined) n += b.n;
    if (acked >= to * total && endT === undefined) endT = b.ack;
    prevAck = b.ack;
  }
  return (n / (endT - startT)) * 1000;
}

/** What the dashboard page asks for (src/dashboard/static/app.js `refresh`), at its default 7-day range and at 30 days. */
function dashboardCalls(project) {
  const calls = [];
  for (const days of [7, 30]) {
    calls.push([`summary?since=${days}d`, `/api/summary?since=${days}d`]);
    calls.push([`sessions?since=${days}d&limit=50`, `/api/sessions?since=${days}d&limit=50`]);
    calls.push([`daily?days=${days}`, `/api/daily?days=${days}`]);
  }
  calls.push(['filters', '/api/filters']);
  calls.push(['waiting', '/api/waiting']);
  // One project picked in the filter, and the 90-day series.
  calls.push([`summary?since=30d&project=…`, `/api/summary?since=30d&project=${encodeURIComponent(project)}`]);
  calls.push(['daily?days=90', '/api/daily?days=90']);
  return calls;
}

async function measureSize(size, work, pg) {
  const home = join(work, `home-${size}`);
  mkdirSync(home, { recursive: true });
  const db = pg ? await pg.createDb() : join(work, `scale-${size}.db`);
  const serve = startServe(db, home, RETENTION_DAYS);
  const base = await serve.ready;
  const out = { size };
  try {
    // 1. Fill, at full speed, the events in time order over 90 days.
    const now = Date.now();
    const batches = [];
    const t0 = Date.now();
    await load({ url: `${base}/metrics/harness`, seed: SEED, total: size, beginMs: now - 89.5 * DAY, endMs: now - 3 * 3_600_000, connections: CONNECTIONS, batch: BATCH }, (b) => batches.push(b)).done;
    out.fillS = (Date.now() - t0) / 1000;
    out.rateFirst = windowRate(batches, size, 0, 0.1);
    out.rateLast = windowRate(batches, size, 0.9, 1);
    out.rateAll = (size / out.fillS);
    const health = JSON.parse((await get(`${base}/healthz`)).body);
    out.stored = health.events;
    if (out.stored !== size) throw new Error(`stored ${out.stored} events, sent ${size}`);

    // 2. Bytes per stored event.
    if (pg) out.bytes = Number(await pg.sql(db, 'SELECT pg_database_size(current_database())'));
    else {
      const size = (f) => (existsSync(f) ? statSync(f).size : 0);
      // At rest: the collector's checkpoint worker empties the WAL a second after the last commit.
      for (let waited = 0; size(`${db}-wal`) > 0 && waited < 5000; waited += 100) await new Promise((r) => setTimeout(r, 100));
      out.wal = size(`${db}-wal`);
      out.bytes = size(db) + out.wal;
    }
    out.bytesPerEvent = out.bytes / out.stored;

    // 3. The dashboard's calls and /metrics, one at a time on an idle collector.
    const filters = JSON.parse((await get(`${base}/api/filters`)).body);
    out.api = {};
    for (const [name, path] of [...dashboardCalls(filters.projects[0] ?? 'none'), ['/metrics', '/metrics']]) {
      const times = [];
      let last;
      for (let i = 0; i < REPS + 2; i++) {
        last = await get(`${base}${path}`);
        if (last.status !== 200) break;
        if (i >= 2) times.push(last.ms); // two warm-ups
      }
      out.api[name] = last.status !== 200 ? { status: last.status } : { p50: pct(times, 50), p95: pct(times, 95), bytes: last.bytes };
      if (path === '/metrics' && last.status === 200) out.series = last.body.split('\n').filter((l) => l && !l.startsWith('#')).length;
    }
    // After the timed calls: dbstat reads every page of the file, which would warm (or evict) their cache.
    out.relations = await relationBytes(db, pg);

    // 4. Retention: a second `serve` on the same database, started with --retention-days 60, sweeps
    // PASS_DELAY_MS after it listens, in the same process as the ingest it answers, as a lone
    // collector does after lowering the setting or a restart. Steady ingest of recent events (batches
    // of 500) and a probe of single events go to it from the start; its /healthz says when the sweep
    // has finished.
    const steadySpec = { seed: SEED + 1_000_003, total: 50_000_000, beginMs: now - 2 * DAY, endMs: now - 3_600_000, connections: CONNECTIONS, batch: BATCH, ratePerS: PASS_RATE };
    const sweeperHome = join(work, `home-${size}-sweeper`);
    mkdirSync(sweeperHome, { recursive: true });
    const sweeper = startServe(db, sweeperHome, PASS_RETENTION_DAYS, PASS_DELAY_MS);
    const sweeperUrl = await sweeper.ready;
    const listenAt = performance.timeOrigin + performance.now();
    const sweepStart = listenAt + PASS_DELAY_MS;
    const passBatches = [];
    const probes = [];
    let sweepEnd;
    try {
      const steady = load({ ...steadySpec, url: `${sweeperUrl}/metrics/harness` }, (b) => passBatches.push(b));
      const probe = load({ ...steadySpec, seed: SEED + 1_000_011, connections: 1, batch: 1, ratePerS: PROBE_RATE, url: `${sweeperUrl}/metrics/harness` }, (b) => probes.push(b));
      const deadline = Date.now() + PASS_DELAY_MS + SWEEP_TIMEOUT_MS;
      for (;;) {
        const h = await get(`${sweeperUrl}/healthz`).catch(() => undefined);
        const r = h?.status === 200 ? JSON.parse(h.body).retention : undefined;
        if (r?.sweeps >= 1) {
          out.swept = r.last;
          break;
        }
        if (performance.timeOrigin + performance.now() - sweepStart > PASS_WINDOW_MS) {
          out.swept = { running: true };
          break;
        }
        if (Date.now() > deadline) throw new Error('retention sweep did not finish in time');
        await new Promise((res) => setTimeout(res, 100));
      }
      sweepEnd = performance.timeOrigin + performance.now();
      const after = passBatches.length;
      await new Promise((res) => {
        const poll = setInterval(() => (passBatches.length >= after + 20 ? (clearInterval(poll), res()) : undefined), 50);
        steady.done.finally(() => (clearInterval(poll), res()));
      });
      steady.stop();
      probe.stop();
      await Promise.all([steady.done, probe.done]);
    } finally {
      await sweeper.stop();
    }
    if (out.swept?.error) process.stderr.write(`scale: the retention sweep failed: ${out.swept.error}\n`);
    out.sweepS = (sweepEnd - sweepStart) / 1000;
    const without = (xs) => xs.filter((b) => b.t0 >= listenAt + PASS_WARM_MS && b.t0 < sweepStart).map((b) => b.ms);
    const within = (xs) => xs.filter((b) => b.t0 >= sweepStart && b.t0 < sweepEnd).map((b) => b.ms);
    const [before, inSweep, probeBefore, probeIn] = [without(passBatches), within(passBatches), without(probes), within(probes)];
    out.passBaseP50 = pct(before, 50);
    out.passBaseMax = Math.max(...before);
    out.passBaseP99 = pct(before, 99);
    out.duringP99 = pct(inSweep, 99);
    out.probeBaseP99 = pct(probeBefore, 99);
    out.probeP99 = pct(probeIn, 99);
    out.stall = inSweep.length ? Math.max(...inSweep) : 0;
    out.duringP50 = pct(inSweep, 50);
    out.passBatches = inSweep.length;
    out.probeBaseMax = Math.max(...probeBefore);
    out.probeP50 = pct(probeIn, 50);
    out.probeStall = probeIn.length ? Math.max(...probeIn) : 0;
    out.probes = probeIn.length;
  } finally {
    await serve.stop();
  }
  return out;
}

const load1 = () => loadavg().map((x) => x.toFixed(2)).join(' ');

// Where the bytes go: the size of each table (heap and TOAST) and each index, so a change to the
// layout is judged by the relation it shrinks. SQLite: the dbstat table (better-sqlite3 builds it in),
// on a read-only second connection beside the collector's; PostgreSQL: pg_table_size / pg_relation_size.
async function relationBytes(db, pg) {
  if (pg) {
    const text = await pg.sql(
      db,
      `SELECT c.relname, CASE c.relkind WHEN 'i' THEN pg_relation_size(c.oid) ELSE pg_table_size(c.oid) END
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i')`,
    );
    // psql -tA: one row a line, columns split by '|'
    return text.split('\n').filter(Boolean).map((line) => {
      const [name, bytes] = line.split('|');
      return { name, bytes: Number(bytes) };
    });
  }
  const { default: Database } = await import('better-sqlite3');
  const conn = new Database(db, { readonly: true, fileMustExist: true });
  try {
    return conn.prepare('SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name').all();
  } finally {
    conn.close();
  }
}

function report(results) {
  const base = results[0];
  const big = results[results.length - 1];
  const ratio = (a, b) => (a === undefined || b === undefined ? '-' : `${(a / b).toFixed(2)}×`);
  console.log(`\nload average at start ${loadAtStart}, at the end ${load1()} (2 cores)`);
  console.log(`the collector at scale (${DB}; seed ${SEED}; batches of ${BATCH} over ${CONNECTIONS} connections; ${REPS} requests per call, one at a time; baseline ${fmt(base.size)} of the same run)`);
  console.table(
    results.map((r) => ({
      events: fmt(r.size),
      'fill s': r.fillS.toFixed(1),
      'ev/s first 10%': Math.round(r.rateFirst),
      'ev/s last 10%': Math.round(r.rateLast),
      'last/first (≥ 0.80)': (r.rateLast / r.rateFirst).toFixed(2),
      'ev/s overall': Math.round(r.rateAll),
      'MB stored': (r.bytes / 1e6).toFixed(1) + (r.wal !== undefined ? ` (WAL ${(r.wal / 1e6).toFixed(1)})` : ''),
      'bytes/event (≤ 120)': Math.round(r.bytesPerEvent),
      [`×${fmt(base.size)}`]: ratio(r.bytesPerEvent, base.bytesPerEvent),
    })),
  );
  const largest = [...(big.relations ?? [])].sort((a, b) => b.bytes - a.bytes).slice(0, 12);
  if (largest.length) {
    console.log(`where the bytes go: the ${largest.length} largest tables and indexes, bytes per stored event`);
    console.table(
      largest.map(({ name }) => {
        const row = { relation: name };
        for (const r of results) row[fmt(r.size)] = ((r.relations?.find((x) => x.name === name)?.bytes ?? 0) / r.stored).toFixed(1);
        return row;
      }),
    );
  }
  const names = Object.keys(base.api);
  console.log(`dashboard calls and /metrics, p50 / p95 ms (targets: p50 ≤ 20 ms at 10M and ≤ 2× the ${fmt(base.size)} p50)`);
  console.table(
    names.map((n) => {
      const row = { call: n };
      for (const r of results) {
        const a = r.api[n];
        row[`${fmt(r.size)} p50/p95`] = a.status ? `HTTP ${a.status}` : `${ms(a.p50)} / ${ms(a.p95)}`;
        if (r !== base) row[`${fmt(r.size)} p50 ×${fmt(base.size)}`] = a.status || base.api[n].status ? '-' : ratio(a.p50, base.api[n].p50);
      }
      const a = big.api[n];
      row.target = a.status ? '-' : a.p50 <= 20 && (big === base || a.p50 <= 2 * base.api[n].p50) ? 'met' : 'not met';
      if (n === '/metrics') row.size = results.map((r) => `${(r.api[n].bytes / 1024).toFixed(0)} KB`).join(' → ');
      return row;
    }),
  );
  console.log('/metrics series (target ≤ 2,000):', results.map((r) => `${fmt(r.size)}: ${r.series}`).join(', '));
  console.log(`retention pass (removes the oldest 30 of 90 days while ${PASS_RATE} events/s go on; target: no batch waits over 100 ms; baseline: the same collector before its sweep)`);
  console.table(
    results.map((r) => ({
      events: fmt(r.size),
      'removed events': r.swept?.events ?? (r.swept?.error ? 'failed' : r.swept?.running ? `still sweeping at ${PASS_WINDOW_MS / 1000} s` : '?'),
      'sessions': r.swept?.sessions ?? '?',
      'facts': r.swept?.facts ?? '?',
      'chunks': r.swept?.chunks ?? '-',
      'sweep ms': r.swept?.ms ?? '-',
      'longest chunk ms': r.swept?.longestChunkMs ?? '-',
      'batch p50/p99/max without (ms)': `${ms(r.passBaseP50)} / ${ms(r.passBaseP99)} / ${ms(r.passBaseMax)}`,
      'batch p50/p99/max during': `${ms(r.duringP50)} / ${ms(r.duringP99)} / ${ms(r.stall)}`,
      'one event p99/max without': `${ms(r.probeBaseP99)} / ${ms(r.probeBaseMax)}`,
      'one event p99/max during': `${ms(r.probeP99)} / ${ms(r.probeStall)}`,
      target: r.stall <= 100 ? 'met' : 'not met',
    })),
  );
}

const loadAtStart = load1();
const work = mkdtempSync(join(tmpdir(), 'cm-bench-scale-'));
let pg;
const results = [];
const cleanup = async () => {
  if (pg) await pg.stop();
  if (!KEEP) rmSync(work, { recursive: true, force: true });
  else console.log(`kept ${work}`);
};
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
try {
  if (DB === 'postgres') {
    const { startPostgres } = await import('./pg-cluster.mjs');
    pg = await startPostgres();
  }
  for (const size of SIZES) {
    const t = Date.now();
    process.stderr.write(`scale: ${fmt(size)} events …\n`);
    const r = await measureSize(size, work, pg);
    results.push(r);
    process.stderr.write(`scale: ${fmt(size)} done in ${((Date.now() - t) / 1000).toFixed(0)} s\n`);
    // Each size's figures as soon as they are known, so a run stopped before the last size keeps them.
    process.stderr.write(`scale: ${fmt(size)} figures ${JSON.stringify(r)}\n`);
  }
  report(results);
} catch (err) {
  console.error(`bench/scale.mjs: ${err.stack ?? err.message}`);
  process.exitCode = 1;
} finally {
  agent.destroy();
  await cleanup();
}
