#!/usr/bin/env node
// Why the live stream polls on PostgreSQL instead of LISTEN/NOTIFY: what each costs ingest.
// 8 connections commit transactions shaped like the collector's (50 event rows with the
// session reads' indexes, fsync on: bench/pg-cluster.mjs) for a fixed time, alternating
//   - plain commits (the baseline),
//   - the same with `SELECT pg_notify(...)` before COMMIT (what NOTIFY-driven streams need),
//   - plain commits while 2 pollers (two replicas) read the high water every 250 ms,
// and prints commits/s (medians) and ratios against the baseline measured in the same run, plus
// the median time of one poll (`pg_snapshot_xmin(pg_current_snapshot())`).
// Usage: node bench/pg-notify-cost.mjs [--seconds 3] [--repeat 3]
import pg from 'pg';
import { startPostgres } from './pg-cluster.mjs';

const arg = (name, def) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : def);
const SECONDS = arg('--seconds', 3);
const REPEAT = arg('--repeat', 3);
const CONNS = 8;
const ROWS = 50;

const cluster = await startPostgres();
const url = await cluster.createDb();
const setup = new pg.Client({ connectionString: url });
await setup.connect();
await setup.query(`CREATE TABLE ev (event_id text PRIMARY KEY, session_key text NOT NULL, ts_ms bigint NOT NULL, body text NOT NULL,
  tx xid8 NOT NULL DEFAULT pg_current_xact_id(), ord bigserial);
  CREATE INDEX ev_tx ON ev(tx, ord); CREATE INDEX ev_session ON ev(session_key, ts_ms, event_id COLLATE "C"); CREATE INDEX ev_session_tx ON ev(session_key, tx, ord);`);

let n = 0;
async function run(mode) {
  const clients = await Promise.all(Array.from({ length: CONNS }, async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    return c;
  }));
  const pollers = [];
  let polls = 0;
  if (mode === 'poll') {
    for (let i = 0; i < 2; i++) {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      pollers.push({ c, t: setInterval(() => void c.query('SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x').then(() => polls++), 250) });
    }
  }
  const until = Date.now() + SECONDS * 1000;
  let commits = 0;
  await Promise.all(clients.map(async (c, k) => {
    while (Date.now() < until) {
      const rows = JSON.stringify(Array.from({ length: ROWS }, () => ({ event_id: `e${k}-${n++}`, session_key: `s${n % 40}`, ts_ms: Date.now(), body: '{"event":"PostToolUse","tool_name":"Bash"}' })));
      await c.query('BEGIN');
      await c.query('INSERT INTO ev (event_id, session_key, ts_ms, body) SELECT event_id, session_key, ts_ms, body FROM json_populate_recordset(NULL::ev, $1::json)', [rows]);
      if (mode === 'notify') await c.query("SELECT pg_notify('claude_metrics_events', 'x')");
      await c.query('COMMIT');
      commits++;
    }
  }));
  for (const p of pollers) (clearInterval(p.t), await p.c.end());
  await Promise.all(clients.map((c) => c.end()));
  return commits / SECONDS;
}

const listener = new pg.Client({ connectionString: url });
await listener.connect();
await listener.query('LISTEN claude_metrics_events'); // someone listens, as a replica would
const results = { plain: [], notify: [], poll: [] };
for (let r = 0; r < REPEAT; r++) for (const mode of ['plain', 'notify', 'poll']) results[mode].push(Math.round(await run(mode)));
const times = [];
for (let i = 0; i < 200; i++) {
  const t = process.hrtime.bigint();
  await setup.query('SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x');
  times.push(Number(process.hrtime.bigint() - t) / 1e6);
}
await listener.end();
await setup.end();
await cluster.stop();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = median(results.plain);
console.log(`commits of ${ROWS} rows over ${CONNS} connections, ${SECONDS} s each, ${REPEAT} alternating runs (fsync on)`);
console.table([
  { case: 'plain commits (baseline)', 'commits/s (median)': base, runs: results.plain.join(' '), ratio: '1.00' },
  { case: 'pg_notify in each transaction', 'commits/s (median)': median(results.notify), runs: results.notify.join(' '), ratio: (median(results.notify) / base).toFixed(2) },
  { case: '2 pollers every 250 ms', 'commits/s (median)': median(results.poll), runs: results.poll.join(' '), ratio: (median(results.poll) / base).toFixed(2) },
]);
console.log(`one poll (high water read): median ${median(times).toFixed(3)} ms over 200`);
