/**
 * One transcript worker per session at a time, and no second process when one
 * is already running. In `claude -p`, Stop and SessionEnd fire ~100 ms apart;
 * starting a second worker for SessionEnd cost the hook ~16 ms (loading
 * child_process and spawning) and the machine another Node start-up competing
 * with Claude Code, for work the first worker can do.
 *
 * Two files per session in the offsets directory:
 * - `<session>.worker` holds the pid of the worker that is running (written by
 *   the hook that spawned it, removed by the worker when it is done);
 * - `<session>.again` asks the running worker to read once more, and says for
 *   which hook (a SessionEnd makes that read final).
 *
 * The hook writes `.again` first, then looks for a live `.worker`; the worker
 * removes `.worker` first, then looks for `.again`. Whatever the interleaving,
 * either the worker sees the request or the hook sees no worker and starts one
 * (two workers at worst, which the per-session lock and deterministic event ids
 * make harmless). Small and dependency-free: `emit` loads it on the hot path.
 */
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processAlive } from '../proc';

export interface WorkerFiles {
  active: string;
  again: string;
}

export function workerFiles(offsetsDir: string, sessionId: string): WorkerFiles {
  const base = join(offsetsDir, sessionId.replace(/[^A-Za-z0-9_.-]/g, '_'));
  return { active: `${base}.worker`, again: `${base}.again` };
}

function write(path: string, text: string): void {
  try {
    try {
      writeFileSync(path, text, { mode: 0o600 });
    } catch {
      mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
      writeFileSync(path, text, { mode: 0o600 });
    }
  } catch (err) {
    try {
      unlinkSync(path); // not left empty by a full disk
    } catch {
      /* never created */
    }
    throw err;
  }
}

/**
 * The hook's side: true when a live worker for the session will read again
 * for `hook` (so nothing needs starting); false when a worker must be started.
 */
export function handOffToRunningWorker(files: WorkerFiles, hook: string): boolean {
  try {
    write(files.again, hook);
    const pid = Number(readFileSync(files.active, 'utf8'));
    return processAlive(pid);
  } catch {
    return false;
  }
}

/** The hook's side, after spawning: the new worker's pid, so the next hook finds it at once. */
export function markWorkerActive(files: WorkerFiles, pid: number): void {
  try {
    write(files.active, String(pid));
  } catch {
    /* the next hook starts a worker of its own: harmless */
  }
}

/**
 * The worker's side, when a read is done: stop being the active worker, then
 * take a pending request. Returns the hook to read again for, or null to exit.
 * On a request it is the active worker again.
 */
export function finishOrTakeRequest(files: WorkerFiles): string | null {
  try {
    unlinkSync(files.active);
  } catch {
    /* not marked (started by hand, or the mark failed) */
  }
  let hook: string;
  try {
    hook = readFileSync(files.again, 'utf8');
    unlinkSync(files.again);
  } catch {
    return null;
  }
  write(files.active, String(process.pid));
  return hook || 'Stop';
}

/** The worker's side, when it starts: it is about to read anyway, so a pending request is served. */
export function takeRequestAtStart(files: WorkerFiles): string | null {
  try {
    const hook = readFileSync(files.again, 'utf8');
    unlinkSync(files.again);
    return hook || null;
  } catch {
    return null;
  }
}
