/**
 * A small read client for the collector's session API and stream, for `show`
 * and `tail` (node:http: no undici start-up cost). Failures become CliErrors
 * with one clear line: unreachable (exit 75, try again later), unauthorized,
 * unknown id, or the collector's own reason.
 */
import { request, type IncomingMessage } from 'node:http';
import { request as requestTls } from 'node:https';
import { CliError, EXIT_TEMPFAIL, errorCode } from '../errors';

/** The collector's base URL from the configured endpoint (…/metrics/harness → …). */
export function baseUrl(endpoint: string): string {
  const u = new URL(endpoint);
  u.pathname = u.pathname.replace(/\/metrics\/harness\/?$/, '').replace(/\/$/, '');
  u.search = '';
  u.hash = '';
  return u.toString().replace(/\/$/, '');
}

export interface ClientOptions {
  base: string;
  token?: string;
  timeoutMs?: number;
}

function send(o: ClientOptions, path: string, headers: Record<string, string>): Promise<IncomingMessage> {
  const url = new URL(o.base + path);
  const fn = url.protocol === 'https:' ? requestTls : request;
  return new Promise((resolve, reject) => {
    const req = fn(url, { headers: { accept: 'application/json', ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...headers } }, resolve);
    req.setTimeout(o.timeoutMs ?? 10_000, () => req.destroy(Object.assign(new Error(`no answer within ${o.timeoutMs ?? 10_000} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', (err) => reject(unreachable(o.base, err)));
    req.end();
  });
}

function unreachable(base: string, err: unknown): CliError {
  return new CliError(`the collector at ${base} is not reachable (${errorCode(err) ?? (err as Error).message}); start it with \`claude-metrics serve\` or pass --endpoint`, 'E_UNREACHABLE', EXIT_TEMPFAIL);
}

async function readAll(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function failure(status: number, body: string, what: string): CliError {
  let reason = body.trim().slice(0, 300);
  try {
    reason = (JSON.parse(body) as { error?: string }).error ?? reason;
  } catch {
    /* not JSON */
  }
  if (status === 401) return new CliError(`the collector needs a token: pass --token or set CLAUDE_METRICS_TOKEN (${reason})`, 'E_UNAUTHORIZED', 1);
  if (status === 404) return new CliError(reason || `${what}: not found`, 'E_NOT_FOUND', 1);
  if (status === 503) return new CliError(`the collector is busy: ${reason}`, 'E_BUSY', EXIT_TEMPFAIL);
  return new CliError(`${what}: HTTP ${status}: ${reason}`, 'E_HTTP', 1);
}

/** GET a JSON resource; throws a CliError for anything but 200. */
export async function getJson<T>(o: ClientOptions, path: string, what: string): Promise<T> {
  const res = await send(o, path, {});
  const body = await readAll(res).catch((err: unknown) => {
    throw unreachable(o.base, err);
  });
  if (res.statusCode !== 200) throw failure(res.statusCode ?? 0, body, what);
  try {
    return JSON.parse(body) as T;
  } catch {
    throw new CliError(`${what}: the collector answered something that is not JSON (is ${o.base} a claude-metrics collector?)`, 'E_HTTP', 1);
  }
}

export interface StreamMessage {
  id?: string;
  event: string;
  data: unknown;
}

/**
 * Opens the stream and calls `on` for every message until the connection ends
 * (resolves) or cannot be made (rejects with a CliError).
 */
export async function openStream(o: ClientOptions, path: string, lastEventId: string | undefined, on: (m: StreamMessage) => void): Promise<void> {
  const res = await send({ ...o, timeoutMs: 0 }, path, { accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) });
  if (res.statusCode !== 200) throw failure(res.statusCode ?? 0, await readAll(res), 'stream');
  res.socket.setTimeout(0);
  res.setEncoding('utf8');
  let buf = '';
  await new Promise<void>((resolve) => {
    res.on('data', (chunk: string) => {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const m: StreamMessage = { event: 'message', data: null };
        let data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) m.id = line.slice(4);
          else if (line.startsWith('event: ')) m.event = line.slice(7);
          else if (line.startsWith('data: ')) data += line.slice(6);
        }
        if (!data) continue; // comments (heartbeats), retry lines
        try {
          m.data = JSON.parse(data);
        } catch {
          continue;
        }
        on(m);
      }
    });
    res.on('end', resolve);
    res.on('close', resolve);
    res.on('error', () => resolve());
  });
}
