/**
 * The command-line program. Every command is registered here (cheap: names,
 * options, help) and its module is loaded only inside its action, so no command
 * pays for another's dependencies. This is also the one error boundary: typed
 * errors become a one-line message and an exit status; nothing else prints a
 * stack trace unless CLAUDE_METRICS_DEBUG is set.
 */
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { CliError, errorMessage } from './errors';
import { VERSION } from './version';

if (process.argv[2] === 'emit') {
  // Same fast path as bin/claude-metrics, for `node dist/cli.cjs emit`.
  require(join(__dirname, 'emit.cjs'));
} else {
  void main(process.argv);
}

/** The shape every command module exports as default. */
export type CommandMain = (opts: Record<string, unknown>, args: string[]) => Promise<number | void> | number | void;

function lazy(name: string) {
  return async (...actionArgs: unknown[]) => {
    const cmd = actionArgs[actionArgs.length - 1] as Command;
    const opts = { ...cmd.optsWithGlobals() };
    const args = cmd.args.slice();
    // A variable path keeps esbuild from bundling every command into cli.cjs.
    const modulePath = join(__dirname, 'commands', `${name}.cjs`);
    const mod = require(modulePath) as { default: CommandMain };
    const code = await mod.default(opts, args);
    if (typeof code === 'number') process.exitCode = code;
  };
}

function int(name: string) {
  return (v: string) => {
    if (!/^\d+$/.test(v)) throw new CliError(`${name} expects a whole number, got ${JSON.stringify(v)}`, 'E_USAGE', 2);
    return Number(v);
  };
}

