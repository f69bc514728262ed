/**
 * Is a process alive? `kill(pid, 0)` alone says yes for a zombie, and a zombie
 * is what a SIGKILLed background worker stays where PID 1 does not reap orphans
 * (containers without an init, some VMs): so on Linux the state in
 * /proc/<pid>/stat must not be Z (or X). Small and dependency-free: the hot path loads it.
 */
import { readFileSync } from 'node:fs';

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
