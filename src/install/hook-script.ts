/**
 * The fast hook script for the single binary, which has no bin/ directory beside
 * it: scripts/package.mjs embeds bin/claude-metrics-hook, and `install` writes it
 * to $XDG_DATA_HOME/claude-metrics/claude-metrics-hook (~/.local/share/…).
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { homeDir } from '../paths';

declare const __HOOK_SCRIPT__: string | undefined;
export const EMBEDDED_HOOK_SCRIPT: string | undefined = typeof __HOOK_SCRIPT__ === 'string' ? __HOOK_SCRIPT__ : undefined;

export function binaryHookScriptPath(env: Record<string, string | undefined> = process.env): string {
  const data = env.XDG_DATA_HOME || join(homeDir(env), '.local', 'share');
  return join(data, 'claude-metrics', 'claude-metrics-hook');
}

/** Writes the embedded script (0700: it runs as the user only) unless it is already there, unchanged. */
export function writeEmbeddedHookScript(path: string, text: string): void {
  try {
    if (readFileSync(path, 'utf8') === text) return;
  } catch {
    /* not there yet */
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, text, { mode: 0o700 });
  chmodSync(path, 0o700);
}
