// The embeddable parts of the package, for dashboards (package.json `exports`):
//   claude-metrics/client  dist/client.cjs + dist/client.mjs  (any runtime with fetch)
//   claude-metrics/panel   dist/panel.mjs                     (browsers: defines <claude-harness-activity>)
// and their declarations in dist/types/ (tsc, from tsconfig.types.json).
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export async function buildClient(root, dist) {
  const common = { bundle: true, legalComments: 'none', logLevel: 'warning', target: ['es2022'], sourcemap: false };
  await build({ ...common, entryPoints: [join(root, 'src/client/index.ts')], outfile: join(dist, 'client.cjs'), format: 'cjs', platform: 'neutral' });
  await build({ ...common, entryPoints: [join(root, 'src/client/index.ts')], outfile: join(dist, 'client.mjs'), format: 'esm', platform: 'neutral' });
  await build({ ...common, entryPoints: [join(root, 'src/panel/index.ts')], outfile: join(dist, 'panel.mjs'), format: 'esm', platform: 'browser' });
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.types.json'), '--outDir', join(dist, 'types')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build: declarations (tsc -p tsconfig.types.json) failed:\n${r.stdout}${r.stderr}`);
}
