/**
 * The live stream with several replicas on one PostgreSQL: a viewer on replica
 * A must hear of events ingested through replica B. One poller per replica
 * (not per viewer) reads the high water every `pollMs` (250 ms by default), and
 * when it moved and someone is watching, reads which sessions changed after
 * the last position it published, in the same snapshot as the new high water,
 * and publishes that to the hub. Positions are commit-safe
 * (session-reads-postgres.ts), so every commit is told once and none is
 * skipped, whichever replica made it. A local commit makes it look at once
 * (kick) instead of at the next tick.
 *
 * Why polling and not LISTEN/NOTIFY: NOTIFY in the ingest transaction takes a
 * cluster-wide lock at commit, serialising every replica's commits
 * (docs/collector.md has the measurement); it needs a dedicated connection per
 * replica that misses what is sent while it reconnects, so a poll would be
 * needed anyway to be exact. A high-water read costs one trivial statement per
 * tick and no row of harness_events; only a tick after a change reads rows,
 * through the (tx, ord) index.
 *
 * It never waits on a viewer (the hub's publish is a non-blocking write) and
 * never runs two reads at once: kicks during a read make one more read after it.
 */
import type { SessionReader } from './session-reads';
import type { StreamHub } from './stream';

/** Sessions one poll lists; past it (a storm across thousands of sessions in one tick) viewers are told to read again. */
const POLL_LIMIT = 10_000;

export class ChangePoller {
  /** The whole position told to viewers so far (undefined until the first read). */
  private at: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private failing = false;
  /** Polls that read changes, and their errors (for tests and /metrics-style checks). */
  readonly stats = { reads: 0, errors: 0 };

  constructor(
    private readonly reads: SessionReader,
    private readonly hub: StreamHub,
    private readonly intervalMs: number,
    private readonly log: (msg: string, fields?: Record<string, unknown>) => void = () => undefined,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.poll(), this.intervalMs);
    this.timer.unref();
    void this.poll();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A commit on this replica: look now rather than at the next tick. */
  kick(): void {
    void this.poll();
  }

  /**
   * Resolves once the poller has a starting position. A viewer waits for it before reading its own
   * starting point, so that one is never behind the poller's (which would skip what lies between).
   */
  async ready(): Promise<void> {
    if (this.at === undefined) await this.poll();
  }

  private poll(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.loop();
    return this.running;
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.once();
      } while (this.again && this.timer);
      if (this.failing) this.log('stream poller: reading the store again');
      this.failing = false;
    } catch (err) {
      this.stats.errors++;
      // Once per outage, not once per tick; the next tick tries again from the same position.
      if (!this.failing) this.log('stream poller: cannot read the store; viewers hear of new events when it is back', { error: (err as Error).message });
      this.failing = true;
    } finally {
      this.running = undefined;
    }
  }

  private async once(): Promise<void> {
    if (this.at === undefined) {
      // Viewers wait for this (ready()), so their own starting points come after it.
      this.at = await this.reads.highWater();
      return;
    }
    if (this.hub.size === 0) {
      // The high water is read first and the viewers counted after it: a viewer that arrives later
      // reads its own starting point later, so it is at or past this one and misses nothing.
      const hw = await this.reads.highWater();
      if (this.hub.size === 0) {
        this.at = Math.max(this.at, hw);
        return;
      }
    }
    const from = this.at;
    if ((await this.reads.highWater()) <= from) return;
    const c = await this.reads.changedSince(from, POLL_LIMIT);
    this.stats.reads++;
    if (c.seq <= from) return;
    if (c.touched > c.sessions.length) this.hub.reset(c.seq, `more than ${POLL_LIMIT} sessions changed at once; read again`);
    else if (c.sessions.length > 0) {
      this.hub.publish(
        c.seq,
        c.sessions.map((s) => ({ id: s.session_key, source: s.source, project: s.project, label: s.label, events: Number(s.events) })),
      );
    }
    this.at = c.seq;
  }
}
