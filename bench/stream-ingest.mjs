#!/usr/bin/env node
// Live streams vs ingest: the collector's ingest rate (batches of 500 over 4
// connections) with no viewer, and with 50 open /api/stream viewers (reading in
// another process, each told about every commit), alternating in the same run;
// medians of the repetitions and the ratio. Target: 50 streams cost ingest < 10%.
// With --db postgres: two replicas on one PostgreSQL (bench/pg-cluster.mjs, fsync on), ingest into
// the first, the viewers split over both (the second hears of the commits through its poller).
// Usage: node bench/stream-ingest.mjs [--db sqlite|postgres] [--batches 200] [--streams 50] [--repeat 3]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : def);
const BATCHES = arg('--batches', 200);
const STREAMS = arg('--streams', 50);
const REPEAT = arg('--repeat', 3);
const DB = process.argv.includes('--db') ? process.argv[process.argv.indexOf('--db') + 1] : 'sqlite';
if (DB !== 'sqlite' && DB !== 'postgres') {
  console.error(`--db: expected sqlite or postgres, got ${DB}`);
  process.exit(2);
}
const CONC = 8;
const BATCH_CONC = 4;

const CLIENT = `
const http=require('http');const [url,mode,total,conc,bconc]=process.argv.slice(1);const N=Number(total),C=Number(conc),BC=Number(bconc);
const agent=new http.Agent({keepAlive:true,maxSockets:C});let seq=0;const runId=Math.random().toString(36).slice(2);
const ev=()=>({event_id:runId+'-'+(seq++),event:'PostToolUse',source:'interactive',timestamp:new Date().toISOString(),session_id:'s-'+(seq%50),project:'bench',tool_name:'Bash',tool_use_id:'t'+seq,success:true,duration_ms:12,context:{host:'h',user:'u',cwd:'/w',git_branch:'main'}});
const post=(body)=>new Promise((res,rej)=>{const q=http.request(url,{method:'POST',agent,headers:{'content-type':'application/json','content-length':Buffer.byteLength(body)}},(r)=>{r.resume();r.on('end',()=>r.statusCode===200?res():rej(new Error('HTTP '+r.statusCode)))});q.on('error',rej);q.end(body)});
(async()=>{const per=mode==='single'?1:500;const requests=N;
// Bodies are made before the clock starts: on 2 cores the client's own JSON work would be charged to the server.
const bodies=Array.from({length:requests},()=>per===1?JSON.stringify(ev()):JSON.stringify({events:Array.from({length:per},ev)}));let sent=0;const t=process.hrtime.bigint();
await Promise.all(Array.from({length:mode==='single'?C:BC},async()=>{while(sent<requests){await post(bodies[sent++])}}));
const ms=Number(process.hrtime.bigint()-t)/1e6;console.log(JSON.stringify({ms,events:requests*per}));agent.destroy()})().catch(e=>{console.error(e.message);process.exit(1)});`;

// The viewers: STREAMS EventSource-like readers in one process; they count the change messages they get.
const VIEWERS = `
const http=require('http');const [urls,n]=process.argv.slice(1);const list=urls.split(',');let open=0,msgs=0;
for(let i=0;i<Number(n);i++){http.get(list[i%list.length]+'/api/stream',{headers:{accept:'text/event-stream'}},(r)=>{if(r.statusCode!==200){console.error('stream HTTP '+r.statusCode);process.exit(1)}open++;if(open===Number(n))process.stdout.write('open\\n');r.setEncoding('utf8');r.on('data',(c)=>{msgs+=(c.match(/event: change/g)||[]).length})})}
process.on('SIGTERM',()=>{console.log(JSON.stringify({msgs}));process.exit(0)});`;

async function start(cmd, args, env) {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const url = await new Promise((res, rej) => {
    child.stderr.on('data', (c) => {
      err += c;
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) res(m[1]);
    });
    child.on('exit', (code) => rej(new Error(`exited ${code}: ${err}`)));
  });
  const exited = new Promise((res) => child.on('exit', res));
  return { url: `${url}/metrics/harness`, stop: () => (child.kill('SIGTERM'), exited) };
}

function load(url, mode, total) {
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, ['-e', CLIENT, url, mode, String(total), String(CONC), String(BATCH_CONC)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('exit', (code) => (code === 0 ? res(JSON.parse(out)) : rej(new Error(`client exited ${code}`))));
  });
}

const home = mkdtempSync(join(tmpdir(), 'cm-bench-stream-'));
const env = { PATH: process.env.PATH, HOME: home, CLAUDE_METRICS_MAX_STREAMS: String(STREAMS + 10) };
const rate = (r) => Math.round((r.events / r.ms) * 1000);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const none = [];
const viewed = [];
let messages = 0;
const pg = DB === 'postgres' ? await (await import('./pg-cluster.mjs')).startPostgres() : undefined;
const serveArgs = (db) => [join(root, 'bin/claude-metrics'), 'serve', '--port', '0', '--db', db];
for (let k = 0; k < REPEAT; k++) {
  for (const withViewers of [false, true]) {
    const db = pg ? await pg.createDb() : join(home, `${k}-${withViewers}.db`);
    const serves = [await start(process.execPath, serveArgs(db), env)];
    if (pg) serves.push(await start(process.execPath, serveArgs(db), env));
    const serve = serves[0];
    const bases = serves.map((s) => s.url.replace(/\/metrics\/harness$/, ''));
    let viewers;
    if (withViewers) {
      viewers = spawn(process.execPath, ['-e', VIEWERS, bases.join(','), String(STREAMS)], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise((r) => viewers.stdout.once('data', r));
    }
    await load(serve.url, 'batch', 20); // warm-up
    (withViewers ? viewed : none).push(rate(await load(serve.url, 'batch', BATCHES)));
    if (viewers) {
      // PostgreSQL: the replicas' pollers tell the last commits within a tick.
      if (pg) await new Promise((r) => setTimeout(r, 1000));
      const out = new Promise((r) => {
        let s = '';
        viewers.stdout.on('data', (d) => (s += d));
        viewers.on('exit', () => r(s));
      });
      viewers.kill('SIGTERM');
      messages = JSON.parse((await out).trim().split('\n').pop()).msgs;
    }
    for (const s of serves) await s.stop();
  }
}
await pg?.stop();
rmSync(home, { recursive: true, force: true });
const a = median(none);
const b = median(viewed);
console.log(`ingest with live streams on ${DB === 'postgres' ? 'two PostgreSQL replicas (viewers split over both)' : 'SQLite'} (${BATCHES} batches of 500 over ${BATCH_CONC} connections; ${REPEAT} alternating runs each, medians)`);
console.table([
  { case: 'no viewer (baseline)', 'events/s (median)': a, runs: none.join(' '), ratio: '1.00' },
  { case: `${STREAMS} open streams`, 'events/s (median)': b, runs: viewed.join(' '), ratio: (b / a).toFixed(2) },
]);
console.log(`the ${STREAMS} viewers received ${messages} change messages in the last run; target: ratio ≥ 0.90 (streams cost ingest < 10%): ${b / a >= 0.9 ? 'OK' : 'MISSED'}`);
