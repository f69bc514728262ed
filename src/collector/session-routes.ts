/**
 * The routes of one session and of the live stream, translated from HTTP to
 * session-api/stream and back. Auth has already been checked by http.ts (same
 * token rules as every other route).
 *
 *   GET /api/sessions/{id}                  header of one session (id: key, Claude Code session, task or run id)
 *   GET /api/sessions/{id}/events?after=&limit=   its steps, in time order, cursor-paginated
 *   GET /api/events/{event_id}              one stored event (raw metadata)
 *   GET /api/waiting                        sessions blocked on a person now
 *   GET /api/stream?session=&project=&source=&label=   Server-Sent Events
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HarnessEvent } from '../event';
import { sessionKey } from './normalize';
import { DEFAULT_PAGE, MAX_PAGE, rawEvent, resolveSession, sessionHeader, sessionSteps, waitingSessions } from './session-api';
import type { SessionReader } from './session-reads';
import type { IngestOutcome, Store } from './store';
import { ChangePoller } from './stream-poller';
import { StreamHub, streamOptionsFromEnv, type ChangeSession } from './stream';

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers });
  res.end(text);
}

export class SessionRoutes {
  readonly reads: SessionReader;
  readonly hub: StreamHub;
  /** With other writers on the database (PostgreSQL replicas): what tells this replica's viewers about their commits. */
  private readonly poller: ChangePoller | undefined;

  constructor(store: Store, log?: (msg: string, fields?: Record<string, unknown>) => void) {
    this.reads = store.sessionReads();
    const opts = streamOptionsFromEnv();
    this.hub = new StreamHub(this.reads, opts);
    if (this.reads.sharedWriters) {
      this.poller = new ChangePoller(this.reads, this.hub, opts.pollMs, log);
      this.poller.start();
      this.hub.beforeOpen = () => this.poller!.ready();
    }
  }

  /**
   * After a group commit: tell the stream which sessions changed (nothing to do without viewers).
   * One writer (SQLite): from the events in hand. Several (PostgreSQL): the poller reads what
   * every replica committed, in the ingest order; this commit only makes it look now.
   */
  async committed(groups: HarnessEvent[][], outcomes: IngestOutcome[]): Promise<void> {
    if (this.hub.size === 0) return;
    if (this.poller) return this.poller.kick();
    const touched = new Map<string, ChangeSession>();
    groups.forEach((g, i) => {
      if ((outcomes[i]?.accepted ?? 0) === 0) return;
      for (const e of g) {
        const id = sessionKey(e);
        const t = touched.get(id);
        if (t) t.events++;
        else touched.set(id, { id, source: e.source, project: e.project ?? null, label: e.label ?? null, events: 1 });
      }
    });
    if (touched.size > 0) this.hub.publish(await this.reads.highWater(), [...touched.values()]);
  }

  /** Ends every stream and the poller (the collector is stopping). */
  close(): void {
    this.poller?.stop();
    this.hub.closeAll();
  }

  metricFamilies() {
    return this.hub.metricFamilies();
  }

  /** Handles the request when the path is one of ours; false otherwise. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL, now: number): Promise<boolean> {
    const path = url.pathname;
    const q = url.searchParams;
    const ours = path === '/api/stream' || path === '/api/waiting' || /^\/api\/events\/[^/]+$/.test(path) || /^\/api\/sessions\/[^/]+(\/events)?$/.test(path);
    if (!ours) return false;
    const reads = this.reads;
    if (path === '/api/stream') {
      const header = req.headers['last-event-id'];
      const last = (Array.isArray(header) ? header[0] : header) ?? q.get('last_event_id') ?? undefined;
      await this.hub.open(req, res, { session: q.get('session') || undefined, project: q.get('project') || undefined, source: q.get('source') || undefined, label: q.get('label') || undefined }, last);
      return true;
    }
    if (path === '/api/waiting') {
      json(res, 200, await waitingSessions(reads, now));
      return true;
    }
    let m = /^\/api\/events\/([^/]+)$/.exec(path);
    if (m) {
      const id = decode(m[1]!);
      const r = id === null ? undefined : await rawEvent(reads, id);
      if (!r) json(res, 404, { error: `no event with id ${JSON.stringify(id ?? m[1])}` });
      else json(res, 200, r);
      return true;
    }
    m = /^\/api\/sessions\/([^/]+)(\/events)?$/.exec(path)!;
    const id = decode(m[1]!);
    if (id === null || id === '' || id.length > 600) {
      json(res, 400, { error: 'session id: not a valid URL-encoded id' });
      return true;
    }
    const unknown = () => json(res, 404, { error: `no session, task or run with id ${JSON.stringify(id)} on this collector (it may be older than the retention, or not sent yet)` });
    if (!m[2]) {
      const header = await sessionHeader(reads, id, now);
      if (!header) unknown();
      else json(res, 200, header);
      return true;
    }
    const session = await resolveSession(reads, id);
    if (!session) {
      unknown();
      return true;
    }
    const limitText = q.get('limit');
    if (limitText !== null && (!/^\d+$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > MAX_PAGE)) {
      json(res, 400, { error: `limit: expected 1 to ${MAX_PAGE}, got ${limitText}` });
      return true;
    }
    const page = await sessionSteps(reads, session.key, session.done, q.get('after') || null, limitText === null ? DEFAULT_PAGE : Number(limitText));
    if ('error' in page) json(res, 400, page);
    else json(res, 200, page);
    return true;
  }
}

function decode(v: string): string | null {
  try {
    return decodeURIComponent(v);
  } catch {
    return null;
  }
}
