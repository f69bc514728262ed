/**
 * `doctor`: gather facts (configuration and its origins, the collector, the
 * breaker, the spool, our hooks in each settings scope, Claude Code) and judge
 * them. Gathering does I/O; judging (`assess`) and rendering are pure.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { CONFIG_SPEC, type Config, type Origin, type ResolvedConfig } from '../config';
import { hookInbox, statePaths } from '../paths';
import { listInbox } from '../inbox/inbox';
import { processAlive } from '../proc';
import { Spool, type SpoolStats } from '../spool/spool';
import { readBreaker, type BreakerState } from '../transport/breaker';
import { fastHookScript, splitHookCommand } from './hook-command';
import { DEFAULT_EVENTS, findOurHooks } from './settings-edit';
import { otelFacts, unpricedModels, type OtelFacts } from './doctor-otel';
import { collectorBase } from './otel-env';
import { storageProblems, writeCheck, formatBytes, type StorageFacts } from './storage-check';
import { managedSettingsPath, realTarget, settingsPathFor, type Scope } from './settings-file';

type Env = Record<string, string | undefined>;

export interface ConfigRow {
  key: keyof Config;
  value: string;
  origin: Origin;
  /** The env variable (or config file) the value came from. */
  from?: string;
}

export interface EndpointFacts {
  url: string;
  reachable: boolean;
  status?: number;
  latencyMs?: number;
  error?: string;
  tokenSet: boolean;
}

export interface HookCommandFacts {
  command: string;
  events: string[];
  async: boolean;
  runs: boolean;
  /** `--version` output when it runs, else why not. */
  detail: string;
}

export interface ScopeFacts {
  scope: Scope | 'managed';
  path: string;
  exists: boolean;
  error?: string;
  commands: HookCommandFacts[];
  disableAllHooks: boolean;
  cleanupPeriodDays?: unknown;
  /** Managed settings only: user, project and local hooks are ignored when true. */
  allowManagedHooksOnly?: boolean;
  /** Managed settings only: permission bits (every user's Claude Code must read the file). */
  mode?: number;
}

export interface DoctorFacts {
  version: string;
  configFile: string;
  configFileFound: boolean;
  config: ConfigRow[];
  configWarnings: string[];
  endpoint: EndpointFacts;
  breaker: BreakerState;
  spoolDir: string;
  spool: SpoolStats;
  /** The fast hook's inbox: files waiting, the oldest one's age, and whether a drainer runs. */
  inbox?: { dir: string; waiting: number; oldestAgeMs: number | null; drainer: number | null };
  scopes: ScopeFacts[];
  claude: { path?: string; version?: string; error?: string };
  /** The hook commands this installation would write (fast, then emit), to spot stale hooks. */
  expectedCommands?: string[];
  log: { path: string; lastProblem?: { time: string; msg: string; name?: string } };
  /** Can the state dir, the inbox and the spool be written (a real write), and their free space. */
  storage?: StorageFacts;
  /** Modes of what holds secrets or events (undefined when missing). */
  modes: { stateDir?: number; configFile?: number; tokenInFile: boolean };
  /** Claude Code's own OTel export, per settings scope that turns it on (install --otel). */
  otel?: OtelFacts[];
  /** Models the collector has tokens for but no price (their cost is unknown). */
  unpriced?: Array<{ model: string; requests: number }>;
  now: number;
}

export interface Assessment {
  healthy: boolean;
  problems: string[];
  notes: string[];
}

/** Tokens are never printed: only whether one is set and its length. */
export function configRows(resolved: ResolvedConfig): ConfigRow[] {
  return (Object.keys(CONFIG_SPEC) as Array<keyof Config>).map((key) => {
    const raw = resolved.config[key];
    let value = key === 'token' ? (raw ? `(set, ${String(raw).length} chars)` : '(not set)') : raw === undefined ? '(not set)' : String(raw);
    if (key === 'db') value = value.replace(/^([a-z]+:\/\/[^:@/]*):[^@/]*@/i, '$1:***@'); // a database password
    const origin = resolved.origins[key];
    const from = origin === 'env' ? resolved.envNames[key] : origin === 'file' ? resolved.configFile : undefined;
    return from ? { key, value, origin, from } : { key, value, origin };
  });
}

