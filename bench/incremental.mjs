#!/usr/bin/env node
// The hooks' incremental read: a 100 MB transcript already read once, 10 KB appended,
// then what a Stop costs: readNew (scan from the saved offset, dedupe, settle) + saving
// the state, in process, beside a full re-read of the same file. Requires `npm run build`.
// Usage: node bench/incremental.mjs [--mb 100]
import { appendFileSync, closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const mb = Number(process.argv[process.argv.indexOf('--mb') + 1]) || 100;
const work = mkdtempSync(join(tmpdir(), 'cm-bench-incr-'));
// One big session file from generated transcripts.
execFileSync(process.execPath, [join(root, 'scripts', 'gen-transcripts.mjs'), '--out', join(work, 'gen'), '--mb', String(mb), '--seed', '2', '--projects', '1'], { stdio: 'ignore' });
const big = join(work, 'session.jsonl');
const fd = openSync(big, 'w');
const walk = (d) => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith('.jsonl') ? [join(d, e.name)] : []));
const parts = walk(join(work, 'gen'));
for (const f of parts) writeSync(fd, readFileSync(f));
closeSync(fd);
const lines = readFileSync(parts[0], 'utf8').split('\n').filter((l) => l.includes('"usage":{')).slice(0, 40);

// The built worker's modules, loaded the way the CLI bundles them.
const { build } = await import('esbuild');
const out = join(work, 'incr.cjs');
await build({ entryPoints: [join(root, 'src/transcript/incremental.ts')], bundle: true, platform: 'node', format: 'cjs', outfile: out, logLevel: 'silent' });
const { loadState, readNew, saveState } = createRequire(import.meta.url)(out);
const stateDir = join(work, 'state');
mkdirSync(stateDir);

let t = process.hrtime.bigint();
const first = readNew(big, loadState(stateDir, big), true);
saveState(stateDir, first.state);
const fullMs = Number(process.hrtime.bigint() - t) / 1e6;

// ~10 KB of new messages (fresh ids), as a turn would append.
let appended = 0;
let i = 0;
while (appended < 10 * 1024) {
  const l = lines[i++ % lines.length].replace(/"id":"(msg_[^"]+)"/, `"id":"$1_new${i}"`);
  appendFileSync(big, `${l}\n`);
  appended += l.length + 1;
}
const samples = [];
for (let k = 0; k < 5; k++) {
  const state = loadState(stateDir, big);
  t = process.hrtime.bigint();
  const r = readNew(big, state, true);
  saveState(stateDir, r.state);
  samples.push(Number(process.hrtime.bigint() - t) / 1e6);
  if (k === 0 && r.lines.length === 0) throw new Error('the appended messages were not seen');
  if (k < 4) saveState(stateDir, state); // rewind so every sample reads the same 10 KB
}
samples.sort((a, b) => a - b);
console.log(`incremental transcript read: ${(statSync(big).size / 1048576).toFixed(0)} MB transcript, ${(appended / 1024).toFixed(1)} KB appended`);
console.table([
  { case: 'first read of the whole file', ms: fullMs.toFixed(1) },
  { case: 'Stop after 10 KB appended (median of 5)', ms: samples[2].toFixed(2) },
]);
console.log('target: under 50 ms of work for the incremental read');
rmSync(work, { recursive: true, force: true });
