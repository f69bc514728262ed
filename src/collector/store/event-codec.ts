/**
 * The compact event row (issue 17, "smaller rows"): what a stored event is
 * split into, and how its body is put back together byte for byte.
 *
 * An event's JSON body used to be stored whole beside columns that repeated
 * half of it, plus hook context that is the same on every event of a session.
 * Now each top-level key of the body is either
 * - owned by a column (its value is exactly what the column gives back: ids,
 *   names, numbers, the timestamp when it is the canonical ISO form of ts_ms,
 *   the token usage), or by the event's context tuple (source, session/run/task
 *   ids, label, project and the `context` object, interned once per distinct
 *   tuple), or is a constant of the layout (schema_version, cost_source);
 * - or kept in the residue: the values of the keys nothing else holds (hook
 *   and attrs payloads, message ids, unknown extra keys, any value a column
 *   cannot give back exactly), as a JSON array; their keys are in the layout,
 *   and so are the keys of a flat `hook` or `attrs` object, whose values are
 *   spread into the array. No residue when nothing is left. `residueObject`
 *   gives the residue back as the JSON object of those keys (what SQL reads).
 * The layout (interned: a handful of distinct ones) is the body's key order
 * with the constants, so the body rebuilt is the string JSON.stringify gave at
 * ingest, key order included. Pure functions: unit-tested without a database.
 */

import { createHash } from 'node:crypto';

