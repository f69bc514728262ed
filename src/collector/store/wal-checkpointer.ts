/**
 * The SQLite WAL's checkpoints, off the event loop: a worker thread with its own
 * connection to the same file runs `wal_checkpoint(PASSIVE)` within ~10 ms of each commit,
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
 * The WAL starts over from its beginning when a write begins after every frame in it was copied, so
 * the worker copies soon after each commit (BUSY_INTERVAL_MS) to leave such moments between commits.
 * When none comes, this checkpoint on a commit is what lets the next one restart it, and it is a
 * stall: at 10M events, with the worker every 100 ms, it was the 50–90 ms retention chunks and
 * ingest batches of ~7% of commits (docs/benchmarks.md, "The worker's pace").
 */
export const BACKSTOP_PAGES = 4_096;
/** A restarted WAL file is cut back to this (PRAGMA journal_size_limit), so its high-water mark does not stay on disk. */
export const WAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024;
/**
 * The worker's pace: every 10 ms while commits come, so the WAL is wholly copied within ~10 ms of a
 * commit and the next write restarts it. After QUIET_MS without a new frame it slows down to every
 * 100 ms (a wake-up that finds nothing to copy) and empties the file (a collector at rest keeps a 0-byte WAL).
 */
const BUSY_INTERVAL_MS = 10;
const IDLE_INTERVAL_MS = 100;
const QUIET_MS = 1000;

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
let quietSince = Date.now();
let timer = null;
// One checkpoint; a commit since the last one (new frames) keeps the worker at its busy pace.
const once = () => {
  try {
    const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    runs++;
    const log = r ? r.log : -1;
    const busy = log !== lastLog;
    lastLog = log;
    if (busy) quietSince = Date.now();
    else if (log > 0 && log === r.checkpointed && Date.now() - quietSince >= workerData.quietMs) {
      // Idle (every frame copied, none added for a while): empty the file (log 0 after it, so done
      // once; a TRUNCATE that failed is tried again). It takes the write lock, but only when no writer
      // holds it (busy_timeout 0: otherwise it gives up at once), and holds it for one ftruncate.
      db.pragma('wal_checkpoint(TRUNCATE)');
    }
  } catch {
    // Busy (another connection checkpointing, a migration's lock), a full disk, an I/O error: tried
    // again at the next tick, as a commit's checkpoint would be; the store's own writes report such trouble.
  }
};
// The busy pace lasts quietMs past the last new frame: commits come in bursts with gaps between them.
const tick = () => {
  once();
  timer = setTimeout(tick, Date.now() - quietSince < workerData.quietMs ? workerData.busyMs : workerData.idleMs);
};
timer = setTimeout(tick, workerData.idleMs);
parentPort.on('message', (m) => {
  if (m === 'runs') return parentPort.postMessage({ runs });
  if (m !== 'stop') return;
  clearTimeout(timer);
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
      worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module, path: opts.path, sync: opts.sync, busyMs: BUSY_INTERVAL_MS, idleMs: IDLE_INTERVAL_MS, quietMs: QUIET_MS } });
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
