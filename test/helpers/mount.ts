/**
 * Real file-system failures for tests: a small tmpfs mounted for the test,
 * read-only or filled to the last byte. Needs root (CI runs as root); elsewhere
 * the suite re-runs itself inside an unprivileged user and mount namespace
 * (`unshare --user --map-root-user --mount`) where the kernel allows it, and
 * says why it skips where neither works.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  dir: string;
  /** Remount read-only (true) or read-write (false). */
  setReadOnly(ro: boolean): void;
  /** Fills every free byte with one file; returns its path (remove it to free the space). */
  fill(): string;
  /** Frees what fill() took. */
  unfill(): void;
  unmount(): void;
}

const run = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' });

/** Why tmpfs mounts cannot be made here, or null when they can (as root, in this process's namespace). */
export function mountUnavailable(): string | null {
  if (process.platform !== 'linux') return `tmpfs mounts need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'not root (mount needs CAP_SYS_ADMIN)';
  const probe = mkdtempSync(join(tmpdir(), 'cm-mount-probe-'));
  try {
    const r = run('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe]);
    if (r.status !== 0) return `mount -t tmpfs failed: ${(r.stderr || r.error?.message || '').trim()}`;
    run('umount', [probe]);
    return null;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/** Can this unprivileged user get a user + mount namespace (then the suite re-runs inside one)? */
export function userNamespaceUnavailable(): string | null {
  const r = run('unshare', ['--user', '--map-root-user', '--mount', 'sh', '-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d" && rmdir "$d"']);
  if (r.error) return `unshare not available: ${r.error.message}`;
  return r.status === 0 ? null : `unshare --user --map-root-user --mount refused: ${r.stderr.trim()}`;
}

export function mountTmpfs(sizeKb: number, prefix = 'cm-tmpfs-'): Tmpfs {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const r = run('mount', ['-t', 'tmpfs', '-o', `size=${sizeKb}k,mode=0755`, 'tmpfs', dir]);
  if (r.status !== 0) throw new Error(`mount tmpfs on ${dir}: ${r.stderr}`);
  let filler: string | null = null;
  let mounted = true;
  return {
    dir,
    setReadOnly(ro) {
      const m = run('mount', ['-o', `remount,${ro ? 'ro' : 'rw'}`, dir]);
      if (m.status !== 0) throw new Error(`remount ${ro ? 'ro' : 'rw'} ${dir}: ${m.stderr}`);
    },
    fill() {
      filler = join(dir, `.filler-${process.pid}`);
      const fd = openSync(filler, 'w');
      const chunk = Buffer.alloc(64 * 1024, 120);
      try {
        // Bounded by the mount's size: at most sizeKb/64 + a few small writes.
        for (let i = 0; i < sizeKb; i++) writeSync(fd, chunk);
      } catch {
        /* ENOSPC: the big chunks no longer fit */
      }
      try {
        for (let i = 0; i < 100_000; i++) writeSync(fd, chunk, 0, 512);
      } catch {
        /* full to the last block */
      }
      closeSync(fd);
      return filler;
    },
    unfill() {
      if (filler) rmSync(filler, { force: true });
      filler = null;
    },
    unmount() {
      if (!mounted) return;
      mounted = false;
      // Lazy: a drainer or a collector a test started may still hold a file open.
      run('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A plain private temp dir (for what must stay writable). */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(d, { recursive: true });
  return d;
}
