/**
 * Request body → validated events, pure. Accepts one event, a batch
 * `{"events":[…]}`, and the bare shape a shell script sends with no event_id
 * (whose id is derived from its canonical body, so a retried curl is one event).
 */
import * as z from 'zod';
import { BatchSchema, canonicalJson, deterministicId, HarnessEventSchema, MAX_BATCH_EVENTS, SOURCES, type HarnessEvent } from '../event';

export interface Rejection {
  index: number;
  event_id?: string;
  reason: string;
}

export type ParsedBody =
  | { kind: 'single'; event: HarnessEvent }
  | { kind: 'batch'; events: Array<{ index: number; event: HarnessEvent }>; rejected: Rejection[] }
  | { kind: 'invalid'; status: 400 | 422; reason: string; rejected?: Rejection[] };

/** Short, single-line reasons: `field: message; field: message`. */
export function describeIssues(error: z.core.$ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

/** Fills what a bare shell body leaves out: event_id (derived) and timestamp (receive time). */
export function completeBare(raw: Record<string, unknown>, receivedAt: Date): Record<string, unknown> {
  if (raw.event_id !== undefined) return raw;
  // The id comes from the body as sent, before the timestamp is filled in.
  const id = deterministicId('bare', canonicalJson(raw));
  const out: Record<string, unknown> = { ...raw, event_id: id };
  if (out.timestamp === undefined) out.timestamp = receivedAt.toISOString();
  return out;
}

export function validateEvent(raw: unknown, receivedAt: Date): { ok: true; event: HarnessEvent } | { ok: false; reason: string; event_id?: string } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return { ok: false, reason: 'expected a JSON object' };
  const completed = completeBare(raw as Record<string, unknown>, receivedAt);
  const r = HarnessEventSchema.safeParse(completed);
  const id = typeof completed.event_id === 'string' ? completed.event_id : undefined;
  if (!r.success) {
    const reason = r.error.issues.some((i) => i.path[0] === 'source' && i.code === 'invalid_value')
      ? `source: must be one of ${SOURCES.join(', ')}, got ${JSON.stringify(completed.source)}`
      : describeIssues(r.error);
    return { ok: false, reason, event_id: id };
  }
  return { ok: true, event: r.data };
}

export function parseBody(body: unknown, receivedAt = new Date()): ParsedBody {
  if (body !== null && typeof body === 'object' && !Array.isArray(body) && 'events' in body) {
    const b = BatchSchema.safeParse(body);
    if (!b.success) {
      const n = Array.isArray((body as { events: unknown }).events) ? ((body as { events: unknown[] }).events.length) : -1;
      const reason = n === 0 ? 'events: empty batch' : n > MAX_BATCH_EVENTS ? `events: at most ${MAX_BATCH_EVENTS} per batch, got ${n}` : describeIssues(b.error);
      return { kind: 'invalid', status: 400, reason };
    }
    const events: Array<{ index: number; event: HarnessEvent }> = [];
    const rejected: Rejection[] = [];
    b.data.events.forEach((raw, index) => {
      const v = validateEvent(raw, receivedAt);
      if (v.ok) events.push({ index, event: v.event });
      else rejected.push({ index, event_id: v.event_id, reason: v.reason });
    });
    if (events.length === 0) return { kind: 'invalid', status: 422, reason: 'every event in the batch was rejected', rejected };
    return { kind: 'batch', events, rejected };
  }
  if (Array.isArray(body)) return { kind: 'invalid', status: 400, reason: 'expected an event object or {"events":[...]}, got an array' };
  const v = validateEvent(body, receivedAt);
  if (!v.ok) return { kind: 'invalid', status: 422, reason: v.reason };
  return { kind: 'single', event: v.event };
}

/**
 * The session an event folds into: a `claude-metrics run` (every hook inside it
 * carries its run_id), else the Claude Code session, else a shell task.
 */
export function sessionKey(e: HarnessEvent): string {
  if (e.run_id) return `run:${e.run_id}`;
  if (e.session_id) return `session:${e.session_id}`;
  if (e.task_id) return `task:${e.source}:${e.label ?? ''}:${e.task_id}`;
  return `event:${e.event_id}`;
}

/** Events that end a session or task. */
export const COMPLETION_EVENTS = new Set(['ralph_task_completed', 'SessionEnd', 'task_completed', 'run_completed']);
/**
 * Whether an event completes its session. An API request (`api_request`, from the
 * Python middleware) that belongs to no session, job or run is a task of its own:
 * it completes its own row at once, with its outcome and duration, rather than
 * leaving one "active" session per request behind.
 */
export function completesSession(e: HarnessEvent): boolean {
  return COMPLETION_EVENTS.has(e.event) || (e.event === 'api_request' && !e.run_id && !e.session_id && !e.task_id);
}
/** Tool calls: the hooks' PostToolUse(Failure) and OTel's tool_result (one call counted once, see facts.ts). */
export const TOOL_EVENTS = new Set(['PostToolUse', 'PostToolUseFailure', 'tool_result']);
