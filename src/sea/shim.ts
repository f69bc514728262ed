/**
 * The single binary runs one bundle, but cli.ts loads each command as a file
 * (`require(<dist>/commands/<name>.cjs)`) and a single executable's `require`
 * only knows built-in modules. This swaps in a `require` that answers those
 * paths from the commands bundled in, built-ins from node, and anything else
 * (better-sqlite3 for `serve`) from a node_modules beside the binary.
 */
import { builtinModules, createRequire } from 'node:module';
import { CliError } from '../errors';

export type BundledModules = Record<string, () => unknown>;

/** Which bundled module a requested path means: `…/commands/flush.cjs` → `commands/flush.cjs`. Pure. */
export function bundledKey(id: string, keys: readonly string[]): string | undefined {
  const norm = id.replace(/\\/g, '/');
  return keys.find((k) => norm === k || norm.endsWith(`/${k}`));
}

export function installSeaRequire(bundled: BundledModules): void {
  const builtin = require;
  const keys = Object.keys(bundled);
  const cache = new Map<string, unknown>();
  let outside: NodeJS.Require | undefined;
  const seaRequire = (id: string): unknown => {
    const key = bundledKey(id, keys);
    if (key) {
      if (!cache.has(key)) cache.set(key, bundled[key]!());
      return cache.get(key);
    }
    if (id.startsWith('node:') || builtinModules.includes(id)) return builtin(id);
    outside ??= createRequire(process.execPath);
    try {
      return outside(id);
    } catch (err) {
      if ((err as { code?: string }).code === 'MODULE_NOT_FOUND' && id === 'better-sqlite3') {
        throw new CliError(
          'serve needs the native better-sqlite3 module, which cannot live inside the single binary: run serve from the npm install (claude-metrics serve via install.sh), or put a node_modules with better-sqlite3 beside the binary',
          'E_SERVE_NEEDS_NPM',
          1,
        );
      }
      throw err;
    }
  };
  Object.assign(seaRequire, { resolve: (id: string) => id, cache: {}, main: undefined });
  // The free `require` of this bundle is the wrapper's parameter: reassigning it
  // reroutes every later `require(...)` in the bundle, cli.ts's included.
  require = seaRequire as unknown as NodeJS.Require;
}
