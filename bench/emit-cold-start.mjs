#!/usr/bin/env node
// Cold start of `claude-metrics emit` — the cost Claude Code pays on every hook —
// beside `node -e 0` and the plain `curl -sf -m 1 … || true` a shell loop would
// use, measured interleaved in one run so machine noise hits all alike.
// Usage: node bench/emit-cold-start.mjs [--runs 40]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 40;
const bin = join(root, 'bin', 'claude-metrics');

const hook = JSON.stringify({
  session_id: 'bench-session',
  transcript_path: '/tmp/none.jsonl',
  cwd: root,
  permission_mode: 'default',
  hook_event_name: 'PostToolUse',
  tool_name: 'Bash',
  tool_input: { command: 'ls -la', description: 'List files' },
  tool_response: { stdout: 'total 0\n', stderr: '', interrupted: false, isImage: false },
  tool_use_id: 'toolu_bench',
});

// The collector lives in another process: spawnSync blocks this event loop.
const ACK = `require('http').createServer((q,s)=>{q.resume();q.on('end',()=>{s.writeHead(200,{'content-type':'application/json'});s.end('{"accepted":1,"duplicates":0,"rejected":[]}')})}).listen(0,'127.0.0.1',function(){console.log(this.address().port)})`;
const collector = spawn(process.execPath, ['-e', ACK], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((r) => collector.stdout.once('data', (d) => r(Number(String(d).trim()))));
const endpoint = `http://127.0.0.1:${port}/metrics/harness`;

// A port that accepts nothing: the breaker opens after the first try.
const dead = createServer();
await new Promise((r) => dead.listen(0, '127.0.0.1', r));
const deadPort = dead.address().port;
await new Promise((r) => dead.close(r));

const homeLive = mkdtempSync(join(tmpdir(), 'cm-bench-live-'));
const homeDown = mkdtempSync(join(tmpdir(), 'cm-bench-down-'));
const hookFile = join(homeLive, 'hook.json');
writeFileSync(hookFile, hook);
const baseEnv = { PATH: process.env.PATH, TZ: 'UTC' };
if (process.env.NODE_EXTRA_CA_CERTS) baseEnv.NODE_EXTRA_CA_CERTS = process.env.NODE_EXTRA_CA_CERTS;

const cases = [
  { name: 'node -e 0', cmd: process.execPath, args: ['-e', '0'], env: baseEnv },
  { name: 'curl -sf -m 1 (live)', cmd: 'sh', args: ['-c', `curl -sf -m 1 -H 'content-type: application/json' --data-binary @${hookFile} ${endpoint} >/dev/null || true`], env: baseEnv },
  { name: 'emit (live collector)', cmd: process.execPath, args: [bin, 'emit'], env: { ...baseEnv, HOME: homeLive, CLAUDE_METRICS_ENDPOINT: endpoint }, input: hook },
  { name: 'emit (collector down, breaker open)', cmd: process.execPath, args: [bin, 'emit'], env: { ...baseEnv, HOME: homeDown, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${deadPort}/metrics/harness`, CLAUDE_METRICS_BREAKER_MAX_BACKOFF_MS: '3600000' }, input: hook },
];

function time(c) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(c.cmd, c.args, { env: c.env, input: c.input ?? '', stdio: ['pipe', 'pipe', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${c.name} exited ${r.status}: ${r.stderr}`);
  if (r.stdout.length > 0 && c.name.startsWith('emit')) throw new Error(`${c.name} wrote to stdout`);
  return ms;
}

const stat = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { median: q(0.5), p90: q(0.9), min: s[0] };
};

{
  for (const c of cases) for (let i = 0; i < 3; i++) time(c); // warm-up; also opens the breaker
  const samples = Object.fromEntries(cases.map((c) => [c.name, []]));
  for (let i = 0; i < runs; i++) for (const c of cases) samples[c.name].push(time(c));
  const base = stat(samples['node -e 0']).median;
  const curl = stat(samples['curl -sf -m 1 (live)']).median;
  const rows = cases.map((c) => {
    const s = stat(samples[c.name]);
    return { case: c.name, 'median ms': s.median.toFixed(1), 'p90 ms': s.p90.toFixed(1), '× node -e 0': (s.median / base).toFixed(2), '× curl': (s.median / curl).toFixed(2) };
  });
  console.log(`emit cold start, ${runs} interleaved runs each (Node ${process.version}, NODE_EXTRA_CA_CERTS ${process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'unset'})`);
  console.table(rows);
  const spooled = readdirSync(join(homeDown, '.local/state/claude-metrics/spool/new')).length;
  console.log(`collector-down runs spooled ${spooled} events (expected ${runs + 3}); target: emit median ≤ 1.3× node -e 0`);
  collector.kill();
  rmSync(homeLive, { recursive: true, force: true });
  rmSync(homeDown, { recursive: true, force: true });
}
