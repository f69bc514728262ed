/**
 * Where this program lives, for the absolute hook command: the single binary
 * (its own path), or node + the checkout's bin/claude-metrics launcher.
 */
import { existsSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { SelfLocation } from './hook-command';
import { binaryHookScriptPath, EMBEDDED_HOOK_SCRIPT } from './hook-script';

function isSingleBinary(): boolean {
  try {
    const sea = require('node:sea') as { isSea?: () => boolean };
    return sea.isSea?.() === true;
  } catch {
    return false;
  }
}

/** `distDir` is the directory holding cli.cjs (commands live in dist/commands). */
export function locateSelf(distDir: string = resolve(__dirname, '..')): SelfLocation {
  if (isSingleBinary() || process.env.CLAUDE_METRICS_BUILD === 'binary') {
    return { kind: 'binary', path: realpathSync(process.execPath), ...(EMBEDDED_HOOK_SCRIPT ? { hookScript: binaryHookScriptPath() } : {}) };
  }
  const launcher = join(distDir, '..', 'bin', 'claude-metrics');
  const bin = existsSync(launcher) ? launcher : join(distDir, 'cli.cjs');
  const hookScript = join(distDir, '..', 'bin', 'claude-metrics-hook');
  const cli = join(distDir, 'cli.cjs');
  const fast = existsSync(hookScript) && existsSync(cli) ? { hookScript: realpathSync(hookScript), cli: realpathSync(cli) } : {};
  return { kind: 'node', node: realpathSync(process.execPath), bin: realpathSync(bin), ...fast };
}
