/**
 * The collector's HTTP layer (node:http): routing, limits, auth, static files.
 * Handlers only translate between HTTP and the store. Bad input always gets a
 * 4xx with a reason; a 5xx means a bug or a broken disk, never the client's body.
 */
import { timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import type { Logger } from '../log';
import { daily, metricFamilies, parseTime, summary } from './api';
import type { RetentionStatus } from './retention';
import type { IngestActivity } from './ingest-activity';
import type { MetricCaps } from './metric-limits';
import { parseBody, validateEvent } from './normalize';
import { decodeOtlp, errorBody, MAX_OTLP_BYTES, successBody, encodingOf, type Signal } from './ingest/otlp';
import { logsToEvents } from './ingest/otlp-logs';
import { metricsToEvents } from './ingest/otlp-metrics';
import { tracesToEvents } from './ingest/otlp-traces';
import { serialize } from './prometheus';
import type { HarnessEvent } from '../event';
import type { IngestOutcome, SessionFilter, Store } from './store';
import { RETRY_AFTER_S, StorageHealth } from './storage-health';
import { unavailableBody, type StorageUnavailable } from './storage-errors';
import { SessionRoutes } from './session-routes';

export const MAX_BODY_BYTES = 1024 * 1024;
/** Events waiting for the next group commit; past this, ingest answers 503 with Retry-After. */
export const MAX_QUEUED_EVENTS = 50_000;

/**
 * Group commit: requests that arrive while a commit is in flight (or in the
 * same event-loop turn) share the next transaction, each still answered with
 * its own outcome and only after the commit. The queue is bounded.
 */
export class GroupCommit {
  private queue: Array<{ events: HarnessEvent[]; resolve: (o: IngestOutcome) => void; reject: (e: unknown) => void }> = [];
  private queued = 0;
  private inFlight = 0;
  private scheduled = false;

  /** `maxInFlight`: transactions at once (1 for SQLite, whose writer is one anyway). */
  constructor(
    private readonly store: Store,
    private readonly maxInFlight = 1,
    /** Told after each commit (the live stream); must not throw or block. */
    private readonly onCommit?: (groups: HarnessEvent[][], outcomes: IngestOutcome[]) => void,
    /** Told when a batch is queued and when it is committed (the retention sweep waits for idle). */
    private readonly activity?: IngestActivity,
  ) {}

  submit(events: HarnessEvent[]): Promise<IngestOutcome> | null {
    if (this.queued + events.length > MAX_QUEUED_EVENTS) return null;
    this.queued += events.length;
    const activity = this.activity;
    activity?.begin();
    return new Promise((resolve, reject) => {
      this.queue.push({ events, resolve, reject });
      this.schedule();
    }).finally(() => activity?.end()) as Promise<IngestOutcome>;
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.commit();
    });
  }

  private async commit(): Promise<void> {
    if (this.inFlight >= this.maxInFlight || this.queue.length === 0) return;
    const q = this.queue.splice(0);
    this.queued -= q.reduce((n, x) => n + x.events.length, 0);
    this.inFlight++;
    try {
      const outcomes = await this.store.ingestMany(q.map((x) => x.events));
      q.forEach((x, i) => x.resolve(outcomes[i]!));
      this.onCommit?.(q.map((x) => x.events), outcomes);
    } catch (err) {
      for (const x of q) x.reject(err);
    } finally {
      this.inFlight--;
      this.schedule();
    }
  }
}

export interface CollectorOptions {
  store: Store;
  token?: string;
  log: Logger;
  dashboardDir: string;
  routerMetricsUrl?: string;
  /** Group-commit transactions at once (PostgreSQL can overlap them; SQLite has one writer). */
  maxCommitsInFlight?: number;
  /** Ingest's comings and goings, for the retention sweep (serve shares one with its RetentionSweeper). */
  activity?: IngestActivity;
  /** The database file's directory: a (nearly) full disk there is reported before a write fails. */
  dataDir?: string;
  /** Storage health (tests may pass their own); by default probed with a one-row counter write. */
  health?: StorageHealth;
  /** Values of each high-cardinality label with their own /metrics series (metric-limits.ts). */
  metricCaps?: MetricCaps;
  /** What retention is doing (/healthz): serve's sweeper (retention.ts). */
  retention?: () => RetentionStatus;
}

