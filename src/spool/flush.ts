/**
 * Delivers the spool, at-least-once: claim (rename new/ → cur/), send a batch,
 * delete only after a 2xx, dead-letter what the collector permanently refuses,
 * give claims back and back off on anything retryable. Concurrent flushers never
 * send the same file twice (only one rename wins); a flusher killed mid-batch
 * leaves its claims in cur/, returned to new/ by the next flush after the lease.
 *
 * One flusher per state directory: a run holds the pid-file lock `flush.pid` (src/proc.ts) while
 * it sends. Claims already keep two flushers from sending a file twice; the lock keeps a burst of
 * hooks from leaving a process each, all retrying against the same dead collector.
 */
import { Agent } from 'node:http';
import type { Config } from '../config';
import { rejectedIndexes } from '../emit/deliver';
import type { Logger } from '../log';
import { flushLockStaleMs, type StatePaths } from '../paths';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { acquirePidFile, pidFileHolder, releasePidFile } from '../proc';
import { afterFailure, breakerAllows, CLOSED, readBreaker, writeBreaker } from '../transport/breaker';
import { postJson } from '../transport/http';
import { backoffMs, type SendResult } from '../transport/retry';
import { VERSION } from '../version';
import { Spool } from './spool';

export interface FlushOptions {
  config: Config;
  paths: StatePaths;
  log?: Logger;
  /** Absolute epoch ms by which the run ends. */
  deadline: number;
  sleep?: (ms: number) => Promise<void>;
  /**
   * Started in the background (by a hook, the drainer, the transcript worker): skip the run while
   * another flusher holds the lock or the breaker is open, and stop at the first retryable failure
   * (the breaker then says when the next try is). Otherwise (`flush` from a person or cron): wait
   * for the lock until the deadline, try whatever the breaker says, back off and retry.
   */
  background?: boolean;
}

export interface FlushResult {
  delivered: number;
  deadLettered: number;
  reclaimed: number;
  recovered: number;
  attempts: number;
  /** Files still waiting in new/ at the end. */
  remaining: number;
  /** The spool was empty at the end. */
  drained: boolean;
  lastError?: string;
  /** The run did not start: another flusher (this pid) held the lock, or the breaker was open. */
  skipped?: { reason: 'locked'; holder: number | 'starting' } | { reason: 'breaker'; openUntil: number };
}

interface Claimed {
  dir: string;
  name: string;
  json: string;
}

export async function flushSpool(opts: FlushOptions): Promise<FlushResult> {
  const { config, paths, log } = opts;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const empty = (): FlushResult => {
    const remaining = new Spool(paths).listNew().length;
    return { delivered: 0, deadLettered: 0, reclaimed: 0, recovered: 0, attempts: 0, remaining, drained: remaining === 0 };
  };
  if (opts.background) {
    const breaker = readBreaker(paths.breaker, config.endpoint);
    if (!breakerAllows(breaker, Date.now())) {
      log?.debug('flush: breaker open, not trying', { openUntil: breaker.openUntil });
      return { ...empty(), skipped: { reason: 'breaker', openUntil: breaker.openUntil } };
    }
  }
  const lock = await takeFlushLock(paths.flushLock, flushLockStaleMs(config.flushTimeoutMs), opts.background ? 0 : opts.deadline, sleep, log);
  if (lock !== 'held' && lock !== 'unavailable') {
    log?.debug('flush: another flusher holds the spool', { holder: lock });
    return { ...empty(), skipped: { reason: 'locked', holder: lock } };
  }
  // A state directory the lock cannot be written in (read-only, full): delivering matters more.
  if (lock === 'unavailable') log?.warn('flush: cannot take the flush lock; flushing without it', { path: paths.flushLock });
  log?.debug('flush started', { background: opts.background === true });
  try {
    return await flushLocked(opts, sleep);
  } finally {
    log?.debug('flush finished');
    if (lock === 'held') releasePidFile(paths.flushLock);
  }
}

