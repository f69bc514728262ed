#!/usr/bin/env node
// `claude-metrics usage --json` beside ccusage 20.0.24 (native) on the same generated tree,
// in one run: wall time and peak RSS (GNU time), and a check that the token totals agree.
// Three ways of ours: `--no-cache` (every file read, as ccusage does), the first run with
// the per-file cache (reads everything and writes the cache), and the second (warm: the
// tree unchanged, nothing read). Target for the warm run: ≥ 10× as fast as ccusage.
// Usage: node bench/usage.mjs [--mb 500]   (the tree is generated once into bench/.data)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const mb = Number(process.argv[process.argv.indexOf('--mb') + 1]) || 500;
const tree = join(root, 'bench', '.data', `gen-${mb}mb-seed1`);
const gen = join(root, 'scripts', 'gen-transcripts.mjs');
if (!existsSync(join(tree, 'expected.json'))) {
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  process.stderr.write(`generating a ${mb} MB tree in ${tree} …\n`);
  const printed = execFileSync(process.execPath, [gen, '--out', join(tree, 'projects'), '--mb', String(mb), '--seed', '1'], { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28 });
  writeFileSync(join(tree, 'expected.json'), printed);
}
const expected = JSON.parse(readFileSync(join(tree, 'expected.json'), 'utf8')).expected.ccusage20.totals;
const home = mkdtempSync(join(tmpdir(), 'cm-bench-usage-'));
const env = { PATH: process.env.PATH, HOME: home, TZ: 'UTC', CLAUDE_CONFIG_DIR: tree };
execFileSync('bash', [join(root, 'scripts/ccusage.sh'), '--version'], { env: { ...process.env, HOME: home }, stdio: ['ignore', 'ignore', 'inherit'] });

function measure(cmd, args, extraEnv = {}) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M %U %S', cmd, ...args], { env: { ...env, ...extraEnv }, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  const [secs, kb, user, sys] = r.stderr.trim().split('\n').pop().split(' ').map(Number);
  return { secs, cpu: user + sys, rssMb: kb / 1024, out: JSON.parse(r.stdout) };
}
const rows = [];
const results = {};
const ours = (...flags) => [join(root, 'bin/claude-metrics'), 'usage', '--json', '--projects-dir', join(tree, 'projects'), ...flags];
for (let i = 0; i < 2; i++) {
  results.ours = measure(process.execPath, ours('--no-cache'));
  results.ccusage = measure('bash', [join(root, 'scripts/ccusage.sh'), 'session', '--json', '--offline', '--mode', 'calculate']);
}
// The cache lives in the state dir: a state dir of its own, so the first run starts without one.
const stateDir = mkdtempSync(join(tmpdir(), 'cm-bench-usage-state-'));
results.first = measure(process.execPath, ours(), { CLAUDE_METRICS_STATE_DIR: stateDir });
results.warm = measure(process.execPath, ours(), { CLAUDE_METRICS_STATE_DIR: stateDir });
const c = results.ccusage.out.totals;
const sameAsCcusage = (t) => t.input_tokens === c.inputTokens && t.output_tokens === c.outputTokens && t.cache_creation_input_tokens === c.cacheCreationTokens && t.cache_read_input_tokens === c.cacheReadTokens;
const t = results.ours.out.totals;
const same = sameAsCcusage(t) && sameAsCcusage(results.first.out.totals) && sameAsCcusage(results.warm.out.totals);
const identical = JSON.stringify(results.warm.out) === JSON.stringify(results.ours.out) && JSON.stringify(results.first.out) === JSON.stringify(results.ours.out);
const asGenerated = t.input_tokens === expected.input_tokens && t.output_tokens === expected.output_tokens && t.cache_creation_input_tokens === expected.cache_creation_input_tokens && t.cache_read_input_tokens === expected.cache_read_input_tokens;
const ratio = (r) => `${(results.ccusage.secs / r.secs).toFixed(2)}×`;
rows.push({ tool: 'ccusage 20.0.24 (native)', 'wall s': results.ccusage.secs.toFixed(2), 'CPU s': results.ccusage.cpu.toFixed(2), 'peak RSS MB': results.ccusage.rssMb.toFixed(0), 'cost $': c.totalCost.toFixed(2), 'ccusage / this': '1.00×' });
rows.push({ tool: 'claude-metrics usage --no-cache', 'wall s': results.ours.secs.toFixed(2), 'CPU s': results.ours.cpu.toFixed(2), 'peak RSS MB': results.ours.rssMb.toFixed(0), 'cost $': t.cost_usd.toFixed(2), 'ccusage / this': ratio(results.ours) });
rows.push({ tool: 'claude-metrics usage, first run (writes the cache)', 'wall s': results.first.secs.toFixed(2), 'CPU s': results.first.cpu.toFixed(2), 'peak RSS MB': results.first.rssMb.toFixed(0), 'cost $': results.first.out.totals.cost_usd.toFixed(2), 'ccusage / this': ratio(results.first) });
rows.push({ tool: 'claude-metrics usage, second run (warm cache)', 'wall s': results.warm.secs.toFixed(2), 'CPU s': results.warm.cpu.toFixed(2), 'peak RSS MB': results.warm.rssMb.toFixed(0), 'cost $': results.warm.out.totals.cost_usd.toFixed(2), 'ccusage / this': ratio(results.warm) });
const cacheBytes = readdirSync(join(stateDir, 'usage-cache')).reduce((s, f) => s + statSync(join(stateDir, 'usage-cache', f)).size, 0);
console.log(`usage over a ${mb} MB generated tree (ccusage and --no-cache: second of two runs each, warm page cache; cache file ${(cacheBytes / 1e6).toFixed(1)} MB)`);
console.table(rows);
console.log(`token totals equal to ccusage's in every run: ${same} (reports identical with and without the cache: ${identical}; equal to the generator's expectation: ${asGenerated})`);
console.log(`speed ratio (ccusage / ours, wall): --no-cache ${ratio(results.ours)} (target ≥ 1×, RSS under 300 MB); warm cache ${ratio(results.warm)} (target ≥ 10×); in CPU seconds: ${(results.ccusage.cpu / results.ours.cpu).toFixed(2)}× and ${(results.ccusage.cpu / results.warm.cpu).toFixed(2)}×`);
console.log(`load average now: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (2 cores)`);
rmSync(home, { recursive: true, force: true });
rmSync(stateDir, { recursive: true, force: true });
