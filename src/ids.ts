/**
 * Event ids and the few wire constants the hot path needs, without zod: `emit`
 * builds events from its own code and must not pay for loading the schema
 * library on every hook (tests validate every emitted event against the schema).
 */

export const SCHEMA_VERSION = 1;

/** Where an event came from. Bounded: it is a Prometheus label. */
export const SOURCES = ['interactive', 'ralph', 'api', 'cron', 'backfill'] as const;
export type Source = (typeof SOURCES)[number];

export type EventId = string & { readonly __brand: 'EventId' };

export function isSource(s: unknown): s is Source {
  return typeof s === 'string' && (SOURCES as readonly string[]).includes(s);
}

const HEX = '0123456789abcdef';
function toUuid(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < 16; i++) {
    const b = bytes[i] as number;
    s += HEX[b >> 4]! + HEX[b & 15]!;
    if (i === 3 || i === 5 || i === 7 || i === 9) s += '-';
  }
  return s;
}

function randomBytes16(): Uint8Array {
  const b = new Uint8Array(16);
  for (let i = 0; i < 16; i += 4) {
    const r = (Math.random() * 0x100000000) >>> 0;
    b[i] = r & 0xff;
    b[i + 1] = (r >>> 8) & 0xff;
    b[i + 2] = (r >>> 16) & 0xff;
    b[i + 3] = r >>> 24;
  }
  return b;
}

/** A time-ordered UUIDv7 (RFC 9562): files in the spool sort by birth time. */
export function uuidv7(nowMs: number = Date.now(), random?: Uint8Array): EventId {
  // Math.random, not crypto: loading node:crypto costs ~3.5 ms per hook, and these
  // bits need uniqueness (V8 seeds each process from the OS), not secrecy.
  const bytes = random ? Uint8Array.from(random.subarray(0, 16)) : randomBytes16();
  let ms = Math.max(0, Math.floor(nowMs));
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  return toUuid(bytes) as EventId;
}

/**
 * A deterministic id for a fact with a natural key (a transcript message, a
 * retried bare curl body): the same parts always give the same id, so re-reading
 * or re-sending never counts twice. UUIDv8 layout over a sha256 digest.
 */
export function deterministicId(...parts: string[]): EventId {
  const { createHash } = require('node:crypto') as typeof import('node:crypto');
  const h = createHash('sha256');
  for (const p of parts) h.update(`${p.length}:${p}`);
  const bytes = h.digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  return toUuid(bytes) as EventId;
}

/** JSON with sorted keys: the canonical body a deterministic id is derived from. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value as Record<string, unknown>).sort();
  return `{${keys
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
    .join(',')}}`;
}

/** Transcript usage events are keyed like ccusage dedupes: session + message id + request id. */
export function usageEventId(sessionId: string, messageId: string, requestId: string | undefined): EventId {
  return deterministicId('usage', sessionId, messageId, requestId ?? '');
}

