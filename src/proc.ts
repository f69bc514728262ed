/**
 * Is a process alive? `kill(pid, 0)` alone says yes for a zombie, and a zombie
 * is what a SIGKILLed background worker stays where PID 1 does not reap orphans
 * (containers without an init, some VMs): so on Linux the state in
 * /proc/<pid>/stat must not be Z (or X). Small and dependency-free: the hot path loads it.
 */
import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';

export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return true; // no /proc (macOS) or it just went: trust kill()
  }
  // "pid (comm) state …": comm may hold spaces or parentheses, so read after the last ')'.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/**
 * Pid files as locks (one drainer per inbox, one flusher per state directory): the file is
 * created exclusively and holds its owner's pid. A file whose pid is dead, or that is older than
 * `staleMs` (its pid may have been reused by an unrelated process), is taken over. An empty file
 * is a process between creating and writing it: held for a few seconds, then taken over.
 */
const STARTING_MS = 5_000;

/** The pid holding the lock, 'starting' while an empty file is young, or null when it is free. */
export function pidFileHolder(path: string, staleMs = Infinity, now = Date.now()): number | 'starting' | null {
  let text: string;
  let mtimeMs: number;
  try {
    mtimeMs = statSync(path).mtimeMs;
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const pid = Number(text.trim());
  const age = now - mtimeMs;
  if (!(pid > 0)) return age < STARTING_MS ? 'starting' : null;
  if (age > staleMs) return null;
  return pid === process.pid || processAlive(pid) ? pid : null;
}

/** Takes the lock for `owner` (default: this process); true when it holds it now. */
export function acquirePidFile(path: string, staleMs = Infinity, owner = process.pid): boolean {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeSync(fd, String(owner));
      } finally {
        closeSync(fd);
      }
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return false;
      const holder = pidFileHolder(path, staleMs);
      if (holder === owner) return true; // written for us by the process that started us
      if (holder !== null) return false;
      try {
        unlinkSync(path);
      } catch {
        /* someone else took it over */
      }
    }
  }
  return false;
}

/**
 * Takes the lock on behalf of a child about to be started: creates the file, starts the child,
 * writes the child's pid. Returns the child's pid, or undefined when the lock is held (nothing
 * started) or the child did not start (the lock is given back).
 */
export function acquirePidFileFor(path: string, start: () => number | undefined, staleMs = Infinity): number | undefined {
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || pidFileHolder(path, staleMs) !== null) return undefined;
      try {
        unlinkSync(path);
      } catch {
        /* taken over meanwhile */
      }
      continue;
    }
    let pid: number | undefined;
    try {
      pid = start();
      if (pid !== undefined) writeSync(fd, String(pid));
    } finally {
      closeSync(fd);
      if (pid === undefined) releaseEmpty(path);
    }
    return pid;
  }
  return undefined;
}

function releaseEmpty(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* gone */
  }
}

/** Gives the lock up if this process holds it. */
export function releasePidFile(path: string, owner = process.pid): void {
  try {
    if (Number(readFileSync(path, 'utf8').trim()) === owner) unlinkSync(path);
  } catch {
    /* not ours or gone */
  }
}
