#!/usr/bin/env node
// `npm run bench`: every benchmark in turn, each printing its own table with the
// baseline it measured in the same run. Builds first (the benches run dist/).
// Usage: npm run bench [-- name …]   e.g. npm run bench -- ingest usage
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const all = ['emit-cold-start', 'hook-overhead', 'flush-throughput', 'ingest', 'incremental', 'usage', 'binary', 'middleware'];
const picked = process.argv.slice(2);
const unknown = picked.filter((n) => !all.includes(n));
if (unknown.length > 0) {
  console.error(`unknown benchmark: ${unknown.join(', ')} (have: ${all.join(', ')})`);
  process.exit(2);
}
const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: join(here, '..'), stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
let failed = 0;
for (const name of picked.length > 0 ? picked : all) {
  console.log(`\n=== ${name} ===`);
  const r = spawnSync(process.execPath, [join(here, `${name}.mjs`)], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`${name}: exited ${r.status ?? r.signal}`);
  }
}
process.exit(failed > 0 ? 1 : 0);
