// Builds dist/ with esbuild: one CommonJS bundle per command so that `emit`
// (the hot path, run on every Claude Code hook) loads only its own small file.
// CJS because it starts 3-7 ms faster than ESM on Node 20 here; esbuild's code
// splitting is ESM-only, so commands are separate entry points instead.
import { build } from 'esbuild';
import { readdirSync, rmSync, mkdirSync, cpSync, existsSync, renameSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const finalDist = join(root, 'dist');
// Build beside dist/ and swap it in, so tests running from dist/ while another
// build runs never see a half-written tree.
const dist = join(root, `.dist-build-${process.pid}`);
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const commands = readdirSync(join(root, 'src/commands'))
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
  .map((f) => f.slice(0, -3));

const entryPoints = {
  cli: join(root, 'src/cli.ts'),
  emit: join(root, 'src/emit/main.ts'),
  ...Object.fromEntries(commands.map((c) => [`commands/${c}`, join(root, `src/commands/${c}.ts`)])),
};

// emit runs on every hook: a minified bundle parses measurably faster.
await build({
  entryPoints: { emit: entryPoints.emit },
  outdir: dist,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
delete entryPoints.emit;

await build({
  entryPoints,
  outdir: dist,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: false,
  minify: false,
  legalComments: 'none',
  logLevel: 'warning',
  // Native addon and libraries with worker/dynamic requires stay in node_modules.
  external: ['better-sqlite3', 'pino', 'playwright-core', 'pg-native'],
  define: { 'process.env.CLAUDE_METRICS_BUILD': '"dist"' },
});

// Static dashboard assets are served from dist/dashboard.
const dash = join(root, 'src/dashboard/static');
if (existsSync(dash)) cpSync(dash, join(dist, 'dashboard'), { recursive: true });
const uplot = join(root, 'node_modules/uplot/dist');
if (existsSync(uplot)) {
  mkdirSync(join(dist, 'dashboard/vendor'), { recursive: true });
  cpSync(join(uplot, 'uPlot.iife.min.js'), join(dist, 'dashboard/vendor/uPlot.iife.min.js'));
  cpSync(join(uplot, 'uPlot.min.css'), join(dist, 'dashboard/vendor/uPlot.min.css'));
}

// The typed API client and the embeddable panel (package.json `exports`).
await (await import('./build-client.mjs')).buildClient(root, dist);

const old = join(root, `.dist-old-${process.pid}`);
if (existsSync(finalDist)) renameSync(finalDist, old);
renameSync(dist, finalDist);
rmSync(old, { recursive: true, force: true });
