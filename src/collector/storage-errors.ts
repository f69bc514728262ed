/**
 * Which store errors mean "the storage cannot take writes right now" (a full
 * disk, a read-only file system or database, an I/O error, a lock held too
 * long) rather than a bug. Pure: a driver error in, a bounded reason out, so
 * the SQLite and the PostgreSQL store share one rule and its unit tests.
 * The collector answers these with 503 + Retry-After and a reason, never a bare
 * 500, reports not-ok on /healthz until writes work again, and counts them by
 * reason on /metrics.
 */

/** Bounded: these are the label values of claude_harness_store_write_failures_total. */
export type StorageReason = 'no_space' | 'read_only' | 'io_error' | 'busy' | 'unavailable' | 'corrupt';

export interface StorageUnavailable {
  reason: StorageReason;
  /** For people: `storage unavailable: <message>`. */
  message: string;
}

const MESSAGES: Record<StorageReason, string> = {
  no_space: 'no space left on device',
  read_only: 'the database is read-only',
  io_error: 'disk I/O error',
  busy: 'the database is locked',
  unavailable: 'database unavailable (cannot be reached)',
  corrupt: 'the database file is damaged',
};

export const STORAGE_REASONS = Object.keys(MESSAGES) as StorageReason[];

/** better-sqlite3 `err.code` (extended result codes such as SQLITE_IOERR_WRITE included). */
function sqliteReason(code: string): StorageReason | null {
  if (code === 'SQLITE_FULL') return 'no_space';
  if (code.startsWith('SQLITE_READONLY')) return 'read_only';
  if (code.startsWith('SQLITE_IOERR')) return code === 'SQLITE_IOERR_NOMEM' ? null : 'io_error';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'busy';
  if (code.startsWith('SQLITE_CANTOPEN')) return 'unavailable';
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return 'corrupt';
  return null;
}

/** PostgreSQL SQLSTATE (node-postgres `err.code`, five characters). */
function sqlstateReason(code: string): StorageReason | null {
  if (code === '53100') return 'no_space'; // disk_full
  if (code === '25006') return 'read_only'; // read_only_sql_transaction (default_transaction_read_only, a hot standby)
  if (code === '58030') return 'io_error'; // io_error
  if (code === '55P03' || code === '40P01' || code === '57014') return 'busy'; // lock_not_available, deadlock, statement timeout
  if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300') return 'unavailable'; // connection, shutdown, too many connections
  if (code === 'XX001' || code === 'XX002') return 'corrupt'; // data_corrupted, index_corrupted
  return null;
}

/** errno codes from the file system or a socket to the database. */
function errnoReason(code: string): StorageReason | null {
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return 'no_space';
    case 'EROFS':
      return 'read_only';
    case 'EIO':
      return 'io_error';
    case 'ECONNREFUSED':
    case 'ECONNRESET':
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENOTFOUND':
    case 'EPIPE':
      return 'unavailable';
    default:
      return null;
  }
}

/** The storage-unavailable reading of an error, or null when it is something else (a bug: 500). */
export function classifyStorageError(err: unknown): StorageUnavailable | null {
  // A store's own StoreUnavailableError (src/collector/store): the reason it carries, its cause's, or
  // the SQLSTATE its message ends with; else the database cannot be reached.
  if ((err as { code?: unknown } | null)?.code === 'E_STORE_UNAVAILABLE') {
    const e = err as { reason?: unknown; cause?: unknown; message?: unknown };
    if (typeof e.reason === 'string' && e.reason in MESSAGES) return storageUnavailable(e.reason as StorageReason);
    const fromCause = e.cause ? classifyStorageError(e.cause) : null;
    if (fromCause) return fromCause;
    const state = /\(([0-9A-Z]{5})\)\s*$/.exec(typeof e.message === 'string' ? e.message : '');
    const reason = state ? sqlstateReason(state[1]!) : null;
    return storageUnavailable(reason ?? 'unavailable');
  }
  const code = err && typeof err === 'object' && typeof (err as { code?: unknown }).code === 'string' ? (err as { code: string }).code : undefined;
  if (!code) return null;
  const reason = code.startsWith('SQLITE_') ? sqliteReason(code) : /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('E') ? sqlstateReason(code) : errnoReason(code);
  return reason ? { reason, message: MESSAGES[reason] } : null;
}

export function storageUnavailable(reason: StorageReason): StorageUnavailable {
  return { reason, message: MESSAGES[reason] };
}

/** The 503 body: `{"error":"storage unavailable: no space left on device","reason":"no_space"}`. */
export function unavailableBody(u: StorageUnavailable): { error: string; reason: StorageReason } {
  return { error: `storage unavailable: ${u.message}`, reason: u.reason };
}
