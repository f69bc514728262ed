/**
 * Claude Code's OTel metrics → `otel_metric` events, only those a session row
 * and Prometheus keep: lines of code (added/removed), commits, pull requests,
 * active time. Cost and token metrics are skipped on purpose: the log records
 * carry the same figures per request (and a request must count once).
 *
 * Claude Code exports delta sums by default; a cumulative exporter is handled
 * too (its series keeps its largest value since its start time, see facts.ts).
 * Ids include the series and its time window, so a replayed export changes nothing.
 */
import { SCHEMA_VERSION, deterministicId, isSource, type HarnessEvent, type Source } from '../../event';
import { arr, attributes, nanosToMs, num, resourceContext, str } from './otlp';
import type { Mapped } from './otlp-logs';

/** Metric name (and its `type` attribute) → the session column it adds to. */
function column(name: string, type: string | undefined): string | undefined {
  switch (name) {
    case 'claude_code.lines_of_code.count':
      return type === 'added' ? 'lines_added' : type === 'removed' ? 'lines_removed' : undefined;
    case 'claude_code.commit.count':
      return 'commits';
    case 'claude_code.pull_request.count':
      return 'pull_requests';
    case 'claude_code.active_time.total':
      return 'active_time_s';
    default:
      return undefined;
  }
}

const DELTA = 1;
const CUMULATIVE = 2;

export function metricsToEvents(request: Record<string, unknown>, receivedMs: number): Mapped {
  const out: Mapped = { events: [], rejected: 0, ignored: 0, reasons: [] };
  for (const rm of arr(request.resourceMetrics)) {
    const res = resourceContext(rm.resource);
    for (const sm of arr(rm.scopeMetrics)) {
      for (const m of arr(sm.metrics)) {
        const name = str(m.name) ?? '';
        const sum = (m.sum ?? undefined) as { dataPoints?: unknown; aggregationTemporality?: unknown } | undefined;
        const points = arr(sum?.dataPoints ?? (m.gauge as { dataPoints?: unknown } | undefined)?.dataPoints ?? (m.histogram as { dataPoints?: unknown } | undefined)?.dataPoints);
        const temporality = Number(sum?.aggregationTemporality ?? 0);
        for (const p of points) {
          const a = attributes(p.attributes);
          const type = str(a.get('type'));
          const col = sum ? column(name, type) : undefined;
          if (!col || (temporality !== DELTA && temporality !== CUMULATIVE)) {
            out.ignored++;
            continue;
          }
          const session = str(a.get('session.id'));
          if (!session) {
            out.rejected++;
            if (out.reasons.length < 3) out.reasons.push(`${name}: a data point without session.id`);
            continue;
          }
          const value = num(p.asDouble) ?? num(p.asInt);
          if (value === undefined || value < 0) {
            out.rejected++;
            if (out.reasons.length < 3) out.reasons.push(`${name}: a data point without a value`);
            continue;
          }
          const start = str(p.startTimeUnixNano) ?? '';
          const time = str(p.timeUnixNano) ?? '';
          const cumulative = temporality === CUMULATIVE;
          const series = `${col}|${type ?? ''}${cumulative ? `|${start}` : ''}`;
          const source: Source = res.source && isSource(res.source) ? res.source : 'interactive';
          const e: HarnessEvent = {
            schema_version: SCHEMA_VERSION,
            event_id: deterministicId('otel-metric', session, name, type ?? '', start, time),
            event: 'otel_metric',
            source,
            timestamp: new Date(nanosToMs(time) ?? receivedMs).toISOString(),
            session_id: session,
            attrs: { via: 'otel', metric: col, kind: type ?? null, value, series, cumulative },
            context: { claude_version: res.claudeVersion, host: res.host },
          };
          if (res.runId) e.run_id = res.runId;
          if (res.taskId) e.task_id = res.taskId;
          if (res.label) e.label = res.label;
          if (res.project) e.project = res.project;
          out.events.push(e);
        }
      }
    }
  }
  return out;
}
