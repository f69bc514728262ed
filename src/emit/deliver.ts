/**
 * Send-or-spool, shared by every producer (emit, run, the transcript worker,
 * backfill). Write-ahead: each event is in the spool *before* the network is
 * touched and is removed only after a 2xx, so a process killed at any point
 * leaves either the spooled file or a delivered event whose duplicate the
 * collector ignores. The breaker decides whether the network is tried at all.
 */
import type { Agent } from 'node:http';
import type { Config } from '../config';
import type { HarnessEvent, IngestResponse } from '../event';
import type { Logger } from '../log';
import type { StatePaths } from '../paths';
import { Spool } from '../spool/spool';
import { afterFailure, breakerAllows, CLOSED, readBreaker, writeBreaker } from '../transport/breaker';
import { postJson } from '../transport/http';
import type { SendResult } from '../transport/retry';
import { VERSION } from '../version';

export interface DeliverOptions {
  config: Config;
  paths: StatePaths;
  log?: Logger;
  /** Absolute epoch ms by which the network part must be over. */
  deadline: number;
  agent?: Agent | false;
  /** Skip the network (breaker says so, or the caller only wants to queue). */
  spoolOnly?: boolean;
}

export interface DeliverResult {
  delivered: number;
  spooled: number;
  dropped: number;
  rejected: number;
  /** The last network outcome, if the network was tried. */
  outcome?: SendResult['kind'];
}

export async function deliverEvents(events: HarnessEvent[], opts: DeliverOptions): Promise<DeliverResult> {
  const { config, paths, log } = opts;
  const result: DeliverResult = { delivered: 0, spooled: 0, dropped: 0, rejected: 0 };
  if (events.length === 0) return result;
  const spool = new Spool(paths);
  const now = Date.now();
  const breaker = readBreaker(paths.breaker, config.endpoint);
  const tryNetwork = !opts.spoolOnly && breakerAllows(breaker, now);
  // A healthy collector keeps the spool near empty, so the bound is only checked
  // once something has failed: the common path costs no readdir.
  const bounds = breaker.failures > 0 || !tryNetwork ? { maxBytes: config.maxSpoolBytes, maxFiles: config.maxSpoolFiles } : undefined;

  const items = events.map((ev) => {
    const json = JSON.stringify(ev);
    const w = spool.write(ev.event_id, json, bounds);
    if (!w.ok) log?.warn(w.reason === 'full' ? 'spool full: event will be dropped unless delivered now' : 'spool write failed', { event_id: ev.event_id, error: w.ok ? undefined : w.error });
    return { ev, json, name: w.ok ? w.name : null, ioFailed: !w.ok && w.reason === 'io' };
  });
  // Neither delivered nor spooled: lost. A bound-full spool counted it already; a failed write
  // (read-only, no space) is counted here, where the counter can still be written.
  const lost = (c: (typeof items)[number]) => {
    result.dropped++;
    if (c.ioFailed) spool.recordDrop();
  };

  if (!tryNetwork) {
    for (const it of items) it.name ? result.spooled++ : lost(it);
    log?.debug('breaker open: spooled without trying the network', { openUntil: breaker.openUntil, n: items.length });
    return result;
  }

  const batchSize = Math.max(1, config.batchSize);
  let state = breaker;
  for (let i = 0; i < items.length; i += batchSize) {
    const chunk = items.slice(i, i + batchSize);
    const remaining = opts.deadline - Date.now();
    let res: SendResult;
    if (remaining <= 5) res = { kind: 'retryable', code: 'EDEADLINE', message: 'deadline reached before sending' };
    else {
      const single = chunk.length === 1;
      const body = single ? chunk[0]!.json : `{"events":[${chunk.map((c) => c.json).join(',')}]}`;
      res = await postJson(config.endpoint, body, { timeoutMs: remaining, token: config.token, agent: opts.agent ?? false, single, userAgent: `claude-metrics/${VERSION}` });
    }
    result.outcome = res.kind;
    if (res.kind === 'ok') {
      const rejected = rejectedIndexes(res.body);
      chunk.forEach((c, idx) => {
        const reason = rejected.get(idx);
        if (reason !== undefined) {
          result.rejected++;
          if (c.name && spool.claim(c.name) !== null) spool.bury(c.name, reason);
          log?.warn('collector rejected an event', { event_id: c.ev.event_id, reason });
        } else {
          result.delivered++;
          if (c.name) spool.discardNew(c.name);
        }
      });
      if (state.failures > 0) {
        state = CLOSED;
        safeWriteBreaker(paths.breaker, state, log);
      }
      continue;
    }
    if (res.kind === 'permanent' && chunk.length === 1) {
      const c = chunk[0]!;
      result.rejected++;
      if (c.name && spool.claim(c.name) !== null) spool.bury(c.name, res.message);
      log?.warn('collector rejected an event permanently', { event_id: c.ev.event_id, status: res.status, message: res.message });
      continue;
    }
    // Retryable (or a whole batch refused: flush bisects it later): keep spooled, open the breaker.
    log?.warn('delivery failed; events stay in the spool', { kind: res.kind, message: res.message, code: res.kind === 'retryable' ? res.code : undefined });
    if (res.kind === 'retryable') {
      state = afterFailure(state, Date.now(), { maxBackoffMs: config.breakerMaxBackoffMs, retryAfterMs: res.retryAfterMs, error: res.message, endpoint: config.endpoint });
      safeWriteBreaker(paths.breaker, state, log);
    }
    for (const c of items.slice(i)) c.name ? result.spooled++ : lost(c);
    if (result.dropped > 0) log?.error('events lost: neither delivered nor spooled', { n: result.dropped });
    return result;
  }
  return result;
}

function safeWriteBreaker(path: string, state: Parameters<typeof writeBreaker>[1], log?: Logger): void {
  try {
    writeBreaker(path, state);
  } catch (err) {
    log?.warn('cannot write breaker state', { error: (err as Error).message });
  }
}

/** The collector's 2xx body may list items it rejected: index → reason. */
export function rejectedIndexes(body: string): Map<number, string> {
  const out = new Map<number, string>();
  if (!body || body[0] !== '{') return out;
  try {
    const parsed = JSON.parse(body) as Partial<IngestResponse>;
    if (Array.isArray(parsed.rejected)) {
      for (const r of parsed.rejected) if (r && typeof r.index === 'number') out.set(r.index, String(r.reason ?? 'rejected'));
    }
  } catch {
    /* a router that answers something else: all delivered */
  }
  return out;
}
