/**
 * Pure delivery decisions: what an HTTP status or a socket error means for an
 * event, and how long to wait before the next try. No I/O here, so every rule
 * has a unit test.
 */

export type SendResult =
  | { kind: 'ok'; status: number; body: string }
  /** Try again later: the event stays in the spool. */
  | { kind: 'retryable'; status?: number; code?: string; retryAfterMs?: number; message: string }
  /** The collector will never accept this body: dead-letter it. */
  | { kind: 'permanent'; status: number; message: string; body: string };

/**
 * Only 400 and 422 say "this event is bad" and dead-letter it (413 too, for a
 * single event). 401/403/404/405/415 say the *configuration* is wrong (token,
 * URL): dead-lettering every event for a typo would lose them all, so they are
 * kept and retried like an outage, and logged.
 */
export function classifyStatus(status: number, single: boolean): 'ok' | 'retryable' | 'permanent' {
  if (status >= 200 && status < 300) return 'ok';
  if (status === 400 || status === 422) return 'permanent';
  if (status === 413) return single ? 'permanent' : 'retryable';
  return 'retryable';
}

/** Retry-After: delta-seconds or an HTTP date. Returns ms from now, or undefined. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  const s = v.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000);
  const t = Date.parse(s);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

/** Socket-level failures are all retryable; the code says which kind for logs. */
export function classifyNetworkError(code: string | undefined, message: string): SendResult {
  return { kind: 'retryable', code: code ?? 'ENETWORK', message };
}

/**
 * Exponential backoff with full jitter (AWS architecture blog), capped, and a
 * server's Retry-After taking precedence (but never beyond the cap).
 */
export function backoffMs(attempt: number, opts: { baseMs: number; maxMs: number; retryAfterMs?: number; random?: () => number }): number {
  if (opts.retryAfterMs !== undefined) return Math.min(Math.max(0, opts.retryAfterMs), opts.maxMs);
  const exp = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.max(0, attempt));
  const r = (opts.random ?? Math.random)();
  return Math.round(exp / 2 + (exp / 2) * r);
}
