/**
 * `emit`'s flags, parsed by hand (commander costs start-up on every hook) and
 * compatible with the `emit_metric` shell function Ralph loops already use.
 * Pure. Never throws: problems come back as warnings, because `emit` must not fail.
 */

export interface EmitArgs {
  event?: string;
  source?: string;
  taskId?: string;
  runId?: string;
  label?: string;
  project?: string;
  sessionId?: string;
  durationMs?: number;
  success?: boolean;
  exitCode?: number;
  error?: string;
  toolName?: string;
  model?: string;
  attrs: Record<string, string | number | boolean>;
  endpoint?: string;
  token?: string;
  timeoutMs?: number;
  includeContent?: boolean;
  verbose: boolean;
  help: boolean;
  /** Read stdin even though --event was given (default: not). */
  stdin: boolean;
  /** stdin holds whole wire events (one, or {"events":[…]}), sent with their own ids and timestamps. */
  wire: boolean;
  warnings: string[];
}

type Setter = (a: EmitArgs, v: string) => void;

const num = (name: string, set: (a: EmitArgs, n: number) => void, int = false): Setter => (a, v) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (int && !Number.isInteger(n)) || (!int && n < 0)) a.warnings.push(`${name}: not a valid number: ${JSON.stringify(v)}; ignored`);
  else set(a, n);
};

export function parseBool(v: string): boolean | undefined {
  const s = v.trim().toLowerCase();
  if (['true', '1', 'yes', 'y', 'ok', 'success', 'succeeded'].includes(s)) return true;
  if (['false', '0', 'no', 'n', 'fail', 'failed', 'failure', 'error'].includes(s)) return false;
  return undefined;
}

/** Attribute values keep their JSON type when they look like one (numbers, booleans). */
export function attrValue(v: string): string | number | boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (/^-?\d+(\.\d+)?$/.test(v) && v.length < 16) return Number(v);
  return v;
}

const VALUE_FLAGS: Record<string, Setter> = {
  event: (a, v) => (a.event = v),
  source: (a, v) => (a.source = v),
  'task-id': (a, v) => (a.taskId = v),
  'run-id': (a, v) => (a.runId = v),
  label: (a, v) => (a.label = v),
  project: (a, v) => (a.project = v),
  'session-id': (a, v) => (a.sessionId = v),
  'duration-ms': num('--duration-ms', (a, n) => (a.durationMs = n)),
  success: (a, v) => {
    const b = parseBool(v);
    if (b === undefined) a.warnings.push(`--success: expected true or false, got ${JSON.stringify(v)}; ignored`);
    else a.success = b;
  },
  'exit-code': num('--exit-code', (a, n) => (a.exitCode = n), true),
  error: (a, v) => (a.error = v),
  'tool-name': (a, v) => (a.toolName = v),
  model: (a, v) => (a.model = v),
  attr: (a, v) => {
    const i = v.indexOf('=');
    if (i <= 0) a.warnings.push(`--attr: expected key=value, got ${JSON.stringify(v)}; ignored`);
    else a.attrs[v.slice(0, i).slice(0, 64)] = attrValue(v.slice(i + 1));
  },
  endpoint: (a, v) => (a.endpoint = v),
  token: (a, v) => (a.token = v),
  'timeout-ms': num('--timeout-ms', (a, n) => (a.timeoutMs = n), true),
};

const BOOL_FLAGS: Record<string, (a: EmitArgs) => void> = {
  'include-content': (a) => (a.includeContent = true),
  'no-include-content': (a) => (a.includeContent = false),
  verbose: (a) => (a.verbose = true),
  v: (a) => (a.verbose = true),
  help: (a) => (a.help = true),
  h: (a) => (a.help = true),
  stdin: (a) => (a.stdin = true),
  wire: (a) => (a.wire = true),
};

export function parseEmitArgs(argv: readonly string[]): EmitArgs {
  const a: EmitArgs = { attrs: {}, verbose: false, help: false, stdin: false, wire: false, warnings: [] };
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (i === 0 && tok === 'emit') continue;
    if (!tok.startsWith('-') || tok === '-' || tok === '--') {
      a.warnings.push(`unexpected argument ${JSON.stringify(tok)}; ignored`);
      continue;
    }
    const body = tok.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    if (BOOL_FLAGS[name] && eq < 0) {
      BOOL_FLAGS[name]!(a);
      continue;
    }
    const setter = VALUE_FLAGS[name];
    if (!setter) {
      a.warnings.push(`unknown flag ${JSON.stringify(tok)}; ignored`);
      continue;
    }
    let value: string | undefined;
    if (eq >= 0) value = body.slice(eq + 1);
    else if (i + 1 < argv.length) value = argv[++i];
    if (value === undefined) a.warnings.push(`--${name} needs a value; ignored`);
    else setter(a, value);
  }
  return a;
}

export const EMIT_HELP = `Usage: claude-metrics emit [flags]   (hook JSON on stdin, or flags)

Claude Code hooks:   claude-metrics emit            reads the hook's JSON from stdin
Shell scripts:       claude-metrics emit --event ralph_task_completed --task-id T \\
                       --label L --duration-ms 1234 --success true --exit-code 0

  --event NAME          event name (with --event, stdin is not read unless --stdin)
  --source SOURCE       interactive | ralph | api | cron | backfill (default: detected)
  --task-id ID  --run-id ID  --session-id ID  --label L  --project P
  --duration-ms N  --success true|false  --exit-code N  --error TEXT
  --tool-name NAME  --model NAME
  --attr key=value      extra attribute (repeatable)
  --endpoint URL  --token T  --timeout-ms N  --include-content  --verbose
  --wire                stdin is whole wire events (one, or {"events":[…]}) from another
                        producer: spooled and sent with their own event_id and timestamp

Always exits 0 and never writes to stdout (hook stdout reaches the model);
problems go to the log file in the state directory, and to stderr with --verbose.
`;
