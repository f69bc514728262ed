/**
 * Claude Code's OTLP spans (`CLAUDE_CODE_ENHANCED_TELEMETRY_BETA=1
 * OTEL_TRACES_EXPORTER=otlp`) → the event model, decoded by otlp.ts like logs
 * and metrics. They split a tool call into waiting for a person and running,
 * and give each API request and turn its own duration:
 *
 * - `claude_code.tool` → `tool_span` (tool_use_id, tool_name, the whole call's duration);
 * - `claude_code.tool.blocked_on_user` → `tool_wait` (the wait for a permission answer,
 *   decision, source), joined to its tool call through the parent span's tool_use_id;
 * - `claude_code.tool.execution` → `tool_execution` (the run, success);
 * - `claude_code.llm_request` → `llm_request` (request_id, model, duration, ttft_ms);
 *   its tokens and cost come from the `api_request` log, not from here;
 * - `claude_code.interaction` → `interaction` (one turn).
 * Ids derive from trace and span id, so a replayed export is a duplicate. A
 * span without session.id is rejected; a blocked_on_user span whose parent is
 * not in the same export is kept without a tool_use_id (a wait marker).
 */
import { SCHEMA_VERSION, deterministicId, isSource, type HarnessEvent, type Source } from '../../event';
import { arr, attributes, nanosToMs, num, resourceContext, str } from './otlp';
import type { Mapped } from './otlp-logs';

const NAMES: Record<string, string> = {
  'claude_code.tool': 'tool_span',
  'claude_code.tool.blocked_on_user': 'tool_wait',
  'claude_code.tool.execution': 'tool_execution',
  'claude_code.llm_request': 'llm_request',
  'claude_code.interaction': 'interaction',
};

const bool = (v: unknown): boolean | undefined => (v === true || v === 'true' ? true : v === false || v === 'false' ? false : undefined);

export function tracesToEvents(request: Record<string, unknown>, receivedMs: number): Mapped {
  const out: Mapped = { events: [], rejected: 0, ignored: 0, reasons: [] };
  const reason = (r: string) => {
    if (out.reasons.length < 3 && !out.reasons.includes(r)) out.reasons.push(r);
  };
  for (const rs of arr(request.resourceSpans)) {
    const res = resourceContext(rs.resource);
    const spans = arr(rs.scopeSpans).flatMap((ss) => arr(ss.spans)).map((s) => ({ s, a: attributes(s.attributes) }));
    // Tool calls by span id, so a wait or a run finds its call's tool_use_id.
    const toolOf = new Map<string, string>();
    for (const { s, a } of spans) {
      const id = str(a.get('tool_use_id')) ?? str(a.get('gen_ai.tool.call.id'));
      if (id && typeof s.spanId === 'string') toolOf.set(s.spanId, id);
    }
    for (const { s, a } of spans) {
      const name = NAMES[String(s.name ?? '')];
      if (!name) {
        out.ignored++;
        continue;
      }
      const session = str(a.get('session.id'));
      if (!session) {
        out.rejected++;
        reason(`${String(s.name)}: no session.id attribute`);
        continue;
      }
      const startMs = nanosToMs(s.startTimeUnixNano) ?? receivedMs;
      const endMs = nanosToMs(s.endTimeUnixNano);
      const duration = num(a.get('duration_ms')) ?? num(a.get('interaction.duration_ms')) ?? (endMs !== undefined ? Math.max(0, endMs - startMs) : undefined);
      const source: Source = res.source && isSource(res.source) ? res.source : a.get('query_source_safe') === 'sdk' || a.get('terminal.type') === 'non-interactive' ? 'api' : 'interactive';
      const e: HarnessEvent = {
        schema_version: SCHEMA_VERSION,
        event_id: deterministicId('otel-span', String(s.traceId ?? ''), String(s.spanId ?? ''), name, String(startMs)),
        event: name,
        source,
        timestamp: new Date(startMs).toISOString(),
        session_id: session,
        attrs: { via: 'otel', ...(typeof s.traceId === 'string' ? { trace_id: s.traceId.slice(0, 64) } : {}), ...(typeof s.spanId === 'string' ? { span_id: s.spanId.slice(0, 32) } : {}), ...(typeof s.parentSpanId === 'string' && s.parentSpanId ? { parent_span_id: s.parentSpanId.slice(0, 32) } : {}) },
        context: { claude_version: res.claudeVersion, host: res.host },
      };
      if (res.runId) e.run_id = res.runId;
      if (res.taskId) e.task_id = res.taskId;
      if (res.label) e.label = res.label;
      if (res.project) e.project = res.project;
      if (duration !== undefined && duration >= 0) e.duration_ms = duration;
      const toolUseId = str(a.get('tool_use_id')) ?? str(a.get('gen_ai.tool.call.id')) ?? (typeof s.parentSpanId === 'string' ? toolOf.get(s.parentSpanId) : undefined);
      if (name.startsWith('tool_') && toolUseId) e.tool_use_id = toolUseId.slice(0, 256);
      const tool = str(a.get('tool_name')) ?? str(a.get('gen_ai.tool.name'));
      if (tool) e.tool_name = tool.slice(0, 256);
      if (name === 'tool_wait') for (const k of ['decision', 'source'] as const) {
        const v = str(a.get(k));
        if (v) e.attrs![k] = v.slice(0, 64);
      }
      if (name === 'tool_execution') {
        const ok = bool(a.get('success'));
        if (ok !== undefined) e.success = ok;
      }
      if (name === 'llm_request') {
        e.model = str(a.get('model')) ?? str(a.get('gen_ai.request.model'));
        const rid = str(a.get('request_id')) ?? str(a.get('gen_ai.response.id'));
        if (rid) e.request_id = rid.slice(0, 256);
        for (const k of ['ttft_ms', 'attempt'] as const) {
          const v = num(a.get(k));
          if (v !== undefined) e.attrs![k] = v;
        }
        const stop = str(a.get('stop_reason'));
        if (stop) e.attrs!.stop_reason = stop.slice(0, 64);
        if (bool(a.get('success')) === false) e.success = false;
      }
      out.events.push(e);
    }
  }
  return out;
}
