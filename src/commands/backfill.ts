/**
 * `claude-metrics backfill`: sends the usage already in Claude Code's
 * transcripts (which it deletes after 30 days) plus one summary per finished
 * session. Idempotent: usage events carry the same deterministic ids the hooks
 * use, and summaries are derived from the session id, so running it twice, or
 * after the hooks, changes no totals.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { resolveConfig } from '../config';
import { deliverEvents } from '../emit/deliver';
import { detectProject, readGitInfo } from '../emit/context';
import { ConfigError, EXIT_TEMPFAIL } from '../errors';
import type { HarnessEvent, Source } from '../event';
import { deterministicId, SCHEMA_VERSION } from '../ids';
import { createLogger } from '../log';
import { statePaths } from '../paths';
import { usageEvent } from '../transcript/events';
import { collectUsage } from '../transcript/collect';
import { listTranscripts } from '../transcript/reader';
import { loadPrices, parseDateFlag, projectsDirFrom } from './usage';

/** A session with a message and a write within this window is not summarized as finished. */
const ACTIVE_MS = 30 * 60_000;
const CHUNK = 1000;

export default async function backfill(opts: Record<string, unknown>): Promise<number> {
  const resolved = resolveConfig({ configFile: opts.config as string | undefined, flags: { endpoint: opts.endpoint, token: opts.token } });
  if (resolved.errors.length > 0) throw new ConfigError(resolved.errors.join('; '));
  const { config } = resolved;
  const dir = projectsDirFrom(opts.projectsDir);
  const since = parseDateFlag('--since', opts.since);
  const prices = loadPrices(opts.pricing);
  const paths = statePaths(config.stateDir);
  const log = createLogger({ file: paths.log, level: config.logLevel, maxBytes: config.maxLogBytes, verbose: opts.verbose === true, name: 'backfill' });
  const files = listTranscripts(dir);

  // ccusage's rule across every file: per message the largest write wins.
  const { best, undeduped: noKey } = collectUsage(
    files.map((f) => f.path),
    { partialTail: 'skip', since },
    (read) => {
      if (read % 200 === 0) process.stderr.write(`backfill: read ${read}/${files.length} transcripts\n`);
    },
  );

  const projectOf = new Map<string, string>();
  const project = (cwd: string | null, fallback: string) => {
    if (!cwd) return fallback;
    if (!projectOf.has(cwd)) projectOf.set(cwd, existsSync(cwd) ? detectProject(undefined, readGitInfo(cwd), cwd) : basename(cwd));
    return projectOf.get(cwd)!;
  };
  const sessions = new Map<string, { last: string; first: string; project: string; source: Source; mtimeMs: number; entry: string | null }>();
  const events: HarnessEvent[] = [];
  for (const { line, file: index } of [...best.values(), ...noKey]) {
    const file = files[index]!;
    const s = sessions.get(file.sessionId);
    const proj = s?.project ?? project(line.cwd, file.project);
    // The transcript says how the session ran: `cli` is a person, `sdk-*` is headless.
    const source: Source = s?.source ?? (line.entrypoint?.startsWith('sdk') ? 'api' : line.entrypoint === 'cli' ? 'interactive' : 'backfill');
    events.push(usageEvent(line, { sessionId: file.sessionId, source, project: proj, prices, agentId: file.agentId, fileKey: basename(file.path) }));
    if (!s) sessions.set(file.sessionId, { first: line.timestamp, last: line.timestamp, project: proj, source, mtimeMs: file.mtimeMs, entry: null });
    else {
      if (line.timestamp > s.last) s.last = line.timestamp;
      if (line.timestamp < s.first) s.first = line.timestamp;
      s.mtimeMs = Math.max(s.mtimeMs, file.mtimeMs);
    }
  }
  let summaries = 0;
  for (const [sessionId, s] of sessions) {
    // Still being written: the hooks will end it. Both clocks must say so, because a
    // copied or freshly checked-out transcript has a new mtime but old messages.
    if (Date.now() - s.mtimeMs < ACTIVE_MS && Date.now() - Date.parse(s.last) < ACTIVE_MS) continue;
    summaries++;
    events.push({
      schema_version: SCHEMA_VERSION,
      event_id: deterministicId('backfill-summary', sessionId),
      event: 'SessionEnd',
      source: s.source,
      timestamp: new Date(Date.parse(s.last)).toISOString(),
      session_id: sessionId,
      project: s.project,
      duration_ms: Math.max(0, Date.parse(s.last) - Date.parse(s.first)),
      hook: { reason: 'backfill' },
    });
  }

  const usageCount = events.length - summaries;
  if (opts.dryRun) {
    process.stderr.write(`backfill (dry run): ${files.length} transcripts, ${sessions.size} sessions, ${usageCount} usage events and ${summaries} session summaries would be sent\n`);
    return 0;
  }
  let delivered = 0;
  let spooled = 0;
  let dropped = 0;
  for (let i = 0; i < events.length; i += CHUNK) {
    const r = await deliverEvents(events.slice(i, i + CHUNK), { config: { ...config, batchSize: Math.max(config.batchSize, 500) }, paths, log, deadline: Date.now() + 30_000 });
    delivered += r.delivered;
    spooled += r.spooled;
    dropped += r.dropped;
    if (events.length > CHUNK) process.stderr.write(`backfill: ${Math.min(i + CHUNK, events.length)}/${events.length} events\n`);
  }
  process.stderr.write(`backfill: ${files.length} transcripts, ${sessions.size} sessions: ${usageCount} usage events and ${summaries} summaries; delivered ${delivered}, spooled ${spooled}${dropped ? `, dropped ${dropped} (spool full)` : ''}\n`);
  return spooled > 0 || dropped > 0 ? EXIT_TEMPFAIL : 0;
}
