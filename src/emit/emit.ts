/**
 * `emit`: one hook call or one shell `emit_metric` → one event, delivered or
 * spooled. The order is what makes it safe: build the event, put it in the spool,
 * then try the network with whatever is left of the deadline, then remove it from
 * the spool on a 2xx. Killed anywhere, nothing is lost.
 */
import { statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolveConfig, type Config } from '../config';
import type { HarnessEvent } from '../event';
import { SCHEMA_VERSION, uuidv7 } from '../ids';
import { createLogger, type Logger } from '../log';
import { statePaths, type StatePaths } from '../paths';
import { Spool } from '../spool/spool';
import { VERSION } from '../version';
import { parseEmitArgs, type EmitArgs } from './args';
import { currentUser, detectProject, detectSource, readGitInfo } from './context';
import { deliverEvents, type DeliverResult } from './deliver';
import { mapHook, type HookFields, type Json } from './hook';
import { markToolStart, sweepStale, takeToolDuration } from './pending';
import { spawnDetached } from './spawn';
import { handOffToRunningWorker, markWorkerActive, workerFiles } from '../transcript/handoff';
import { readStdin, salvageHookFields, stdinIsTerminal } from './stdin';
import { parseWireEvents } from './wire';
import { inputOfPartial } from '../inbox/raw';

type Env = Record<string, string | undefined>;

/** Hook payloads can carry whole files in tool_response; past this we keep the head. */
const MAX_STDIN_BYTES = 16 * 1024 * 1024;
const TRANSCRIPT_EVENTS = new Set(['Stop', 'SubagentStop', 'SessionEnd']);
const FLUSH_EVENTS = new Set(['Stop', 'SessionEnd']);

export interface EmitIo {
  /** File descriptor of the hook's input (0). */
  stdinFd: number;
  stderr: NodeJS.WritableStream;
  now: () => number;
  /** Starts background work (transcript worker, flush) detached; its pid when it started. Tests may replace it. */
  spawn: (args: string[], env: NodeJS.ProcessEnv) => number | undefined;
}

export interface EmitOutcome {
  event?: HarnessEvent;
  delivery?: DeliverResult;
  skipped?: string;
}

export async function runEmit(argv: readonly string[], env: Env, io: EmitIo, started = io.now()): Promise<EmitOutcome> {
  const args = parseEmitArgs(argv);
  if (args.help) {
    const { EMIT_HELP } = await import('./args');
    process.stdout.write(EMIT_HELP); // asked for explicitly; a hook never passes --help
    return { skipped: 'help' };
  }
  const resolved = resolveConfig({
    env,
    flags: { endpoint: args.endpoint, token: args.token, timeoutMs: args.timeoutMs, includeContent: args.includeContent, project: args.project, label: args.label, source: args.source },
  });
  const config = resolved.config;
  const paths = statePaths(config.stateDir);
  const log = createLogger({ file: paths.log, level: config.logLevel, maxBytes: config.maxLogBytes, verbose: args.verbose, name: 'emit' });
  for (const w of [...args.warnings, ...resolved.warnings, ...resolved.errors]) log.warn(w);
  const deadline = started + config.timeoutMs;
  if (args.wire) return emitWire(io, config, paths, log, deadline, env);

  let hookFields: HookFields | undefined;
  let inputNote: Record<string, unknown> | undefined;
  const readInput = args.event === undefined || args.stdin;
  if (readInput) {
    if (stdinIsTerminal(io.stdinFd)) {
      log.warn('no --event and stdin is a terminal: nothing to emit (see claude-metrics emit --help)');
      return { skipped: 'no input' };
    }
    // Half the budget for input; the rest is for the network.
    const input = await readStdin(io.stdinFd, { timeoutMs: Math.max(10, Math.floor(config.timeoutMs / 2)), maxBytes: MAX_STDIN_BYTES });
    // The fast hook could not write its inbox file (bin/claude-metrics-hook): it hands over what it holds.
    const fromHook = env.CLAUDE_METRICS_HOOK_FALLBACK;
    if (fromHook) log.warn(fromHook === 'partial' ? 'fast hook: the disk filled while writing the inbox file; sending what reached it' : 'fast hook: the inbox cannot be written; sending directly');
    if (fromHook === 'partial') input.text = inputOfPartial(input.text);
    const parsed = parseHookJson(input.text);
    if (parsed) hookFields = mapHook(parsed, { includeContent: config.includeContent, maxContentBytes: config.maxContentBytes });
    else if (input.truncated || input.timedOut || fromHook === 'partial') {
      const salvaged = salvageHookFields(input.text.slice(0, 64 * 1024));
      if (salvaged.hook_event_name || args.event) {
        hookFields = mapHook(salvaged, { includeContent: false, maxContentBytes: config.maxContentBytes });
        inputNote = { input_truncated: input.truncated || fromHook === 'partial', input_timed_out: input.timedOut, input_bytes: input.bytes };
      }
    }
    if (!hookFields && args.event === undefined) {
      log.warn(input.bytes === 0 ? 'empty stdin and no --event: nothing to emit' : 'stdin is not a hook JSON object: nothing emitted', {
        bytes: input.bytes,
        truncated: input.truncated,
        timedOut: input.timedOut,
        head: JSON.stringify(input.text.slice(0, 80)),
      });
      return { skipped: 'invalid input' };
    }
  }

  const now = io.now();
  const event = buildEvent({ args, hook: hookFields, env, config, paths, now, log });
  if (inputNote) event.hook = { ...(event.hook ?? {}), ...inputNote };

  const delivery = await deliverEvents([event], { config, paths, log, deadline });
  log.debug('emitted', { event: event.event, event_id: event.event_id, ...delivery, ms: io.now() - started });

  startBackgroundWork(event, hookFields, delivery, { env, paths, io, log });
  return { event, delivery };
}

