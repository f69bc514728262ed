/**
 * doctor's storage check: can the state dir, the fast hook's inbox and the
 * spool take a file right now? A real write of a few KiB (a 0-byte file is
 * created even on a full disk), then removed; and the free space beside them.
 * The judgement (`storageProblems`) is pure.
 */
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describeErrno, freeBytes, MIN_FREE_BYTES } from '../statedir';

export interface WriteCheck {
  /** What the directory is for: "state dir", "hook inbox", "spool". */
  role: string;
  dir: string;
  ok: boolean;
  /** errno code when the write failed. */
  code?: string;
  error?: string;
  freeBytes: number | null;
}

export interface StorageFacts {
  checks: WriteCheck[];
  /** The configured state dir when the private fallback is in use, and why. */
  fallbackFrom?: string;
  configuredProblem?: string;
}

/** Free space below this is shown (a note); below MIN_FREE_BYTES it is a problem. */
export const LOW_FREE_BYTES = 100 * 1024 * 1024;

export function writeCheck(role: string, dir: string): WriteCheck {
  const probe = join(dir, `.doctor-write-test-${process.pid}`);
  let fd: number | undefined;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    fd = openSync(probe, 'wx', 0o600);
    writeSync(fd, Buffer.alloc(8192, 46));
    return { role, dir, ok: true, freeBytes: freeBytes(dir) };
  } catch (err) {
    let code = (err as NodeJS.ErrnoException).code;
    let at = dir;
    // mkdir -p on a read-only file system can say ENOENT: ask the nearest directory that exists.
    if (code === 'ENOENT') [code, at] = nearestRefusal(dir) ?? [code, dir];
    return { role, dir, ok: false, code, error: describeErrno(code, at), freeBytes: freeBytes(nearestExisting(dir)) };
  } finally {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(probe);
    } catch {
      /* never created */
    }
  }
}

function nearestExisting(dir: string): string {
  let d = dir;
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  return d;
}

function nearestRefusal(dir: string): [string | undefined, string] | null {
  const d = nearestExisting(dir);
  try {
    accessSync(d, constants.W_OK);
    return null;
  } catch (err) {
    return [(err as NodeJS.ErrnoException).code, d];
  }
}

export function formatBytes(n: number): string {
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(1)} GiB`;
}

function fixFor(c: WriteCheck): string {
  if (c.code === 'ENOSPC' || c.code === 'EDQUOT') return `free space on that disk (df -h ${c.dir}) or set CLAUDE_METRICS_STATE_DIR to a directory on another one`;
  if (c.code === 'EACCES' || c.code === 'EPERM') return `chown -R "$(id -u)" ${c.dir} or set CLAUDE_METRICS_STATE_DIR to a directory you can write`;
  return 'set CLAUDE_METRICS_STATE_DIR to a writable directory (in a container with a read-only root: a volume or tmpfs)';
}

/** One line per problem, each with its fix; notes for low (not yet too low) free space. Pure. */
export function storageProblems(s: StorageFacts): { problems: string[]; notes: string[] } {
  const problems: string[] = [];
  const notes: string[] = [];
  if (s.fallbackFrom) {
    problems.push(`state dir ${s.fallbackFrom} cannot be written (${s.configuredProblem}); hooks use the private fallback ${s.checks[0]?.dir}, which a reboot may clear: set CLAUDE_METRICS_STATE_DIR to a writable directory (in a container: a volume)`);
  }
  const seen = new Set<string>();
  for (const c of s.checks) {
    if (!c.ok) {
      problems.push(`cannot write to the ${c.role} ${c.dir} (${c.error}): events that cannot be delivered at once are lost; ${fixFor(c)}`);
      continue;
    }
    if (c.freeBytes === null || seen.has(c.dir)) continue;
    seen.add(c.dir);
    if (c.freeBytes < MIN_FREE_BYTES) problems.push(`the ${c.role} ${c.dir} has ${formatBytes(c.freeBytes)} free: the next events may not fit; ${fixFor({ ...c, code: 'ENOSPC' })}`);
    else if (c.freeBytes < LOW_FREE_BYTES) notes.push(`the ${c.role} ${c.dir} has only ${formatBytes(c.freeBytes)} free`);
  }
  return { problems, notes };
}