const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.ico': 'image/x-icon',
};

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

/**
 * The store cannot take writes right now (src/collector/storage-errors.ts): 503, never a bare 500,
 * with the reason and how long to wait; the emitters spool and retry after that long.
 */
function unavailable(res: ServerResponse, u: StorageUnavailable, err?: unknown): void {
  res.setHeader('connection', 'close');
  const retryAfterS = (err as { retryAfterS?: unknown } | undefined)?.retryAfterS;
  send(res, 503, unavailableBody(u), { 'retry-after': String(typeof retryAfterS === 'number' ? retryAfterS : RETRY_AFTER_S) });
}

/** The store's health on /metrics: failed writes by reason (kept in memory) and whether writes work now. */
export function healthFamilies(health: StorageHealth): Awaited<ReturnType<typeof metricFamilies>> {
  return [
    {
      name: 'claude_harness_store_write_failures_total',
      help: 'Store writes that failed or were refused for a storage reason (no_space, read_only, io_error, busy, unavailable, corrupt); counted in memory since the collector started.',
      type: 'counter',
      samples: health.failureCounts().map((c) => ({ labels: { reason: c.reason }, value: c.value })),
    },
    { name: 'claude_harness_store_available', help: 'Whether the store takes writes (1) or ingest is answered 503 (0).', type: 'gauge', samples: [{ labels: {}, value: health.unavailable ? 0 : 1 }] },
  ];
}

const error = (res: ServerResponse, status: number, message: string, extra: Record<string, unknown> = {}) => send(res, status, { error: message, ...extra });

/** Constant-time token comparison (length is not secret). */
export function tokenMatches(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function bearer(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (h && /^Bearer\s+/i.test(h)) return h.replace(/^Bearer\s+/i, '').trim();
  const cookie = req.headers.cookie ?? '';
  const m = /(?:^|;\s*)cm_token=([^;]*)/.exec(cookie);
  return m ? decodeURIComponent(m[1]!) : undefined;
}

/**
 * How much of a too-large body the collector still reads (and throws away) after answering 413.
 * Closing at once leaves the client's unsent bytes unread, the kernel answers them with a reset,
 * and the client sees EPIPE instead of the 413 and its reason (1 in 5 uploads of 10 MB here).
 * Reading on, bounded as nginx's lingering close is, lets the answer arrive; past the bound the
 * client is not listening and the socket is dropped.
 */
const DRAIN_MAX_BYTES = 64 * 1024 * 1024;
const DRAIN_MAX_MS = 10_000;

/** Reads the rest of a rejected body into nothing; destroys the socket past DRAIN_MAX_*. */
function drainRejected(req: IncomingMessage): void {
  let left = DRAIN_MAX_BYTES;
  const give = () => req.socket.destroy();
  const timer = setTimeout(give, DRAIN_MAX_MS);
  timer.unref();
  req.on('data', (c: Buffer) => {
    left -= c.length;
    if (left < 0) give();
  });
  req.once('close', () => clearTimeout(timer));
  req.once('end', () => clearTimeout(timer));
  req.resume();
}

function readBody(req: IncomingMessage, limit: number): Promise<{ ok: true; body: Buffer } | { ok: false; tooLarge: boolean }> {
  return new Promise((resolvePromise) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      drainRejected(req);
      resolvePromise({ ok: false, tooLarge: true });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        done = true;
        req.off('data', onData);
        drainRejected(req);
        resolvePromise({ ok: false, tooLarge: true });
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('end', () => {
      if (!done) resolvePromise({ ok: true, body: Buffer.concat(chunks) });
    });
    req.on('error', () => {
      if (!done) resolvePromise({ ok: false, tooLarge: false });
    });
  });
}

