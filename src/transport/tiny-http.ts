/**
 * One HTTP/1.1 POST over a bare `net` socket, for the hot path only. Measured on
 * Node 20 here: node:http costs ~6 ms to load and ~4 ms to set up a request
 * before the first byte; a bare socket saves 5-7 ms of every hook with a live
 * collector. `Connection: close` keeps the client trivial: read to EOF, parse.
 * https: URLs use node:https through postJson instead.
 */
import { classifyNetworkError, classifyStatus, parseRetryAfter, type SendResult } from './retry';

export interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parses a complete HTTP/1.x response (as read to EOF). Pure; null when it is not one. */
export function parseHttpResponse(raw: Buffer): ParsedResponse | null {
  const headEnd = raw.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const head = raw.subarray(0, headEnd).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '');
  if (!m) return null;
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = raw.subarray(headEnd + 4);
  if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) body = dechunk(body);
  else if (headers['content-length'] !== undefined) body = body.subarray(0, Number(headers['content-length']) || 0);
  return { status: Number(m[1]), headers, body: body.toString('utf8') };
}

function dechunk(buf: Buffer): Buffer {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const lineEnd = buf.indexOf('\r\n', pos);
    if (lineEnd < 0) break;
    const size = Number.parseInt(buf.subarray(pos, lineEnd).toString('latin1'), 16);
    if (!Number.isFinite(size) || size <= 0) break;
    out.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
    pos = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(out);
}

const MAX_RESPONSE_BYTES = 256 * 1024;

export function postJsonTiny(url: URL, body: string, opts: { timeoutMs: number; token?: string; single: boolean; userAgent: string }): Promise<SendResult> {
  const net = require('node:net') as typeof import('node:net');
  return new Promise((resolve) => {
    let settled = false;
    const chunks: Buffer[] = [];
    let size = 0;
    const port = Number(url.port) || 80;
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const socket = net.connect({ host, port });
    const done = (r: SendResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ kind: 'retryable', code: 'ETIMEDOUT', message: `no answer within ${opts.timeoutMs} ms` }), Math.max(1, opts.timeoutMs));
    socket.on('connect', () => {
      const payload = Buffer.from(body, 'utf8');
      const auth = opts.token ? `Authorization: Bearer ${opts.token}\r\n` : '';
      socket.write(
        `POST ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: ${opts.userAgent}\r\nContent-Type: application/json\r\nContent-Length: ${payload.length}\r\n${auth}Connection: close\r\n\r\n`,
      );
      // Not end(): a half-close after the body let Node's server end the socket as soon as it read
      // that end, so an answer slower than the read (a first PostgreSQL transaction) never came back
      // and an event that was stored was spooled. The server closes (Connection: close) after answering.
      socket.write(payload);
    });
    socket.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_RESPONSE_BYTES) chunks.push(c);
    });
    socket.on('end', () => {
      const res = parseHttpResponse(Buffer.concat(chunks));
      if (!res) return done({ kind: 'retryable', code: 'EPROTO', message: 'not an HTTP response' });
      const kind = classifyStatus(res.status, opts.single);
      if (kind === 'ok') done({ kind: 'ok', status: res.status, body: res.body });
      else if (kind === 'permanent') done({ kind: 'permanent', status: res.status, body: res.body, message: `HTTP ${res.status}: ${res.body.slice(0, 500)}` });
      else done({ kind: 'retryable', status: res.status, retryAfterMs: parseRetryAfter(res.headers['retry-after']), message: `HTTP ${res.status}: ${res.body.slice(0, 200)}` });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => done(classifyNetworkError(err.code, err.message)));
  });
}
