/**
 * `claude-metrics drain --inbox DIR`: the process behind the fast hook
 * (bin/claude-metrics-hook). One per inbox (its pid file is the lock): it turns
 * inbox files into events (the same events `emit` builds), delivers them in
 * batches (write-ahead through the spool, like everything else), reads the
 * session's transcript at Stop / SubagentStop / SessionEnd in process, and exits
 * once the inbox has been quiet for a while. Hooks start it again when needed.
 *
 * The pid file protocol, with the hook script: the hook writes its file, then
 * looks for a live drainer; the drainer, leaving, removes its pid file and then
 * looks at the inbox once more. So a file is never left without a drainer.
 */
import { closeSync, linkSync, openSync, readFileSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { resolveConfig } from '../config';
import { deliverEvents } from '../emit/deliver';
import { UsageError } from '../errors';
import { hasFinished, listInbox, readInboxFile, remove, type InboxItem } from '../inbox/inbox';
import { createLogger, type Logger } from '../log';
import { statePaths } from '../paths';
import { flushSpool } from '../spool/flush';
import { Spool } from '../spool/spool';
import { sessionUsageReader, strongerHook } from './transcript-worker';
import { processAlive } from '../proc';
import { otherStateDir } from '../statedir';

const TRANSCRIPT_EVENTS = new Set(['Stop', 'SubagentStop', 'SessionEnd']);
const POLL_MS = 50;

export default async function drain(opts: Record<string, unknown>): Promise<number> {
  const inbox = opts.inbox as string | undefined;
  if (!inbox) throw new UsageError('drain needs --inbox DIR (the hook script passes it)');
  const resolved = resolveConfig({ configFile: opts.config as string | undefined });
  const { config } = resolved;
  const paths = statePaths(config.stateDir);
  const log = createLogger({ file: paths.log, level: config.logLevel, maxBytes: config.maxLogBytes, verbose: opts.verbose === true, name: 'drain' });
  if (resolved.stateDirWarning) log.warn(resolved.stateDirWarning);
  const idleMs = Number(opts.idleMs ?? process.env.CLAUDE_METRICS_DRAIN_IDLE_MS ?? 30_000);
  const settleMs = Number(process.env.CLAUDE_METRICS_SETTLE_MS ?? 1000);
  const pidFile = join(inbox, 'drainer.pid');
  const lock = acquire(pidFile, log);
  if (!lock) return 0; // another drainer has it

  const sessions = new Map<string, { again: string | null }>();
  let lastActivity = Date.now();
  try {
    for (;;) {
      const items = takeBatch(inbox, log);
      if (items.length > 0) {
        lastActivity = Date.now();
        try {
          if (!(await deliver(items, log))) {
            // Delivered (or spooled) but the files cannot be removed (a read-only inbox): reading
            // them again would only send duplicates, so stop; `flush` retries once it is writable.
            log.error('drain: the inbox files cannot be removed; stopping', { inbox, n: items.length });
            break;
          }
        } catch (err) {
          // Not even the spool takes them (a full or read-only disk): the files stay in the
          // inbox for the next drainer or `flush`, and this one stops instead of spinning.
          log.error('drain: could not deliver or spool; leaving the inbox as it is', { error: (err as Error).message, n: items.length });
          break;
        }
        for (const it of items) startTranscriptWork(it, sessions, settleMs, log);
        continue;
      }
      if (sessions.size > 0 || Date.now() - lastActivity < idleMs) {
        await sleep(POLL_MS);
        continue;
      }
      // Leaving: give up the pid file first, then look once more (see the header).
      release(pidFile);
      if (!hasFinished(inbox) || !acquire(pidFile, log)) break;
      lastActivity = Date.now();
    }
  } finally {
    release(pidFile);
  }
  return 0;
}

/** Up to 500 inbox files read into events, oldest first. */
function takeBatch(inbox: string, log: Logger): InboxItem[] {
  const out: InboxItem[] = [];
  for (const entry of listInbox(inbox)) {
    const item = readInboxFile(entry, process.env, log);
    if (item) out.push(item);
    if (out.length >= 500) break;
  }
  return out;
}

/** Delivers (or spools) each group of events that share an endpoint, then removes their files; false when none could be removed. */
async function deliver(items: InboxItem[], log: Logger): Promise<boolean> {
  let removed = 0;
  const groups = new Map<string, InboxItem[]>();
  for (const it of items) {
    const key = `${it.config.endpoint}\u0000${it.config.token ?? ''}\u0000${it.config.stateDir}`;
    const group = groups.get(key);
    if (group) group.push(it);
    else groups.set(key, [it]);
  }
  for (const group of groups.values()) {
    const { config, paths } = group[0]!;
    const r = await deliverEvents(
      group.map((g) => g.event),
      { config, paths, log, deadline: Date.now() + Math.max(config.timeoutMs, 2000) },
    );
    // In the spool or delivered: the inbox file has done its job.
    for (const it of group) if (remove(it.file)) removed++;
    log.debug('drained', { n: group.length, ...r });
    // A collector that answers again gets what an outage left behind.
    if (r.outcome === 'ok' && new Spool(paths).hasWaiting()) {
      await flushSpool({ config, paths, log, deadline: Date.now() + config.flushTimeoutMs });
    }
    // And what the private fallback state dir took while this one could not be written.
    const other = r.outcome === 'ok' ? otherStateDir(paths.root, undefined, group[0]!.env) : null;
    if (other && new Spool(statePaths(other)).hasWaiting()) {
      await flushSpool({ config, paths: statePaths(other), log, deadline: Date.now() + config.flushTimeoutMs });
    }
  }
  return removed > 0;
}

/** Stop / SubagentStop / SessionEnd: read the session's transcript, one read at a time per session. */
function startTranscriptWork(it: InboxItem, sessions: Map<string, { again: string | null }>, settleMs: number, log: Logger): void {
  const { hook, event } = it;
  if (!TRANSCRIPT_EVENTS.has(event.event) || !hook.transcript_path || !hook.session_id) return;
  const sessionId = hook.session_id;
  const current = sessions.get(sessionId);
  if (current) {
    current.again = strongerHook(event.event, current.again);
    return;
  }
  const env = { ...it.env, CLAUDE_METRICS_PROJECT: it.env.CLAUDE_METRICS_PROJECT || event.project || undefined, CLAUDE_METRICS_SOURCE: it.env.CLAUDE_METRICS_SOURCE || event.source };
  const { config } = resolveConfig({ env });
  const read = sessionUsageReader({ sessionId, transcript: hook.transcript_path, cwd: hook.cwd ?? it.env.PWD ?? process.cwd(), env, config, paths: it.paths, log, settleMs });
  const slot = { again: null as string | null };
  sessions.set(sessionId, slot);
  void (async () => {
    let forHook: string | null = event.event;
    while (forHook) {
      try {
        await read(forHook);
      } catch (err) {
        log.warn('drain: transcript read failed', { session: sessionId, error: (err as Error).message });
      }
      forHook = slot.again;
      slot.again = null;
    }
    sessions.delete(sessionId);
  })();
}

/**
 * The pid file as a lock. It appears with its content in one step (written to a
 * temp file, then hard-linked into place, which fails if it exists), so an empty
 * or torn pid file is never a live drainer's and is taken over. One left by a
 * dead drainer is taken over too. When not even a few bytes can be written (a
 * full disk), the drainer runs without the lock rather than leave the inbox: two
 * drainers at once cost nothing but duplicates the collector ignores (inbox
 * events have ids derived from their files).
 */
function acquire(pidFile: string, log: Logger): 'locked' | 'unlocked' | false {
  const tmp = `${pidFile}.${process.pid}.tmp`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(tmp, String(process.pid), { mode: 0o600 });
    } catch (err) {
      remove(tmp);
      const holder = readPid(pidFile);
      if (holder && holder !== process.pid && processAlive(holder)) return false; // a live drainer has it
      log.warn('drain: cannot write the drainer lock; running without it', { error: (err as Error).message });
      return 'unlocked';
    }
    try {
      linkSync(tmp, pidFile);
      return 'locked';
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') {
        // No hard links here (some FUSE or network file systems): exclusive create, then write.
        remove(tmp);
        return acquireByCreate(pidFile) ? 'locked' : false;
      }
    } finally {
      remove(tmp);
    }
    if (!takeOverIfDead(pidFile)) return false;
  }
  return false;
}