/** Event kinds with fixed ids (1…n) in harness_names, so reads and partial indexes can name them as integers. */
export const KNOWN_KINDS = [
  'Notification', 'PermissionRequest', 'PreToolUse', 'PostToolUse', 'PostToolUseFailure', 'UserPromptSubmit', 'SessionEnd', 'SubagentStop',
  'ralph_task_completed', 'task_completed', 'run_completed', 'tool_result', 'tool_decision', 'tool_span', 'tool_wait', 'tool_execution', 'usage', 'otel_metric',
  'SessionStart', 'Stop', 'ralph_task_started', 'api_request', 'PreCompact', 'SubagentStart',
] as const;
const KIND_IDS = new Map<string, number>(KNOWN_KINDS.map((k, i) => [k, i + 1]));
/** The fixed id of a known kind (throws on others: only known kinds are named in SQL). */
export function kindId(kind: string): number {
  const id = KIND_IDS.get(kind);
  if (id === undefined) throw new Error(`not a known event kind: ${kind}`);
  return id;
}
/** `(1, 2)`: a list of known kinds as SQL integers. */
export const kindList = (kinds: readonly string[]) => `(${kinds.map(kindId).join(', ')})`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** An event id as stored: 16 bytes when it is a lowercase UUID (the emitters' ids), else its text. Lossless. */
export function encodeId(id: string): Buffer | string {
  return UUID.test(id) ? Buffer.from(id.replaceAll('-', ''), 'hex') : id;
}
export function decodeId(v: Uint8Array | string): string {
  if (typeof v === 'string') return v;
  const h = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The columns an event row keeps besides its body (the old harness_events columns, decoded). */
export interface EventColumns {
  event_id: string;
  event: string;
  source: string;
  ts_ms: number;
  session_id: string | null;
  run_id: string | null;
  task_id: string | null;
  label: string | null;
  project: string | null;
  tool_name: string | null;
  tool_use_id: string | null;
  success: number | null;
  duration_ms: number | null;
  exit_code: number | null;
  error: string | null;
  model: string | null;
  input_tokens: number | null;
  output_tokens: number | null;
  cache_creation_input_tokens: number | null;
  cache_read_input_tokens: number | null;
  cost_usd: number | null;
  num_turns: number | null;
}

/** The context tuple: [source, session_id, run_id, task_id, label, project, context JSON text]. */
export type ContextTuple = [string, string | null, string | null, string | null, string | null, string | null, string | null];
const TUPLE_INDEX: Record<string, number> = { source: 0, session_id: 1, run_id: 2, task_id: 3, label: 4, project: 5 };
const TEXT_COLUMNS = new Set(['tool_name', 'tool_use_id', 'error', 'model']);
const NUMBER_COLUMNS = new Set(['duration_ms', 'exit_code', 'cost_usd', 'num_turns']);
const USAGE_KEYS = ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'] as const;
const CONSTANT_KEYS = new Set(['schema_version', 'cost_source']);

/**
 * A layout entry: `k` (value from a column or the tuple), `[k, v]` a constant, `['usage', order]` the
 * usage from its columns, `[k]` the next residue value, `[k, null, keys]` an object of the next values.
 */
export type LayoutEntry = string | [string] | [string, unknown] | ['usage', string] | [string, null, string[]];
/** Payload objects whose keys go to the layout (a few key sets per event kind), when flat and small. */
const SPREAD_KEYS = new Set(['hook', 'attrs']);
const MAX_SPREAD = 32;
const isScalar = (v: unknown) => v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';

export interface EncodedEvent {
  tuple: string;
  layout: string;
  residue: string | null;
}

const iso = (ms: number) => new Date(ms).toISOString();
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Splits a body (the event object JSON.stringify wrote, or an old row's parsed
 * body) against the row's columns. A key is owned only when what the column
 * gives back stringifies exactly as the body's value did.
 */
export function encodeEvent(body: Record<string, unknown>, c: EventColumns): EncodedEvent {
  const { tuple, layout, residue } = encodeParts(body, c);
  return { tuple: JSON.stringify(tuple), layout: JSON.stringify(layout), residue: residue.length ? `[${residue.join(',')}]` : null };
}

/** encodeEvent's parts before they are written down: the tuple, the layout and each residue value as JSON text. */
export interface EventParts {
  tuple: ContextTuple;
  layout: LayoutEntry[];
  residue: string[];
}

export function encodeParts(body: Record<string, unknown>, c: EventColumns): EventParts {
  const tuple: ContextTuple = [c.source, c.session_id, c.run_id, c.task_id, c.label, c.project, null];
  const layout: LayoutEntry[] = [];
  const residue: string[] = [];
  for (const k of Object.keys(body)) {
    const v = body[k];
    if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue; // JSON.stringify skips them
    if (owned(k, v, c, tuple, layout)) continue;
    if (SPREAD_KEYS.has(k) && isPlainObject(v)) {
      const keys = Object.keys(v).filter((x) => v[x] !== undefined);
      if (keys.length <= MAX_SPREAD && keys.every((x) => isScalar(v[x]) && !(typeof v[x] === 'number' && !Number.isFinite(v[x])))) {
        layout.push([k, null, keys]);
        for (const x of keys) residue.push(JSON.stringify(v[x]));
        continue;
      }
    }
    layout.push([k]);
    residue.push(JSON.stringify(v));
  }
  return { tuple, layout, residue };
}

function owned(k: string, v: unknown, c: EventColumns, tuple: ContextTuple, layout: LayoutEntry[]): boolean {
  const col = (c as unknown as Record<string, unknown>)[k];
  if (k === 'event_id' || k === 'event') {
    if (v !== col) return false;
  } else if (k in TUPLE_INDEX) {
    if (v !== col || (k === 'source' && typeof v !== 'string')) return false;
  } else if (k === 'timestamp') {
    if (typeof v !== 'string' || !Number.isFinite(c.ts_ms) || v !== iso(c.ts_ms)) return false;
  } else if (TEXT_COLUMNS.has(k)) {
    if (!(v === null ? col === null : typeof v === 'string' && v === col)) return false;
  } else if (NUMBER_COLUMNS.has(k)) {
    if (!(v === null ? col === null : typeof v === 'number' && Number.isFinite(v) && v === col)) return false;
  } else if (k === 'success') {
    if (!(v === null ? col === null : typeof v === 'boolean' && (v ? 1 : 0) === col)) return false;
  } else if (k === 'usage') {
    if (!isPlainObject(v)) return false;
    let order = '';
    for (const u of Object.keys(v)) {
      const i = (USAGE_KEYS as readonly string[]).indexOf(u);
      if (v[u] === undefined) continue;
      if (i < 0 || !Number.isSafeInteger(v[u]) || v[u] !== c[USAGE_KEYS[i]!]) return false;
      order += String(i);
    }
    for (let i = 0; i < USAGE_KEYS.length; i++) if (!order.includes(String(i)) && c[USAGE_KEYS[i]!] !== null) return false;
    layout.push(['usage', order]);
    return true;
  } else if (k === 'context') {
    if (!isPlainObject(v)) return false;
    tuple[6] = JSON.stringify(v);
  } else if (CONSTANT_KEYS.has(k)) {
    if (!(typeof v === 'number' || typeof v === 'string' || v === null)) return false;
    layout.push([k, v]);
    return true;
  } else return false;
  layout.push(k);
  return true;
}

/** A stored row's parts, decoded (names resolved, the id as text); a layout of "verbatim" means the residue is the body whole. */
export interface StoredParts extends EventColumns {
  tuple: string;
  layout: string;
  residue: string | null;
}

/** The body exactly as it was stored whole before (JSON.stringify of the event). */
export function decodeBody(p: StoredParts): string {
  const layout = JSON.parse(p.layout) as LayoutEntry[] | 'verbatim';
  if (layout === 'verbatim') return p.residue ?? '';
  return assembleBody(layout, JSON.parse(p.tuple) as ContextTuple, p.residue === null ? [] : (JSON.parse(p.residue) as unknown[]), p);
}

/**
 * The residue as PostgreSQL keeps it: the JSON object of the keys nothing else holds (what
 * residueObject gives SQLite's reads), so SQL reads its paths directly; null when nothing is left.
 */
export function residueObjectOf(layout: LayoutEntry[], residue: string[]): string | null {
  if (residue.length === 0) return null;
  let next = 0;
  const parts: string[] = [];
  for (const entry of layout) {
    if (typeof entry === 'string') continue;
    if (entry.length === 1) parts.push(`${JSON.stringify(entry[0])}:${residue[next++]}`);
    else if (entry.length === 3) parts.push(`${JSON.stringify(entry[0])}:{${(entry[2] as string[]).map((x) => `${JSON.stringify(x)}:${residue[next++]}`).join(',')}}`);
  }
  return `{${parts.join(',')}}`;
}

/** A body from its layout (text), the tuple's values, the columns and residueObjectOf's object; a "verbatim" layout's residue is the body whole. */
export function decodeObjectBody(layoutText: string, tuple: ContextTuple, residue: string | null, p: EventColumns): string {
  const layout = JSON.parse(layoutText) as LayoutEntry[] | 'verbatim';
  if (layout === 'verbatim') return residue ?? '';
  const obj = residue === null ? {} : (JSON.parse(residue) as Record<string, unknown>);
  const values: unknown[] = [];
  for (const entry of layout) {
    if (typeof entry === 'string') continue;
    if (entry.length === 1) values.push(obj[entry[0]]);
    else if (entry.length === 3) {
      const inner = obj[entry[0]] as Record<string, unknown>;
      for (const x of entry[2] as string[]) values.push(inner[x]);
    }
  }
  return assembleBody(layout, tuple, values, p);
}

function assembleBody(layout: LayoutEntry[], tuple: ContextTuple, values: unknown[], p: EventColumns): string {
  let next = 0;
  const parts: string[] = [];
  for (const entry of layout) {
    if (typeof entry === 'string') {
      parts.push(`${JSON.stringify(entry)}:${columnText(entry, p, tuple)}`);
    } else if (entry.length === 1) {
      parts.push(`${JSON.stringify(entry[0])}:${JSON.stringify(values[next++])}`);
    } else if (entry.length === 3) {
      const inner = (entry[2] as string[]).map((x) => `${JSON.stringify(x)}:${JSON.stringify(values[next++])}`);
      parts.push(`${JSON.stringify(entry[0])}:{${inner.join(',')}}`);
    } else if (entry[0] === 'usage' && typeof entry[1] === 'string') {
      parts.push(`"usage":{${[...entry[1]].map((i) => `"${USAGE_KEYS[Number(i)]}":${p[USAGE_KEYS[Number(i)]!]}`).join(',')}}`);
    } else parts.push(`${JSON.stringify(entry[0])}:${JSON.stringify(entry[1])}`);
  }
  return `{${parts.join(',')}}`;
}

/** The residue as the JSON object of its keys (what the body has beyond columns and tuple), or null: for SQL's json_extract and instr. */
export function residueObject(layoutText: string, residue: string | null): string | null {
  if (residue === null) return null;
  const layout = JSON.parse(layoutText) as LayoutEntry[] | 'verbatim';
  if (layout === 'verbatim') return residue;
  const values = JSON.parse(residue) as unknown[];
  let next = 0;
  const parts: string[] = [];
  for (const entry of layout) {
    if (typeof entry === 'string') continue;
    if (entry.length === 1) parts.push(`${JSON.stringify(entry[0])}:${JSON.stringify(values[next++])}`);
    else if (entry.length === 3) parts.push(`${JSON.stringify(entry[0])}:{${(entry[2] as string[]).map((x) => `${JSON.stringify(x)}:${JSON.stringify(values[next++])}`).join(',')}}`);
  }
  return `{${parts.join(',')}}`;
}

function columnText(k: string, p: EventColumns, tuple: ContextTuple): string {
  if (k === 'timestamp') return JSON.stringify(iso(p.ts_ms));
  if (k === 'context') return tuple[6] ?? 'null';
  if (k in TUPLE_INDEX) return JSON.stringify(tuple[TUPLE_INDEX[k]!]);
  if (k === 'success') return p.success === null ? 'null' : p.success ? 'true' : 'false';
  return JSON.stringify((p as unknown as Record<string, unknown>)[k] ?? null);
}

/** The columns of an event as ingest stores them (what eventValues wrote before, decoded). */
export function columnsOf(e: {
  event_id: string; event: string; source: string; timestamp: string; session_id?: string | null; run_id?: string | null; task_id?: string | null; label?: string | null; project?: string | null;
  tool_name?: string | null; tool_use_id?: string | null; success?: boolean | null; duration_ms?: number | null; exit_code?: number | null; error?: string | null; model?: string | null;
  usage?: { input_tokens?: number; output_tokens?: number; cache_creation_input_tokens?: number; cache_read_input_tokens?: number } | null; cost_usd?: number | null; num_turns?: number | null;
}): EventColumns {
  const u = e.usage ?? {};
  return {
    event_id: e.event_id,
    event: e.event,
    source: e.source,
    ts_ms: Date.parse(e.timestamp),
    session_id: e.session_id ?? null,
    run_id: e.run_id ?? null,
    task_id: e.task_id ?? null,
    label: e.label ?? null,
    project: e.project ?? null,
    tool_name: e.tool_name ?? null,
    tool_use_id: e.tool_use_id ?? null,
    success: e.success === undefined || e.success === null ? null : e.success ? 1 : 0,
    duration_ms: e.duration_ms ?? null,
    exit_code: e.exit_code ?? null,
    error: e.error ?? null,
    model: e.model ?? null,
    input_tokens: u.input_tokens ?? null,
    output_tokens: u.output_tokens ?? null,
    cache_creation_input_tokens: u.cache_creation_input_tokens ?? null,
    cache_read_input_tokens: u.cache_read_input_tokens ?? null,
    cost_usd: e.cost_usd ?? null,
    num_turns: e.num_turns ?? null,
  };
}

/**
 * A fact's state (fold.ts's JSON object) as its key list (interned: a few
 * distinct ones) and a JSON array of the values; anything but a plain object
 * stays whole under the shape "raw".
 */
export function splitState(state: unknown): { shape: string; vals: string } {
  if (!isPlainObject(state)) return { shape: '"raw"', vals: JSON.stringify(state) ?? 'null' };
  const keys = Object.keys(state).filter((k) => state[k] !== undefined);
  return { shape: JSON.stringify(keys), vals: JSON.stringify(keys.map((k) => state[k])) };
}

/** The state splitState was given (as JSON.parse(JSON.stringify(state)) would return it). */
export function joinState(shape: string, vals: string): unknown {
  const keys = JSON.parse(shape) as string[] | 'raw';
  const values = JSON.parse(vals) as unknown;
  if (keys === 'raw') return values;
  const out: Record<string, unknown> = {};
  (keys as string[]).forEach((k, i) => Object.defineProperty(out, k, { value: (values as unknown[])[i], enumerable: true, writable: true, configurable: true }));
  return out;
}

/**
 * A fact's key (a tool_use_id, a request id, an OTel series: 30–40 characters, the longest part of
 * a fact row and of its primary key) as both stores keep it: the top 52 bits of its SHA-256, a
 * whole number that JS, SQLite and PostgreSQL all hold exactly. It only has to tell apart the facts
 * of one session and kind (the rest of the primary key): even a session of 20,000 facts has a chance
 * of about 10^-8 that two of its keys share a hash. FACT_KEY_HASH_SQL is the same in PostgreSQL.
 */
export function factKeyHash(key: string): number {
  const d = createHash('sha256').update(key, 'utf8').digest();
  return d.readUInt32BE(0) * 2 ** 20 + (d.readUInt32BE(4) >>> 12);
}

/** factKeyHash in PostgreSQL, of a text expression: the first 13 hex digits of its SHA-256. */
export const FACT_KEY_HASH_SQL = (x: string) => `('x' || substr(encode(sha256(convert_to(${x}, 'UTF8')), 'hex'), 1, 13))::bit(52)::bigint`;
