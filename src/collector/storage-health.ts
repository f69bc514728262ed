/**
 * Is the store taking writes? Set by the first write that fails for a storage
 * reason (src/collector/storage-errors.ts); cleared by a probe, a tiny real
 * write (and, for a file store, enough free space beside it), tried at most once
 * a second while unavailable, on /healthz and before an ingest. Between probes
 * an ingest is answered 503 at once, without touching the failing store.
 *
 * The failure counters live here, in memory: the database that would hold them
 * is the one failing. /metrics exposes them either way.
 */
import { freeBytes } from '../statedir';
import { classifyStorageError, storageUnavailable, STORAGE_REASONS, type StorageReason, type StorageUnavailable } from './storage-errors';

/** How long a client should wait before retrying while the store is unavailable. */
export const RETRY_AFTER_S = 10;
/** A file store with less free space than this beside it is treated as full (one batch is up to 1 MiB). */
export const MIN_STORE_FREE_BYTES = 2 * 1024 * 1024;
const PROBE_INTERVAL_MS = 1_000;

export interface StorageHealthOptions {
  /** A tiny real write (e.g. one counter row); throws when the store cannot take it. */
  probeWrite: () => void | Promise<void>;
  /** The directory of a file store, for the free-space check (none for a server database). */
  dataDir?: string;
  /** Free space below which a file store counts as full (default MIN_STORE_FREE_BYTES; env CLAUDE_METRICS_STORE_MIN_FREE_BYTES). */
  minFreeBytes?: number;
  now?: () => number;
  onChange?: (available: boolean, u: StorageUnavailable | null) => void;
}

export class StorageHealth {
  private current: (StorageUnavailable & { sinceMs: number }) | null = null;
  private lastProbeMs = 0;
  private probing: Promise<boolean> | null = null;
  private readonly failures = new Map<StorageReason, number>();
  private readonly now: () => number;
  private readonly minFreeBytes: number;

  constructor(private readonly opts: StorageHealthOptions) {
    this.now = opts.now ?? Date.now;
    const fromEnv = Number(process.env.CLAUDE_METRICS_STORE_MIN_FREE_BYTES);
    this.minFreeBytes = opts.minFreeBytes ?? (process.env.CLAUDE_METRICS_STORE_MIN_FREE_BYTES && Number.isFinite(fromEnv) && fromEnv >= 0 ? fromEnv : MIN_STORE_FREE_BYTES);
  }

  get unavailable(): (StorageUnavailable & { sinceMs: number }) | null {
    return this.current;
  }

  /** Records a failed write if err is a storage error; returns its reading (null: not a storage error). */
  failed(err: unknown): StorageUnavailable | null {
    const u = classifyStorageError(err);
    if (!u) return null;
    this.failures.set(u.reason, (this.failures.get(u.reason) ?? 0) + 1);
    this.markUnavailable(u);
    return u;
  }

  private markUnavailable(u: StorageUnavailable): void {
    const was = this.current;
    if (!was || was.reason !== u.reason) this.current = { ...u, sinceMs: was?.sinceMs ?? this.now() };
    this.lastProbeMs = this.now();
    if (!was) this.opts.onChange?.(false, u);
  }

  /**
   * True when writes are expected to work: nothing failed, or a probe (at most
   * one a second, shared by concurrent callers) just succeeded. A file store
   * whose disk is (nearly) full is unavailable before any write fails.
   */
  async check(): Promise<boolean> {
    if (this.opts.dataDir) {
      const free = freeBytes(this.opts.dataDir);
      if (free !== null && free < this.minFreeBytes) {
        if (!this.current || this.current.reason !== 'no_space') this.markUnavailable(storageUnavailable('no_space'));
        return false;
      }
    }
    if (!this.current) return true;
    if (this.probing) return this.probing;
    if (this.now() - this.lastProbeMs < PROBE_INTERVAL_MS) return false;
    this.lastProbeMs = this.now();
    const p = (async () => {
      try {
        await this.opts.probeWrite();
        const was = this.current;
        this.current = null;
        if (was) this.opts.onChange?.(true, null);
        return true;
      } catch (err) {
        const u = classifyStorageError(err);
        if (u) this.failures.set(u.reason, (this.failures.get(u.reason) ?? 0) + 1);
        this.markUnavailable(u ?? this.current ?? storageUnavailable('unavailable'));
        return false;
      }
    })();
    // Cleared after the assignment: a probe that throws synchronously settles before it.
    this.probing = p;
    try {
      return await p;
    } finally {
      if (this.probing === p) this.probing = null;
    }
  }

  /** A write refused without being tried (the store is known to be unavailable): counted like a failed one. */
  refused(): void {
    const r = this.current?.reason ?? 'unavailable';
    this.failures.set(r, (this.failures.get(r) ?? 0) + 1);
  }

  /** Failed writes by reason since start (every reason present, zero included: a counter from the first scrape). */
  failureCounts(): Array<{ reason: StorageReason; value: number }> {
    return STORAGE_REASONS.map((reason) => ({ reason, value: this.failures.get(reason) ?? 0 }));
  }
}
