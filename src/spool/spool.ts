/**
 * The spool: a maildir, so it needs no locks.
 *
 *   tmp/<name>  written in full, then renamed into
 *   new/<name>  waiting for delivery; a flusher claims a file by renaming it to
 *   cur/<claimedAtMs>-<pid>-<n>/<name>  claimed: a flusher renames new/ itself
 *               there (one rename for the whole backlog; only one can win);
 *               deleted after a 2xx, moved to
 *   dead/<name> on a permanent reject (with <name>.reason beside it), or renamed
 *               back to new/ when its claim is older than the lease (the flusher died).
 *
 * The same rename of a single file (`claim`) serves the rare per-event paths.
 * File names are `<event_id>.<bytes>.json`, so depth and bytes come from one
 * readdir without a stat per file, and an event spooled twice (deterministic ids)
 * overwrites itself instead of queueing twice. Drops are counted lock-free: one
 * byte appended per dropped event, the counter is the file's size.
 */
import { appendFileSync, closeSync, mkdirSync, openSync, readSync, readdirSync, readFileSync, renameSync, rmdirSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorCode } from '../errors';
import type { StatePaths } from '../paths';

export interface SpoolBounds {
  maxBytes: number;
  maxFiles: number;
}

export type SpoolWriteResult = { ok: true; name: string } | { ok: false; reason: 'full' | 'io'; error?: string };

export interface SpoolStats {
  depth: number;
  bytes: number;
  claimed: number;
  dead: number;
  drops: number;
  /** Age in ms of the oldest waiting event (from its UUIDv7 time or mtime), or null. */
  oldestAgeMs: number | null;
}

let batchSeq = 0;

/**
 * The size is in the file name, so one open/read/close does it (readFileSync
 * adds an fstat and a growing buffer: ~30% of a flush's time is reading).
 */
function readKnownSize(path: string, bytes: number | undefined): string {
  if (bytes === undefined || bytes <= 0 || bytes > 16 * 1024 * 1024) return readFileSync(path, 'utf8');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(bytes);
    const n = readSync(fd, buf, 0, bytes, 0);
    return buf.toString('utf8', 0, n);
  } finally {
    closeSync(fd);
  }
}

const NAME_RE = /^([A-Za-z0-9._:-]+)\.(\d+)\.json$/;

export function spoolFileName(eventId: string, bytes: number): string {
  return `${eventId}.${bytes}.json`;
}

export function parseSpoolFileName(name: string): { eventId: string; bytes: number } | null {
  const m = NAME_RE.exec(name);
  return m ? { eventId: m[1]!, bytes: Number(m[2]) } : null;
}

/** Milliseconds since the epoch encoded in a UUIDv7, or null for other ids. */
export function uuidv7Time(id: string): number | null {
  if (id.length < 36 || id[14] !== '7') return null;
  const hex = id.slice(0, 8) + id.slice(9, 13);
  const ms = Number.parseInt(hex, 16);
  return Number.isFinite(ms) ? ms : null;
}

export class Spool {
  readonly dirs: StatePaths['spool'];
  readonly dropsFile: string;

  constructor(paths: Pick<StatePaths, 'spool' | 'drops'>) {
    this.dirs = paths.spool;
    this.dropsFile = paths.drops;
  }

  ensure(): void {
    for (const d of [this.dirs.tmp, this.dirs.new, this.dirs.cur, this.dirs.dead]) mkdirSync(d, { recursive: true, mode: 0o700 });
  }

