/**
 * The SQLite WAL is checkpointed by a worker thread (wal-checkpointer.ts), not by the
 * ingest commit that crosses wal_autocheckpoint: committed pages reach the database
 * file while the main connection's backstop is far from being reached, a killed
 * collector loses nothing acknowledged, and without the worker the store checkpoints
 * on its own connection as before.
 */
import Database from 'better-sqlite3';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { HarnessEvent } from '../src/event';
import { SqliteStore } from '../src/collector/store/sqlite';
import { BACKSTOP_PAGES } from '../src/collector/store/wal-checkpointer';
import { tempHome, type TempHome } from './helpers/cli';

let t: TempHome;
beforeEach(() => {
  t = tempHome('cm-walck-');
});
afterEach(() => t.cleanup());

const event = (i: number, now: number): HarnessEvent =>
  ({ event_id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, event: 'PostToolUse', source: 'interactive', timestamp: new Date(now - i).toISOString(), session_id: `s-${i % 50}`, tool_name: 'Bash', tool_use_id: `toolu_${i}`, success: true, project: 'p', label: `l-${i % 7}` }) as HarnessEvent;

async function fill(store: SqliteStore, n: number, from = 0): Promise<void> {
  const now = Date.now();
  for (let i = from; i < from + n; i += 500) await store.ingestMany([Array.from({ length: Math.min(500, from + n - i) }, (_, k) => event(i + k, now))]);
}

const pages = (file: string) => Math.ceil(statSync(file).size / 4096);

async function until(check: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

describe('WAL checkpoints on a worker thread', () => {
  it('copies committed pages into the database file while the main connection would not have checkpointed yet', async () => {
    const file = join(t.home, 'c.db');
    const store = new SqliteStore(file);
    try {
      expect(store.db.pragma('wal_autocheckpoint', { simple: true })).toBe(BACKSTOP_PAGES);
      const before = pages(file);
      await fill(store, 8_000);
      // The WAL never reached the backstop (its file would be at least that long), so the main
      // connection never checkpointed: only the worker can have put these pages in the file.
      const walPages = () => Math.ceil(statSync(`${file}-wal`).size / 4096);
      expect(await until(() => pages(file) > before + 300)).toBe(true);
      expect(walPages()).toBeLessThan(BACKSTOP_PAGES);
      expect(await (store as unknown as { checkpointer: { runs(): Promise<number> } }).checkpointer.runs()).toBeGreaterThan(0);
      // At rest (no commit for a second), the worker empties the WAL file.
      expect(await until(() => statSync(`${file}-wal`).size === 0)).toBe(true);
      await fill(store, 500, 8_000);
      expect(statSync(`${file}-wal`).size).toBeGreaterThan(0);
      // Another connection reads every event from the file the worker checkpointed into.
      const other = new Database(file, { readonly: true });
      try {
        expect((other.prepare('SELECT count(*) AS n FROM harness_event_rows').get() as { n: number }).n).toBe(8_500);
      } finally {
        other.close();
      }
    } finally {
      await store.close();
    }
    // close(): the worker stopped, its connection closed, so the final TRUNCATE emptied the WAL.
    expect(!existsSync(`${file}-wal`) || statSync(`${file}-wal`).size === 0).toBe(true);
    const again = new SqliteStore(file);
    try {
      expect(await again.eventCount()).toBe(8_500);
    } finally {
      await again.close();
    }
  }, 60_000);

  it('a worker that dies hands checkpointing back to the main connection, and close() still returns', async () => {
    const file = join(t.home, 'e.db');
    const store = new SqliteStore(file);
    const worker = (store as unknown as { checkpointer: { worker: import('node:worker_threads').Worker } }).checkpointer.worker;
    const gone = new Promise((r) => worker.once('exit', r));
    await worker.terminate();
    await gone;
    expect(store.db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    await fill(store, 1_000);
    await store.close(); // resolves: no 'exit' left to wait for
    expect(!existsSync(`${file}-wal`) || statSync(`${file}-wal`).size === 0).toBe(true);
  }, 30_000);

  it('without the worker (CLAUDE_METRICS_WAL_WORKER=0) the store checkpoints on its own connection, as before', async () => {
    const file = join(t.home, 'd.db');
    process.env.CLAUDE_METRICS_WAL_WORKER = '0';
    let store: SqliteStore;
    try {
      store = new SqliteStore(file);
    } finally {
      delete process.env.CLAUDE_METRICS_WAL_WORKER;
    }
    try {
      expect(store.db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
      await fill(store, 20_000);
      // The WAL never grows much past the 1,000-page default: commits checkpoint it.
      expect(Math.ceil(statSync(`${file}-wal`).size / 4096)).toBeLessThan(3000);
      expect(await store.eventCount()).toBe(20_000);
    } finally {
      await store.close();
    }
  }, 60_000);
});
