/**
 * The collector's store, behind one small interface with two implementations:
 * SQLite (the default, one file, `sqlite.ts`) and PostgreSQL (several `serve`
 * replicas on one database, `postgres.ts`). Routes, folding rules (`../fold.ts`)
 * and Prometheus rendering are written once against this interface.
 *
 * Contract every implementation keeps:
 * - `ingestMany` stores each event once (unique event_id; a duplicate changes
 *   nothing) and has committed durably before its promise resolves, so the
 *   caller may answer 2xx.
 * - Sessions and counters change only through `fold.ts`'s rules, in the same
 *   transaction as the events, so they survive restarts and retention.
 * - A database that cannot take writes right now (PostgreSQL restarting, a full
 *   disk) rejects with a `StoreUnavailableError`; the HTTP layer answers 503 with
 *   Retry-After and the emitters spool.
 */
import type { MetricSlot } from '../metric-limits';
import type { HarnessEvent } from '../../event';
import type { Session } from '../../client/types';
import type { LastSeen, RollupQuery, RollupSum, ToolRollupQuery } from '../rollups';
import type { SessionReader } from '../session-reads';

export interface IngestOutcome {
  accepted: number;
  duplicates: number;
}

/** A session as the API returns it: the type is the client's (docs/contracts.md), so the two cannot drift. */
export type SessionRow = Session;

export interface SessionFilter {
  source?: string;
  project?: string;
  label?: string;
  sinceMs?: number;
  untilMs?: number;
  /** last_seen before this (the partial first day of a window the rollups cannot answer). */
  seenBeforeMs?: number;
  limit?: number;
  offset?: number;
}

export interface CounterTotal {
  metric: string;
  labels: Record<string, string>;
  value: number;
}

export interface ToolRow {
  tool: string;
  calls: number;
  failures: number;
  avg_duration_ms: number | null;
}

export interface ToolSum {
  tool: string;
  calls: number;
  failures: number;
  dur_sum: number;
  dur_count: number;
}

export interface Filters {
  sources: string[];
  projects: string[];
  labels: string[];
}

/** What a retention sweep deleted; `skipped` when another replica swept this period. */
export interface SweepResult {
  events: number;
  sessions: number;
  facts: number;
  skipped?: boolean;
  /** Delete transactions it took (each ≤ SWEEP_CHUNK rows), and SQLite pages given back to the file system. */
  chunks?: number;
  reclaimedPages?: number;
  /** The longest single delete transaction (ms): the longest ingest can wait on the sweep. */
  longestChunkMs?: number;
  /** Stopped between chunks (serve stopping); the next sweep goes on from what is left. */
  stopped?: boolean;
}

/** Rows one retention transaction deletes at most: ingest waits for one chunk, never for the whole sweep. */
export const SWEEP_CHUNK = 1000;

/**
 * How long one SQLite retention chunk (its transaction and checkpoint) should hold the writer; in-process
 * it blocks the event loop too. An ingest batch that arrives during a chunk waits for it on top of its own
 * time (a 500-event batch takes 55–80 ms at 1M events), so the chunk is kept at 10 ms: at 20 ms such
 * batches reached 108 ms during a sweep.
 */
export const SWEEP_CHUNK_TARGET_MS = 10;
const SWEEP_CHUNK_MIN = 50;
/** A phase's first chunk, before it knows what a row costs there; it doubles while chunks run well under the target. */
export const SWEEP_CHUNK_FIRST = 100;
/**
 * The pause after a chunk, as a multiple of what the chunk took: the sweep holds the writer at
 * most a quarter of the time. At half (a pause as long as the chunk), ingest at 5,000 events/s
 * needed more than the half left to it at 1M events, and its batches queued up to 0.8 s.
 */
export const SWEEP_PAUSE_FACTOR = 3;

/**
 * The next chunk's row limit from how long the last one took: smaller when it ran over the
 * target (rows of a big database with many index entries each cost more), back up to
 * SWEEP_CHUNK when it ran well under. Pure; the SQLite sweep paces itself with it.
 */
export function nextSweepChunk(limit: number, tookMs: number, targetMs = SWEEP_CHUNK_TARGET_MS): number {
  if (tookMs > targetMs) return Math.max(SWEEP_CHUNK_MIN, Math.floor((limit * targetMs) / tookMs));
  if (tookMs < targetMs / 2) return Math.min(SWEEP_CHUNK, limit * 2);
  return limit;
}

/** summary()'s ingest totals, kept in a tiny table at ingest so that they are not a scan of every counter. */
export interface IngestTotals {
  events: number;
  duplicates: number;
  rejects: Record<string, number>;
}

/** What `serve --rebuild-aggregates` did. */
export interface RebuildResult {
  sessions: number;
  /** Daily, per-dimension and hourly session rollup rows. */
  rollupRows: number;
  toolCalls: number;
  toolRows: number;
  filterValues: number;
}

export interface Store {
  /** `sqlite` or `postgres`. */
  readonly kind: 'sqlite' | 'postgres';
  /** Where the data lives, safe to print (a file path, or a URL without its password). */
  readonly location: string;
  /** A session not completed and silent this long is stale, not active (a client killed before SessionEnd); `serve --active-window-ms`. */
  activeWindowMs: number;

