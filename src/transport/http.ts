/**
 * POST a JSON body with node:http (undici costs +115 ms and fetch +80 ms of
 * start-up on Node 20; node:http costs nothing more). Resolves, never rejects:
 * the caller decides whether to spool.
 */
import type { Agent, IncomingMessage } from 'node:http';
import { classifyNetworkError, classifyStatus, parseRetryAfter, type SendResult } from './retry';
import { postJsonTiny } from './tiny-http';

export interface PostOptions {
  timeoutMs: number;
  token?: string | undefined;
  /** false = a fresh connection (emit); an Agent with keepAlive for flush. */
  agent?: Agent | false;
  /** A one-event body (decides how 413 is classified). */
  single?: boolean;
  userAgent?: string;
}

const MAX_RESPONSE_BYTES = 64 * 1024;

export function postJson(url: string, body: string, opts: PostOptions): Promise<SendResult> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: SendResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      resolve({ kind: 'retryable', code: 'EBADURL', message: `invalid endpoint URL ${url}` });
      return;
    }
    if (u.protocol === 'http:' && !opts.agent) {
      // One-shot sends (the hot path) skip node:http entirely.
      postJsonTiny(u, body, { timeoutMs: opts.timeoutMs, token: opts.token, single: opts.single ?? true, userAgent: opts.userAgent ?? 'claude-metrics' }).then(resolve);
      return;
    }
    const mod = (u.protocol === 'https:' ? require('node:https') : require('node:http')) as typeof import('node:http');
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'user-agent': opts.userAgent ?? 'claude-metrics',
    };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    const req = mod.request(u, { method: 'POST', headers, agent: opts.agent ?? false }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_RESPONSE_BYTES) chunks.push(c);
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const text = Buffer.concat(chunks).toString('utf8');
        const kind = classifyStatus(status, opts.single ?? true);
        if (kind === 'ok') done({ kind: 'ok', status, body: text });
        else if (kind === 'permanent') done({ kind: 'permanent', status, body: text, message: `HTTP ${status}: ${text.slice(0, 500)}` });
        else
          done({
            kind: 'retryable',
            status,
            retryAfterMs: parseRetryAfter(res.headers['retry-after']),
            message: `HTTP ${status}: ${text.slice(0, 200)}`,
          });
      });
      res.on('error', (err: NodeJS.ErrnoException) => done(classifyNetworkError(err.code, err.message)));
    });
    const timer = setTimeout(() => {
      done({ kind: 'retryable', code: 'ETIMEDOUT', message: `no answer within ${opts.timeoutMs} ms` });
      req.destroy();
    }, Math.max(1, opts.timeoutMs));
    req.on('error', (err: NodeJS.ErrnoException) => done(classifyNetworkError(err.code, err.message)));
    req.end(body);
  });
}
