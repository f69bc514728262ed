/**
 * A typed client for the collector's JSON API, for dashboards that show Claude
 * Code usage beside their own (the router's). Works wherever `fetch` does
 * (browsers, Node >= 18, Deno, Bun); no dependencies.
 *
 *   import { createClient } from 'claude-metrics/client';
 *   const harness = createClient({ endpoint: 'http://collector:8013', token });
 *   const r = await harness.summary({ since: '24h' });
 *   if (r.ok) show(r.data.today); else warn(r.error.message);
 *
 * Every call resolves, never rejects: to `{ ok: true, data }` or to
 * `{ ok: false, error }` with an error kind to branch on (network, timeout,
 * unauthorized, not_found, http, invalid_response, aborted).
 */
import type { ApiConfig, Daily, Filters, SessionDetail, SessionsPage, Summary } from './types';

export type * from './types';

export interface ClientOptions {
  /**
   * The collector's base URL (`http://collector:8013`), or the prefix a proxy
   * serves its `/api` under (`/harness` for `/harness/api/summary`; relative
   * to the page in a browser). A trailing `/metrics/harness` (the emitter's
   * endpoint) is dropped, so the same setting works for both.
   */
  endpoint: string;
  /** Bearer token, when the collector was started with one. */
  token?: string;
  /** Per request, default 10,000 ms. */
  timeoutMs?: number;
  /** Extra request headers (a proxy's own auth, say). */
  headers?: Record<string, string>;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
}

export type ClientErrorKind = 'invalid_endpoint' | 'network' | 'timeout' | 'aborted' | 'unauthorized' | 'not_found' | 'bad_request' | 'http' | 'invalid_response';

export interface ClientError {
  kind: ClientErrorKind;
  /** One line, fit to show: the collector's own reason when it gave one. */
  message: string;
  /** HTTP status, when there was a response. */
  status?: number;
  url: string;
}

export type Result<T> = { ok: true; data: T; status: number } | { ok: false; error: ClientError };

/** A point in time: a Date, an ISO date or time, or a relative `30m`, `24h`, `7d`. */
export type TimeArg = Date | string;

export interface Filter {
  source?: string;
  project?: string;
  label?: string;
  since?: TimeArg;
  until?: TimeArg;
}

export interface SessionQuery extends Filter {
  /** At most 1000; the collector's default is 50. */
  limit?: number;
  offset?: number;
}

