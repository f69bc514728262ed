/**
 * Retention for `serve`: a sweep once the collector listens and then every
 * SWEEP_PERIOD_MS, never two at once, stoppable between chunks. The first sweep
 * after a long pause (or after lowering --retention-days) can take minutes on a
 * large database; the collector answers meanwhile, because the sweep deletes in
 * chunks (store.sweep) and ingest takes the write lock between them. What the
 * last sweep did is in /healthz and in `retention_deleted_total`.
 */
import type { Logger } from '../log';
import { SWEEP_PERIOD_MS, type Store, type SweepResult } from './store';

/** What /healthz says about retention. */
export interface RetentionStatus {
  days: number;
  running: boolean;
  /** Sweeps finished (including ones another replica had done: skipped). */
  sweeps: number;
  last?: SweepResult & { finished_at: string; ms: number; error?: string };
}

export class RetentionSweeper {
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private readonly state: Omit<RetentionStatus, 'running'>;

  constructor(
    private readonly store: Store,
    private readonly days: number,
    private readonly log: Logger,
    private readonly periodMs = SWEEP_PERIOD_MS,
  ) {
    this.state = { days, sweeps: 0 };
  }

  status(): RetentionStatus {
    return { ...this.state, running: this.current !== undefined };
  }

  /** Sweeps now (in the background) and then every period. */
  start(): void {
    void this.sweepNow();
    this.timer = setInterval(() => void this.sweepNow(), this.periodMs);
    this.timer.unref();
  }

  /** One sweep; a call while one runs waits for that one instead of starting another. */
  sweepNow(): Promise<void> {
    if (this.abort.signal.aborted) return Promise.resolve();
    this.current ??= this.run().finally(() => (this.current = undefined));
    return this.current;
  }

  private async run(): Promise<void> {
    const t0 = Date.now();
    try {
      const r = await this.store.sweep(this.days, Date.now(), this.abort.signal);
      const ms = Date.now() - t0;
      this.state.last = { ...r, finished_at: new Date().toISOString(), ms };
      if (r.events + r.sessions + r.facts > 0) {
        this.log.info('retention sweep', { ...r, retentionDays: this.days, ms });
        for (const table of ['events', 'sessions', 'facts'] as const) await this.store.bump('retention_deleted_total', { table }, r[table]);
      }
    } catch (err) {
      if (this.abort.signal.aborted) return; // stopping: the next start goes on from what is left
      this.state.last = { events: 0, sessions: 0, facts: 0, finished_at: new Date().toISOString(), ms: Date.now() - t0, error: (err as Error).message };
      this.log.error('retention sweep failed', { error: (err as Error).message });
    } finally {
      this.state.sweeps++;
    }
  }

  /** No new sweep; a running one stops after its current chunk (each chunk is its own transaction). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.abort.abort();
    await this.current;
  }
}