/** `emit --wire`: whole events from another producer, ids and timestamps kept (src/emit/wire.ts). */
async function emitWire(io: EmitIo, config: Config, paths: StatePaths, log: Logger, deadline: number, env: Env): Promise<EmitOutcome> {
  const input = await readStdin(io.stdinFd, { timeoutMs: Math.max(10, Math.floor(config.timeoutMs / 2)), maxBytes: MAX_STDIN_BYTES });
  if (input.truncated || input.timedOut) {
    log.warn('emit --wire: stdin incomplete; nothing emitted', { bytes: input.bytes, truncated: input.truncated, timedOut: input.timedOut });
    return { skipped: 'invalid input' };
  }
  const { events, problems } = parseWireEvents(input.text);
  for (const p of problems.slice(0, 20)) log.warn(`emit --wire: ${p}`);
  if (events.length === 0) return { skipped: 'invalid input' };
  const delivery = await deliverEvents(events, { config, paths, log, deadline });
  log.debug('emitted wire events', { n: events.length, ...delivery, ms: io.now() - deadline + config.timeoutMs });
  startBackgroundWork(events[0]!, undefined, delivery, { env, paths, io, log });
  return { event: events[0], delivery };
}

export function parseHookJson(text: string): Json | undefined {
  const t = text.trim();
  if (!t.startsWith('{')) return undefined;
  try {
    const v: unknown = JSON.parse(t);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined;
  } catch {
    return undefined;
  }
}

interface BuildInput {
  args: EmitArgs;
  hook: HookFields | undefined;
  env: Env;
  config: Config;
  paths: StatePaths;
  now: number;
  log: Logger;
}

export function buildEvent({ args, hook, env, config, paths, now, log }: BuildInput): HarnessEvent {
  const eventName = (args.event ?? hook?.event ?? 'unknown').slice(0, 128);
  const cwd = hook?.cwd ?? safeCwd();
  const git = readGitInfo(cwd);
  const source = detectSource(config.source, env, eventName);
  if (config.source && source !== config.source) log.warn(`unknown source ${JSON.stringify(config.source)}; using ${source}`);

  let durationMs = args.durationMs ?? hook?.duration_ms;
  if (hook?.tool_use_id) {
    try {
      if (hook.event === 'PreToolUse') markToolStart(paths.pending, hook.tool_use_id, now);
      else if (hook.event === 'PostToolUse' || hook.event === 'PostToolUseFailure') {
        const measured = takeToolDuration(paths.pending, hook.tool_use_id, now);
        if (durationMs === undefined) durationMs = measured;
      }
    } catch (err) {
      log.debug('tool timing unavailable', { error: (err as Error).message });
    }
  }

  const event: HarnessEvent = {
    schema_version: SCHEMA_VERSION,
    event_id: uuidv7(now),
    event: eventName,
    source,
    timestamp: new Date(now).toISOString(),
    session_id: args.sessionId ?? hook?.session_id ?? env.CLAUDE_METRICS_SESSION_ID ?? null,
    run_id: args.runId ?? env.CLAUDE_METRICS_RUN_ID ?? null,
    task_id: args.taskId ?? env.CLAUDE_METRICS_TASK_ID ?? null,
    label: config.label ?? null,
    project: detectProject(config.project, git, cwd).slice(0, 256),
    context: {
      host: hostname(),
      user: currentUser(env),
      cwd,
      git_branch: git?.branch ?? null,
      git_commit: git?.commit ?? null,
      claude_version: claudeVersion(env),
      entrypoint: env.CLAUDE_CODE_ENTRYPOINT ?? null,
      permission_mode: hook?.permission_mode ?? null,
      emitter_version: VERSION,
    },
  };
  if (durationMs !== undefined) event.duration_ms = durationMs;
  const success = args.success ?? hook?.success;
  if (success !== undefined) event.success = success;
  if (args.exitCode !== undefined) event.exit_code = args.exitCode;
  const error = args.error ?? hook?.error;
  if (error) event.error = error.slice(0, 4096);
  const tool = args.toolName ?? hook?.tool_name;
  if (tool) event.tool_name = tool;
  if (hook?.tool_use_id) event.tool_use_id = hook.tool_use_id;
  if (hook?.agent_id) event.agent_id = hook.agent_id;
  const model = args.model ?? hook?.model;
  if (model) event.model = model;
  const attrs = { ...(hook?.attrs ?? {}), ...args.attrs };
  if (Object.keys(attrs).length > 0) event.attrs = attrs;
  if (hook && Object.keys(hook.hook).length > 0) event.hook = hook.hook;
  if (hook?.content) event.content = hook.content;
  return dropNulls(event);
}

