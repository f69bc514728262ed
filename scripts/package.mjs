// `npm run package`: the single executable, build/claude-metrics (Node SEA).
// 1. one bundle of the CLI with every command bundled in (src/sea/shim.ts serves
//    cli.ts's per-command requires from it); 2. the SEA blob (with V8 code cache);
//    3. a copy of this node, symbols stripped, with the blob injected by postject.
// No Node or node_modules is needed to run it, except `serve`, whose native
// better-sqlite3 is loaded from a node_modules beside the binary when present.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build');
const work = join(out, `.sea-${process.pid}`);
const target = process.env.SEA_OUT ?? join(out, 'claude-metrics');
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const useSnapshot = process.env.SEA_SNAPSHOT === '1';
// V8 code cache and a startup snapshot are exclusive in node's SEA config.
const useCodeCache = !useSnapshot && process.env.SEA_CODE_CACHE !== '0';
const t0 = Date.now();

/** Runs a build step, showing its output only when it fails. */
function quiet(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(`${r.stdout}${r.stderr}`);
    throw new Error(`package: ${[cmd, ...args].join(' ')} exited ${r.status ?? r.signal}`);
  }
}
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

// Every command as a lazily evaluated module, keyed by the path cli.ts asks for.
const commands = readdirSync(join(root, 'src/commands'))
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
  .map((f) => f.slice(0, -3));
const entry = [
  "import { installSeaRequire } from './src/sea/shim';",
  'installSeaRequire({',
  "  'emit.cjs': () => require('./src/emit/main'),",
  ...commands.map((c) => `  'commands/${c}.cjs': () => require('./src/commands/${c}'),`),
  '});',
  ...(useSnapshot
    ? [
        // Build time: evaluate the libraries into the snapshot; run time: only the CLI itself.
        "require('commander'); require('zod/mini');",
        "require('node:v8').startupSnapshot.setDeserializeMainFunction(() => { require('./src/cli'); });",
      ]
    : ["require('./src/cli');"]),
].join('\n');

await build({
  stdin: { contents: entry, resolveDir: root, sourcefile: 'sea-entry.ts', loader: 'ts' },
  outfile: join(work, 'main.cjs'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
  external: ['better-sqlite3', 'pino', 'playwright-core', 'pg-native'],
  // The fast hook script rides inside the binary; `install` writes it out (src/install/hook-script.ts).
  define: { 'process.env.CLAUDE_METRICS_BUILD': '"binary"', __HOOK_SCRIPT__: JSON.stringify(readFileSync(join(root, 'bin', 'claude-metrics-hook'), 'utf8')) },
});

// The same bundle serves the bun comparison in bench/binary.mjs.
if (process.env.SEA_BUNDLE_OUT && !useSnapshot) copyFileSync(join(work, 'main.cjs'), process.env.SEA_BUNDLE_OUT);

writeFileSync(
  join(work, 'sea-config.json'),
  JSON.stringify({ main: join(work, 'main.cjs'), output: join(work, 'sea.blob'), disableExperimentalSEAWarning: true, useCodeCache, useSnapshot }),
);
quiet(process.execPath, ['--experimental-sea-config', join(work, 'sea-config.json')]);

const exe = join(work, 'claude-metrics');
copyFileSync(process.execPath, exe);
chmodSync(exe, 0o755);
// Debug symbols are most of node's size; the SEA fuse is data, not a symbol.
if (spawnSync('strip', ['--strip-all', exe], { stdio: 'ignore' }).status !== 0) console.error('package: strip not available; the binary keeps its symbols');
// postject's CLI in a child: its LIEF warnings about node's notes sections are noise unless it fails.
const postject = join(dirname(createRequire(import.meta.url).resolve('postject')), 'cli.js');
quiet(process.execPath, [postject, exe, 'NODE_SEA_BLOB', join(work, 'sea.blob'), '--sentinel-fuse', FUSE]);
renameSync(exe, target);
rmSync(work, { recursive: true, force: true });
const mb = (statSync(target).size / 1024 / 1024).toFixed(1);
console.log(`package: ${target} (${mb} MiB, node ${process.versions.node} SEA${useCodeCache ? ' + code cache' : ''}${useSnapshot ? ' + startup snapshot' : ''}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
