#!/usr/bin/env node
// `claude-metrics usage --json` beside ccusage 20.0.24 (native) on the same generated tree,
// in one run: wall time and peak RSS (GNU time), and a check that the token totals agree.
// Usage: node bench/usage.mjs [--mb 500]   (the tree is generated once into bench/.data)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

function measure(cmd, args) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %M', cmd, ...args], { env, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  const [secs, kb] = r.stderr.trim().split('\n').pop().split(' ').map(Number);
  return { secs, rssMb: kb / 1024, out: JSON.parse(r.stdout) };
}
const rows = [];
const results = {};
for (let i = 0; i < 2; i++) {
  results.ours = measure(process.execPath, [join(root, 'bin/claude-metrics'), 'usage', '--json', '--projects-dir', join(tree, 'projects')]);
  results.ccusage = measure('bash', [join(root, 'scripts/ccusage.sh'), 'session', '--json', '--offline', '--mode', 'calculate']);
}
const t = results.ours.out.totals;
const c = results.ccusage.out.totals;
const same = t.input_tokens === c.inputTokens && t.output_tokens === c.outputTokens && t.cache_creation_input_tokens === c.cacheCreationTokens && t.cache_read_input_tokens === c.cacheReadTokens;
const asGenerated = t.input_tokens === expected.input_tokens && t.output_tokens === expected.output_tokens && t.cache_creation_input_tokens === expected.cache_creation_input_tokens && t.cache_read_input_tokens === expected.cache_read_input_tokens;
rows.push({ tool: 'ccusage 20.0.24 (native)', 'wall s': results.ccusage.secs.toFixed(2), 'peak RSS MB': results.ccusage.rssMb.toFixed(0), 'cost $': c.totalCost.toFixed(2) });
rows.push({ tool: 'claude-metrics usage', 'wall s': results.ours.secs.toFixed(2), 'peak RSS MB': results.ours.rssMb.toFixed(0), 'cost $': t.cost_usd.toFixed(2) });
console.log(`usage over a ${mb} MB generated tree (second of two runs each, warm page cache)`);
console.table(rows);
console.log(`token totals equal: ${same} (and equal to the generator's expectation: ${asGenerated}); speed ratio (ccusage / ours): ${(results.ccusage.secs / results.ours.secs).toFixed(2)}x; targets: at least as fast, RSS under 300 MB`);
rmSync(home, { recursive: true, force: true });
