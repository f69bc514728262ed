/**
 * Retention for `serve`: a first sweep a while after the collector listens
 * (`--retention-delay-ms`, default a minute: a collector just started is still cold,
 * its JIT and page cache, while clients that spooled during its restart all flush
 * to it at once; at 100k events the first batches into a cold collector took 119 ms
 * with a sweep beside them), then every SWEEP_PERIOD_MS, never two at once,
 * stoppable between chunks. The first sweep
 * after a long pause (or after lowering --retention-days) can take minutes on a
 * large database; the collector answers meanwhile, because the sweep deletes in
 * chunks (store.sweep) and ingest takes the write lock between them. What the
 * last sweep did is in /healthz and in `retention_deleted_total`.
 */
import type { Logger } from '../log';
import type { IngestActivity } from './ingest-activity';
import { SWEEP_PERIOD_MS, type Store, type SweepResult } from './store';

/** How long after start the first sweep waits by default (`serve --retention-delay-ms`). */
export const RETENTION_DELAY_MS = 60_000;

/** What /healthz says about retention. */
export interface RetentionStatus {
  days: number;
  running: boolean;
  /** Sweeps finished (including ones another replica had done: skipped). */
  sweeps: number;
  /** When the next sweep is due (ISO), while none runs. */
  next_at?: string;
  last?: SweepResult & { finished_at: string; ms: number; error?: string };
}

export class RetentionSweeper {
  private timer: NodeJS.Timeout | undefined;
  private nextAt: number | undefined;
  private current: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private readonly state: Omit<RetentionStatus, 'running'>;

  constructor(
    private readonly store: Store,
    private readonly days: number,
    private readonly log: Logger,
    private readonly periodMs = SWEEP_PERIOD_MS,
    private readonly firstDelayMs = RETENTION_DELAY_MS,
    /** This process's ingest: each chunk waits until it is idle (or a second at most). */
    private readonly activity?: IngestActivity,
  ) {
    this.state = { days, sweeps: 0 };
  }

  status(): RetentionStatus {
    const running = this.current !== undefined;
    return { ...this.state, running, ...(!running && this.nextAt !== undefined ? { next_at: new Date(this.nextAt).toISOString() } : {}) };
  }

  /** The first sweep after the delay (in the background), then one every period. */
  start(): void {
    const every = () => {
      this.nextAt = Date.now() + this.periodMs;
      void this.sweepNow();
      this.timer = setInterval(() => {
        this.nextAt = Date.now() + this.periodMs;
        void this.sweepNow();
      }, this.periodMs);
      this.timer.unref();
    };
    if (this.firstDelayMs <= 0) return every();
    this.nextAt = Date.now() + this.firstDelayMs;
    this.timer = setTimeout(every, this.firstDelayMs);
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
      const activity = this.activity;
      const r = await this.store.sweep(this.days, Date.now(), this.abort.signal, activity && (() => activity.whenIdle()));
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
    clearTimeout(this.timer); // the first delay's timeout or the period's interval: one clear for both
    this.abort.abort();
    await this.current;
  }
}
