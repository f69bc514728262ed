/**
 * `emit --wire`: stdin holds events already in the wire format (one event or
 * `{"events":[…]}`), built by another producer (the Python middleware in
 * hooks-templates/api-harness) that could not reach the collector itself. They
 * are spooled and sent as they are: their event_id and timestamp are kept, so an
 * event that did reach the collector before the producer gave up counts once.
 *
 * Only the shape the spool and the collector's dedupe rely on is checked here
 * (emit never loads zod); the collector validates the rest and a rejected event
 * goes to the spool's dead/ with its reason.
 */
import { isSource } from '../ids';
import type { HarnessEvent } from '../event';

/** The spool names files after event ids: the collector's id alphabet, so no path tricks. */
const EVENT_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
export const MAX_WIRE_EVENTS = 10_000;

export interface WireParse {
  events: HarnessEvent[];
  /** One line per event left out, with its index. */
  problems: string[];
}

export function parseWireEvents(text: string): WireParse {
  const problems: string[] = [];
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    return { events: [], problems: [`stdin is not JSON: ${(err as Error).message}`] };
  }
  const list: unknown[] | null = Array.isArray(body)
    ? body
    : body !== null && typeof body === 'object' && Array.isArray((body as { events?: unknown }).events)
      ? (body as { events: unknown[] }).events
      : body !== null && typeof body === 'object'
        ? [body]
        : null;
  if (list === null) return { events: [], problems: ['expected an event object, {"events":[…]} or an array'] };
  if (list.length > MAX_WIRE_EVENTS) problems.push(`${list.length - MAX_WIRE_EVENTS} events past the first ${MAX_WIRE_EVENTS} left out`);
  const events: HarnessEvent[] = [];
  list.slice(0, MAX_WIRE_EVENTS).forEach((raw, i) => {
    const why = wireProblem(raw);
    if (why) problems.push(`event ${i}: ${why}`);
    else events.push(raw as HarnessEvent);
  });
  return { events, problems };
}

function wireProblem(raw: unknown): string | null {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return 'not an object';
  const e = raw as Record<string, unknown>;
  if (typeof e.event_id !== 'string' || !EVENT_ID_RE.test(e.event_id)) return 'event_id: missing or not [A-Za-z0-9._:-]{1,128}';
  if (typeof e.event !== 'string' || e.event === '') return 'event: missing';
  if (!isSource(e.source)) return `source: not a known source: ${JSON.stringify(e.source)}`;
  if (typeof e.timestamp !== 'string' || Number.isNaN(Date.parse(e.timestamp))) return 'timestamp: missing or not a date-time';
  return null;
}