/** GET the endpoint: the collector answers 204 when authorized and 401 otherwise, storing nothing. */
export function probeEndpoint(url: string, token: string | undefined, timeoutMs: number): Promise<EndpointFacts> {
  const started = process.hrtime.bigint();
  const ms = () => Number((process.hrtime.bigint() - started) / 1_000_000n);
  return new Promise((resolve) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      resolve({ url, reachable: false, error: 'not a valid URL', tokenSet: !!token });
      return;
    }
    const mod = (u.protocol === 'https:' ? require('node:https') : require('node:http')) as typeof import('node:http');
    const headers: Record<string, string> = { 'user-agent': 'claude-metrics-doctor' };
    if (token) headers.authorization = `Bearer ${token}`;
    let done = false;
    const finish = (f: EndpointFacts) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(f);
    };
    const req = mod.request(u, { method: 'GET', headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => finish({ url, reachable: true, status: res.statusCode ?? 0, latencyMs: ms(), tokenSet: !!token }));
      res.on('error', (e) => finish({ url, reachable: false, error: e.message, tokenSet: !!token }));
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish({ url, reachable: false, error: `no answer within ${timeoutMs} ms`, tokenSet: !!token });
    }, timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => finish({ url, reachable: false, error: e.code ?? e.message, tokenSet: !!token }));
    req.end();
  });
}

function which(cmd: string, env: Env): string | undefined {
  if (cmd.includes('/')) return existsSync(cmd) ? cmd : undefined;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/**
 * Does a hook command resolve and run? Its program part (everything before
 * `emit`) is run with `--version` instead: running emit itself would send an event.
 */
export function checkHookCommand(command: string, env: Env): { runs: boolean; detail: string } {
  const words = splitHookCommand(command);
  const script = fastHookScript(words);
  if (script !== -1) {
    // The fast hook: `sh …/claude-metrics-hook <how to run claude-metrics>`; its drainer is that plus `drain`.
    const shell = which(words[0]!, env);
    if (script === 0 || !shell) return { runs: false, detail: `${words[0]} not found` };
    if (!existsSync(words[script]!)) return { runs: false, detail: `${words[script]} not found` };
    return runsVersion(words.slice(script + 1), env);
  }
  const emitAt = words.indexOf('emit');
  if (emitAt <= 0) return { runs: false, detail: 'an older form of our hook (not `… claude-metrics emit`): run `claude-metrics install` to upgrade it' };
  return runsVersion(words.slice(0, emitAt), env);
}

/** Does `<program> --version` run? */
function runsVersion(program: string[], env: Env): { runs: boolean; detail: string } {
  if (program.length === 0) return { runs: false, detail: 'no program to run claude-metrics with' };
  const exe = which(program[0]!, env);
  if (!exe) return { runs: false, detail: `${program[0]} not found${isAbsolute(program[0]!) ? '' : ' on PATH'}` };
  for (const w of program.slice(1)) if (isAbsolute(w) && !existsSync(w)) return { runs: false, detail: `${w} not found` };
  const r = spawnSync(exe, [...program.slice(1), '--version'], { env: env as NodeJS.ProcessEnv, encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) return { runs: false, detail: `cannot run ${exe}: ${r.error.message}` };
  if (r.status !== 0) return { runs: false, detail: `\`${program.join(' ')} --version\` exited ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim().split('\n')[0] ?? ''}` };
  return { runs: true, detail: `runs (claude-metrics ${r.stdout.trim()})` };
}

export function scopeFacts(scope: ScopeFacts['scope'], path: string, env: Env): ScopeFacts {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { scope, path, exists: code !== 'ENOENT', error: code === 'ENOENT' ? undefined : `cannot read: ${code}`, commands: [], disableAllHooks: false };
  }
  const found = findOurHooks(text, path);
  const byCommand = new Map<string, HookCommandFacts>();
  for (const c of found.commands) {
    let f = byCommand.get(c.command);
    if (!f) {
      f = { command: c.command, events: [], async: false, ...checkHookCommand(c.command, env) };
      byCommand.set(c.command, f);
    }
    f.events.push(c.event);
    f.async ||= c.async;
  }
  const facts: ScopeFacts = { scope, path, exists: true, commands: [...byCommand.values()], disableAllHooks: found.disableAllHooks === true, cleanupPeriodDays: found.cleanupPeriodDays };
  if (found.error) facts.error = found.error;
  if (scope === 'managed') {
    facts.allowManagedHooksOnly = found.allowManagedHooksOnly === true;
    facts.mode = modeOf(path);
  }
  return facts;
}

export function claudeFacts(env: Env): DoctorFacts['claude'] {
  const path = which('claude', env);
  if (!path) return {};
  const r = spawnSync(path, ['--version'], { env: env as NodeJS.ProcessEnv, encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status === 0) return { path, version: r.stdout.trim() };
  return { path, error: r.error?.message ?? `exit ${r.status}` };
}

/** The last warning or error in our log file (NDJSON, pino levels), read from its tail. */
export function lastLogProblem(path: string): DoctorFacts['log']['lastProblem'] {
  let text: string;
  try {
    const { openSync, readSync, closeSync, fstatSync } = require('node:fs') as typeof import('node:fs');
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const len = Math.min(size, 64 * 1024);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, size - len);
      text = buf.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const rec = JSON.parse(lines[i]!) as { level?: number; time?: number; msg?: string; name?: string };
      if ((rec.level ?? 0) >= 40 && typeof rec.msg === 'string') return { time: new Date(rec.time ?? 0).toISOString(), msg: rec.msg.slice(0, 300), name: rec.name };
    } catch {
      /* a torn first line */
    }
  }
  return undefined;
}