/**
 * 'held', the holder when another process has the lock past `waitUntil`, or 'unavailable' when the
 * lock file cannot be made. A young empty file is a hook handing the lock to the process it just
 * started: that may be us, so it is worth a short wait even in the background.
 */
async function takeFlushLock(path: string, staleMs: number, waitUntil: number, sleep: (ms: number) => Promise<void>, log?: Logger): Promise<'held' | 'unavailable' | number | 'starting'> {
  const handoffUntil = Date.now() + 1000;
  let said = false;
  for (let refused = 0; ; ) {
    if (acquirePidFile(path, staleMs)) return 'held';
    const holder = pidFileHolder(path, staleMs);
    if (holder === null) {
      // Free, yet not ours: no state directory yet, or one that refuses the file.
      if (refused++ === 0) {
        try {
          mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
        } catch {
          /* reported as unavailable below */
        }
      } else if (refused > 3) return 'unavailable';
      continue;
    }
    if (Date.now() >= Math.max(waitUntil, holder === 'starting' ? handoffUntil : 0)) return holder;
    if (!said && waitUntil > 0) {
      said = true;
      log?.info('flush: waiting for the flush in progress', { holder });
    }
    await sleep(50);
  }
}

async function flushLocked(opts: FlushOptions, sleep: (ms: number) => Promise<void>): Promise<FlushResult> {
  const { config, paths, log } = opts;
  const spool = new Spool(paths);
  const result: FlushResult = { delivered: 0, deadLettered: 0, reclaimed: 0, recovered: 0, attempts: 0, remaining: 0, drained: false };
  result.reclaimed = spool.reclaimExpired(config.leaseMs);
  result.recovered = spool.recoverTmp(60_000).recovered;
  if (result.reclaimed > 0) log?.info('reclaimed expired claims', { n: result.reclaimed });

  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const batchSize = Math.max(1, config.batchSize);
  let failures = 0;
  try {
    outer: while (Date.now() < opts.deadline) {
      const claim = spool.claimAll();
      if (!claim) break;
      let names = claim.names.sort();
      while (names.length > 0) {
        for (let i = 0; i < names.length; i += batchSize) {
          const slice = names.slice(i, i + batchSize);
          if (Date.now() >= opts.deadline) {
            // Out of time: give back what this run will not send.
            for (const n of names.slice(i)) spool.releaseFrom(claim.dir, n);
            break outer;
          }
          const batch: Claimed[] = [];
          for (const name of slice) {
            const json = spool.readClaimed(claim.dir, name);
            if (json === null) continue;
            // tmp → rename means a spooled file is whole; this only catches foreign junk.
            if (!looksLikeJsonObject(json)) {
              spool.buryFrom(claim.dir, name, 'not a JSON object');
              result.deadLettered++;
            } else batch.push({ dir: claim.dir, name, json });
          }
          if (batch.length === 0) continue;
          const outcome = await sendBatch(batch, { spool, config, agent, deadline: opts.deadline, log, result });
          if (outcome.kind === 'retryable') {
            for (const c of outcome.unsent) spool.releaseFrom(c.dir, c.name);
            for (const n of names.slice(i + batchSize)) spool.releaseFrom(claim.dir, n);
            await spool.settled();
            spool.closeBatch(claim.dir);
            failures++;
            result.lastError = outcome.message;
            const wait = backoffMs(failures - 1, { baseMs: 250, maxMs: 30_000, retryAfterMs: outcome.retryAfterMs });
            log?.warn('flush: delivery failed', { message: outcome.message, waitMs: wait, failures });
            safeWriteBreaker(paths.breaker, afterFailure(readBreaker(paths.breaker, config.endpoint), Date.now(), { maxBackoffMs: config.breakerMaxBackoffMs, retryAfterMs: outcome.retryAfterMs, error: outcome.message, endpoint: config.endpoint }));
            if (opts.background || Date.now() + wait >= opts.deadline) break outer;
            await sleep(wait);
            continue outer;
          }
          if (failures > 0 || readBreaker(paths.breaker, config.endpoint).failures > 0) safeWriteBreaker(paths.breaker, CLOSED);
          failures = 0;
        }
        // Late arrivals: an emitter's rename that raced the claim landed in this directory.
        await spool.settled();
        names = spool.listIn(claim.dir).sort();
      }
      spool.closeBatch(claim.dir);
      if (!spool.hasWaiting()) break;
    }
    await spool.settled();
  } finally {
    agent.destroy();
  }
  // Files in cur/ belong to another live flusher (or come back after the lease):
  // what this run leaves behind is what still waits in new/.
  result.remaining = spool.listNew().length;
  result.drained = result.remaining === 0;
  return result;
}

