/**
 * `install --otel`: Claude Code's own OpenTelemetry export, pointed at the
 * collector, through the `env` block of a settings file. Surgical like the
 * hooks (jsonc edits, other `env` keys untouched), idempotent, and reversible:
 * a marker key lists exactly what we added, so `uninstall` removes that and
 * nothing else. A user who already exports OTel elsewhere is told, not overwritten.
 * Pure: text in, text out.
 */
import { findNodeAtLocation, getNodeValue } from './jsonc';
import { detectFormatting, edit, parseSettings, SettingsError } from './settings-edit';

/** Lists the keys we added (and `+env` when the `env` object was ours too). */
export const OTEL_MARKER = 'CLAUDE_METRICS_OTEL';

/** Keys that mean "this user exports OTel somewhere": set to another value, we do not touch them. */
const OTEL_KEYS = /^(CLAUDE_CODE_ENABLE_TELEMETRY|OTEL_.*)$/;

export interface OtelOptions {
  /** The collector's base URL (the exporter appends /v1/logs, /v1/metrics). */
  endpoint: string;
  protocol: 'http/protobuf' | 'http/json';
  token?: string;
}

/**
 * The variables: logs (per-request tokens and cost) and metrics, short export
 * intervals so a `claude -p` run that exits after seconds is not lost.
 */
export function otelVars(o: OtelOptions): Record<string, string> {
  const v: Record<string, string> = {
    CLAUDE_CODE_ENABLE_TELEMETRY: '1',
    OTEL_LOGS_EXPORTER: 'otlp',
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_PROTOCOL: o.protocol,
    OTEL_EXPORTER_OTLP_ENDPOINT: o.endpoint,
    OTEL_LOGS_EXPORT_INTERVAL: '1000',
    OTEL_METRIC_EXPORT_INTERVAL: '5000',
  };
  if (o.token) v.OTEL_EXPORTER_OTLP_HEADERS = `Authorization=Bearer ${o.token}`;
  return v;
}

/** `http://host:8013/metrics/harness` → `http://host:8013` (the OTLP exporter adds its own paths). */
export function collectorBase(endpoint: string): string {
  const u = new URL(endpoint);
  u.pathname = u.pathname.replace(/\/metrics\/harness\/?$/, '').replace(/\/$/, '');
  u.search = '';
  u.hash = '';
  return u.toString().replace(/\/$/, '');
}

function envOf(text: string, file: string): { env: Record<string, unknown> | undefined } {
  const root = parseSettings(text, file);
  const node = root ? findNodeAtLocation(root, ['env']) : undefined;
  if (node && node.type !== 'object') throw new SettingsError(`${file}: "env" is not an object; file left untouched`, 'E_SETTINGS_SHAPE');
  return { env: node ? (getNodeValue(node) as Record<string, unknown>) : undefined };
}

function markerKeys(env: Record<string, unknown> | undefined): { keys: string[]; ownEnv: boolean } {
  const m = typeof env?.[OTEL_MARKER] === 'string' ? (env[OTEL_MARKER] as string) : '';
  const parts = m.split(',').map((s) => s.trim()).filter(Boolean);
  return { keys: parts.filter((p) => p !== '+env'), ownEnv: parts.includes('+env') };
}

export interface OtelPlan {
  text: string;
  changed: boolean;
  added: string[];
  updated: string[];
  /** Keys already set by someone else to another value: nothing was changed. */
  conflicts: Array<{ key: string; value: string; want: string }>;
}

export function planOtelInstall(original: string, vars: Record<string, string>, file: string): OtelPlan {
  const fo = detectFormatting(original);
  const empty = original.trim() === '';
  let text = empty ? '{}' : original;
  const { env } = envOf(text, file);
  const mine = markerKeys(env);
  const conflicts: OtelPlan['conflicts'] = [];
  for (const [k, v] of Object.entries(env ?? {})) {
    if (!OTEL_KEYS.test(k) || mine.keys.includes(k)) continue;
    const want = vars[k];
    if (want === undefined || String(v) !== want) conflicts.push({ key: k, value: String(v), want: want ?? '(unset)' });
  }
  if (conflicts.length > 0) return { text: original, changed: false, added: [], updated: [], conflicts };
  const added: string[] = [];
  const updated: string[] = [];
  const ownEnv = env === undefined || mine.ownEnv;
  const keys = new Set<string>();
  for (const [k, v] of Object.entries(vars)) {
    const cur = env?.[k];
    // A key the user set to exactly our value stays theirs (uninstall leaves it).
    if (cur === v && !mine.keys.includes(k)) continue;
    keys.add(k);
    if (cur === v) continue;
    text = edit(text, ['env', k], v, fo);
    (cur === undefined ? added : updated).push(k);
  }
  // Keys of an older install that this one no longer sets (e.g. the token header after the token went away).
  for (const k of mine.keys) if (!(k in vars) && env?.[k] !== undefined) text = edit(text, ['env', k], undefined, fo);
  const marker = [...keys, ...(ownEnv ? ['+env'] : [])].join(',');
  if (env?.[OTEL_MARKER] !== marker) text = edit(text, ['env', OTEL_MARKER], marker, fo);
  if (empty) text = text + (original.includes('\r\n') ? '\r\n' : '\n');
  return { text, changed: text !== original, added, updated, conflicts };
}

/** Removes the keys our marker lists, the marker, and `env` itself when it was ours and is left empty. */
export function planOtelUninstall(original: string, file: string): { text: string; removed: string[] } {
  const fo = detectFormatting(original);
  const { env } = envOf(original, file);
  if (!env || env[OTEL_MARKER] === undefined) return { text: original, removed: [] };
  const mine = markerKeys(env);
  let text = original;
  const removed: string[] = [];
  for (const k of mine.keys) {
    if (env[k] === undefined) continue;
    text = edit(text, ['env', k], undefined, fo);
    removed.push(k);
  }
  text = edit(text, ['env', OTEL_MARKER], undefined, fo);
  const after = envOf(text, file).env;
  if (mine.ownEnv && after && Object.keys(after).length === 0) text = edit(text, ['env'], undefined, fo);
  return { text, removed };
}

/** What a settings file says about OTel export, for doctor. */
export function otelState(text: string, file: string): { ours: boolean; enabled: boolean; endpoint?: string; protocol?: string; headers: boolean; error?: string } {
  try {
    const { env } = envOf(text, file);
    const e = env ?? {};
    return {
      ours: e[OTEL_MARKER] !== undefined,
      enabled: String(e.CLAUDE_CODE_ENABLE_TELEMETRY ?? '') === '1' && (e.OTEL_LOGS_EXPORTER === 'otlp' || e.OTEL_METRICS_EXPORTER === 'otlp'),
      endpoint: typeof e.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT === 'string' ? e.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT.replace(/\/v1\/logs\/?$/, '') : typeof e.OTEL_EXPORTER_OTLP_ENDPOINT === 'string' ? e.OTEL_EXPORTER_OTLP_ENDPOINT : undefined,
      protocol: typeof e.OTEL_EXPORTER_OTLP_PROTOCOL === 'string' ? e.OTEL_EXPORTER_OTLP_PROTOCOL : undefined,
      headers: typeof e.OTEL_EXPORTER_OTLP_HEADERS === 'string',
    };
  } catch (err) {
    return { ours: false, enabled: false, headers: false, error: (err as Error).message };
  }
}