  /** Several requests' events in one transaction (group commit), each group with its own outcome. */
  ingestMany(groups: HarnessEvent[][], receivedMs?: number): Promise<IngestOutcome[]>;
  /** Counts rejected input by reason (a fixed set of reason codes). */
  countRejects(reason: string, n?: number): Promise<void>;
  /** Adds to a counter outside ingest (bounded labels), e.g. OTLP items read and not kept. */
  bump(metric: string, labels: Record<string, string>, by?: number): Promise<void>;

  /** The cardinality limiter's slots (metric-limits.ts): which label values keep their own /metrics series. */
  metricSlots(): Promise<MetricSlot[]>;
  /** Claims slots; a slot or value already held is left as it is (first claim wins, across replicas). */
  claimMetricSlots(slots: MetricSlot[]): Promise<void>;
  /** Every counter series with its total (monotonic: kept across restarts and retention). */
  counters(): Promise<CounterTotal[]>;
  /** A page of sessions, newest first, and how many match. */
  sessions(f: SessionFilter, now?: number): Promise<{ sessions: SessionRow[]; total: number }>;
  /** Every session matching the filter (for aggregates; bounded by its time window). */
  allSessions(f: SessionFilter, now?: number): Promise<SessionRow[]>;
  topTools(f: SessionFilter, limit?: number): Promise<ToolRow[]>;
  filters(): Promise<Filters>;
  /** Models seen with tokens but no price and no Claude Code cost (their cost is unknown, not zero). */
  unpricedModels(limit?: number): Promise<Array<{ model: string; requests: number }>>;
  /** Per-tool sums of the tool rollups from a UTC day on, or of whole UTC hours (rollups.ts); null when the filters cross two dimensions (the rollups are per dimension). */
  toolRollupSums(q: ToolRollupQuery): Promise<ToolSum[] | null>;
  /** The same sums recomputed from the events (`sinceMs` ≤ ts < `seenBeforeMs`): a window's partial first day. */
  toolSums(f: SessionFilter): Promise<ToolSum[]>;
  /** Sums of session_rollups (rollups.ts), grouped as asked. */
  rollupSums(q: RollupQuery): Promise<RollupSum[]>;
  ingestTotals(): Promise<IngestTotals>;
  /**
   * The latest last-seen time of each (source, project, label) among the sessions seen since
   * `sinceMs` (/metrics' last-event gauges): from session_last_seen, checked against the sessions
   * (rollups.ts checkedLastSeen), so exactly what grouping those sessions would answer.
   */
  lastSeen(sinceMs: number): Promise<LastSeen[]>;
  /** Derives the rollups and ingest totals again from the stored sessions and counters (one transaction). */
  rebuildAggregates(): Promise<RebuildResult>;
  /** Events stored (for health). */
  eventCount(): Promise<number>;

  /** One session's page, `show`, the stream and "waiting on you" (../session-reads.ts). */
  sessionReads(): SessionReader;

  /**
   * Retention: deletes events and sessions older than this; counters stay. At most once per period
   * across replicas; `signal` stops it between chunks; each chunk first awaits `beforeChunk` (serve:
   * until this process's ingest is idle, ingest-activity.ts).
   */
  sweep(retentionDays: number, now?: number, signal?: AbortSignal, beforeChunk?: () => Promise<void>): Promise<SweepResult>;
  close(): Promise<void>;
}

/** The database cannot serve right now; retrying later may work (HTTP 503 + Retry-After). */
export class StoreUnavailableError extends Error {
  readonly code = 'E_STORE_UNAVAILABLE';
  constructor(
    message: string,
    readonly retryAfterS = 1,
    /** The driver's error (its code tells storage-errors.ts the reason). */
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'StoreUnavailableError';
  }
}

/** By code, not instanceof (bundles do not share classes). */
export const isStoreUnavailable = (err: unknown): err is StoreUnavailableError => (err as { code?: unknown } | null)?.code === 'E_STORE_UNAVAILABLE';

export interface StoreOptions {
  /** PostgreSQL: connections per replica. */
  poolSize?: number;
  /** SQLite: `full` fsyncs every commit (survives power loss), `normal` survives a killed process. */
  sync?: 'normal' | 'full';
  /** Where a store reports trouble it recovers from by itself (a dropped connection). */
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** How often `serve` sweeps retention; with several replicas, one of them per period does. */
export const SWEEP_PERIOD_MS = 3_600_000;

/** A postgres:// URL with its password masked, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/^([a-z]+:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
  }
}

/** True when the --db value names a PostgreSQL database rather than a SQLite file. */
export const isPostgresUrl = (db: string): boolean => /^postgres(ql)?:\/\//i.test(db);

/** Opens the store a --db value names: `postgres://…` or a SQLite file path. Drivers load lazily. */
export async function openStore(db: string, opts: StoreOptions = {}): Promise<Store> {
  if (isPostgresUrl(db)) {
    const { PostgresStore } = await import('./postgres');
    return PostgresStore.open(db, opts);
  }
  const { SqliteStore } = await import('./sqlite');
  return new SqliteStore(db, opts.sync);
}

export { ACTIVE_WINDOW_MS } from './rows';