function modeOf(path: string): number | undefined {
  try {
    return statSync(path).mode & 0o777;
  } catch {
    return undefined;
  }
}

export interface GatherOptions {
  expectedCommands?: string[];
  resolved: ResolvedConfig;
  env: Env;
  cwd: string;
  version: string;
  probeTimeoutMs?: number;
  managedSettings?: string;
}

export async function gatherFacts(o: GatherOptions): Promise<DoctorFacts> {
  const { config } = o.resolved;
  const paths = statePaths(config.stateDir);
  const now = Date.now();
  const endpoint = await probeEndpoint(config.endpoint, config.token, o.probeTimeoutMs ?? 3000);
  // From the home directory the project file is the user file: list each file once.
  const seen = new Set<string>();
  const scopes: ScopeFacts[] = [];
  for (const s of ['user', 'project', 'local'] as Scope[]) {
    const path = settingsPathFor(s, o.env, o.cwd);
    if (seen.has(realTarget(path))) continue;
    seen.add(realTarget(path));
    scopes.push(scopeFacts(s, path, o.env));
  }
  const managed = o.managedSettings || managedSettingsPath(o.env);
  if (existsSync(managed)) scopes.push(scopeFacts('managed', managed, o.env));
  const otel = await otelFacts(scopes.filter((sc) => sc.exists).map((sc) => ({ scope: sc.scope, path: sc.path })), o.probeTimeoutMs ?? 3000);
  let base: string | undefined;
  try {
    base = collectorBase(config.endpoint);
  } catch {
    base = undefined;
  }
  // Only a claude-metrics collector (204 on GET /metrics/harness) has the summary; ask nothing of another router.
  const unpriced = endpoint.status === 204 && base ? await unpricedModels(base, config.token, o.probeTimeoutMs ?? 3000) : undefined;
  return {
    otel,
    unpriced,
    version: o.version,
    configFile: o.resolved.configFile,
    configFileFound: o.resolved.configFileFound,
    config: configRows(o.resolved),
    configWarnings: o.resolved.warnings,
    endpoint,
    breaker: readBreaker(paths.breaker, config.endpoint),
    spoolDir: join(paths.root, 'spool'),
    spool: new Spool(paths).stats(now),
    inbox: inboxFacts(o.resolved.stateDirFallbackFrom ? join(paths.root, 'inbox') : hookInbox(o.env), now),
    storage: {
      checks: [writeCheck('state dir', paths.root), writeCheck('hook inbox', o.resolved.stateDirFallbackFrom ? join(paths.root, 'inbox') : hookInbox(o.env)), writeCheck('spool', paths.spool.new)],
      fallbackFrom: o.resolved.stateDirFallbackFrom,
      configuredProblem: o.resolved.stateDirProblem,
    },
    scopes,
    claude: claudeFacts(o.env),
    expectedCommands: o.expectedCommands,
    log: { path: paths.log, lastProblem: lastLogProblem(paths.log) },
    modes: { stateDir: modeOf(paths.root), configFile: modeOf(o.resolved.configFile), tokenInFile: o.resolved.origins.token === 'file' },
    now,
  };
}

