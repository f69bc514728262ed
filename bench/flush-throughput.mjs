#!/usr/bin/env node
// `claude-metrics flush` throughput: N spooled events delivered to a local endpoint
// that only acknowledges, beside a baseline in the same run: a plain Node loop
// POSTing the same bodies in the same batches over keep-alive (no spool, no files).
// Usage: node bench/flush-throughput.mjs [--events 20000] [--batch 500]
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : def);
const N = arg('--events', 20000);
const BATCH = arg('--batch', 500);

const ACK = `require('http').createServer((q,s)=>{let n=0;q.on('data',c=>n+=c.length);q.on('end',()=>{s.writeHead(200,{'content-type':'application/json'});s.end('{"accepted":0,"duplicates":0,"rejected":[]}')})}).listen(0,'127.0.0.1',function(){console.log(this.address().port)})`;
const collector = spawn(process.execPath, ['-e', ACK], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((r) => collector.stdout.once('data', (d) => r(Number(String(d).trim()))));
const endpoint = `http://127.0.0.1:${port}/metrics/harness`;

const home = mkdtempSync(join(tmpdir(), 'cm-bench-flush-'));
const spoolNew = join(home, '.local/state/claude-metrics/spool/new');
for (const d of ['tmp', 'new', 'cur', 'dead']) mkdirSync(join(home, '.local/state/claude-metrics/spool', d), { recursive: true, mode: 0o700 });
const bodies = [];
const t0 = Date.now();
for (let i = 0; i < N; i++) {
  const ms = t0 + i;
  const hex = ms.toString(16).padStart(12, '0');
  const id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7000-8000-${i.toString(16).padStart(12, '0')}`;
  const json = JSON.stringify({
    schema_version: 1, event_id: id, event: 'PostToolUse', source: 'interactive', timestamp: new Date(ms).toISOString(),
    session_id: 'bench', project: 'bench', tool_name: 'Bash', tool_use_id: `toolu_${i}`, success: true, duration_ms: 12,
    context: { host: 'h', user: 'u', cwd: '/w', git_branch: 'main', git_commit: 'a'.repeat(40), emitter_version: '0.1.0' },
    hook: { tool_input_size: 20, tool_response_size: 200 },
  });
  bodies.push(json);
  writeFileSync(join(spoolNew, `${id}.${Buffer.byteLength(json)}.json`), json, { mode: 0o600 });
}

// Baseline: the same bodies, same batches, keep-alive, from memory.
const baselineScript = `
const http=require('http');const agent=new http.Agent({keepAlive:true,maxSockets:1});
const bodies=JSON.parse(require('fs').readFileSync(0,'utf8'));const B=${BATCH};
const post=(b)=>new Promise((r,j)=>{const q=http.request('${endpoint}',{method:'POST',agent,headers:{'content-type':'application/json','content-length':Buffer.byteLength(b)}},(s)=>{s.resume();s.on('end',r)});q.on('error',j);q.end(b)});
(async()=>{const t=process.hrtime.bigint();for(let i=0;i<bodies.length;i+=B){await post('{"events":['+bodies.slice(i,i+B).join(',')+']}')}console.log(Number(process.hrtime.bigint()-t)/1e6);agent.destroy()})();`;
const base = spawnSync(process.execPath, ['-e', baselineScript], { input: JSON.stringify(bodies), encoding: 'utf8' });
const baseMs = Number(base.stdout.trim());

const env = { PATH: process.env.PATH, HOME: home, CLAUDE_METRICS_ENDPOINT: endpoint, CLAUDE_METRICS_BATCH_SIZE: String(BATCH) };
if (process.env.NODE_EXTRA_CA_CERTS) env.NODE_EXTRA_CA_CERTS = process.env.NODE_EXTRA_CA_CERTS;
const t1 = process.hrtime.bigint();
const r = spawnSync(process.execPath, [join(root, 'bin/claude-metrics'), 'flush', '--verbose'], { env, encoding: 'utf8' });
const flushMs = Number(process.hrtime.bigint() - t1) / 1e6;
if (r.status !== 0) throw new Error(`flush exited ${r.status}: ${r.stderr}`);

collector.kill();
rmSync(home, { recursive: true, force: true });
const rate = (ms) => Math.round((N / ms) * 1000);
console.log(`flush throughput: ${N} events, batches of ${BATCH}, to a local acknowledge-only endpoint`);
console.table([
  { case: 'plain Node POST loop from memory (baseline)', 'ms': baseMs.toFixed(0), 'events/s': rate(baseMs), ratio: '1.00' },
  { case: 'claude-metrics flush (spool files, whole process)', 'ms': flushMs.toFixed(0), 'events/s': rate(flushMs), ratio: (baseMs / flushMs).toFixed(2) },
]);
const inner = Number(/in (\d+) ms/.exec(r.stderr)?.[1]);
console.log(`${r.stderr.trim()}\ninside flush (process start-up excluded): ${rate(inner)} events/s; target: ≥ 20,000 events/s`);