function acquireByCreate(pidFile: string): boolean {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(pidFile, 'wx', 0o600);
      try {
        writeSync(fd, String(process.pid));
      } catch {
        closeSync(fd);
        remove(pidFile); // never leave an empty lock behind
        return false;
      }
      closeSync(fd);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return false;
      // Empty here: a drainer between creating and writing it, unless that was long ago.
      if (readPid(pidFile) === 0 && Date.now() - mtimeMs(pidFile) < 5_000) return false;
      if (!takeOverIfDead(pidFile)) return false;
    }
  }
  return false;
}

function readPid(pidFile: string): number | null {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8'));
    return Number.isInteger(pid) && pid > 0 ? pid : 0;
  } catch {
    return null; // gone
  }
}

/** Removes a pid file that names no live drainer (dead, empty or torn); false when one lives. */
function takeOverIfDead(pidFile: string): boolean {
  const pid = readPid(pidFile);
  if (pid === null) return true;
  if (pid > 0 && pid !== process.pid && processAlive(pid)) return false;
  try {
    unlinkSync(pidFile);
  } catch {
    /* someone else took it over */
  }
  return true;
}

function mtimeMs(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function release(pidFile: string): void {
  try {
    if (Number(readFileSync(pidFile, 'utf8')) === process.pid) unlinkSync(pidFile);
  } catch {
    /* not ours or gone */
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