export function buildProgram(): Command {
  const program = new Command('claude-metrics')
    .description('Metrics for Claude Code: hooks, headless loops and API runs → a collector, Prometheus and a dashboard.')
    .version(VERSION, '-V, --version')
    .option('--config <path>', 'config file (default: ~/.config/claude-metrics/config.json)')
    .option('-v, --verbose', 'diagnostics on stderr')
    .enablePositionalOptions()
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) })
    .exitOverride();

  program
    .command('emit')
    .description('send one event (hook JSON on stdin, or flags); never fails, never prints to stdout')
    .allowUnknownOption()
    .helpOption(false)
    .action(() => require(join(__dirname, 'emit.cjs')));

  program
    .command('flush')
    .description('deliver spooled events (at-least-once); exit 75 when the collector is unavailable')
    .option('--endpoint <url>', 'collector URL')
    .option('--token <token>', 'bearer token')
    .option('--batch-size <n>', 'events per request (1 = bare single events)', int('--batch-size'))
    .option('--timeout-ms <ms>', 'deadline for this run', int('--timeout-ms'))
    .option('--lease-ms <ms>', 'reclaim files claimed longer ago than this', int('--lease-ms'))
    // How hooks start it: no waiting for another flusher, nothing while the breaker is open.
    .addOption(new Option('--background').hideHelp())
    .action(lazy('flush'));

  program
    .command('serve')
    .description('run the collector: POST /metrics/harness, GET /metrics, /api/*, dashboard at /')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port (0 = any free port)', int('--port'))
    .option('--db <path|url>', 'SQLite file (default: <state dir>/collector.db) or postgres://user@host/db (env CLAUDE_METRICS_DB)')
    .option('--db-pool-size <n>', 'PostgreSQL connections per replica (default 10)', int('--db-pool-size'))
    .option('--token <token>', 'require this bearer token (env CLAUDE_METRICS_TOKEN)')
    .option('--retention-days <n>', 'delete events and sessions older than this', int('--retention-days'))
    .option('--retention-delay-ms <ms>', 'wait this long after start before the first retention sweep (default 60000; 0 = at once)', int('--retention-delay-ms'))
    .option('--active-window-ms <ms>', 'a session not ended and silent this long is stale, not active (default 1800000; env CLAUDE_METRICS_ACTIVE_WINDOW_MS)', int('--active-window-ms'))
    .option('--router-metrics-url <url>', 'router Prometheus URL to show beside harness usage')
    .option('--rebuild-aggregates', 'derive the dashboard rollups again from the stored sessions and events, print what was done, exit')
    .option('--metrics-max-projects <n>', 'projects with their own /metrics series, the rest as other (default 25)', int('--metrics-max-projects'))
    .option('--metrics-max-labels <n>', 'labels with their own /metrics series (default 50)', int('--metrics-max-labels'))
    .option('--metrics-max-tools <n>', 'tools with their own /metrics series (default 30)', int('--metrics-max-tools'))
    .option('--metrics-max-models <n>', 'models with their own /metrics series (default 20)', int('--metrics-max-models'))
    .option('--metrics-max-loops <n>', 'ralph loops (project, label) with their own /metrics series (default 50)', int('--metrics-max-loops'))
    .action(lazy('serve'));

  program
    .command('usage')
    .description('token and cost usage from Claude Code transcripts, by session (equals ccusage)')
    .option('--projects-dir <dir>', 'transcripts root (default: $CLAUDE_CONFIG_DIR/projects or ~/.claude/projects)')
    .option('--since <date>', 'only usage on or after this date (YYYY-MM-DD or YYYYMMDD)')
    .option('--until <date>', 'only usage on or before this date')
    .option('--session <id>', 'only this session')
    .option('--pricing <file>', 'pricing table JSON overriding the bundled one')
    .addOption(new Option('--mode <mode>', "cost: auto (a line's costUSD when present, else computed), calculate, display").choices(['auto', 'calculate', 'display']).default('auto'))
    .option('--json', 'machine-readable output')
    .option('--no-cache', 'read every transcript whole, neither using nor updating the per-file cache')
    .action(lazy('usage'));

  program
    .command('backfill')
    .description('send usage events for transcripts already on disk (idempotent)')
    .option('--projects-dir <dir>', 'transcripts root')
    .option('--since <date>', 'only usage on or after this date')
    .option('--pricing <file>', 'pricing table JSON')
    .option('--endpoint <url>', 'collector URL')
    .option('--token <token>', 'bearer token')
    .option('--dry-run', 'count what would be sent, send nothing')
    .action(lazy('backfill'));

  program
    .command('run')
    .description('run a command (e.g. claude -p …) as one recorded task: outcome, turns, duration, cost')
    .usage('[options] -- <command> [args...]')
    .option('--task-id <id>', 'task id (default: a new id)')
    .option('--label <label>', 'label (e.g. the loop name)')
    .option('--project <name>', 'project name')
    .addOption(new Option('--source <source>', 'event source').choices(['ralph', 'api', 'interactive', 'cron']))
    .option('--endpoint <url>', 'collector URL')
    .option('--token <token>', 'bearer token')
    .argument('<command...>', 'the command to run')
    .passThroughOptions()
    .action(lazy('run'));

  program
    .command('show')
    .description("one session's timeline from the collector: steps, durations, failures (✗), tokens, cost")
    .argument('<id>', 'session key, Claude Code session id, task id or run id')
    .option('--json', 'machine-readable output: {session, steps}')
    .option('--endpoint <url>', 'collector URL')
    .option('--token <token>', 'bearer token')
    .action(lazy('show'));

  program
    .command('tail')
    .description('follow the collector live, one line per step, like tail -f (Ctrl-C to stop)')
    .option('--project <name>', 'only this project')
    .option('--source <source>', 'only this source (interactive, ralph, api, …)')
    .option('--label <label>', 'only this label')
    .option('--session <id>', 'only this session (its key, e.g. session:<id> or run:<id>)')
    .option('--json', 'one JSON object per step and line')
    .option('--endpoint <url>', 'collector URL')
    .option('--token <token>', 'bearer token')
    .action(lazy('tail'));

  program
    .command('install')
    .description("add claude-metrics hooks to Claude Code's settings.json (surgical, idempotent, backed up)")
    .addOption(new Option('--scope <scope>', 'which settings file (managed: /etc/claude-code/managed-settings.json, for every user; needs root)').choices(['user', 'project', 'local', 'managed']).default('user'))
    .option('--events <list>', 'comma-separated hook events (default: the ones metrics need)')
    .option('--async', "use Claude Code's async hooks (loses events in claude -p; not recommended)")
    .option('--dry-run', 'print the diff, change nothing')
    .option('--settings <path>', 'settings file to edit (overrides --scope)')
    .option('--timeout <seconds>', 'hook timeout in seconds', int('--timeout'))
    .addOption(new Option('--hook <kind>', 'fast: a sh script spools, a drainer sends (~10 ms a hook); emit: one Node process per hook').choices(['fast', 'emit']).default('fast'))
    .option('--otel', "also turn on Claude Code's own OpenTelemetry export to the collector (exact per-request tokens and cost)")
    .option('--otel-only', 'only the OpenTelemetry export, no hooks')
    .addOption(new Option('--otel-protocol <p>', 'OTLP encoding').choices(['protobuf', 'json']).default('protobuf'))
    .action(lazy('install'));

  program
    .command('uninstall')
    .description('remove only our hook entries from settings.json')
    .addOption(new Option('--scope <scope>', 'which settings file (managed: /etc/claude-code/managed-settings.json, for every user; needs root)').choices(['user', 'project', 'local', 'managed']).default('user'))
    .option('--dry-run', 'print the diff, change nothing')
    .option('--settings <path>', 'settings file to edit (overrides --scope)')
    .action(lazy('uninstall'));

  program
    .command('doctor')
    .description('check configuration, collector, spool and hooks; exit non-zero with one line per problem')
    .option('--json', 'machine-readable output')
    .option('--endpoint <url>', 'collector URL')
    .option('--token <token>', 'bearer token')
    .action(lazy('doctor'));

  program
    .command('drain', { hidden: true })
    .description('background process behind the fast hook: inbox files to events, delivered; exits when idle')
    .option('--inbox <dir>')
    .option('--idle-ms <ms>', 'exit after this long without a new hook file', int('--idle-ms'))
    .action(lazy('drain'));

  program
    .command('transcript-worker', { hidden: true })
    .description('background job started by Stop/SubagentStop/SessionEnd hooks: read the transcript, emit usage')
    .option('--session-id <id>')
    .option('--transcript-path <path>')
    .option('--hook <event>')
    .option('--cwd <dir>')
    .option('--settle-ms <ms>', 'wait for the transcript to stop growing', int('--settle-ms'))
    .action(lazy('transcript-worker'));

  // Positional options (needed so `run` passes the child's flags through) make
  // program-level options position-sensitive; repeat the common ones on each command.
  for (const cmd of program.commands) {
    if (cmd.name() === 'emit') continue;
    cmd.option('-v, --verbose', 'diagnostics on stderr').option('--config <path>', 'config file');
  }
  return program;
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    process.exitCode = report(err);
  }
}

function isCliError(err: unknown): err is CliError {
  const e = err as Partial<CliError> | null;
  return e !== null && typeof e === 'object' && e.name === 'CliError' && typeof e.code === 'string' && typeof e.exitCode === 'number';
}

/** The error boundary: exit status from typed errors, one line on stderr, no stack. */
function report(err: unknown): number {
  const e = err as { code?: string; exitCode?: number };
  if (typeof e?.code === 'string' && e.code.startsWith('commander.')) {
    // Commander already printed help or its message.
    return e.exitCode ?? 1;
  }
  // Duck-typed, not instanceof: each command is its own bundle with its own copy of CliError.
  if (isCliError(err)) {
    process.stderr.write(`claude-metrics: ${err.message}\n`);
    return err.exitCode;
  }
  process.stderr.write(`claude-metrics: ${errorMessage(err)}\n`);
  if (process.env.CLAUDE_METRICS_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
  return 1;
}
