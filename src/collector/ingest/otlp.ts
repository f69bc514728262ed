/**
 * OTLP/HTTP bodies → plain request objects, and the answers the spec asks for.
 * `application/json` and `application/x-protobuf` (decoded with protobufjs from
 * the official OTLP definitions, see proto/SOURCE.md), optionally gzipped. Both
 * encodings give the same object shape (lowerCamelCase fields, AnyValue as
 * `{stringValue|intValue|…}`, 64-bit integers as strings or numbers), so the
 * mappers in otlp-logs.ts and otlp-metrics.ts read one shape.
 */
import { gunzipSync } from 'node:zlib';
import * as protobuf from 'protobufjs/light';
import { OTLP_DESCRIPTOR } from './otlp-proto';

export type Signal = 'logs' | 'metrics' | 'traces';
export type Encoding = 'json' | 'protobuf';

/** Largest OTLP body, compressed or not (Claude Code's batches are far smaller). */
export const MAX_OTLP_BYTES = 4 * 1024 * 1024;

const NAMES: Record<Signal, { request: string; response: string }> = {
  logs: { request: 'opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest', response: 'opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse' },
  metrics: { request: 'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest', response: 'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse' },
  traces: { request: 'opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest', response: 'opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse' },
};

let types: { root: protobuf.Root; status: protobuf.Type } | undefined;
function load() {
  if (!types) {
    const root = protobuf.Root.fromJSON(OTLP_DESCRIPTOR as protobuf.INamespace);
    // google.rpc.Status, what an OTLP/HTTP error body carries (code, message; details left out).
    const status = new protobuf.Type('Status').add(new protobuf.Field('code', 1, 'int32')).add(new protobuf.Field('message', 2, 'string'));
    new protobuf.Root().define('google.rpc').add(status);
    types = { root, status };
  }
  return types;
}

export type Decoded = { ok: true; encoding: Encoding; request: Record<string, unknown> } | { ok: false; status: 400 | 413 | 415; encoding: Encoding; reason: string };

/** The encoding a Content-Type names, or null when it is neither OTLP encoding. */
export function encodingOf(contentType: string | undefined): Encoding | null {
  const t = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (t === 'application/json') return 'json';
  if (t === 'application/x-protobuf' || t === 'application/protobuf') return 'protobuf';
  return null;
}