type BatchOutcome = { kind: 'done' } | { kind: 'retryable'; unsent: Claimed[]; message: string; retryAfterMs?: number };

interface SendContext {
  spool: Spool;
  config: Config;
  agent: Agent;
  deadline: number;
  log?: Logger;
  result: FlushResult;
}

/**
 * Sends one batch. A batch the endpoint refuses as a whole (400/422/413) is
 * split in halves until the bad events stand alone and go to dead/, so one bad
 * event never holds back the rest (a router may not report per-item rejects).
 */
async function sendBatch(batch: Claimed[], ctx: SendContext): Promise<BatchOutcome> {
  const single = batch.length === 1;
  const body = single ? batch[0]!.json : `{"events":[${batch.map((c) => c.json).join(',')}]}`;
  const remaining = ctx.deadline - Date.now();
  ctx.result.attempts++;
  const res: SendResult =
    remaining <= 0
      ? { kind: 'retryable', code: 'EDEADLINE', message: 'flush deadline reached' }
      : await postJson(ctx.config.endpoint, body, { timeoutMs: Math.min(remaining, 10_000), token: ctx.config.token, agent: ctx.agent, single, userAgent: `claude-metrics/${VERSION}` });
  if (res.kind === 'ok') {
    const rejected = rejectedIndexes(res.body);
    const delivered: string[] = [];
    batch.forEach((c, i) => {
      const reason = rejected.get(i);
      if (reason !== undefined) {
        ctx.spool.buryFrom(c.dir, c.name, `rejected by collector: ${reason}`);
        ctx.result.deadLettered++;
      } else delivered.push(c.name);
    });
    ctx.spool.completeInBackground(batch[0]!.dir, delivered);
    ctx.result.delivered += delivered.length;
    return { kind: 'done' };
  }
  if (res.kind === 'permanent' || (res.status === 413 && !single)) {
    if (single) {
      ctx.spool.buryFrom(batch[0]!.dir, batch[0]!.name, res.message);
      ctx.result.deadLettered++;
      ctx.log?.warn('flush: event rejected permanently, moved to dead/', { name: batch[0]!.name, message: res.message });
      return { kind: 'done' };
    }
    const mid = Math.ceil(batch.length / 2);
    for (const half of [batch.slice(0, mid), batch.slice(mid)]) {
      const r = await sendBatch(half, ctx);
      if (r.kind === 'retryable') {
        const i = batch.indexOf(half[0]!);
        return { ...r, unsent: [...r.unsent, ...batch.slice(i + half.length)] };
      }
    }
    return { kind: 'done' };
  }
  return { kind: 'retryable', unsent: batch, message: res.message, retryAfterMs: res.retryAfterMs };
}

function looksLikeJsonObject(text: string): boolean {
  let end = text.length - 1;
  while (end > 0 && text.charCodeAt(end) <= 32) end--;
  return text.charCodeAt(0) === 123 /* { */ && text.charCodeAt(end) === 125 /* } */;
}

function safeWriteBreaker(path: string, state: Parameters<typeof writeBreaker>[1]): void {
  try {
    writeBreaker(path, state);
  } catch {
    /* the breaker is an optimisation */
  }
}
