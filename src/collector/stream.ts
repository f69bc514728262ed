/**
 * `GET /api/stream`: Server-Sent Events that say what changed, so pages update
 * without a polling loop per viewer. A message names the sessions an ingest
 * touched; the page then reads what it shows. Its id is a whole position in the
 * ingest order (session-reads.ts: SQLite's rowid, PostgreSQL's settled
 * transaction id), so `Last-Event-ID` resumes exactly, even across a collector
 * restart or on another replica: the catch-up is read from the store.
 *
 * Who publishes: with one writer (SQLite) the commit itself; with replicas on
 * one PostgreSQL, one poller per replica (stream-poller.ts) that reads what any
 * replica committed.
 *
 * A stream never holds the ingest path: publishing is a non-blocking write per
 * viewer, and a viewer whose socket buffer is past a bound is dropped (it
 * reconnects with Last-Event-ID and loses nothing). Streams are capped; past
 * the cap a clear 503.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MetricFamily } from './prometheus';
import type { SessionReader } from './session-reads';

export interface StreamFilter {
  session?: string;
  project?: string;
  source?: string;
  label?: string;
}

export interface ChangeSession {
  id: string;
  source: string | null;
  project: string | null;
  label: string | null;
  events: number;
}

interface Client {
  res: ServerResponse;
  filter: StreamFilter;
  /** Messages published while the catch-up is read (then sent after it); undefined once live. */
  held?: Array<{ seq: number; text: string }>;
}

export interface StreamOptions {
  maxStreams: number;
  heartbeatMs: number;
  /** Bytes a viewer may leave unread before it is dropped. */
  maxBufferedBytes: number;
  /** PostgreSQL: how often each replica looks for other replicas' commits (stream-poller.ts). */
  pollMs: number;
}

/** Sessions listed in one message; past this it says "many" and the page refreshes. */
export const MAX_LISTED = 200;

export function streamOptionsFromEnv(env = process.env): StreamOptions {
  const n = (v: string | undefined, def: number, min: number) => (v && /^\d+$/.test(v) && Number(v) >= min ? Number(v) : def);
  return {
    maxStreams: n(env.CLAUDE_METRICS_MAX_STREAMS, 100, 1),
    heartbeatMs: n(env.CLAUDE_METRICS_STREAM_HEARTBEAT_MS, 15_000, 50),
    maxBufferedBytes: n(env.CLAUDE_METRICS_STREAM_MAX_BUFFER, 256 * 1024, 1024),
    pollMs: n(env.CLAUDE_METRICS_STREAM_POLL_MS, 250, 10),
  };
}

const matches = (f: StreamFilter, s: ChangeSession) =>
  (!f.session || f.session === s.id) && (!f.project || f.project === s.project) && (!f.source || f.source === s.source) && (!f.label || f.label === s.label);

export class StreamHub {
  private readonly clients = new Set<Client>();
  private heartbeat: NodeJS.Timeout | undefined;
  /** Viewers dropped for reading too slowly, and streams refused at the cap (for /metrics and tests). */
  readonly stats = { dropped: 0, refused: 0, opened: 0, messages: 0 };
  /** Awaited before a viewer reads its starting point (the PostgreSQL poller's ready()). */
  beforeOpen: (() => Promise<void>) | undefined;

  constructor(
    private readonly reads: SessionReader,
    private readonly opts: StreamOptions,
  ) {}

  get size(): number {
    return this.clients.size;
  }