/** Decodes one export request body (after gunzip when `content-encoding: gzip`). Never throws. */
export function decodeOtlp(signal: Signal, contentType: string | undefined, contentEncoding: string | undefined, body: Buffer): Decoded {
  const encoding = encodingOf(contentType);
  if (!encoding) return { ok: false, status: 415, encoding: 'json', reason: `expected Content-Type application/json or application/x-protobuf, got ${(contentType ?? '').split(';')[0] || 'none'}` };
  let raw = body;
  const ce = (contentEncoding ?? 'identity').trim().toLowerCase();
  if (ce === 'gzip') {
    try {
      raw = gunzipSync(body, { maxOutputLength: MAX_OTLP_BYTES });
    } catch (err) {
      const tooLarge = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || /maxOutputLength|larger than/i.test((err as Error).message);
      return tooLarge
        ? { ok: false, status: 413, encoding, reason: `gzip body inflates past ${MAX_OTLP_BYTES} bytes; export smaller batches` }
        : { ok: false, status: 400, encoding, reason: `invalid gzip body: ${(err as Error).message}` };
    }
  } else if (ce !== 'identity' && ce !== '') {
    return { ok: false, status: 415, encoding, reason: `unsupported Content-Encoding ${ce}; send gzip or none` };
  }
  if (encoding === 'json') {
    let v: unknown;
    try {
      v = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      return { ok: false, status: 400, encoding, reason: `invalid JSON: ${(err as Error).message}` };
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return { ok: false, status: 400, encoding, reason: `expected an ${NAMES[signal].request.split('.').pop()} object` };
    return { ok: true, encoding, request: v as Record<string, unknown> };
  }
  try {
    const type = load().root.lookupType(NAMES[signal].request);
    const msg = type.decode(raw);
    const request = type.toObject(msg, { longs: String, enums: Number, bytes: String, defaults: false, arrays: true, oneofs: false }) as Record<string, unknown>;
    return { ok: true, encoding, request };
  } catch (err) {
    return { ok: false, status: 400, encoding, reason: `invalid protobuf ${NAMES[signal].request.split('.').pop()}: ${(err as Error).message}` };
  }
}

/** The 200 answer: an Export…ServiceResponse, with partial_success when something was rejected. */
export function successBody(signal: Signal, encoding: Encoding, rejected: number, message: string): { type: string; body: Buffer } {
  const field = signal === 'logs' ? 'rejectedLogRecords' : signal === 'traces' ? 'rejectedSpans' : 'rejectedDataPoints';
  const obj = rejected > 0 || message ? { partialSuccess: { [field]: rejected, errorMessage: message } } : {};
  if (encoding === 'json') return { type: 'application/json', body: Buffer.from(JSON.stringify(obj)) };
  const type = load().root.lookupType(NAMES[signal].response);
  return { type: 'application/x-protobuf', body: Buffer.from(type.encode(type.fromObject(obj)).finish()) };
}

/** A 4xx answer: google.rpc.Status in the request's encoding. */
export function errorBody(encoding: Encoding, status: number, message: string): { type: string; body: Buffer } {
  // gRPC codes: INVALID_ARGUMENT for a bad body, RESOURCE_EXHAUSTED for too large/busy, UNAUTHENTICATED.
  const code = status === 401 ? 16 : status === 413 || status === 503 ? 8 : 3;
  if (encoding === 'json') return { type: 'application/json', body: Buffer.from(JSON.stringify({ code, message })) };
  const t = load().status;
  return { type: 'application/x-protobuf', body: Buffer.from(t.encode(t.fromObject({ code, message })).finish()) };
}

// ---- reading the decoded shape ---------------------------------------------------------------

export type AnyValue = Record<string, unknown> | undefined;
export interface KeyValue {
  key?: string;
  value?: AnyValue;
}

/** An AnyValue as a plain JS value (64-bit ints as numbers; arrays and maps kept shallow). */
export function anyValue(v: AnyValue): unknown {
  if (!v || typeof v !== 'object') return undefined;
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return Number(v.doubleValue);
  if ('boolValue' in v) return v.boolValue === true || v.boolValue === 'true';
  if ('arrayValue' in v) return ((v.arrayValue as { values?: AnyValue[] })?.values ?? []).map(anyValue);
  return undefined;
}

/** Attributes as a map (the first of repeated keys wins). */
export function attributes(list: unknown): Map<string, unknown> {
  const m = new Map<string, unknown>();
  if (!Array.isArray(list)) return m;
  for (const kv of list as KeyValue[]) {
    if (kv && typeof kv.key === 'string' && !m.has(kv.key)) m.set(kv.key, anyValue(kv.value));
  }
  return m;
}

/** Unix nanoseconds (string or number) → milliseconds, or undefined when absent or zero. */
export function nanosToMs(v: unknown): number | undefined {
  if (v === undefined || v === null || v === '' || v === '0' || v === 0) return undefined;
  const s = String(v);
  if (!/^\d{1,20}$/.test(s)) return undefined;
  // Drop the last six digits instead of dividing a 19-digit number as a double.
  const ms = s.length > 6 ? Number(s.slice(0, -6)) : 0;
  return Number.isFinite(ms) && ms > 0 ? ms : undefined;
}

export const arr = (v: unknown): Array<Record<string, unknown>> => (Array.isArray(v) ? (v as Array<Record<string, unknown>>) : []);
export const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined);
export const num = (v: unknown): number | undefined => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
};

/** What a claude-metrics `run` (or the user) put in OTEL_RESOURCE_ATTRIBUTES for us. */
export interface ResourceContext {
  claudeVersion?: string;
  runId?: string;
  taskId?: string;
  label?: string;
  project?: string;
  source?: string;
  host?: string;
}

export function resourceContext(resource: unknown): ResourceContext {
  const a = attributes((resource as { attributes?: unknown } | undefined)?.attributes);
  const service = str(a.get('service.name'));
  return {
    claudeVersion: service === 'claude-code' ? str(a.get('service.version')) : undefined,
    runId: str(a.get('claude_metrics.run_id')),
    taskId: str(a.get('claude_metrics.task_id')),
    label: str(a.get('claude_metrics.label')),
    project: str(a.get('claude_metrics.project')),
    source: str(a.get('claude_metrics.source')),
    host: str(a.get('host.name')),
  };
}