/** Unknown values are left out rather than sent as null: smaller bodies on every hook. */
function dropNulls<T extends Record<string, unknown>>(obj: T): T {
  for (const k of Object.keys(obj)) {
    const v = obj[k];
    if (v === null || v === undefined) delete obj[k];
    else if (k === 'context' && typeof v === 'object') dropNulls(v as Record<string, unknown>);
  }
  return obj;
}

/** Claude Code tells its hooks its version only through AI_AGENT (`claude-code_2-1-331_harness`). */
export function claudeVersion(env: Env): string | null {
  if (env.CLAUDE_CODE_VERSION) return env.CLAUDE_CODE_VERSION;
  const m = /claude-code_(\d+)-(\d+)-(\d+)/.exec(env.AI_AGENT ?? '');
  return m ? `${m[1]}.${m[2]}.${m[3]}` : null;
}

function safeCwd(): string {
  try {
    return process.cwd();
  } catch {
    return '/';
  }
}

/**
 * Stop / SubagentStop / SessionEnd hand the transcript to a detached worker (it
 * also flushes); otherwise a Stop, or the first success after an outage, starts
 * a detached flush when events are waiting.
 */
function startBackgroundWork(event: HarnessEvent, hook: HookFields | undefined, delivery: DeliverResult, ctx: { env: Env; paths: StatePaths; io: EmitIo; log: Logger }): void {
  try {
    const name = event.event;
    if (hook && TRANSCRIPT_EVENTS.has(name) && hook.transcript_path && hook.session_id) {
      // A worker already running for this session reads again instead (claude -p's
      // SessionEnd follows its Stop by ~100 ms): no second process.
      const handoff = workerFiles(ctx.paths.offsets, hook.session_id);
      if (handOffToRunningWorker(handoff, name)) return;
      const args = ['transcript-worker', '--session-id', hook.session_id, '--transcript-path', hook.transcript_path, '--hook', name];
      if (hook.cwd) args.push('--cwd', hook.cwd);
      const pid = ctx.io.spawn(args, childEnv(ctx.env, event));
      if (pid !== undefined) markWorkerActive(handoff, pid);
      return;
    }
    const atStop = FLUSH_EVENTS.has(name);
    // After a success, events left by an outage are waiting: one flush per 10 s at most.
    if ((atStop || delivery.outcome === 'ok') && new Spool(ctx.paths).hasWaiting() && (atStop || claimFlushSlot(ctx.paths.flushStamp, 10_000))) {
      ctx.io.spawn(['flush'], childEnv(ctx.env, event));
    }
    if (name === 'SessionEnd') sweepStale(ctx.paths.pending, 3_600_000, Date.now());
  } catch (err) {
    ctx.log.warn('could not start background work', { error: (err as Error).message });
  }
}

/** True at most once per interval across processes: the stamp file's mtime is the last start. */
function claimFlushSlot(stamp: string, intervalMs: number): boolean {
  const now = Date.now();
  try {
    if (now - statSync(stamp).mtimeMs < intervalMs) return false;
  } catch {
    /* never flushed */
  }
  try {
    writeFileSync(stamp, String(now), { mode: 0o600 });
  } catch {
    return false;
  }
  return true;
}

/** The worker inherits our env plus the values we resolved, so it reports the same project/label/source. */
function childEnv(env: Env, event: HarnessEvent): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  if (event.project && !out.CLAUDE_METRICS_PROJECT) out.CLAUDE_METRICS_PROJECT = event.project;
  if (!out.CLAUDE_METRICS_SOURCE) out.CLAUDE_METRICS_SOURCE = event.source;
  return out;
}

export const defaultIo = (): EmitIo => ({
  stdinFd: 0,
  stderr: process.stderr,
  now: Date.now,
  spawn: spawnDetached,
});
