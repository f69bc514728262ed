/**
 * Reading and writing a settings file safely: which file a scope means, a
 * backup (0600) before any change, an atomic write that keeps the file's mode
 * (new files 0600 in a 0700 dir), errors that name the file, and a small record
 * of what install changed so uninstall can give back the exact original bytes.
 */
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { errorCode } from '../errors';
import { claudeConfigDir } from '../paths';
import { SettingsError } from './settings-edit';

type Env = Record<string, string | undefined>;
export type Scope = 'user' | 'project' | 'local' | 'managed';

/** Where Claude Code on Linux reads policy settings (above user and project; a user cannot override them). */
export const MANAGED_SETTINGS_FILE = '/etc/claude-code/managed-settings.json';

/** The managed settings file: $CLAUDE_METRICS_MANAGED_SETTINGS (tests, other layouts) or /etc/claude-code/managed-settings.json. */
export function managedSettingsPath(env: Env): string {
  return env.CLAUDE_METRICS_MANAGED_SETTINGS || MANAGED_SETTINGS_FILE;
}

/** user: $CLAUDE_CONFIG_DIR/settings.json (~/.claude); project and local: .claude/ in the directory Claude Code is started from; managed: see managedSettingsPath. */
export function settingsPathFor(scope: Scope, env: Env, cwd: string): string {
  if (scope === 'managed') return managedSettingsPath(env);
  if (scope === 'user') return join(claudeConfigDir(env), 'settings.json');
  return join(cwd, '.claude', scope === 'project' ? 'settings.json' : 'settings.local.json');
}

function ioError(err: unknown, verb: string, file: string): SettingsError {
  const code = errorCode(err);
  if (code === 'EACCES' || code === 'EPERM') return new SettingsError(`cannot ${verb} ${file}: permission denied (${code})`, 'E_SETTINGS_ACCESS');
  if (code === 'EISDIR') return new SettingsError(`cannot ${verb} ${file}: it is a directory`, 'E_SETTINGS_ACCESS');
  if (code === 'EROFS') return new SettingsError(`cannot ${verb} ${file}: read-only file system`, 'E_SETTINGS_ACCESS');
  return new SettingsError(`cannot ${verb} ${file}: ${(err as Error).message}`, 'E_SETTINGS_IO');
}

/** Follows a symlinked settings file (dotfile repos) so the link stays a link. */
export function realTarget(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

/** The file's text, or null when it does not exist. */
export function readSettings(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return null;
    throw ioError(err, 'read', path);
  }
}

function stamp(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Copies the file to `<file>.bak-<UTC stamp>` (0600) and returns the backup's path. */
export function backupSettings(path: string, now = new Date()): string {
  let backup = `${path}.bak-${stamp(now)}`;
  for (let n = 1; existsSync(backup); n++) backup = `${path}.bak-${stamp(now)}-${n}`;
  try {
    copyFileSync(path, backup);
    chmodSync(backup, 0o600);
  } catch (err) {
    throw ioError(err, 'back up', path);
  }
  return backup;
}

/**
 * Atomic replace (tmp + rename in the same dir) keeping the existing mode; a new file is 0600 in a 0700 dir
 * unless `created` says otherwise (managed settings must be readable by every user's Claude Code: 0644 in 0755).
 */
export function writeSettings(path: string, text: string, created: { fileMode: number; dirMode: number } = { fileMode: 0o600, dirMode: 0o700 }): void {
  let mode = created.fileMode;
  try {
    mode = statSync(path).mode & 0o777;
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') throw ioError(err, 'write', path);
  }
  const tmp = `${path}.claude-metrics-${process.pid}.tmp`;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: created.dirMode });
    writeFileSync(tmp, text, { mode });
    chmodSync(tmp, mode);
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      /* never written */
    }
    throw ioError(err, 'write', path);
  }
}

export function removeSettingsFile(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') throw ioError(err, 'remove', path);
  }
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** What install did to one settings file: where the untouched original is, and what the file looked like after. */
export interface InstallRecord {
  /** The backup holding the bytes before our first install, or null when the file did not exist. */
  backup: string | null;
  afterSha256: string;
  at: string;
}

/** Records live in the state dir (0600), keyed by the settings file's real path. */
export class InstallRecords {
  constructor(private readonly file: string) {}

  private readAll(): Record<string, InstallRecord> {
    try {
      const v = JSON.parse(readFileSync(this.file, 'utf8')) as unknown;
      return v && typeof v === 'object' ? (v as Record<string, InstallRecord>) : {};
    } catch {
      return {};
    }
  }

  private writeAll(all: Record<string, InstallRecord>): void {
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
      writeFileSync(tmp, `${JSON.stringify(all, null, 2)}\n`, { mode: 0o600 });
      renameSync(tmp, this.file);
    } catch {
      // Only an optimisation for uninstall: the surgical path still works without it.
      try {
        unlinkSync(tmp);
      } catch {
        /* never created */
      }
    }
  }

  get(settingsPath: string): InstallRecord | undefined {
    return this.readAll()[settingsPath];
  }

  set(settingsPath: string, rec: InstallRecord): void {
    const all = this.readAll();
    all[settingsPath] = rec;
    this.writeAll(all);
  }

  delete(settingsPath: string): void {
    const all = this.readAll();
    if (!(settingsPath in all)) return;
    delete all[settingsPath];
    this.writeAll(all);
  }
}