function filterFrom(q: URLSearchParams, now: number): SessionFilter | string {
  const since = parseTime(q.get('since'), now);
  const until = parseTime(q.get('until'), now);
  if (since === null) return `since: not a date or duration: ${q.get('since')}`;
  if (until === null) return `until: not a date or duration: ${q.get('until')}`;
  const limit = q.get('limit');
  const offset = q.get('offset');
  if (limit !== null && !/^\d+$/.test(limit)) return `limit: expected a whole number, got ${limit}`;
  if (offset !== null && !/^\d+$/.test(offset)) return `offset: expected a whole number, got ${offset}`;
  return {
    source: q.get('source') || undefined,
    project: q.get('project') || undefined,
    label: q.get('label') || undefined,
    sinceMs: since,
    untilMs: until,
    limit: limit === null ? undefined : Number(limit),
    offset: offset === null ? undefined : Number(offset),
  };
}

export function createCollector(opts: CollectorOptions): Server {
  const { store, log } = opts;
  const dashboardRoot = resolve(opts.dashboardDir);
  const sessions = new SessionRoutes(store, (msg, fields) => log.warn(msg, fields));
  const commits = new GroupCommit(
    store,
    opts.maxCommitsInFlight ?? 1,
    (groups, outcomes) => {
      sessions.committed(groups, outcomes).catch((err: unknown) => log.error('stream publish failed', { error: (err as Error).message }));
    },
    opts.activity,
  );
  const health =
    opts.health ??
    new StorageHealth({
      probeWrite: () => store.bump('store_write_probes_total', {}, 1), // not exposed: only its success matters
      dataDir: opts.dataDir,
      onChange: (ok, u) => (ok ? log.info('storage available again: writes work') : log.error(`storage unavailable: ${u?.message}; answering 503 until a write works`, { reason: u?.reason })),
    });
  // Counting a reject must never fail the answer to a bad request (a full disk included).
  const countRejects = (reason: string, n = 1) =>
    void store.countRejects(reason, n).catch((err: unknown) => {
      health.failed(err);
      log.warn('cannot count a reject', { reason, error: (err as Error).message });
    });
  /** Before a write: false (and counted) while the store is known to be unavailable and no probe has shown otherwise. */
  const writable = async (): Promise<boolean> => {
    if (await health.check()) return true;
    health.refused();
    return false;
  };

  async function ingest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      countRejects('content_type');
      req.resume();
      return error(res, 415, `expected Content-Type: application/json, got ${type || 'none'}`);
    }
    const read = await readBody(req, MAX_BODY_BYTES);
    if (!read.ok) {
      if (!read.tooLarge) return;
      countRejects('too_large');
      return error(res, 413, `body larger than ${MAX_BODY_BYTES} bytes; send smaller batches`);
    }
    let json: unknown;
    try {
      json = JSON.parse(read.body.toString('utf8'));
    } catch (err) {
      countRejects('invalid_json');
      return error(res, 400, `invalid JSON: ${(err as Error).message}`);
    }
    const parsed = parseBody(json);
    if (parsed.kind === 'invalid') {
      countRejects('schema', parsed.rejected?.length ?? 1);
      return error(res, parsed.status, parsed.reason, parsed.rejected ? { rejected: parsed.rejected } : {});
    }
    const events = parsed.kind === 'single' ? [parsed.event] : parsed.events.map((e) => e.event);
    const rejected = parsed.kind === 'batch' ? parsed.rejected : [];
    if (rejected.length > 0) countRejects('schema', rejected.length);
    if (!(await writable())) return unavailable(res, health.unavailable!);
    const pending = commits.submit(events);
    if (!pending) {
      countRejects('overloaded');
      return send(res, 503, { error: 'collector busy; retry shortly' }, { 'retry-after': '1' });
    }
    let outcome: IngestOutcome;
    try {
      outcome = await pending; // committed before we answer
    } catch (err) {
      const u = health.failed(err);
      if (!u) throw err;
      return unavailable(res, u, err); // nothing of this request was committed: the client retries it
    }
    send(res, 200, { accepted: outcome.accepted, duplicates: outcome.duplicates, rejected });
  }

  /** OTLP/HTTP export (Claude Code's own telemetry): 200 with partial success, 4xx for a bad body, in the request's encoding. */
  async function otlp(signal: Signal, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = (status: number, r: { type: string; body: Buffer }, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': r.type, 'content-length': r.body.length, 'cache-control': 'no-store', ...headers });
      res.end(r.body);
    };
    const encoding = encodingOf(req.headers['content-type']) ?? 'json';
    const fail = (status: number, reason: string, code: string) => {
      countRejects(code);
      reply(status, errorBody(encoding, status, reason), status === 503 ? { 'retry-after': '1' } : {});
    };
    if (!encodingOf(req.headers['content-type'])) {
      req.resume();
      return fail(415, `expected Content-Type application/json or application/x-protobuf, got ${(req.headers['content-type'] ?? 'none').split(';')[0]}`, 'content_type');
    }
    const read = await readBody(req, MAX_OTLP_BYTES);
    if (!read.ok) {
      if (!read.tooLarge) return;
      return fail(413, `body larger than ${MAX_OTLP_BYTES} bytes; export smaller batches`, 'too_large');
    }
    const d = decodeOtlp(signal, req.headers['content-type'], req.headers['content-encoding'] as string | undefined, read.body);
    if (!d.ok) return fail(d.status, d.reason, d.status === 413 ? 'too_large' : d.status === 415 ? 'content_type' : `otlp_invalid_${d.encoding}`);
    const receivedMs = Date.now();
    const mapped = signal === 'logs' ? logsToEvents(d.request, receivedMs) : signal === 'traces' ? tracesToEvents(d.request, receivedMs) : metricsToEvents(d.request, receivedMs);
    const events: HarnessEvent[] = [];
    let rejected = mapped.rejected;
    const reasons = [...mapped.reasons];
    for (const raw of mapped.events) {
      const v = validateEvent(raw, new Date(receivedMs));
      if (v.ok) events.push(v.event);
      else {
        rejected++;
        if (reasons.length < 3) reasons.push(v.reason);
      }
    }
    if (rejected > 0) countRejects(`otlp_${signal}`, rejected);
    if (mapped.ignored > 0) void store.bump('otlp_ignored_total', { signal }, mapped.ignored).catch((err: unknown) => log.warn('cannot count ignored OTLP items', { error: (err as Error).message }));
    if (events.length > 0) {
      const refuse = (u: StorageUnavailable, err?: unknown) => {
        res.setHeader('connection', 'close');
        const retryAfterS = (err as { retryAfterS?: unknown } | undefined)?.retryAfterS;
        return reply(503, errorBody(encoding, 503, unavailableBody(u).error), { 'retry-after': String(typeof retryAfterS === 'number' ? retryAfterS : RETRY_AFTER_S) });
      };
      if (!(await writable())) return refuse(health.unavailable!);
      const pending = commits.submit(events);
      if (!pending) return fail(503, 'collector busy; retry shortly', 'overloaded');
      try {
        await pending; // committed before we answer
      } catch (err) {
        const u = health.failed(err);
        if (!u) throw err;
        return refuse(u, err);
      }
    }
    reply(200, successBody(signal, d.encoding, rejected, rejected > 0 ? `${rejected} rejected: ${reasons.join('; ')}` : ''));
  }

  function serveStatic(res: ServerResponse, path: string): void {
    const rel = path === '/' ? 'index.html' : path.replace(/^\/dashboard\//, '');
    const file = normalize(join(dashboardRoot, rel));
    if (!file.startsWith(dashboardRoot + sep) || !existsSync(file) || !statSync(file).isFile()) {
      if (path === '/') {
        return send(res, 200, 'claude-metrics collector is running. The dashboard is not built: run `npm run build`.\nAPI: /api/summary /api/sessions /api/daily /metrics\n');
      }
      return error(res, 404, 'not found');
    }
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': statSync(file).size,
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-cache',
    });
    createReadStream(file).pipe(res);
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://collector');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const now = Date.now();

    if (path === '/healthz') {
      // Not ok while writes fail (a load balancer stops sending here); a probe write clears it by itself.
      if (!(await health.check())) {
        const u = health.unavailable!;
        return send(res, 503, { ok: false, ...unavailableBody(u), since: new Date(u.sinceMs).toISOString() }, { 'retry-after': String(RETRY_AFTER_S) });
      }
      return send(res, 200, { ok: true, events: await store.eventCount(), ...(opts.retention ? { retention: opts.retention() } : {}) });
    }

    if (opts.token) {
      // The browser opens the page once with ?token=…; an HttpOnly cookie carries it from then on.
      const fromQuery = url.searchParams.get('token') ?? undefined;
      if (fromQuery !== undefined && tokenMatches(fromQuery, opts.token) && method === 'GET' && (path === '/' || path.startsWith('/dashboard') || path.startsWith('/sessions/'))) {
        res.setHeader('set-cookie', `cm_token=${encodeURIComponent(fromQuery)}; HttpOnly; SameSite=Strict; Path=/`);
      } else if (!tokenMatches(bearer(req), opts.token)) {
        if ((path === '/metrics/harness' || path === '/v1/logs' || path === '/v1/metrics' || path === '/v1/traces') && method === 'POST') countRejects('unauthorized');
        req.resume();
        return error(res, 401, 'unauthorized: send Authorization: Bearer <token> (or open the dashboard with ?token=<token>)', {});
      }
    }

    if (path === '/metrics/harness') {
      if (method === 'POST') return ingest(req, res);
      if (method === 'GET' || method === 'HEAD') {
        res.writeHead(204, { 'cache-control': 'no-store' });
        return void res.end();
      }
      return error(res, 405, 'use POST', {});
    }
    if (path === '/v1/logs' || path === '/v1/metrics' || path === '/v1/traces') {
      if (method === 'POST') return otlp(path === '/v1/logs' ? 'logs' : path === '/v1/traces' ? 'traces' : 'metrics', req, res);
      return error(res, 405, 'use POST (OTLP/HTTP export)', {});
    }
    if (method !== 'GET' && method !== 'HEAD') return error(res, 405, `${method} not allowed on ${path}`);

    if (path === '/metrics') {
      let families: Awaited<ReturnType<typeof metricFamilies>> = [];
      try {
        families = await metricFamilies(store, now, opts.metricCaps);
      } catch (err) {
        if (!health.failed(err)) throw err; // the store cannot be read either: its health is still worth scraping
      }
      const text = serialize([...families, ...healthFamilies(health), ...sessions.metricFamilies()]);
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
      return void res.end(text);
    }
    if (path.startsWith('/api/')) {
      if (await sessions.handle(req, res, url, now)) return;
      const f = filterFrom(url.searchParams, now);
      if (typeof f === 'string') return error(res, 400, f);
      switch (path) {
        case '/api/summary':
          return send(res, 200, await summary(store, f, now));
        case '/api/sessions':
          return send(res, 200, await store.sessions(f, now));
        case '/api/daily': {
          const days = url.searchParams.get('days') ?? '30';
          if (!/^\d+$/.test(days) || Number(days) < 1 || Number(days) > 366) return error(res, 400, `days: expected 1 to 366, got ${days}`);
          return send(res, 200, await daily(store, f, Number(days), now));
        }
        case '/api/filters':
          return send(res, 200, await store.filters());
        case '/api/config':
          return send(res, 200, { router_metrics_url: opts.routerMetricsUrl ?? null, auth: Boolean(opts.token) });
        default:
          return error(res, 404, `no such API: ${path}`);
      }
    }
    if (path === '/' || path.startsWith('/dashboard/')) return serveStatic(res, path);
    // A session's page has its own URL; the page reads the id from it.
    if (/^\/sessions\/[^/]+$/.test(path)) return serveStatic(res, '/dashboard/session.html');
    return error(res, 404, `not found: ${path}`);
  }

  const server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      const u = health.failed(err);
      if (u) {
        log.warn('storage unavailable', { url: req.url, reason: u.reason, error: (err as Error).message });
        if (!res.headersSent) return unavailable(res, u, err);
        return void res.destroy();
      }
      log.error('request failed', { url: req.url, error: (err as Error).message, stack: (err as Error).stack });
      if (!res.headersSent) error(res, 500, 'internal error (logged)');
      else res.destroy();
    });
  });
  // Live streams never end by themselves: end them when the server closes, so in-flight requests can drain.
  const close = server.close.bind(server);
  server.close = ((cb?: (err?: Error) => void) => {
    sessions.close();
    return close(cb);
  }) as typeof server.close;
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 120_000;
  return server;
}
