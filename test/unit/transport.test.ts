import { describe, expect, it } from 'vitest';
import { afterFailure, breakerAllows, CLOSED } from '../../src/transport/breaker';
import { backoffMs, classifyStatus, parseRetryAfter } from '../../src/transport/retry';

describe('classifyStatus', () => {
  it.each([
    [200, true, 'ok'],
    [202, false, 'ok'],
    [400, true, 'permanent'],
    [422, false, 'permanent'],
    [413, true, 'permanent'],
    [413, false, 'retryable'], // a batch too large is split, not dead-lettered
    [401, true, 'retryable'], // wrong token: keep the events, fix the config
    [403, true, 'retryable'],
    [404, true, 'retryable'], // wrong URL: same
    [408, true, 'retryable'],
    [429, true, 'retryable'],
    [500, true, 'retryable'],
    [502, true, 'retryable'],
    [503, true, 'retryable'],
    [504, true, 'retryable'],
  ] as const)('%i (single=%s) → %s', (status, single, kind) => expect(classifyStatus(status, single)).toBe(kind));
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('reads delta-seconds', () => expect(parseRetryAfter('3', now)).toBe(3000));
  it('reads fractional seconds', () => expect(parseRetryAfter('0.5', now)).toBe(500));
  it('reads an HTTP date', () => expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10_000));
  it('clamps a past date to 0', () => expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBe(0));
  it('ignores garbage and absence', () => {
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});

describe('backoffMs', () => {
  it('grows exponentially within full jitter bounds and caps', () => {
    expect(backoffMs(0, { baseMs: 1000, maxMs: 60_000, random: () => 0 })).toBe(500);
    expect(backoffMs(0, { baseMs: 1000, maxMs: 60_000, random: () => 1 })).toBe(1000);
    expect(backoffMs(3, { baseMs: 1000, maxMs: 60_000, random: () => 1 })).toBe(8000);
    expect(backoffMs(30, { baseMs: 1000, maxMs: 60_000, random: () => 1 })).toBe(60_000);
  });
  it('prefers Retry-After but never past the cap', () => {
    expect(backoffMs(5, { baseMs: 1000, maxMs: 60_000, retryAfterMs: 2000 })).toBe(2000);
    expect(backoffMs(0, { baseMs: 1000, maxMs: 5000, retryAfterMs: 120_000 })).toBe(5000);
  });
});

describe('breaker', () => {
  it('opens after a failure and lets a probe through after the backoff', () => {
    const s1 = afterFailure(CLOSED, 1000, { maxBackoffMs: 60_000, error: 'ECONNREFUSED', random: () => 1 });
    expect(s1.failures).toBe(1);
    expect(breakerAllows(s1, 2500)).toBe(false);
    expect(breakerAllows(s1, 3000)).toBe(true);
    const s2 = afterFailure(s1, 3000, { maxBackoffMs: 60_000, error: 'x', random: () => 1 });
    expect(s2.openUntil).toBe(7000);
  });
  it('honours Retry-After from a 429/503', () => {
    const s = afterFailure(CLOSED, 0, { maxBackoffMs: 60_000, retryAfterMs: 7000, error: '429' });
    expect(s.openUntil).toBe(7000);
  });
});

describe('parseHttpResponse (the hot path client)', async () => {
  const { parseHttpResponse } = await import('../../src/transport/tiny-http');
  it('reads status, headers and a content-length body', () => {
    const r = parseHttpResponse(Buffer.from('HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nslowEXTRA'));
    expect(r).toEqual({ status: 429, headers: { 'retry-after': '7', 'content-length': '4' }, body: 'slow' });
  });
  it('decodes a chunked body', () => {
    const r = parseHttpResponse(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n'));
    expect(r?.body).toBe('{"a":1}');
  });
  it('reads to EOF without a length', () => {
    expect(parseHttpResponse(Buffer.from('HTTP/1.0 200 OK\r\n\r\nall of it'))?.body).toBe('all of it');
  });
  it('rejects what is not HTTP', () => {
    expect(parseHttpResponse(Buffer.from('SSH-2.0-OpenSSH\r\n\r\n'))).toBeNull();
    expect(parseHttpResponse(Buffer.from('HTTP/1.1 200 OK\r\n'))).toBeNull();
  });
});
