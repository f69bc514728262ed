/**
 * PostgreSQL's compact event row (migration 8), built from an event with the
 * same codec as SQLite's (event-codec.ts): the columns, the interned session
 * key, layout and context (by id, event-parts-postgres.ts), and the residue as
 * a JSON object.
 * Pure: the ids come from the caller.
 */
import type { HarnessEvent } from '../../event';
import { sessionKey } from '../normalize';
import { factOf, type FactId } from '../fold';
import { columnsOf, encodeParts, factKeyHash, residueObjectOf, type EventColumns } from './event-codec';
import { VERBATIM_LAYOUT_ID } from './event-parts-postgres';

/** harness_events columns an insert writes (json_populate_recordset takes them by name). */
export const PG_EVENT_COLUMNS = [
  'event_id', 'event', 'source', 'ts_ms', 'received_ms', 'skey', 'session_id', 'run_id', 'task_id', 'label', 'project', 'tool_name', 'tool_use_id', 'success',
  'duration_ms', 'exit_code', 'error', 'model', 'input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens', 'cost_usd', 'num_turns',
  'layout_id', 'context_id', 'residue',
] as const;

/** An event encoded, its parts still as text. `nul`: some text holds U+0000, which PostgreSQL cannot store. */
export interface CompactRow {
  event: HarnessEvent;
  columns: EventColumns & { received_ms: number };
  sessionKey: string;
  layout: string;
  context: string | null;
  residue: string | null;
  nul: boolean;
}

const hasNul = (s: string | null) => s !== null && s.includes('\\u0000');

export function compactRow(e: HarnessEvent, receivedMs: number): CompactRow {
  const c = columnsOf(e);
  const parts = encodeParts(e as unknown as Record<string, unknown>, c);
  const layout = JSON.stringify(parts.layout);
  const context = parts.tuple[6];
  const residue = residueObjectOf(parts.layout, parts.residue);
  const key = sessionKey(e);
  // Every string of the event is in a column, the layout (keys), the context or the residue.
  const nul = hasNul(layout) || hasNul(context) || hasNul(residue) || [c.event_id, c.event, c.source, key, c.session_id, c.run_id, c.task_id, c.label, c.project, c.tool_name, c.tool_use_id, c.error, c.model].some((v) => v !== null && v.includes('\u0000'));
  return { event: e, columns: { ...c, received_ms: receivedMs }, sessionKey: key, layout, context, residue, nul };
}

/**
 * The row to insert. When its layout or context has no id (a digest another text holds, see
 * PostgresEventParts.ids), the event is stored whole under the layout "verbatim".
 */
export function withPartIds(r: CompactRow, ids: ReadonlyMap<string, number>): Record<string, unknown> {
  const skey = ids.get(r.sessionKey);
  // Only a SHA-256 collision could leave a session key without its id.
  if (skey === undefined) throw new Error(`session key without an id: ${r.sessionKey}`);
  const layoutId = ids.get(r.layout);
  const contextId = r.context === null ? null : ids.get(r.context);
  if (layoutId === undefined || contextId === undefined) return { ...r.columns, skey, layout_id: VERBATIM_LAYOUT_ID, context_id: null, residue: JSON.stringify(r.event) };
  return { ...r.columns, skey, layout_id: layoutId, context_id: contextId, residue: r.residue };
}

/** The texts a batch needs ids for. */
export function partTexts(rows: CompactRow[]): string[] {
  const out: string[] = [];
  for (const r of rows) {
    out.push(r.sessionKey, r.layout);
    if (r.context !== null) out.push(r.context);
  }
  return out;
}

/** A fact's kind as harness_facts stores it (migration 9). */
export const FACT_KIND_CODES: Record<FactId['kind'], number> = { usage: 1, tool: 2, metric: 3 };

/** The fact texts a batch needs ids for: each reported fact's session id (harness_facts.sid). */
export function factPartTexts(events: Iterable<HarnessEvent>): string[] {
  const out: string[] = [];
  for (const e of events) {
    const f = factOf(e);
    if (f) out.push(f.session_id);
  }
  return out;
}

/** A fact's primary key as harness_facts holds it (migration 9): its session id's part id, its kind's code, its key's hash. */
export function factKeyOf(f: FactId, ids: ReadonlyMap<string, number>): { sid: number; kind: number; khash: number } {
  const sid = ids.get(f.session_id);
  // As for session keys, only a SHA-256 collision could leave one without its id.
  if (sid === undefined) throw new Error(`fact session without an id: ${f.session_id}`);
  return { sid, kind: FACT_KIND_CODES[f.kind], khash: factKeyHash(f.key) };
}

/** The text of factKeyOf's answer as the database gives it back (bigint as text), for matching rows to facts. */
export const factKeyText = (sid: number | string, kind: number | string, khash: number | string) => `${sid}:${kind}:${khash}`;