export interface DailyQuery extends Filter {
  /** 1 to 366, default 30. */
  days?: number;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface HarnessClient {
  /** The base the API paths are appended to (after normalisation). */
  readonly endpoint: string;
  /** Tiles: today, last 7 days, active sessions, ingest, by project and label, top tools. */
  summary(filter?: Filter, opts?: RequestOptions): Promise<Result<Summary>>;
  /** Recent sessions, newest first. */
  sessions(query?: SessionQuery, opts?: RequestOptions): Promise<Result<SessionsPage>>;
  /** Per day and source: tasks, outcomes, tokens, cost. */
  daily(query?: DailyQuery, opts?: RequestOptions): Promise<Result<Daily>>;
  /** The sources, projects and labels seen, for filter menus. */
  filters(opts?: RequestOptions): Promise<Result<Filters>>;
  /** One session by its row id, Claude Code session id, task or run id. `not_found` when unknown (or the collector predates the route). */
  session(id: string, opts?: RequestOptions): Promise<Result<SessionDetail>>;
  /** Whether the collector needs a token, and the router metrics URL it was given. */
  config(opts?: RequestOptions): Promise<Result<ApiConfig>>;
}

export const DEFAULT_TIMEOUT_MS = 10_000;

function normaliseEndpoint(endpoint: string): string | null {
  if (typeof endpoint !== 'string') return null;
  let base = endpoint.trim().replace(/\/+$/, '').replace(/\/metrics\/harness$/, '');
  if (base === '' || base.startsWith('/')) {
    // Relative: resolved against the page in a browser; meaningless elsewhere.
    const loc = (globalThis as { location?: { href?: string } }).location?.href;
    if (!loc) return null;
    base = new URL(base || '/', loc).href.replace(/\/+$/, '');
  }
  try {
    const u = new URL(base);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
    return base;
  } catch {
    return null;
  }
}

function timeParam(v: TimeArg): string {
  return v instanceof Date ? v.toISOString() : v;
}

function query(params: Record<string, string | number | Date | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === '') continue;
    q.set(k, v instanceof Date ? timeParam(v) : String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

function filterParams(f: Filter = {}): Record<string, string | undefined> {
  return { source: f.source, project: f.project, label: f.label, since: f.since === undefined ? undefined : timeParam(f.since), until: f.until === undefined ? undefined : timeParam(f.until) };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Minimal shape checks: enough to never hand a caller a page of HTML as data. */
const SHAPES: Record<string, (v: unknown) => boolean> = {
  summary: (v) => isObject(v) && isObject(v.today) && isObject(v.active) && Array.isArray(v.by_project),
  sessions: (v) => isObject(v) && Array.isArray(v.sessions) && typeof v.total === 'number',
  daily: (v) => isObject(v) && Array.isArray(v.days),
  filters: (v) => isObject(v) && Array.isArray(v.sources) && Array.isArray(v.projects) && Array.isArray(v.labels),
  session: (v) => isObject(v) && typeof v.id === 'string',
  config: (v) => isObject(v) && typeof v.auth === 'boolean',
};

export function createClient(options: ClientOptions): HarnessClient {
  const base = normaliseEndpoint(options?.endpoint);
  const timeoutMs = options?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const doFetch = options?.fetch ?? (typeof fetch === 'function' ? fetch.bind(globalThis) : undefined);

  async function get<T>(shape: string, path: string, opts: RequestOptions = {}): Promise<Result<T>> {
    const url = `${base ?? options?.endpoint ?? ''}${path}`;
    if (base === null) return { ok: false, error: { kind: 'invalid_endpoint', message: `not an http(s) URL: ${JSON.stringify(options?.endpoint)}`, url } };
    if (!doFetch) return { ok: false, error: { kind: 'network', message: 'no fetch in this runtime: pass options.fetch', url } };
    const ctl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ctl.abort();
    }, timeoutMs);
    const onAbort = () => ctl.abort();
    if (opts.signal?.aborted) ctl.abort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    try {
      let res: Response;
      try {
        res = await doFetch(url, { headers, signal: ctl.signal, credentials: options.token ? 'omit' : 'same-origin' });
      } catch (err) {
        if (timedOut) return { ok: false, error: { kind: 'timeout', message: `no answer within ${timeoutMs} ms`, url } };
        if (opts.signal?.aborted) return { ok: false, error: { kind: 'aborted', message: 'aborted', url } };
        return { ok: false, error: { kind: 'network', message: `cannot reach the collector: ${describe(err)}`, url } };
      }
      let text: string;
      try {
        text = await res.text();
      } catch (err) {
        if (timedOut) return { ok: false, error: { kind: 'timeout', message: `response not complete within ${timeoutMs} ms`, status: res.status, url } };
        return { ok: false, error: { kind: opts.signal?.aborted ? 'aborted' : 'network', message: `response cut short: ${describe(err)}`, status: res.status, url } };
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      if (!res.ok) {
        const reason = isObject(body) && typeof body.error === 'string' ? body.error : text.slice(0, 200).trim() || res.statusText;
        const kind: ClientErrorKind = res.status === 401 || res.status === 403 ? 'unauthorized' : res.status === 404 ? 'not_found' : res.status === 400 ? 'bad_request' : 'http';
        return { ok: false, error: { kind, message: `HTTP ${res.status}: ${reason}`, status: res.status, url } };
      }
      if (body === undefined || !SHAPES[shape]!(body)) {
        return { ok: false, error: { kind: 'invalid_response', message: `not the collector's ${shape} JSON (is ${JSON.stringify(options.endpoint)} the collector, or a proxy in front of it?)`, status: res.status, url } };
      }
      return { ok: true, data: body as T, status: res.status };
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  return {
    endpoint: base ?? String(options?.endpoint),
    summary: (f, o) => get<Summary>('summary', `/api/summary${query(filterParams(f))}`, o),
    sessions: (q = {}, o) => get<SessionsPage>('sessions', `/api/sessions${query({ ...filterParams(q), limit: q.limit, offset: q.offset })}`, o),
    daily: (q = {}, o) => get<Daily>('daily', `/api/daily${query({ ...filterParams(q), days: q.days })}`, o),
    filters: (o) => get<Filters>('filters', '/api/filters', o),
    session: (id, o) => get<SessionDetail>('session', `/api/sessions/${encodeURIComponent(String(id))}`, o),
    config: (o) => get<ApiConfig>('config', '/api/config', o),
  };
}

function describe(err: unknown): string {
  const e = err as { cause?: { code?: string; message?: string }; message?: string } | null;
  return e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
}
