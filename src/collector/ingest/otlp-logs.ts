/**
 * Claude Code's OTel log records (scope `com.anthropic.claude_code.events`) →
 * the event model. Ids are derived from the record's natural key, so a replayed
 * export is a duplicate: `api_request` by session and request id, the others by
 * session, name, sequence and time.
 *
 * - `api_request` → a `usage` event: the request's tokens and Claude Code's own
 *   cost (`cost_source: claude_code`), keyed by request id like the transcript's
 *   usage of the same request (one fact, see facts.ts);
 * - `tool_result` → a `tool_result` event (one tool call with the hooks' PostToolUse);
 * - `api_error` → an `api_error` event carrying the error on the session;
 * - `user_prompt` → a `user_prompt` event, metadata only (the length, never the text);
 * - `tool_decision` → a `tool_decision` event (accept/reject and its source).
 * Other records are skipped and counted; a record without `session.id` is rejected.
 */
import { SCHEMA_VERSION, deterministicId, isSource, type HarnessEvent, type Source } from '../../event';
import { arr, attributes, nanosToMs, num, resourceContext, str } from './otlp';

export interface Mapped {
  events: unknown[];
  /** Records refused (no session id, unreadable): reported as partial success. */
  rejected: number;
  /** Records read and deliberately not kept (names we do not map). */
  ignored: number;
  reasons: string[];
}

const MAPPED = new Set(['api_request', 'api_error', 'tool_result', 'user_prompt', 'tool_decision']);

/** `claude_code.api_request` or the `event.name` attribute → `api_request`. */
function recordName(body: unknown, a: Map<string, unknown>): string | undefined {
  const b = str((body as { stringValue?: unknown } | undefined)?.stringValue) ?? str(a.get('event.name'));
  return b?.replace(/^claude_code\./, '');
}

const bool = (v: unknown): boolean | undefined => (v === true || v === 'true' ? true : v === false || v === 'false' ? false : undefined);

export function logsToEvents(request: Record<string, unknown>, receivedMs: number): Mapped {
  const out: Mapped = { events: [], rejected: 0, ignored: 0, reasons: [] };
  const reason = (r: string) => {
    if (out.reasons.length < 3 && !out.reasons.includes(r)) out.reasons.push(r);
  };
  for (const rl of arr(request.resourceLogs)) {
    const res = resourceContext(rl.resource);
    const records = arr(rl.scopeLogs).flatMap((sl) => arr(sl.logRecords));
    const parsed = records.map((r) => ({ r, a: attributes(r.attributes) }));
    // claude -p marks its requests query_source=sdk: the whole session is headless (api), like the hooks' entrypoint.
    const headless = new Set<string>();
    for (const { a } of parsed) if (a.get('query_source') === 'sdk') headless.add(String(a.get('session.id')));
    for (const { r, a } of parsed) {
      const name = recordName(r.body, a);
      const session = str(a.get('session.id'));
      if (!name) {
        out.rejected++;
        reason('a log record without a body or event.name');
        continue;
      }
      if (!MAPPED.has(name)) {
        out.ignored++;
        continue;
      }
      if (!session) {
        out.rejected++;
        reason(`${name}: no session.id attribute`);
        continue;
      }
      const tsMs = nanosToMs(r.timeUnixNano) ?? (Date.parse(String(a.get('event.timestamp') ?? '')) || undefined) ?? nanosToMs(r.observedTimeUnixNano) ?? receivedMs;
      const source: Source = res.source && isSource(res.source) ? res.source : headless.has(session) ? 'api' : 'interactive';
      const seq = str(a.get('event.sequence')) ?? '';
      const e: HarnessEvent = {
        schema_version: SCHEMA_VERSION,
        event_id: '',
        event: name,
        source,
        timestamp: new Date(tsMs).toISOString(),
        session_id: session,
        attrs: { via: 'otel' },
        context: { claude_version: res.claudeVersion, host: res.host },
      };
      if (res.runId) e.run_id = res.runId;
      if (res.taskId) e.task_id = res.taskId;
      if (res.label) e.label = res.label;
      if (res.project) e.project = res.project;
      const requestId = str(a.get('request_id'));
      const promptId = str(a.get('prompt.id'));
      if (promptId) e.attrs!.prompt_id = promptId.slice(0, 128);
      switch (name) {
        case 'api_request': {
          e.event = 'usage';
          e.model = str(a.get('model'));
          e.usage = {
            input_tokens: Math.max(0, Math.round(num(a.get('input_tokens')) ?? 0)),
            output_tokens: Math.max(0, Math.round(num(a.get('output_tokens')) ?? 0)),
            cache_creation_input_tokens: Math.max(0, Math.round(num(a.get('cache_creation_tokens')) ?? 0)),
            cache_read_input_tokens: Math.max(0, Math.round(num(a.get('cache_read_tokens')) ?? 0)),
          };
          const micros = num(a.get('cost_usd_micros'));
          const cost = micros !== undefined ? micros / 1e6 : num(a.get('cost_usd'));
          if (cost !== undefined && cost >= 0) {
            e.cost_usd = cost;
            e.cost_source = 'claude_code';
          }
          e.duration_ms = num(a.get('duration_ms'));
          if (requestId) e.request_id = requestId;
          e.event_id = deterministicId('otel', session, 'api_request', requestId ?? `${seq}:${tsMs}`);
          break;
        }
        case 'api_error': {
          const status = str(a.get('status_code'));
          const msg = str(a.get('error')) ?? 'API error';
          e.error = (status ? `${status} ${msg}` : msg).slice(0, 4096);
          e.model = str(a.get('model'));
          e.duration_ms = num(a.get('duration_ms'));
          if (requestId) e.request_id = requestId;
          const attempt = num(a.get('attempt'));
          if (attempt !== undefined) e.attrs!.attempt = attempt;
          e.event_id = deterministicId('otel', session, name, seq, String(tsMs));
          break;
        }
        case 'tool_result': {
          e.tool_name = str(a.get('tool_name'));
          e.tool_use_id = str(a.get('tool_use_id'));
          e.success = bool(a.get('success')) ?? null;
          e.duration_ms = num(a.get('duration_ms'));
          const err = str(a.get('error'));
          if (err && e.success === false) e.error = err.slice(0, 4096);
          for (const k of ['tool_input_size_bytes', 'tool_result_size_bytes'] as const) {
            const n = num(a.get(k));
            if (n !== undefined) e.attrs![k] = n;
          }
          e.event_id = deterministicId('otel', session, name, e.tool_use_id ?? `${seq}:${tsMs}`);
          break;
        }
        case 'tool_decision': {
          e.tool_name = str(a.get('tool_name'));
          e.tool_use_id = str(a.get('tool_use_id'));
          for (const k of ['decision', 'source'] as const) {
            const v = str(a.get(k));
            if (v) e.attrs![k] = v.slice(0, 64);
          }
          e.event_id = deterministicId('otel', session, name, e.tool_use_id ?? '', seq, String(tsMs));
          break;
        }
        case 'user_prompt': {
          // Metadata only: the prompt's length. Its text (sent when OTEL_LOG_USER_PROMPTS=1) is never kept.
          const len = num(a.get('prompt_length'));
          if (len !== undefined) e.attrs!.prompt_length = len;
          e.event_id = deterministicId('otel', session, name, promptId ?? '', seq, String(tsMs));
          break;
        }
      }
      if (e.duration_ms !== undefined && (e.duration_ms === null || e.duration_ms < 0)) delete e.duration_ms;
      out.events.push(e);
    }
  }
  return out;
}