  /**
   * Answers a stream request: 503 past the cap, else a catch-up from
   * Last-Event-ID, then live messages. The viewer is registered before the
   * catch-up is read; what is published meanwhile waits and is sent after it,
   * less what the catch-up already covered, so nothing falls between them.
   */
  async open(req: IncomingMessage, res: ServerResponse, filter: StreamFilter, lastEventId: string | undefined): Promise<void> {
    if (this.clients.size >= this.opts.maxStreams) {
      this.stats.refused++;
      const text = JSON.stringify({ error: `too many live streams (${this.opts.maxStreams} open); retry later, or poll /api/sessions` });
      res.writeHead(503, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'retry-after': '5', 'cache-control': 'no-store' });
      res.end(text);
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      'x-content-type-options': 'nosniff',
    });
    res.socket?.setNoDelay(true);
    const client: Client = { res, filter, held: [] };
    this.clients.add(client);
    this.stats.opened++;
    const drop = () => this.clients.delete(client);
    req.on('close', drop);
    res.on('close', drop);
    res.on('error', drop);
    let high = 0;
    let head = 'retry: 2000\n\n';
    try {
      await this.beforeOpen?.();
      high = await this.reads.highWater();
      const last = lastEventId !== undefined && /^\d+$/.test(lastEventId) ? Number(lastEventId) : undefined;
      if (last === undefined || last === high) head += frame(high, 'hello', { seq: high });
      else if (last > high) head += frame(high, 'reset', { seq: high, reason: 'Last-Event-ID is ahead of this collector (a different database?)' });
      else {
        const c = await this.reads.changedSince(last, MAX_LISTED + 1);
        high = Math.max(high, c.seq);
        const sessions = c.sessions.map((s) => ({ id: s.session_key, source: s.source, project: s.project, label: s.label, events: s.events })).filter((s) => matches(filter, s));
        if (c.sessions.length > MAX_LISTED) head += frame(high, 'reset', { seq: high, reason: 'more changed than one message lists; read again' });
        else if (sessions.length > 0) head += frame(high, 'change', { seq: high, catch_up: true, events: sessions.reduce((a, s) => a + s.events, 0), sessions });
        else head += frame(high, 'hello', { seq: high });
      }
    } catch (err) {
      this.clients.delete(client);
      res.end(frame(0, 'error', { error: `cannot read the store: ${(err as Error).message}` }));
      return;
    }
    const held = client.held ?? [];
    client.held = undefined;
    if (res.destroyed) return;
    res.write(head + held.filter((m) => m.seq > high).map((m) => m.text).join(''));
    this.startHeartbeat();
  }

  /** Tells every matching viewer what one commit changed. Never waits on a viewer. */
  publish(seq: number, sessions: ChangeSession[]): void {
    if (this.clients.size === 0 || sessions.length === 0) return;
    this.stats.messages++;
    const many = sessions.length > MAX_LISTED;
    // Viewers with the same filter (every dashboard, every viewer of one session) get the same message: made once.
    const made = new Map<string, string | null>();
    for (const c of this.clients) {
      const key = `${c.filter.session ?? ''}\u0000${c.filter.project ?? ''}\u0000${c.filter.source ?? ''}\u0000${c.filter.label ?? ''}`;
      let text = made.get(key);
      if (text === undefined) {
        const mine = sessions.filter((s) => matches(c.filter, s));
        const data = many && !c.filter.session ? { seq, many: true, events: mine.reduce((a, s) => a + s.events, 0), sessions: mine.slice(0, MAX_LISTED) } : { seq, events: mine.reduce((a, s) => a + s.events, 0), sessions: mine };
        text = mine.length === 0 ? null : frame(seq, 'change', data);
        made.set(key, text);
      }
      if (text === null) continue;
      if (c.held) c.held.push({ seq, text });
      else this.write(c, text);
    }
  }

  /** Tells every viewer to read again from `seq` (more changed than can be listed). */
  reset(seq: number, reason: string): void {
    const text = frame(seq, 'reset', { seq, reason });
    for (const c of this.clients) {
      if (c.held) c.held.push({ seq, text });
      else this.write(c, text);
    }
  }

  private write(c: Client, text: string): void {
    if (c.res.writableLength > this.opts.maxBufferedBytes) {
      // A slow viewer: drop it rather than buffer for it (it resumes with Last-Event-ID).
      this.stats.dropped++;
      this.clients.delete(c);
      c.res.destroy();
      return;
    }
    c.res.write(text);
  }

  private startHeartbeat(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => {
      if (this.clients.size === 0) {
        clearInterval(this.heartbeat);
        this.heartbeat = undefined;
        return;
      }
      const beat = `: heartbeat ${new Date().toISOString()}\n\n`;
      for (const c of this.clients) if (!c.held) this.write(c, beat);
    }, this.opts.heartbeatMs);
    this.heartbeat.unref();
  }

  /** The stream's own health for /metrics (per process: streams live in this process). */
  metricFamilies(): MetricFamily[] {
    return [
      { name: 'claude_harness_streams_open', help: 'Live /api/stream viewers connected now.', type: 'gauge', samples: [{ labels: {}, value: this.clients.size }] },
      { name: 'claude_harness_stream_dropped_total', help: 'Stream viewers dropped for reading too slowly (they resume with Last-Event-ID).', type: 'counter', samples: [{ labels: {}, value: this.stats.dropped }] },
      { name: 'claude_harness_stream_refused_total', help: 'Stream requests refused with 503 at the cap on concurrent streams.', type: 'counter', samples: [{ labels: {}, value: this.stats.refused }] },
    ];
  }

  /** Ends every stream (the collector is stopping). */
  closeAll(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }
}

function frame(id: number, event: string, data: unknown): string {
  return `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