function inboxFacts(dir: string, now: number): NonNullable<DoctorFacts['inbox']> {
  const files = listInbox(dir);
  let drainer: number | null = null;
  try {
    const pid = Number(readFileSync(join(dir, 'drainer.pid'), 'utf8'));
    if (processAlive(pid)) drainer = pid;
  } catch {
    /* none */
  }
  return { dir, waiting: files.length, oldestAgeMs: files.length > 0 ? now - files[0]!.mtimeMs : null, drainer };
}

export function formatAge(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} days`;
}

/** How long events may wait in the spool before doctor calls it a problem. */
export const STALE_SPOOL_MS = 60 * 60 * 1000;
/** Claude Code deletes transcripts after cleanupPeriodDays (default 30): shorter loses usage before backfill. */
export const MIN_CLEANUP_DAYS = 30;

/** The judgement: one clear line per problem; notes are informative only. Pure. */
export function assess(f: DoctorFacts): Assessment {
  const problems: string[] = [];
  const notes: string[] = [];
  // The state dir's own warning is told below, with the storage checks.
  for (const w of f.configWarnings) if (!w.startsWith('state dir ')) problems.push(`configuration: ${w}`);
  if (f.storage) {
    const st = storageProblems(f.storage);
    problems.push(...st.problems);
    notes.push(...st.notes);
  }

  const e = f.endpoint;
  if (!e.reachable) problems.push(`collector ${e.url} is not reachable (${e.error}); events are spooled until it is: start it (claude-metrics serve) or set CLAUDE_METRICS_ENDPOINT`);
  else if (e.status === 401 || e.status === 403) problems.push(e.tokenSet ? `collector ${e.url} rejects the token (HTTP ${e.status}): check CLAUDE_METRICS_TOKEN` : `collector ${e.url} requires a token (HTTP ${e.status}): set CLAUDE_METRICS_TOKEN`);
  else if (e.status !== undefined && e.status >= 500) problems.push(`collector ${e.url} answers HTTP ${e.status}: check its log`);
  else if (e.status === 404 || e.status === 405) notes.push(`collector ${e.url} is reachable but answers GET with ${e.status} (not claude-metrics serve?): the token is not verified`);

  if (f.breaker.openUntil > f.now) notes.push(`circuit breaker open for ${formatAge(f.breaker.openUntil - f.now)} after ${f.breaker.failures} failure(s)${f.breaker.lastError ? ` (${f.breaker.lastError})` : ''}: hooks spool without trying the network until then`);

  const s = f.spool;
  if (s.dead > 0) problems.push(`${s.dead} event(s) rejected permanently by the collector: see ${join(f.spoolDir, 'dead')} (*.reason)`);
  if (s.drops > 0) problems.push(`${s.drops} event(s) dropped because the spool was full: raise CLAUDE_METRICS_MAX_SPOOL_BYTES / _FILES or bring the collector back`);
  const ib = f.inbox;
  if (ib && ib.waiting > 0 && ib.drainer === null && ib.oldestAgeMs !== null && ib.oldestAgeMs > 60_000) problems.push(`${ib.waiting} hook file(s) waiting in ${ib.dir} with no drainer running, the oldest for ${formatAge(ib.oldestAgeMs)}: run claude-metrics flush (or add the crontab line); check the log for why \`claude-metrics drain\` does not start`);
  if (s.oldestAgeMs !== null && s.oldestAgeMs > STALE_SPOOL_MS) problems.push(`${s.depth} event(s) waiting in the spool, the oldest for ${formatAge(s.oldestAgeMs)}: run claude-metrics flush (or add the crontab line)`);
  else if (s.depth > 0) notes.push(`${s.depth} event(s) waiting in the spool: delivered by the next flush`);

  const octal = (m: number) => `0${m.toString(8)}`;
  if (f.modes.stateDir !== undefined && (f.modes.stateDir & 0o077) !== 0) problems.push(`the state dir (spool, log) is ${octal(f.modes.stateDir)}, readable by other users: chmod 700 ${dirname(f.spoolDir)}`);
  if (f.modes.tokenInFile && f.modes.configFile !== undefined && (f.modes.configFile & 0o077) !== 0) problems.push(`${f.configFile} holds the token and is ${octal(f.modes.configFile)}: chmod 600 ${f.configFile}`);

  const withHooks = f.scopes.filter((sc) => sc.commands.length > 0);
  const otel = f.otel ?? [];
  if (withHooks.length === 0 && !otel.some((o) => o.ours)) problems.push('no settings file contains claude-metrics hooks: run claude-metrics install');
  for (const o of otel) {
    if (!o.enabled) continue;
    if (!o.endpoint) problems.push(`${o.scope} settings ${o.path}: OTel export is on but OTEL_EXPORTER_OTLP_ENDPOINT is not set there`);
    else if (o.probe?.error) problems.push(`${o.scope} settings: OTel export goes to ${o.endpoint}, which is not reachable (${o.probe.error}): Claude Code's own tokens and cost are lost while it is down (the hooks' are spooled)`);
    else if (o.probe?.status === 401 || o.probe?.status === 403) problems.push(`${o.scope} settings: ${o.endpoint} refuses the OTel export's token (HTTP ${o.probe.status}): run claude-metrics install --otel again with the collector's token`);
    else if (o.probe?.status !== undefined && o.probe.status !== 200) problems.push(`${o.scope} settings: ${o.endpoint}/v1/logs answers HTTP ${o.probe.status}: it is not a collector that takes OTLP (claude-metrics serve does)`);
  }
  if (!otel.some((o) => o.enabled)) notes.push("Claude Code's own OpenTelemetry export is off: costs are our price table's estimate; `claude-metrics install --otel` makes them Claude Code's own figures");
  if (f.unpriced && f.unpriced.length > 0) notes.push(`the collector has tokens of unpriced models (cost unknown, not zero): ${f.unpriced.map((u) => `${u.model} (${u.requests} request(s))`).join(', ')}; turn on OTel (install --otel) for Claude Code's own cost, or add prices with --pricing`);
  for (const sc of f.scopes) {
    if (sc.error) problems.push(`${sc.scope} settings ${sc.path}: ${sc.error}`);
    for (const c of sc.commands) {
      if (!c.runs) problems.push(`${sc.scope} settings ${sc.path}: hook command does not run: ${c.detail}`);
      if (c.async) notes.push(`${sc.scope} settings: async hooks are killed when \`claude -p\` exits; headless runs may lose events`);
    }
    if (sc.disableAllHooks) problems.push(`${sc.scope} settings ${sc.path}: "disableAllHooks": true turns every hook off, ours included`);
    const days = sc.cleanupPeriodDays;
    if (typeof days === 'number' && days < MIN_CLEANUP_DAYS) problems.push(`${sc.scope} settings ${sc.path}: "cleanupPeriodDays": ${days} deletes transcripts (token usage) after ${days} day(s); use ${MIN_CLEANUP_DAYS} or more`);
  }
  const managed = withHooks.find((sc) => sc.scope === 'managed');
  const personal = withHooks.filter((sc) => sc.scope !== 'managed');
  if (managed?.mode !== undefined && (managed.mode & 0o004) === 0) problems.push(`managed settings ${managed.path} are 0${managed.mode.toString(8)}: Claude Code running as other users cannot read them, so their sessions are not recorded (chmod 644 ${managed.path})`);
  if (managed && personal.length > 0) {
    const where = personal.map((x) => `${x.scope} (${x.path})`).join(', ');
    if (managed.allowManagedHooksOnly) notes.push(`our hooks are also in ${where}, which Claude Code ignores ("allowManagedHooksOnly": true in ${managed.path}); remove them with claude-metrics uninstall --scope ${personal[0]!.scope}`);
    else problems.push(`claude-metrics hooks are in the managed settings (${managed.path}) and also in ${where}: Claude Code runs both, so every hook event is counted twice; the managed ones cover every user: claude-metrics uninstall --scope ${personal[0]!.scope}`);
  } else if (withHooks.length > 1) problems.push(`claude-metrics hooks are installed in ${withHooks.length} scopes (${withHooks.map((x) => x.scope).join(', ')}): Claude Code runs all of them, so every hook event is counted more than once; keep one (claude-metrics uninstall --scope …)`);
  const hooked = new Set(withHooks.flatMap((sc) => sc.commands.flatMap((c) => c.events)));
  const missing = DEFAULT_EVENTS.filter((ev) => !hooked.has(ev));
  if (withHooks.length > 0 && missing.length > 0) notes.push(`not hooked: ${missing.join(', ')}${missing.includes('PreToolUse') ? ' (tool durations need PreToolUse)' : ''}`);
  const current = f.expectedCommands ?? [];
  const stale = current.length > 0 ? withHooks.flatMap((sc) => sc.commands.filter((c) => !current.includes(c.command)).map(() => sc.scope)) : [];
  if (stale.length > 0) notes.push(`the hook command in ${[...new Set(stale)].join(', ')} settings differs from this installation's (${current[0]}): \`claude-metrics install\` updates it if this is the one you use`);
  if (f.log.lastProblem) notes.push(`last problem in ${f.log.path}: ${f.log.lastProblem.time} ${f.log.lastProblem.name ? `${f.log.lastProblem.name}: ` : ''}${f.log.lastProblem.msg}`);
  if (!f.claude.path) notes.push('claude is not on PATH: could not check the Claude Code version');
  else if (f.claude.error) problems.push(`claude at ${f.claude.path} does not run (${f.claude.error})`);
  notes.push('transcripts are not written by `claude -p --no-session-persistence` (or the SDK\'s persistSession: false): such runs report no token usage from transcripts');
  return { healthy: problems.length === 0, problems, notes };
}

