/**
 * The background job a Stop / SubagentStop / SessionEnd hook starts (detached,
 * so the hook returns at once). It waits for the transcript to settle — at Stop
 * the final assistant message is not written yet — reads what is new in the
 * session's transcript and its subagents' transcripts, sends one `usage` event
 * per settled message, and flushes the spool. It prints nothing; it logs.
 */
import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { resolveConfig, type Config } from '../config';
import { deliverEvents } from '../emit/deliver';
import { detectProject, detectSource, readGitInfo } from '../emit/context';
import { claudeVersion } from '../emit/emit';
import type { HarnessEvent } from '../event';
import { createLogger, type Logger } from '../log';
import { statePaths, type StatePaths } from '../paths';
import { flushSpool } from '../spool/flush';
import { Spool } from '../spool/spool';
import { breakerAllows, readBreaker } from '../transport/breaker';
import { usageEvent } from '../transcript/events';
import { finishOrTakeRequest, markWorkerActive, takeRequestAtStart, workerFiles } from '../transcript/handoff';
import { loadState, readNew, saveState, waitForQuiet, withLock } from '../transcript/incremental';
import { PriceTable } from '../transcript/pricing';

export interface SessionReadContext {
  sessionId: string;
  transcript: string;
  cwd: string;
  /** The hook's environment: run, task, label, Claude Code's version. */
  env: NodeJS.ProcessEnv;
  config: Config;
  paths: StatePaths;
  log: Logger;
  settleMs: number;
}

export type SessionReadResult = { sent: false } | { sent: true; outcome: string | undefined } | undefined;

/**
 * One session's usage reader: each call waits for the transcript to settle,
 * then (under the session's lock) sends what is new as `usage` events and
 * remembers the offsets. undefined when the lock stayed busy. Used by this
 * command and, in process, by `drain`.
 */
export function sessionUsageReader(ctx: SessionReadContext): (forHook: string) => Promise<SessionReadResult> {
  const { sessionId, transcript, cwd, env, config, paths, log, settleMs } = ctx;
  const started = Date.now();
  const prices = new PriceTable();
  const source = detectSource(config.source, env);
  const project = config.project ?? detectProject(undefined, readGitInfo(cwd), cwd);
  const lockFile = join(paths.offsets, `${sessionId.replace(/[^A-Za-z0-9_.-]/g, '_')}.lock`);
  return async (forHook: string) => {
    const files = [transcript, ...subagentFiles(transcript, sessionId)];
    const settled = await waitForQuiet(transcript, settleMs, Math.max(settleMs * 10, 15_000));
    const final = forHook === 'SessionEnd' || settled;
    const result = await withLock(
      lockFile,
      async () => {
        const out: Array<{ event: HarnessEvent; commit: () => void }> = [];
        for (const file of files) {
          const state = loadState(paths.offsets, file);
          const r = readNew(file, state, final);
          if (r.malformed > 0) log.info('skipped malformed transcript lines', { file, n: r.malformed });
          const agent = file === transcript ? null : basename(file, '.jsonl');
          const evs = r.lines.map((line) =>
            usageEvent(line, { sessionId, source, project, prices, runId: env.CLAUDE_METRICS_RUN_ID, taskId: env.CLAUDE_METRICS_TASK_ID, label: config.label, agentId: agent, fileKey: basename(file), claudeVersion: claudeVersion(env) }),
          );
          evs.forEach((event, i) => out.push({ event, commit: i === evs.length - 1 ? () => saveState(paths.offsets, r.state) : () => undefined }));
          if (evs.length === 0) saveState(paths.offsets, r.state);
        }
        // Spool (write-ahead) or deliver, then remember the offsets: a crash in between re-reads, and the ids dedupe.
        if (out.length === 0) return { sent: false as const };
        const delivered = await deliverEvents(out.map((o) => o.event), { config, paths, log, deadline: Date.now() + 10_000 });
        for (const o of out) o.commit();
        log.debug('transcript usage sent', { hook: forHook, session: sessionId, events: out.length, ...delivered, settled, ms: Date.now() - started });
        return { sent: true as const, outcome: delivered.outcome };
      },
      { waitMs: 30_000, staleMs: 120_000 },
    );
    if (result === undefined) log.warn('transcript worker: lock busy for 30 s; leaving this read to the next hook', { session: sessionId });
    return result;
  };
}

export default async function transcriptWorker(opts: Record<string, unknown>): Promise<number> {
  const env = process.env;
  const { config } = resolveConfig({ configFile: opts.config as string | undefined });
  const paths = statePaths(config.stateDir);
  const log = createLogger({ file: paths.log, level: config.logLevel, maxBytes: config.maxLogBytes, verbose: opts.verbose === true, name: 'transcript-worker' });
  const sessionId = opts.sessionId as string | undefined;
  const transcript = opts.transcriptPath as string | undefined;
  const hook = (opts.hook as string | undefined) ?? 'Stop';
  if (!sessionId || !transcript) {
    log.warn('transcript-worker needs --session-id and --transcript-path');
    return 2;
  }
  const settleMs = (opts.settleMs as number | undefined) ?? Number(env.CLAUDE_METRICS_SETTLE_MS ?? 1000);
  const cwd = (opts.cwd as string | undefined) ?? process.cwd();
  const readOnce = sessionUsageReader({ sessionId, transcript, cwd, env, config, paths, log, settleMs });

  // Hooks of this session that fire while we run ask us to read again instead of
  // starting another process (see transcript/handoff.ts).
  const handoff = workerFiles(paths.offsets, sessionId);
  markWorkerActive(handoff, process.pid);
  let forHook = strongerHook(hook, takeRequestAtStart(handoff));
  let events: SessionReadResult;
  for (;;) {
    try {
      events = await readOnce(forHook);
    } catch (err) {
      finishOrTakeRequest(handoff);
      throw err;
    }
    const next = finishOrTakeRequest(handoff);
    if (next === null) break;
    log.debug('reading again for a later hook', { session: sessionId, hook: next });
    forHook = next;
  }

  // Drain what waits only when the collector just answered (or was not asked and the breaker is
  // closed): a dead collector would keep a background process retrying for the whole flush deadline.
  const healthy = events !== undefined && (events.sent ? events.outcome === 'ok' : breakerAllows(readBreaker(paths.breaker, config.endpoint), Date.now()));
  if (healthy && new Spool(paths).hasWaiting()) {
    const r = await flushSpool({ config, paths, log, deadline: Date.now() + config.flushTimeoutMs, background: true });
    log.debug('flush after transcript', { ...r });
  }
  return 0;
}

/** SessionEnd makes a read final; of two hooks, the one that says more wins. */
export function strongerHook(a: string, b: string | null): string {
  return a === 'SessionEnd' || b === 'SessionEnd' ? 'SessionEnd' : a;
}

/** `<dir>/<session>/subagents/agent-*.jsonl` beside `<dir>/<session>.jsonl`. */
function subagentFiles(transcript: string, sessionId: string): string[] {
  const dir = join(dirname(transcript), basename(transcript, '.jsonl') || sessionId, 'subagents');
  if (!existsSync(dir)) return [];
  try {
    return readdirSync(dir)
      .filter((n) => n.endsWith('.jsonl'))
      .sort()
      .map((n) => join(dir, n));
  } catch {
    return [];
  }
}
