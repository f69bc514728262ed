import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { uuidv7 } from '../../src/ids';
import { statePaths, type StatePaths } from '../../src/paths';
import { parseSpoolFileName, Spool, spoolFileName } from '../../src/spool/spool';

let root: string;
let paths: StatePaths;
let spool: Spool;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'cm-spool-'));
  paths = statePaths(join(root, 'state'));
  spool = new Spool(paths);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const ev = (id: string) => JSON.stringify({ event_id: id, event: 'e', source: 'api', timestamp: '2026-01-01T00:00:00Z' });

describe('Spool', () => {
  it('names carry id and size, and round-trip', () => {
    expect(parseSpoolFileName(spoolFileName('abc-1', 42))).toEqual({ eventId: 'abc-1', bytes: 42 });
    expect(parseSpoolFileName('junk.txt')).toBeNull();
  });

  it('creates 0700 dirs and 0600 files, and the same id spooled twice is one file', () => {
    const id = uuidv7();
    expect(spool.write(id, ev(id)).ok).toBe(true);
    expect(spool.write(id, ev(id)).ok).toBe(true);
    expect(spool.listNew()).toHaveLength(1);
    expect(statSync(paths.spool.new).mode & 0o777).toBe(0o700);
    expect(statSync(join(paths.spool.new, spool.listNew()[0]!)).mode & 0o777).toBe(0o600);
    expect(readdirSync(paths.spool.tmp)).toEqual([]);
  });

  it('enforces the bounds in files and bytes, counting drops', () => {
    const a = uuidv7();
    expect(spool.write(a, ev(a), { maxFiles: 1, maxBytes: 1e6 }).ok).toBe(true);
    const b = uuidv7();
    expect(spool.write(b, ev(b), { maxFiles: 1, maxBytes: 1e6 })).toEqual({ ok: false, reason: 'full' });
    const c = uuidv7();
    expect(spool.write(c, ev(c), { maxFiles: 10, maxBytes: ev(a).length + 10 })).toEqual({ ok: false, reason: 'full' });
    expect(spool.drops()).toBe(2);
    expect(spool.stats().drops).toBe(2);
  });

  it('claiming new/ whole is exclusive, and settles by complete, release or bury', async () => {
    const ids = Array.from({ length: 5 }, () => uuidv7());
    for (const id of ids) spool.write(id, ev(id));
    const first = spool.claimAll()!;
    expect(first.names).toHaveLength(5);
    expect(spool.listNew()).toEqual([]); // a second flusher finds nothing to take
    expect(spool.claimAll()!.names).toEqual([]);
    // an emitter writing after the claim lands in the fresh new/
    const late = uuidv7();
    expect(spool.write(late, ev(late)).ok).toBe(true);
    const [a, b, c, ...rest] = first.names.sort();
    expect(spool.readClaimed(first.dir, a!)).toContain('"event_id"');
    spool.completeInBackground(first.dir, [a!, ...rest]);
    await spool.settled();
    spool.releaseFrom(first.dir, b!);
    spool.buryFrom(first.dir, c!, 'bad event');
    spool.closeBatch(first.dir);
    expect(existsSync(first.dir)).toBe(false);
    expect(spool.listNew().sort()).toEqual([b!, spoolFileName(late, ev(late).length)].sort());
    expect(readFileSync(join(paths.spool.dead, `${c}.reason`), 'utf8')).toBe('bad event\n');
    expect(spool.stats()).toMatchObject({ depth: 2, dead: 1 });
  });

  it('returns expired batch claims and old single claims to new/, and leaves fresh ones', () => {
    const ids = Array.from({ length: 4 }, () => uuidv7());
    for (const id of ids) spool.write(id, ev(id));
    const names = spool.listNew().sort();
    const now = Date.now();
    // an old whole-directory claim of two files, a fresh one of one, an old single claim
    for (const n of names.slice(2)) renameSync(join(paths.spool.new, n), join(root, n));
    const old = spool.claimAll(now - 120_000)!;
    renameSync(join(root, names[2]!), join(paths.spool.new, names[2]!));
    const fresh = spool.claimAll(now)!;
    renameSync(join(root, names[3]!), join(paths.spool.new, names[3]!));
    expect(spool.claim(names[3]!, now - 120_000)).not.toBeNull();
    const past = (now - 120_000) / 1000;
    utimesSync(join(paths.spool.cur, names[3]!), past, past);
    expect(spool.reclaimExpired(60_000, now)).toBe(3);
    expect(existsSync(old.dir)).toBe(false);
    expect(existsSync(fresh.dir)).toBe(true);
    expect(spool.listNew().sort()).toEqual([names[0], names[1], names[3]].sort());
  });

  it('recovers whole tmp/ files left by a crash and deletes torn ones', () => {
    spool.ensure();
    const id = uuidv7();
    const whole = join(paths.spool.tmp, `${spoolFileName(id, ev(id).length)}.123`);
    writeFileSync(whole, ev(id));
    const torn = join(paths.spool.tmp, `${spoolFileName(uuidv7(), 99)}.124`);
    writeFileSync(torn, '{"event_id":"x","ev');
    const fresh = join(paths.spool.tmp, `${spoolFileName(uuidv7(), 10)}.125`);
    writeFileSync(fresh, '{}');
    const old = (Date.now() - 120_000) / 1000;
    utimesSync(whole, old, old);
    utimesSync(torn, old, old);
    expect(spool.recoverTmp(60_000)).toEqual({ recovered: 1, removed: 1 });
    expect(spool.listNew()).toEqual([spoolFileName(id, ev(id).length)]);
    expect(existsSync(fresh)).toBe(true); // a live writer's file is left alone
  });

  it('reports the oldest waiting event from its UUIDv7 time', () => {
    const id = uuidv7(Date.now() - 5000);
    spool.write(id, ev(id));
    const age = spool.stats().oldestAgeMs!;
    expect(age).toBeGreaterThanOrEqual(5000);
    expect(age).toBeLessThan(60_000);
  });

  it('tolerates a missing spool', () => {
    mkdirSync(paths.root, { recursive: true });
    expect(spool.stats()).toMatchObject({ depth: 0, bytes: 0, claimed: 0, dead: 0, drops: 0, oldestAgeMs: null });
    expect(spool.hasWaiting()).toBe(false);
  });
});
