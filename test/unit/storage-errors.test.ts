/**
 * The pure rules of a failing disk: which driver errors mean "storage
 * unavailable" (SQLite, PostgreSQL, errno) and which are bugs; the health
 * tracker's states and counters; and the state dir's private fallback.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { classifyStorageError, unavailableBody } from '../../src/collector/storage-errors';
import { StorageHealth } from '../../src/collector/storage-health';
import { chooseStateDir, dirProblem, fallbackStateDirPath, prepareFallback } from '../../src/statedir';
import { inputOfPartial, RAW_END, RAW_HEADER } from '../../src/inbox/raw';

const err = (code: string, message = code) => Object.assign(new Error(message), { code });

describe('classifyStorageError', () => {
  it.each([
    ['SQLITE_FULL', 'no_space'],
    ['SQLITE_IOERR', 'io_error'],
    ['SQLITE_IOERR_WRITE', 'io_error'],
    ['SQLITE_IOERR_FSYNC', 'io_error'],
    ['SQLITE_READONLY', 'read_only'],
    ['SQLITE_READONLY_DBMOVED', 'read_only'],
    ['SQLITE_BUSY', 'busy'],
    ['SQLITE_LOCKED', 'busy'],
    ['SQLITE_CANTOPEN', 'unavailable'],
    ['SQLITE_CORRUPT', 'corrupt'],
    ['SQLITE_NOTADB', 'corrupt'],
    ['53100', 'no_space'], // PostgreSQL disk_full
    ['25006', 'read_only'], // read_only_sql_transaction (default_transaction_read_only = on)
    ['58030', 'io_error'],
    ['57P03', 'unavailable'],
    ['08006', 'unavailable'],
    ['55P03', 'busy'],
    ['ENOSPC', 'no_space'],
    ['EDQUOT', 'no_space'],
    ['EROFS', 'read_only'],
    ['EIO', 'io_error'],
    ['ECONNREFUSED', 'unavailable'],
  ])('%s → %s', (code, reason) => {
    expect(classifyStorageError(err(code))?.reason).toBe(reason);
  });

  it.each(['SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_ERROR', 'SQLITE_MISMATCH', 'SQLITE_IOERR_NOMEM', '23505', '42P01', 'ENOENT', 'ERR_INVALID_ARG_TYPE'])('%s is not a storage failure (a bug: 500)', (code) => {
    expect(classifyStorageError(err(code))).toBeNull();
  });

  it('ignores what has no code', () => {
    expect(classifyStorageError(new Error('database or disk is full'))).toBeNull();
    expect(classifyStorageError(undefined)).toBeNull();
    expect(classifyStorageError('SQLITE_FULL')).toBeNull();
  });

  it('gives the 503 body the issue names', () => {
    expect(unavailableBody(classifyStorageError(err('SQLITE_FULL'))!)).toEqual({ error: 'storage unavailable: no space left on device', reason: 'no_space' });
  });
});

describe('StorageHealth', () => {
  it('is unavailable from a failed write until a probe (at most one a second) succeeds, counting every failure', async () => {
    let now = 1_000_000;
    let probeFails = true;
    let probes = 0;
    const changes: boolean[] = [];
    const h = new StorageHealth({
      now: () => now,
      probeWrite: () => {
        probes++;
        if (probeFails) throw err('SQLITE_FULL');
      },
      onChange: (ok) => changes.push(ok),
    });
    expect(await h.check()).toBe(true);
    expect(h.failed(err('SQLITE_CONSTRAINT'))).toBeNull();
    expect(h.unavailable).toBeNull();
    expect(h.failed(err('SQLITE_FULL'))?.reason).toBe('no_space');
    expect(await h.check()).toBe(false);
    expect(probes).toBe(0); // too soon after the failure
    now += 1000;
    expect(await h.check()).toBe(false);
    expect(probes).toBe(1);
    h.refused();
    expect(h.failureCounts().find((c) => c.reason === 'no_space')?.value).toBe(3); // the write, the probe, the refusal
    probeFails = false;
    expect(await h.check()).toBe(false);
    now += 1000;
    expect(await h.check()).toBe(true);
    expect(h.unavailable).toBeNull();
    expect(changes).toEqual([false, true]);
    expect(h.failureCounts().map((c) => c.reason)).toEqual(['no_space', 'read_only', 'io_error', 'busy', 'unavailable', 'corrupt']);
  });
});

describe('the state dir fallback', () => {
  const base = mkdtempSync(join(tmpdir(), 'cm-statedir-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('picks $XDG_RUNTIME_DIR/claude-metrics when usable, else a per-user dir under TMPDIR', () => {
    const runtime = join(base, 'run');
    mkdirSync(runtime, { mode: 0o700 });
    expect(fallbackStateDirPath({ XDG_RUNTIME_DIR: runtime, TMPDIR: '/x' })).toBe(join(runtime, 'claude-metrics'));
    expect(fallbackStateDirPath({ XDG_RUNTIME_DIR: join(base, 'missing'), TMPDIR: `${base}/` })).toBe(join(base, `claude-metrics-${process.getuid!()}`));
  });

  it('refuses a fallback that is a symlink or open to others', () => {
    const open = join(base, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect(prepareFallback(open)).toMatch(/open to other users/);
    symlinkSync(open, join(base, 'link'));
    expect(prepareFallback(join(base, 'link'))).toMatch(/not a directory/);
    expect(prepareFallback(join(base, 'fresh'))).toBeNull();
  });

  it('a missing but creatable dir is fine; a file in the way is not', () => {
    expect(dirProblem(join(base, 'a', 'b', 'c'))).toBeNull();
    expect(dirProblem('/proc/1/nope')).not.toBeNull();
    const tmp = join(base, 'tmpdir');
    mkdirSync(tmp);
    const choice = chooseStateDir('/proc/1/nope/claude-metrics', { TMPDIR: tmp });
    expect(choice).toEqual({ dir: join(tmp, `claude-metrics-${process.getuid!()}`), fallbackFrom: '/proc/1/nope/claude-metrics', reason: expect.any(String) });
  });
});

describe('inputOfPartial (an inbox file the disk cut short, handed to emit)', () => {
  const head = `${RAW_HEADER}PWD=/x\0USER=u\0\n`;
  it('keeps the input after the environment, without the end mark if it got that far', () => {
    expect(inputOfPartial(`${head}{"hook_event_name":"Stop","session_id":"s"`)).toBe('{"hook_event_name":"Stop","session_id":"s"');
    expect(inputOfPartial(`${head}{"a":1}${RAW_END}`)).toBe('{"a":1}');
    expect(inputOfPartial(`${RAW_HEADER}PWD=/x`)).toBe(''); // cut inside the environment
    expect(inputOfPartial('{"not":"a hook file"}')).toBe('{"not":"a hook file"}');
  });
});
