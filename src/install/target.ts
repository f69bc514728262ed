/** Which settings file a command edits: --settings wins over --scope. */
import { resolve } from 'node:path';
import { UsageError } from '../errors';
import { realTarget, settingsPathFor, type Scope } from './settings-file';

export interface Target {
  /** The scope named (user when only --settings is given). */
  scope: Scope;
  /** As the user knows it (for messages). */
  display: string;
  /** Symlinks followed: the file actually written. */
  path: string;
}

export function resolveTarget(opts: Record<string, unknown>, env: Record<string, string | undefined> = process.env, cwd = process.cwd()): Target {
  const scope = (opts.scope as string | undefined) ?? 'user';
  if (!['user', 'project', 'local', 'managed'].includes(scope)) throw new UsageError(`--scope must be user, project, local or managed, got ${JSON.stringify(scope)}`);
  const display = typeof opts.settings === 'string' && opts.settings !== '' ? resolve(cwd, opts.settings) : settingsPathFor(scope as Scope, env, cwd);
  return { scope: scope as Scope, display, path: realTarget(display) };
}
