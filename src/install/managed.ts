/**
 * Managed (policy) settings: /etc/claude-code/managed-settings.json, read by
 * every user's Claude Code and not removable by them. What install checks there
 * beyond the other scopes: every user must be able to read the file and run the
 * hook command, and writing it needs root.
 */
import { statSync } from 'node:fs';
import { dirname, isAbsolute } from 'node:path';
import { errorCode } from '../errors';
import { splitHookCommand } from './hook-command';
import { SettingsError } from './settings-edit';

/** Can a user other than the owner reach and read (and, for a program, run) this path? */
export function othersCanUse(path: string, execute: boolean): boolean {
  try {
    const need = execute ? 0o005 : 0o004;
    if ((statSync(path).mode & need) !== need) return false;
    for (let dir = dirname(path); ; dir = dirname(dir)) {
      if ((statSync(dir).mode & 0o001) === 0) return false;
      if (dir === dirname(dir)) return true;
    }
  } catch {
    return false;
  }
}

/** Problems a managed install would leave: files other users cannot read or run. */
export function managedWarnings(settingsPath: string, command: string, hookScript?: string): string[] {
  const out: string[] = [];
  try {
    const mode = statSync(settingsPath).mode & 0o777;
    if ((mode & 0o004) === 0) out.push(`${settingsPath} is 0${mode.toString(8)}: Claude Code running as other users cannot read it (chmod 644 ${settingsPath})`);
  } catch {
    /* created 0644 by this install */
  }
  const words = splitHookCommand(command).filter((w) => isAbsolute(w) && w !== hookScript);
  const blocked = words.filter((w) => !othersCanUse(w, false));
  if (blocked.length > 0) {
    out.push(`the hook command uses ${blocked.join(', ')}, which other users cannot read: their sessions would not be recorded; install claude-metrics where every user can run it (the single binary in /usr/local/bin, or a checkout outside /root)`);
  }
  return out;
}

/** Runs an I/O step of a managed install, turning a permission error into one that says root is needed. */
export function withManagedHint<T>(managed: boolean, step: () => T): T {
  try {
    return step();
  } catch (err) {
    const code = (err as { code?: string }).code;
    const denied = code === 'E_SETTINGS_ACCESS' || errorCode(err) === 'EACCES' || errorCode(err) === 'EPERM';
    if (managed && denied) throw new SettingsError(`${(err as Error).message}; managed settings are root's to change: run this with sudo`, 'E_SETTINGS_ACCESS');
    throw err;
  }
}