function pad(s: string, n: number): string {
  return s.length >= n ? `${s} ` : s + ' '.repeat(n - s.length);
}

export function renderText(f: DoctorFacts, a: Assessment): string {
  const out: string[] = [];
  out.push(`claude-metrics ${f.version} doctor`);
  out.push('', `configuration (config file ${f.configFile}: ${f.configFileFound ? 'found' : 'not found'})`);
  for (const r of f.config) out.push(`  ${pad(r.key, 20)}${pad(r.value, 44)}${r.origin}${r.from ? ` (${r.from})` : ''}`);
  const e = f.endpoint;
  out.push('', 'collector');
  if (!e.reachable) out.push(`  ${e.url}: not reachable (${e.error})`);
  else {
    const auth = e.status === 401 || e.status === 403 ? (e.tokenSet ? 'token rejected' : 'token required') : e.status === 404 || e.status === 405 ? 'token not verified' : e.status !== undefined && e.status < 300 ? (e.tokenSet ? 'token accepted' : 'no token needed') : 'unhealthy';
    out.push(`  ${e.url}: reachable in ${e.latencyMs} ms, HTTP ${e.status}, ${auth}`);
  }
  const b = f.breaker;
  out.push(`  breaker: ${b.openUntil > f.now ? `open for ${formatAge(b.openUntil - f.now)}` : 'closed'}${b.failures ? `, ${b.failures} recent failure(s)` : ''}${b.lastError ? `, last error: ${b.lastError}` : ''}`);
  const s = f.spool;
  out.push('', `spool (${f.spoolDir})`);
  out.push(`  waiting ${s.depth} event(s), ${s.bytes} bytes; oldest ${s.oldestAgeMs === null ? '-' : formatAge(s.oldestAgeMs)}; claimed ${s.claimed}; dead letters ${s.dead}; drops ${s.drops}`);
  if (f.inbox) out.push(`  hook inbox (${f.inbox.dir}): ${f.inbox.waiting} file(s) waiting; drainer ${f.inbox.drainer === null ? 'not running' : `running (pid ${f.inbox.drainer})`}`);
  out.push(`  log: ${f.log.path}`);
  for (const c of f.storage?.checks ?? []) out.push(`  ${pad(`${c.role}:`, 12)}${c.dir}: ${c.ok ? 'writable' : `NOT writable (${c.error})`}${c.freeBytes !== null ? `, ${formatBytes(c.freeBytes)} free` : ''}`);
  if (f.storage?.fallbackFrom) out.push(`  (the configured state dir ${f.storage.fallbackFrom} cannot be written: ${f.storage.configuredProblem})`);
  out.push('', 'hooks');
  for (const sc of f.scopes) {
    const head = `  ${pad(sc.scope, 9)}${sc.path}: `;
    if (!sc.exists) out.push(`${head}not present`);
    else if (sc.error) out.push(`${head}${sc.error}`);
    else if (sc.commands.length === 0) out.push(`${head}no claude-metrics hooks${sc.disableAllHooks ? ' (disableAllHooks: true)' : ''}`);
    else for (const c of sc.commands) out.push(`${head}${c.events.length} event(s) ${c.events.join(', ')}${c.async ? ' (async)' : ''}\n           ${c.command}\n           ${c.detail}`);
  }
  if (f.otel && f.otel.length > 0) {
    out.push('', 'opentelemetry (Claude Code\'s own export)');
    for (const o of f.otel) out.push(`  ${pad(o.scope, 9)}${o.path}: ${o.enabled ? 'on' : 'off'}${o.ours ? ' (install --otel)' : ''}${o.endpoint ? `, to ${o.endpoint}` : ''}${o.protocol ? ` (${o.protocol})` : ''}${o.probe ? (o.probe.error ? `, not reachable: ${o.probe.error}` : `, /v1/logs HTTP ${o.probe.status}`) : ''}`);
  }
  out.push('', 'claude code');
  out.push(`  ${f.claude.version ? `${f.claude.version} at ${f.claude.path}` : f.claude.path ? `${f.claude.path}: ${f.claude.error}` : 'not on PATH'}`);
  if (a.notes.length) {
    out.push('', 'notes');
    for (const n of a.notes) out.push(`  - ${n}`);
  }
  out.push('');
  if (a.healthy) out.push('healthy: no problems found');
  else {
    out.push(`${a.problems.length} problem(s):`);
    for (const p of a.problems) out.push(`  ✗ ${p}`);
  }
  return `${out.join('\n')}\n`;
}
