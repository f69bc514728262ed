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

/**
 * For managed settings the hook runs as every user, so the script cannot live in root's home:
 * `<binary dir>/../share/claude-metrics/claude-metrics-hook` (/usr/local/bin → /usr/local/share).
 */
export function managedHookScriptPath(binary: string): string {
  return join(dirname(dirname(binary)), 'share', 'claude-metrics', 'claude-metrics-hook');
}

/** Writes the embedded script (0700: it runs as the user only; 0755 for managed settings) unless it is already there, unchanged. */
export function writeEmbeddedHookScript(path: string, text: string, mode = 0o700): void {
  try {
    if (readFileSync(path, 'utf8') === text) return;
  } catch {
    /* not there yet */
  }
  mkdirSync(dirname(path), { recursive: true, mode });
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
}