  /**
   * Durably queue one event (tmp → new). With bounds, a full spool drops the
   * event and counts the drop instead of growing without limit.
   */
  write(eventId: string, json: string, bounds?: SpoolBounds): SpoolWriteResult {
    const bytes = Buffer.byteLength(json);
    if (bounds) {
      const { depth, bytes: used } = this.usage();
      if (depth + 1 > bounds.maxFiles || used + bytes > bounds.maxBytes) {
        this.recordDrop();
        return { ok: false, reason: 'full' };
      }
    }
    const name = spoolFileName(eventId, bytes);
    const tmp = join(this.dirs.tmp, `${name}.${process.pid}`);
    try {
      try {
        writeFileSync(tmp, json, { mode: 0o600 });
      } catch (err) {
        if (errorCode(err) !== 'ENOENT') throw err;
        this.ensure();
        writeFileSync(tmp, json, { mode: 0o600 });
      }
      try {
        renameSync(tmp, join(this.dirs.new, name));
      } catch (err) {
        // new/ itself is renamed away when a flusher claims it; it is back in a moment.
        if (errorCode(err) !== 'ENOENT') throw err;
        this.ensure();
        renameSync(tmp, join(this.dirs.new, name));
      }
      return { ok: true, name };
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        /* nothing to clean */
      }
      return { ok: false, reason: 'io', error: (err as Error).message };
    }
  }

  /** Remove a waiting event that was delivered directly; a flusher may have claimed it already. */
  discardNew(name: string): void {
    try {
      unlinkSync(join(this.dirs.new, name));
    } catch {
      /* claimed or gone: the collector dedupes by event_id */
    }
  }

  listNew(): string[] {
    return this.list(this.dirs.new);
  }

  private list(dir: string): string[] {
    try {
      return readdirSync(dir).filter((n) => NAME_RE.test(n));
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return [];
      throw err;
    }
  }

  /** Waiting files and bytes (new/ and cur/), from names alone. */
  usage(): { depth: number; bytes: number } {
    let depth = 0;
    let bytes = 0;
    for (const n of [...this.listNew(), ...this.listClaimed()]) {
      depth++;
      bytes += parseSpoolFileName(n)?.bytes ?? 0;
    }
    return { depth, bytes };
  }

  hasWaiting(): boolean {
    try {
      return readdirSync(this.dirs.new).length > 0;
    } catch {
      return false;
    }
  }

  /** Claim by rename: exactly one concurrent flusher gets each file. Returns the content or null. */
  claim(name: string, now = Date.now()): string | null {
    const cur = join(this.dirs.cur, name);
    try {
      renameSync(join(this.dirs.new, name), cur);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return null;
      throw err;
    }
    // The claim time is the mtime: rename keeps the old one, and the lease is measured from the claim.
    const t = now / 1000;
    try {
      utimesSync(cur, t, t);
      return readFileSync(cur, 'utf8');
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return null;
      throw err;
    }
  }

  /**
   * Claims everything waiting with one rename: new/ itself becomes
   * cur/<claimedAtMs>-<pid>-<n>/ and an empty new/ is created in its place.
   * One system call instead of one per file (a third of a flush's cost), and
   * still exclusive: only one concurrent rename of new/ wins. An emitter whose
   * rename lands in the moved directory is picked up by the re-list before the
   * claim is closed; one that finds new/ missing recreates it.
   */
  claimAll(now = Date.now()): { dir: string; names: string[] } | null {
    const dir = join(this.dirs.cur, `${now}-${process.pid}-${(batchSeq = (batchSeq + 1) % 1e9)}`);
    try {
      renameSync(this.dirs.new, dir);
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ENOENT') {
        // No new/ (nothing ever spooled, or another flusher holds it), or no cur/ yet.
        try {
          this.ensure();
          renameSync(this.dirs.new, dir);
        } catch {
          return null;
        }
      } else throw err;
    }
    try {
      mkdirSync(this.dirs.new, { mode: 0o700 });
    } catch {
      /* an emitter recreated it already */
    }
    return { dir, names: this.list(dir) };
  }

  /** Reads a claimed file (its size is in its name: one open/read/close). */
  readClaimed(dir: string, name: string): string | null {
    try {
      return readKnownSize(join(dir, name), parseSpoolFileName(name)?.bytes);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return null;
      throw err;
    }
  }

  /** Files of a claim directory (late arrivals included). */
  listIn(dir: string): string[] {
    return this.list(dir);
  }

  /**
   * Deletes delivered files on libuv's thread pool while the flusher goes on
   * claiming the next batch on the main thread (the deletes are a quarter of a
   * flush's system calls). `settled()` waits for them; a crash before they finish
   * leaves delivered files that the lease re-sends and the collector dedupes.
   */
  completeInBackground(dir: string, names: string[]): void {
    const { unlink } = require('node:fs') as typeof import('node:fs');
    for (const n of names) {
      this.inFlightDeletes++;
      unlink(join(dir, n), () => {
        if (--this.inFlightDeletes === 0) for (const r of this.deleteWaiters.splice(0)) r();
      });
    }
  }

  private inFlightDeletes = 0;
  private deleteWaiters: Array<() => void> = [];

  settled(): Promise<void> {
    return this.inFlightDeletes === 0 ? Promise.resolve() : new Promise((r) => this.deleteWaiters.push(r));
  }

  completeIn(dir: string, name: string): void {
    try {
      unlinkSync(join(dir, name));
    } catch {
      /* already gone */
    }
  }

  releaseFrom(dir: string, name: string): void {
    try {
      renameSync(join(dir, name), join(this.dirs.new, name));
    } catch {
      /* reclaimed already */
    }
  }

  buryFrom(dir: string, name: string, reason: string): void {
    try {
      this.ensure();
      writeFileSync(join(this.dirs.dead, `${name}.reason`), `${reason}\n`, { mode: 0o600 });
      renameSync(join(dir, name), join(this.dirs.dead, name));
    } catch {
      /* left in its batch dir: the lease returns it */
    }
  }

  /** Removes a batch directory once every file in it is settled. */
  closeBatch(dir: string): void {
    try {
      rmdirSync(dir);
    } catch {
      /* not empty (a file could not be settled): the lease returns it */
    }
  }

  /** Give a claim back (delivery failed, try later). */
  release(name: string): void {
    try {
      renameSync(join(this.dirs.cur, name), join(this.dirs.new, name));
    } catch {
      /* reclaimed by someone else already */
    }
  }

  /** Delivered: delete. */
  complete(name: string): void {
    try {
      unlinkSync(join(this.dirs.cur, name));
    } catch {
      /* already gone */
    }
  }

  /** Permanently rejected: keep it in dead/ with the reason, out of the delivery path. */
  bury(name: string, reason: string): void {
    try {
      this.ensure();
      writeFileSync(join(this.dirs.dead, `${name}.reason`), `${reason}\n`, { mode: 0o600 });
      renameSync(join(this.dirs.cur, name), join(this.dirs.dead, name));
    } catch {
      /* left in cur/: the lease returns it to new/ and it is tried again */
    }
  }

  /** Return claims older than the lease to new/: their flusher was killed. */
  reclaimExpired(leaseMs: number, now = Date.now()): number {
    let n = 0;
    let entries: string[];
    try {
      entries = readdirSync(this.dirs.cur);
    } catch {
      return 0;
    }
    for (const entry of entries) {
      const path = join(this.dirs.cur, entry);
      const batch = /^(\d+)-\d+-\d+$/.exec(entry);
      try {
        if (batch) {
          if (now - Number(batch[1]) < leaseMs) continue;
          for (const name of readdirSync(path)) {
            try {
              renameSync(join(path, name), join(this.dirs.new, name));
              n++;
            } catch {
              /* raced */
            }
          }
          this.closeBatch(path);
        } else if (NAME_RE.test(entry) && now - statSync(path).mtimeMs >= leaseMs) {
          renameSync(path, join(this.dirs.new, entry));
          n++;
        }
      } catch {
        /* raced with its owner */
      }
    }
    return n;
  }

  /** Names of claimed files (single claims and batch directories). */
  private listClaimed(): string[] {
    let entries: string[];
    try {
      entries = readdirSync(this.dirs.cur);
    } catch {
      return [];
    }
    const out: string[] = [];
    for (const e of entries) {
      if (NAME_RE.test(e)) out.push(e);
      else if (/^\d+-\d+-\d+$/.test(e)) {
        try {
          for (const n of readdirSync(join(this.dirs.cur, e))) if (NAME_RE.test(n)) out.push(n);
        } catch {
          /* settled meanwhile */
        }
      }
    }
    return out;
  }

  /**
   * tmp/ files are writes that crashed before their rename. A complete JSON
   * event is moved on to new/ (it was never queued, so nothing is doubled);
   * a torn write is deleted. Only files older than `minAgeMs`, so a live writer is left alone.
   */
  recoverTmp(minAgeMs: number, now = Date.now()): { recovered: number; removed: number } {
    let recovered = 0;
    let removed = 0;
    let names: string[];
    try {
      names = readdirSync(this.dirs.tmp);
    } catch {
      return { recovered, removed };
    }
    for (const name of names) {
      const path = join(this.dirs.tmp, name);
      try {
        const st = statSync(path);
        if (now - st.mtimeMs < minAgeMs) continue;
        const base = name.replace(/\.\d+$/, '');
        const text = readFileSync(path, 'utf8');
        let valid = false;
        try {
          valid = NAME_RE.test(base) && typeof JSON.parse(text) === 'object';
        } catch {
          valid = false;
        }
        if (valid) {
          renameSync(path, join(this.dirs.new, base));
          recovered++;
        } else {
          unlinkSync(path);
          removed++;
        }
      } catch {
        /* raced */
      }
    }
    return { recovered, removed };
  }

  recordDrop(): void {
    try {
      appendFileSync(this.dropsFile, 'x', { mode: 0o600 });
    } catch (err) {
      if (errorCode(err) === 'ENOENT') {
        try {
          this.ensure();
          appendFileSync(this.dropsFile, 'x', { mode: 0o600 });
        } catch {
          /* cannot even count: nothing more to do */
        }
      }
    }
  }

  drops(): number {
    try {
      return statSync(this.dropsFile).size;
    } catch {
      return 0;
    }
  }

  stats(now = Date.now()): SpoolStats {
    const waiting = this.listNew();
    const claimed = this.listClaimed();
    let bytes = 0;
    let oldest: number | null = null;
    for (const n of [...waiting, ...claimed]) {
      const parsed = parseSpoolFileName(n);
      bytes += parsed?.bytes ?? 0;
      let born = parsed ? uuidv7Time(parsed.eventId) : null;
      if (born === null) {
        try {
          born = statSync(join(this.dirs.new, n)).mtimeMs;
        } catch {
          born = null;
        }
      }
      if (born !== null && (oldest === null || born < oldest)) oldest = born;
    }
    return {
      depth: waiting.length + claimed.length,
      bytes,
      claimed: claimed.length,
      dead: this.list(this.dirs.dead).length,
      drops: this.drops(),
      oldestAgeMs: oldest === null ? null : Math.max(0, now - oldest),
    };
  }
}
