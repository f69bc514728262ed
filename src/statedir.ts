/**
 * A state directory that can be written. Containers often mount the root (and
 * so HOME) read-only, and disks fill up: when the configured state directory
 * cannot take a file, every process picks the same private fallback instead,
 *
 *   $XDG_RUNTIME_DIR/claude-metrics   when XDG_RUNTIME_DIR is set and writable,
 *   <tmpdir>/claude-metrics-<uid>     otherwise (0700, ours, not a symlink),
 *
 * the rule bin/claude-metrics-hook applies too, so the hook's fallback inbox
 * and the drainer's spool meet. The check does no writing (stat, access and
 * statfs of the nearest existing directory), so the hot path pays a few
 * microseconds; the result is remembered for a few seconds per process.
 */
import { accessSync, constants, lstatSync, mkdirSync, statfsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

type Env = Record<string, string | undefined>;

/** Below this much free space a directory counts as full (a spool file, a log line and a lock fit). */
export const MIN_FREE_BYTES = 64 * 1024;

export interface StateDirChoice {
  dir: string;
  /** Set when the configured directory could not be written and the fallback is used. */
  fallbackFrom?: string;
  /** Why the configured directory was not used (e.g. "read-only file system"). */
  reason?: string;
}

/** Why files cannot be created in dir (or in the parents that would be made for it), or null when they can. */
export function dirProblem(dir: string): string | null {
  let d = dir;
  for (;;) {
    try {
      if (!statSync(d).isDirectory()) return `${d} is not a directory`;
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') return describeErrno(code, d);
      const up = dirname(d);
      if (up === d) return `${d} does not exist`;
      d = up;
    }
  }
  try {
    accessSync(d, constants.W_OK | constants.X_OK);
  } catch (err) {
    return describeErrno((err as NodeJS.ErrnoException).code, d);
  }
  const free = freeBytes(d);
  if (free !== null && free < MIN_FREE_BYTES) return `no space left on device (${free} bytes free at ${d})`;
  return null;
}

/** Bytes an unprivileged writer may still use on the file system of path (null where statfs is unavailable). */
export function freeBytes(path: string): number | null {
  try {
    const s = statfsSync(path);
    if (s.files > 0 && s.ffree === 0) return 0; // out of inodes: no new file fits either
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

export function describeErrno(code: string | undefined, path: string): string {
  switch (code) {
    case 'EROFS':
      return `read-only file system at ${path}`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied at ${path}`;
    case 'ENOSPC':
      return `no space left on device at ${path}`;
    case 'EDQUOT':
      return `disk quota exceeded at ${path}`;
    case 'ENOTDIR':
      return `${path} is not a directory`;
    default:
      return `${code ?? 'error'} at ${path}`;
  }
}

/** The private fallback directory's path by the rule in the header (not created). */
export function fallbackStateDirPath(env: Env = process.env): string {
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime) {
    try {
      if (statSync(runtime).isDirectory()) {
        accessSync(runtime, constants.W_OK);
        return join(runtime, 'claude-metrics');
      }
    } catch {
      /* not usable: the temp dir */
    }
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return join(env.TMPDIR ? env.TMPDIR.replace(/\/+$/, '') || '/' : tmpdir(), `claude-metrics-${uid}`);
}

/**
 * Creates (0700) and vets the fallback: a directory, not a symlink, owned by us
 * and private (another user may have made the path first in a shared /tmp).
 * Returns why it cannot be used, or null.
 */
export function prepareFallback(dir: string): string | null {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') return describeErrno(code, dir);
  }
  try {
    const st = lstatSync(dir);
    if (!st.isDirectory()) return `${dir} is not a directory`;
    if (typeof process.getuid === 'function' && st.uid !== process.getuid()) return `${dir} belongs to another user`;
    if ((st.mode & 0o077) !== 0) return `${dir} is open to other users (mode 0${(st.mode & 0o777).toString(8)})`;
  } catch (err) {
    return describeErrno((err as NodeJS.ErrnoException).code, dir);
  }
  return dirProblem(dir);
}

const REMEMBER_MS = 5_000;
const remembered = new Map<string, { at: number; choice: StateDirChoice }>();

/**
 * The state directory to use for the configured one: itself when it can be
 * written, else the private fallback when that can, else itself (every write
 * then fails on its own and is handled there: delivery goes direct).
 */
export function chooseStateDir(configured: string, env: Env = process.env, now = Date.now()): StateDirChoice {
  const hit = remembered.get(configured);
  if (hit && now - hit.at < REMEMBER_MS) return hit.choice;
  let choice: StateDirChoice = { dir: configured };
  const problem = dirProblem(configured);
  if (problem) {
    const fb = fallbackStateDirPath(env);
    if (fb !== configured && prepareFallback(fb) === null) choice = { dir: fb, fallbackFrom: configured, reason: problem };
    else choice = { dir: configured, reason: problem };
  }
  remembered.set(configured, { at: now, choice });
  return choice;
}

/**
 * The other state dir that may hold waiting events: the fallback while the
 * configured dir is in use again (events spooled during the outage), or the
 * configured dir while the fallback is in use. Only one that exists and can be
 * written (a flush renames files), else null.
 */
export function otherStateDir(current: string, configured: string | undefined, env: Env = process.env): string | null {
  const other = configured && configured !== current ? configured : fallbackStateDirPath(env);
  if (other === current) return null;
  try {
    if (!statSync(other).isDirectory()) return null;
  } catch {
    return null;
  }
  return dirProblem(other) === null ? other : null;
}
