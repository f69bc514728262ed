#!/usr/bin/env node
// The single binary beside `node dist/cli.cjs`: size and cold start, interleaved
// in one run so machine noise hits every case alike; ratios against `node -e 0`.
// Builds three binaries first: V8 code cache on, off, and a startup snapshot instead.
// With --bun PATH (a bun executable, e.g. from `npm i bun` in a temp dir), the
// same bundle is also compiled with `bun build --compile --minify --bytecode`.
// Usage: node bench/binary.mjs [--runs 30] [--bun /path/to/bun]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 30;
const work = mkdtempSync(join(tmpdir(), 'cm-bench-bin-'));
const withCache = join(work, 'claude-metrics');
const noCache = join(work, 'claude-metrics-nocache');
const snapshot = join(work, 'claude-metrics-snapshot');
const bunBin = process.argv.includes('--bun') ? process.argv[process.argv.indexOf('--bun') + 1] : undefined;
const bunOut = join(work, 'claude-metrics-bun');

for (const [out, cache, snap] of [[withCache, '1', '0'], [noCache, '0', '0'], [snapshot, '0', '1']]) {
  const r = spawnSync(process.execPath, [join(root, 'scripts/package.mjs')], { env: { ...process.env, SEA_OUT: out, SEA_CODE_CACHE: cache, SEA_SNAPSHOT: snap, SEA_BUNDLE_OUT: out === withCache ? join(work, 'main.cjs') : '' }, stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) process.exit(1);
  process.stderr.write(r.stdout);
}
if (bunBin) {
  const ext = ['better-sqlite3', 'pino', 'playwright-core'].flatMap((m) => ['--external', m]);
  const r = spawnSync(bunBin, ['build', '--compile', '--minify', '--bytecode', join(work, 'main.cjs'), ...ext, '--outfile', bunOut], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error('bun build --compile failed');
}

const hook = JSON.stringify({ session_id: 'bench', hook_event_name: 'PostToolUse', tool_name: 'Bash', tool_input: { command: 'ls' }, tool_response: { stdout: '' }, tool_use_id: 'toolu_b', cwd: root });
// A collector that acknowledges everything, in another process (spawnSync blocks this loop).
const ACK = `require('http').createServer((q,s)=>{q.resume();q.on('end',()=>{s.writeHead(200,{'content-type':'application/json'});s.end('{"accepted":1,"duplicates":0,"rejected":[]}')})}).listen(0,'127.0.0.1',function(){console.log(this.address().port)})`;
const collector = spawn(process.execPath, ['-e', ACK], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((r) => collector.stdout.once('data', (d) => r(Number(String(d).trim()))));
const home = mkdtempSync(join(tmpdir(), 'cm-bench-bin-home-'));
const env = { PATH: process.env.PATH, TZ: 'UTC', HOME: home, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${port}/metrics/harness` };

const cases = [
  { name: 'node -e 0', cmd: process.execPath, args: ['-e', '0'] },
  { name: 'node dist/cli.cjs --version', cmd: process.execPath, args: [join(root, 'dist/cli.cjs'), '--version'] },
  { name: 'binary --version', cmd: withCache, args: ['--version'] },
  { name: 'binary (no code cache) --version', cmd: noCache, args: ['--version'] },
  { name: 'binary (startup snapshot) --version', cmd: snapshot, args: ['--version'] },
  { name: 'node bin/claude-metrics emit', cmd: process.execPath, args: [join(root, 'bin/claude-metrics'), 'emit'], input: hook },
  { name: 'binary emit', cmd: withCache, args: ['emit'], input: hook },
  { name: 'binary (no code cache) emit', cmd: noCache, args: ['emit'], input: hook },
  { name: 'binary (startup snapshot) emit', cmd: snapshot, args: ['emit'], input: hook },
  ...(bunBin
    ? [
        { name: 'bun binary --version', cmd: bunOut, args: ['--version'] },
        { name: 'bun binary emit', cmd: bunOut, args: ['emit'], input: hook },
      ]
    : []),
];

function time(c) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(c.cmd, c.args, { env, input: c.input ?? '', cwd: work, stdio: ['pipe', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`${c.name} exited ${r.status}: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}
const samples = new Map(cases.map((c) => [c.name, []]));
for (const c of cases) time(c); // warm the page cache
for (let i = 0; i < runs; i++) for (const c of cases) samples.get(c.name).push(time(c));
collector.kill();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = median(samples.get('node -e 0'));
console.log(`cold start, median of ${runs} interleaved runs (node ${process.versions.node})`);
for (const c of cases) {
  const m = median(samples.get(c.name));
  console.log(`  ${c.name.padEnd(36)} ${m.toFixed(1).padStart(7)} ms   ${(m / base).toFixed(2)}x node -e 0`);
}
const mib = (p) => (statSync(p).size / 1024 / 1024).toFixed(1);
console.log(`size: binary ${mib(withCache)} MiB (no code cache ${mib(noCache)} MiB; snapshot ${mib(snapshot)} MiB${bunBin ? `; bun ${mib(bunOut)} MiB` : ''}); node itself ${mib(process.execPath)} MiB`);
rmSync(work, { recursive: true, force: true });
rmSync(home, { recursive: true, force: true });
