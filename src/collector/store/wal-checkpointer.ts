/**
 * The SQLite WAL's checkpoints, off the event loop: a worker thread with its own
 * connection to the same file runs `wal_checkpoint(PASSIVE)` every few milliseconds,
 * so the copying of committed pages back into the database file and its fsync no
 * longer land on whichever ingest commit crosses `wal_autocheckpoint` (at 1M events
 * those commits were the slow tail of ingest, and during a retention sweep the
 * sweeper's own checkpoint after each chunk held the loop ~17 ms). PASSIVE never
 * waits for and never blocks a writer: it copies what no reader still needs.
 *
 * The main connection keeps a high `wal_autocheckpoint` as a backstop: if the worker
 * falls behind (or dies), a commit checkpoints as before once the WAL is that long.
 * Nothing here is needed for correctness: a commit is durable in the WAL either way.
 */
import { Worker } from 'node:worker_threads';

/**
 * Pages of WAL after which a commit on the main connection checkpoints anyway: 16 MiB of 4 KiB pages.
 * Under steady ingest a commit nearly always lands while the worker copies, so the WAL seldom finds
 * itself wholly copied and never starts over from its beginning on the worker's checkpoints alone:
 * this one, with only the last ~100 ms of pages left to copy, is what lets the next commit restart it.
 */
export const BACKSTOP_PAGES = 4_096;
/** A restarted WAL file is cut back to this (PRAGMA journal_size_limit), so its high-water mark does not stay on disk. */
export const WAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024;
/** How often the worker checkpoints: at 10,000 events/s that is ~0.4 MB of WAL a time. */
const CHECKPOINT_INTERVAL_MS = 100;
/** Ticks without a new WAL frame after which the worker empties the file (a collector at rest keeps a 0-byte WAL). */
const IDLE_TICKS = 10;

// CommonJS run with eval: the addon is required by the absolute path the main thread resolved
// (an eval worker resolves bare names from the working directory, not from this package).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 0');
db.pragma('synchronous = ' + workerData.sync);
db.pragma('wal_autocheckpoint = 0');
let runs = 0;
let lastLog = -1;
let quietTicks = 0;
const once = () => {
  try {
    const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    runs++;
    // Idle (every frame copied, none added for IDLE_TICKS ticks): empty the file. TRUNCATE takes the
    // write lock, but only when no writer holds it (busy_timeout 0: otherwise it gives up at once),
    // and with nothing left to copy it holds it for one ftruncate.
    if (r && r.log > 0 && r.log === r.checkpointed && r.log === lastLog) {
      if (++quietTicks === workerData.idleTicks) db.pragma('wal_checkpoint(TRUNCATE)');
    } else quietTicks = 0;
    lastLog = r ? r.log : -1;
  } catch {
    // Busy (another connection checkpointing, a migration's lock), a full disk, an I/O error: tried
    // again at the next tick, as a commit's checkpoint would be; the store's own writes report such trouble.
  }
};
const timer = setInterval(once, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'runs') return parentPort.postMessage({ runs });
  if (m !== 'stop') return;
  clearInterval(timer);
  once();
  db.close();
  parentPort.close();
});
`;

export interface CheckpointerOptions {
  path: string;
  sync: 'NORMAL' | 'FULL';
  /** Told once when the worker cannot run (the caller then keeps checkpointing on its own connection). */
  onFailure?: (reason: string) => void;
}

export class WalCheckpointer {
  private readonly worker: Worker;
  private failed = false;
  private exited = false;
  private stopping = false;

  private constructor(worker: Worker) {
    this.worker = worker;
  }

  /** Starts the worker; null when worker threads or the addon are not there (the single binary without node_modules). */
  static start(opts: CheckpointerOptions): WalCheckpointer | null {
    let module: string;
    try {
      module = require.resolve('better-sqlite3');
    } catch {
      return null;
    }
    let worker: Worker;
    try {
      worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, path: opts.path, sync: opts.sync, intervalMs: CHECKPOINT_INTERVAL_MS, idleTicks: IDLE_TICKS } });
    } catch (err) {
      opts.onFailure?.((err as Error).message);
      return null;
    }
    const c = new WalCheckpointer(worker);
    worker.unref(); // never what keeps a process alive
    const fail = (reason: string) => {
      if (c.failed) return;
      c.failed = true;
      opts.onFailure?.(reason);
    };
    // Only a worker that is gone hands checkpointing back (a failed checkpoint is retried in it).
    worker.on('error', (err) => fail(err.message));
    worker.on('exit', (code) => {
      c.exited = true;
      if (!c.stopping) fail(`checkpoint worker exited with code ${code}`);
    });
    return c;
  }

  /** Whether the worker is (still) checkpointing. */
  get running(): boolean {
    return !this.failed;
  }

  /** Checkpoints the worker has run so far (for tests and diagnostics). */
  runs(): Promise<number> {
    return new Promise((resolve) => {
      const on = (m: { runs?: number }) => {
        if (typeof m.runs !== 'number') return;
        this.worker.off('message', on);
        resolve(m.runs);
      };
      this.worker.on('message', on);
      this.worker.postMessage('runs');
    });
  }

  /** Stops after one last checkpoint; resolves when the worker's connection is closed (or it is gone). */
  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (this.exited) return resolve(); // gone already: no 'exit' to wait for
      this.stopping = true;
      this.worker.once('exit', () => resolve());
      if (this.failed) {
        void this.worker.terminate();
        return;
      }
      try {
        this.worker.postMessage('stop');
      } catch {
        void this.worker.terminate();
      }
      // A worker stuck in a long checkpoint still goes within a second.
      setTimeout(() => void this.worker.terminate(), 1000).unref();
    });
  }
}
