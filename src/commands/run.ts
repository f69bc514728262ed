/**
 * `claude-metrics run [--task-id T] [--label L] [--project P] [--source S] -- <command> [args…]`:
 * one recorded task. The command gets our stdin and stderr as they are; its
 * stdout passes through byte for byte while we read the `claude -p` result
 * from it. SIGINT/SIGTERM/SIGHUP are forwarded; we exit with its status. The
 * child's hooks are tied to the task through CLAUDE_METRICS_RUN_ID & co.
 */
import { spawn } from 'node:child_process';
import { resolveConfig } from '../config';
import { deliverEvents } from '../emit/deliver';
import { claudeVersion } from '../emit/emit';
import { currentUser, detectProject, readGitInfo } from '../emit/context';
import { ConfigError, UsageError } from '../errors';
import type { HarnessEvent, Source } from '../event';
import { SCHEMA_VERSION, uuidv7 } from '../ids';
import { createLogger } from '../log';
import { statePaths } from '../paths';
import { parseClaudeResult, TailBuffer, type ClaudeResult } from '../run/result';
import { VERSION } from '../version';
import { hostname } from 'node:os';

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

export default async function run(opts: Record<string, unknown>, args: string[]): Promise<number> {
  if (args.length === 0) throw new UsageError('run needs a command: claude-metrics run [options] -- <command> [args...]');
  const env = process.env;
  const resolved = resolveConfig({ configFile: opts.config as string | undefined, flags: { endpoint: opts.endpoint, token: opts.token, project: opts.project, label: opts.label, source: opts.source } });
  if (resolved.errors.length > 0) throw new ConfigError(resolved.errors.join('; '));
  const { config } = resolved;
  const paths = statePaths(config.stateDir);
  const log = createLogger({ file: paths.log, level: config.logLevel, maxBytes: config.maxLogBytes, verbose: opts.verbose === true, name: 'run' });
  const source = (config.source ?? 'ralph') as Source;
  const runId = uuidv7();
  const taskId = (opts.taskId as string | undefined) ?? env.CLAUDE_METRICS_TASK_ID ?? runId.slice(-12);
  const cwd = process.cwd();
  const project = config.project ?? detectProject(undefined, readGitInfo(cwd), cwd);
  const base = (event: string, at: number): HarnessEvent => ({
    schema_version: SCHEMA_VERSION,
    event_id: uuidv7(at),
    event,
    source,
    timestamp: new Date(at).toISOString(),
    run_id: runId,
    task_id: taskId,
    project,
    ...(config.label ? { label: config.label } : {}),
    attrs: { command: args[0]!.split('/').pop()!.slice(0, 64) },
    context: { host: hostname(), user: currentUser(env) ?? undefined, cwd, claude_version: claudeVersion(env) ?? undefined, emitter_version: VERSION },
  });

  const childEnv: NodeJS.ProcessEnv = {
    ...env,
    CLAUDE_METRICS_RUN_ID: runId,
    CLAUDE_METRICS_TASK_ID: taskId,
    CLAUDE_METRICS_SOURCE: source,
    CLAUDE_METRICS_PROJECT: project,
    ...(config.label ? { CLAUDE_METRICS_LABEL: config.label } : {}),
    // Claude Code's own OTel export (install --otel) carries these, so its records fold into this task too.
    OTEL_RESOURCE_ATTRIBUTES: otelResourceAttributes(env.OTEL_RESOURCE_ATTRIBUTES, { 'claude_metrics.run_id': runId, 'claude_metrics.task_id': taskId, 'claude_metrics.source': source, 'claude_metrics.project': project, ...(config.label ? { 'claude_metrics.label': config.label } : {}) }),
  };
  const started = Date.now();
  const tail = new TailBuffer(8 * 1024 * 1024);
  const child = spawn(args[0]!, args.slice(1), { stdio: ['inherit', 'pipe', 'inherit'], env: childEnv });
  // The start event is written ahead to the spool at once and sent while the command runs.
  const startDelivery = deliverEvents([base('ralph_task_started', started)], { config, paths, log, deadline: started + config.timeoutMs * 3 });

  child.stdout!.on('data', (c: Buffer) => {
    tail.push(c);
    if (!process.stdout.write(c)) {
      child.stdout!.pause();
      process.stdout.once('drain', () => child.stdout!.resume());
    }
  });
  process.stdout.on('error', () => undefined); // a closed pipe downstream must not kill the wrapper
  const forward = (sig: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  for (const s of SIGNALS) process.on(s, forward);

  const outcome = await new Promise<{ code: number; signal: NodeJS.Signals | null; spawnError?: string }>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => resolve({ code: err.code === 'ENOENT' ? 127 : 126, signal: null, spawnError: err.code === 'ENOENT' ? `command not found: ${args[0]}` : `cannot run ${args[0]}: ${err.message}` }));
    child.once('close', (code, signal) => resolve({ code: code ?? 128 + (SIGNAL_NUMBERS[signal ?? ''] ?? 1), signal }));
  });
  for (const s of SIGNALS) process.off(s, forward);
  if (outcome.spawnError) process.stderr.write(`claude-metrics run: ${outcome.spawnError}\n`);

  const ended = Date.now();
  const result: ClaudeResult | null = parseClaudeResult(tail.toString());
  const done = base('ralph_task_completed', ended);
  done.duration_ms = ended - started;
  done.exit_code = outcome.code;
  done.success = outcome.code === 0 && result?.is_error !== true;
  const error = outcome.spawnError ?? (outcome.signal ? `killed by ${outcome.signal}` : result?.is_error ? `claude: ${result.subtype ?? 'error'}` : outcome.code !== 0 ? `exit code ${outcome.code}` : undefined);
  if (error) done.error = error;
  if (result) {
    if (result.session_id) done.session_id = result.session_id;
    if (result.subtype) done.result_subtype = result.subtype;
    if (result.is_error !== undefined) done.is_error = result.is_error;
    if (result.num_turns !== undefined) done.num_turns = result.num_turns;
    if (result.duration_api_ms !== undefined) done.duration_api_ms = result.duration_api_ms;
    if (result.total_cost_usd !== undefined) done.cost_usd = result.total_cost_usd;
    if (result.model) done.model = result.model;
    if (result.usage) done.usage = Object.fromEntries(Object.entries(result.usage).filter(([, v]) => v !== undefined)) as HarnessEvent['usage'];
  }
  await startDelivery;
  await deliverEvents([done], { config, paths, log, deadline: Date.now() + Math.max(config.timeoutMs * 3, 1000) });
  return outcome.code;
}

/** Adds ours to an OTEL_RESOURCE_ATTRIBUTES value (`k=v,k=v`, values percent-encoded), replacing earlier claude_metrics.* keys. */
export function otelResourceAttributes(existing: string | undefined, ours: Record<string, string>): string {
  const kept = (existing ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '' && !p.startsWith('claude_metrics.'));
  return [...kept, ...Object.entries(ours).map(([k, v]) => `${k}=${encodeURIComponent(v)}`)].join(',');
}
