/**
 * Whether this process is ingesting right now, for the retention sweep to keep out of its way.
 *
 * The collector commits ingest in groups (GroupCommit): batches that arrive while one commits
 * wait and share the next transaction. A sweep chunk that starts while batches wait makes all of
 * them wait longer, and at 1M events with ingest at half the collector's time, the sweep's
 * quarter was enough to queue batches into one-event waits of 226 ms, with no chunk over 25 ms.
 * So a chunk starts only once nothing is queued or committing (at the start of a gap), or
 * after at most `maxWaitMs`, so that a collector that is never idle still sweeps.
 */
export class IngestActivity {
  private busy = 0;
  private waiters: Array<() => void> = [];

  /** A batch was queued for a commit. */
  begin(): void {
    this.busy++;
  }

  /** That batch was committed (or failed). */
  end(): void {
    if (this.busy > 0) this.busy--;
    if (this.busy === 0 && this.waiters.length > 0) for (const wake of this.waiters.splice(0)) wake();
  }

  get idle(): boolean {
    return this.busy === 0;
  }

  /** Resolves at once when idle, else when ingest next is, or after `maxWaitMs`, whichever comes first. */
  whenIdle(maxWaitMs = IDLE_WAIT_MAX_MS): Promise<void> {
    if (this.busy === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, maxWaitMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.push(done);
    });
  }
}

/** The longest a sweep chunk waits for ingest to be idle: a floor on the sweep's progress under constant load. */
export const IDLE_WAIT_MAX_MS = 1000;
