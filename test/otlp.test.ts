/**
 * OTLP/HTTP ingest in `serve` (a real process on 127.0.0.1:0), fed with what
 * the real Claude Code 2.1.197 exported (test/fixtures/otlp, see SOURCE.md):
 * tokens and Claude Code's own cost per request, each request counted once when
 * the transcript reports it too, JSON and protobuf and gzip alike, replays
 * changing nothing, and every bad body a 4xx (or a counted skip), never a 5xx.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as protobuf from 'protobufjs/light';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OTLP_DESCRIPTOR } from '../src/collector/ingest/otlp-proto';
import { usageEventId } from '../src/ids';
import { getJson, postJson, ROOT, startServe, tempHome, waitFor, type ServeHandle, type TempHome } from './helpers/cli';
import { startPostgres, type PgCluster } from './helpers/postgres';

const FIX = join(ROOT, 'test', 'fixtures', 'otlp');
const exports197 = readFileSync(join(FIX, 'claude-2.1.197-otlp-json.sample.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { url: string; ct: string; body: string });
const logs197 = exports197.find((x) => x.url === '/v1/logs')!;
const metrics197 = exports197.find((x) => x.url === '/v1/metrics')!;
const SESSION = 'd1d41630-e609-4cb1-8ebb-babdd47aa2ba';
/** What Claude Code 2.1.197 itself reported for that run (total_cost_usd) and what the fake served. */
const TOTAL_COST = 0.054;
const SERVED = { input_tokens: 2400, output_tokens: 160, cache_creation_input_tokens: 6000, cache_read_input_tokens: 1000 };

const root = protobuf.Root.fromJSON(OTLP_DESCRIPTOR as protobuf.INamespace);
const LogsReq = root.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest');
const LogsResp = root.lookupType('opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse');
const MetricsReq = root.lookupType('opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest');
const toProtobuf = (type: protobuf.Type, json: string) => Buffer.from(type.encode(type.fromObject(JSON.parse(json) as Record<string, unknown>)).finish());

// Every case on SQLite and on PostgreSQL (a throw-away cluster, a fresh database per collector).
// (The body below is not indented for the wrapper, to keep merges of this file small.)
describe.each(['sqlite', 'postgres'] as const)('on %s', (backend) => {
let pg: PgCluster | undefined;
let dbs = 0;
const freshDb = async () => (backend === 'sqlite' ? join(home.home, `c-${++dbs}.db`) : pg!.createDb());
beforeAll(async () => {
  if (backend === 'postgres') pg = await startPostgres();
});
afterAll(async () => {
  await pg?.stop();
});

let home: TempHome;
let serve: ServeHandle | undefined;
let db = '';
beforeEach(async () => {
  home = tempHome('cm-otlp-');
  db = await freshDb();
  serve = await startServe(home.env, ['--db', db]);
});
/** Every byte the collector stored: the SQLite file and its WAL, or every row of every table. */
async function dumpDb(): Promise<string> {
  if (backend === 'sqlite') return readFileSync(db).toString('latin1') + (() => { try { return readFileSync(`${db}-wal`).toString('latin1'); } catch { return ''; } })();
  const tables = ['harness_events', 'harness_event_parts', 'harness_sessions', 'harness_facts', 'counters'];
  const rows = await pg!.query<{ t: string | null }>(new URL(db).pathname.slice(1), tables.map((t) => `SELECT string_agg(x::text, ' ') AS t FROM ${t} x`).join(' UNION ALL '));
  return rows.map((r) => r.t ?? '').join(' ');
}
afterEach(async () => {
  await serve?.stop();
  serve = undefined;
  home.cleanup();
});

async function post(path: string, body: Buffer | string, headers: Record<string, string>) {
  const r = await fetch(`${serve!.url}${path}`, { method: 'POST', headers, body: typeof body === 'string' ? body : new Uint8Array(body) });
  const buf = Buffer.from(await r.arrayBuffer());
  return { status: r.status, type: r.headers.get('content-type') ?? '', buf, json: () => JSON.parse(buf.toString('utf8')) as any };
}
const session = async () => (await getJson(`${serve!.url}/api/sessions`)).body.sessions.find((s: { claude_session_id: string }) => s.claude_session_id === SESSION);
const metric = async (line: RegExp) => {
  const text = (await getJson(`${serve!.url}/metrics`)).body as string;
  return text.split('\n').filter((l) => line.test(l)).reduce((a, l) => a + Number(l.split(' ').pop()), 0);
};

/** The transcript's usage events for the same two requests, as the hooks' reader sends them (our estimate). */
function transcriptUsage(estimate: number | null, model = 'claude-opus-4-8') {
  return ['2', '3'].map((n) => ({
    event_id: usageEventId(SESSION, `msg_fake_${n}`, `req_fake_${n}`),
    event: 'usage', source: 'api', timestamp: '2026-12-01T20:33:39.000Z', session_id: SESSION, project: 'demo-app', model,
    message_id: `msg_fake_${n}`, request_id: `req_fake_${n}`,
    usage: { input_tokens: 1200, output_tokens: 80, cache_creation_input_tokens: 3000, cache_read_input_tokens: 500 },
    cost_usd: estimate, cost_source: estimate === null ? null : 'estimate',
  }));
}

describe('OTLP/HTTP ingest of Claude Code’s own telemetry', () => {
  it('JSON logs and metrics: tokens = what the API served, cost = Claude Code’s total_cost_usd, source claude_code; a replay changes nothing', async () => {
    const l = await post('/v1/logs', logs197.body, { 'content-type': 'application/json' });
    expect(l.status).toBe(200);
    expect(l.type).toMatch(/application\/json/);
    expect(l.json()).toEqual({}); // full success: no partial_success
    expect((await post('/v1/metrics', metrics197.body, { 'content-type': 'application/json' })).status).toBe(200);
    const s = await session();
    expect(s).toMatchObject({ ...SERVED, cost_source: 'claude_code', model: 'claude-opus-4-8', source: 'api', tool_calls_count: 1, tool_failures: 0, unpriced_requests: 0, active_time_s: 0.646 });
    expect(s.cost_usd).toBeCloseTo(TOTAL_COST, 9);
    // Replayed exports (an exporter retry) are duplicates.
    await post('/v1/logs', logs197.body, { 'content-type': 'application/json' });
    await post('/v1/metrics', metrics197.body, { 'content-type': 'application/json' });
    expect(await session()).toEqual(s);
    expect(await metric(/^claude_harness_tokens_total\{.*kind="cache_creation"/)).toBe(6000);
    expect(await metric(/^claude_harness_cost_usd_total\{/)).toBeCloseTo(TOTAL_COST, 9);
    expect(await metric(/^claude_harness_active_time_seconds_total\{/)).toBeCloseTo(0.646, 9);
    const tools = (await getJson(`${serve!.url}/api/summary`)).body.top_tools;
    expect(tools).toEqual([{ tool: 'Bash', calls: 1, failures: 0, avg_duration_ms: 136 }]);
  });

  it('the real 2.1.331 protobuf export: tokens = served, cost = its total_cost_usd 0.043', async () => {
    const posts = readFileSync(join(FIX, 'claude-2.1.331-otlp-protobuf.sample.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { url: string; ct: string; body_base64: string });
    for (const p of posts) expect((await post(p.url, Buffer.from(p.body_base64, 'base64'), { 'content-type': p.ct })).status).toBe(200);
    const s = (await getJson(`${serve!.url}/api/sessions`)).body.sessions;
    expect(s).toHaveLength(1);
    expect(s[0]).toMatchObject({ ...SERVED, model: 'claude-opus-5-5', cost_source: 'claude_code', tool_calls_count: 1, source: 'api' });
    expect(s[0].cost_usd).toBeCloseTo(0.043, 9);
  });

  it('protobuf and gzip bodies give the same session as JSON; the answer is protobuf for a protobuf request', async () => {
    const pb = toProtobuf(LogsReq, logs197.body);
    const r = await post('/v1/logs', gzipSync(pb), { 'content-type': 'application/x-protobuf', 'content-encoding': 'gzip' });
    expect(r.status).toBe(200);
    expect(r.type).toBe('application/x-protobuf');
    expect(LogsResp.toObject(LogsResp.decode(r.buf))).toEqual({});
    expect((await post('/v1/metrics', toProtobuf(MetricsReq, metrics197.body), { 'content-type': 'application/x-protobuf' })).status).toBe(200);
    const viaProtobuf = await session();
    // The same records as JSON are duplicates of the protobuf ones (same ids from the same natural keys).
    await post('/v1/logs', gzipSync(logs197.body), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    await post('/v1/metrics', metrics197.body, { 'content-type': 'application/json' });
    expect(await session()).toEqual(viaProtobuf);
    expect(viaProtobuf).toMatchObject({ ...SERVED, cost_source: 'claude_code', tool_calls_count: 1 });
    expect(viaProtobuf.cost_usd).toBeCloseTo(TOTAL_COST, 9);
  });

  it('hooks and OTel both on: each request counted once, in either order, and Claude Code’s cost wins over the estimate', async () => {
    // A wrong estimate (three times too much, what the old prefix match charged) must not survive OTel's figure.
    const wrong = transcriptUsage(0.081);
    expect((await postJson(serve!.endpoint, { events: wrong })).status).toBe(200);
    let s = await session();
    expect(s).toMatchObject({ ...SERVED, cost_source: 'estimate' });
    expect(s.cost_usd).toBeCloseTo(0.162, 9);
    await post('/v1/logs', logs197.body, { 'content-type': 'application/json' });
    s = await session();
    expect(s).toMatchObject({ ...SERVED, cost_source: 'claude_code', tool_calls_count: 1 });
    expect(s.cost_usd).toBeCloseTo(TOTAL_COST, 9);
    const first = s;

    // The other order, into a fresh collector: the same row.
    await serve!.stop();
    serve = await startServe(home.env, ['--db', await freshDb()]);
    await post('/v1/logs', logs197.body, { 'content-type': 'application/json' });
    await postJson(serve.endpoint, { events: wrong });
    const second = await session();
    expect({ ...second, project: null, last_seen_at: null, started_at: null }).toEqual({ ...first, project: null, last_seen_at: null, started_at: null });
    expect(await metric(/^claude_harness_tokens_total\{.*kind="input"/)).toBe(2400);
  });

  it('a tool call reported by the PostToolUse hook and by OTel tool_result counts once', async () => {
    const hook = { event_id: 'hook-ptu-1', event: 'PostToolUse', source: 'api', timestamp: '2026-12-01T20:33:39.100Z', session_id: SESSION, tool_name: 'Bash', tool_use_id: 'toolu_fake_1', success: true, duration_ms: 130 };
    await postJson(serve!.endpoint, hook);
    await post('/v1/logs', logs197.body, { 'content-type': 'application/json' });
    expect((await session()).tool_calls_count).toBe(1);
    const tools = (await getJson(`${serve!.url}/api/summary`)).body.top_tools;
    expect(tools).toMatchObject([{ tool: 'Bash', calls: 1, failures: 0 }]);
    expect(await metric(/^claude_harness_tool_calls_total\{/)).toBe(1);
  });

  it('an unpriced model: tokens counted, cost unknown (none), listed; Claude Code’s own cost for the request fills it', async () => {
    await postJson(serve!.endpoint, { events: transcriptUsage(null, 'claude-opus-9-1') });
    let s = await session();
    expect(s).toMatchObject({ ...SERVED, cost_usd: 0, cost_source: 'none', unpriced_requests: 2 });
    expect((await getJson(`${serve!.url}/api/summary`)).body.unpriced_models).toEqual([{ model: 'claude-opus-9-1', requests: 2 }]);
    await post('/v1/logs', logs197.body, { 'content-type': 'application/json' });
    s = await session();
    expect(s).toMatchObject({ ...SERVED, cost_source: 'claude_code', unpriced_requests: 0 });
    expect(s.cost_usd).toBeCloseTo(TOTAL_COST, 9);
    expect((await getJson(`${serve!.url}/api/summary`)).body.unpriced_models).toEqual([]);
  });

  it('bad input: a clear 4xx in the request’s encoding, or skipped and counted; nothing stored is lost', async () => {
    await post('/v1/logs', logs197.body, { 'content-type': 'application/json' });
    const before = await session();
    const pb = toProtobuf(LogsReq, logs197.body);
    // Truncated protobuf.
    const t = await post('/v1/logs', pb.subarray(0, Math.floor(pb.length / 2)), { 'content-type': 'application/x-protobuf' });
    expect(t.status).toBe(400);
    expect(t.type).toBe('application/x-protobuf');
    // Wrong content type, invalid JSON, JSON that is not an object, bad gzip, unknown encoding.
    const wrongType = await post('/v1/logs', logs197.body, { 'content-type': 'text/plain' });
    expect(wrongType.status).toBe(415);
    expect(wrongType.json().message).toMatch(/application\/x-protobuf/);
    expect((await post('/v1/logs', '{"resourceLogs": [', { 'content-type': 'application/json' })).status).toBe(400);
    expect((await post('/v1/logs', '[1,2]', { 'content-type': 'application/json' })).status).toBe(400);
    expect((await post('/v1/logs', 'not gzip', { 'content-type': 'application/json', 'content-encoding': 'gzip' })).status).toBe(400);
    expect((await post('/v1/logs', logs197.body, { 'content-type': 'application/json', 'content-encoding': 'br' })).status).toBe(415);
    // 10 MB, plain and as a gzip bomb that inflates past the limit.
    const big = Buffer.alloc(10 * 1024 * 1024, 0x20);
    // The collector answers 413 before the upload ends and reads the rest into nothing, so the
    // answer arrives instead of a reset (closing at once lost it in 1 of 5 uploads): every one of
    // ten uploads, on both ingest paths, must get its 413 and reason.
    for (let i = 0; i < 5; i++) {
      const logs = await post('/v1/logs', big, { 'content-type': 'application/json' });
      expect(logs.status).toBe(413);
      expect(logs.json().message).toMatch(/larger than/);
      const harness = await post('/metrics/harness', big, { 'content-type': 'application/json' });
      expect(harness.status).toBe(413);
      expect(harness.json().error).toMatch(/larger than/);
    }
    expect((await post('/v1/logs', gzipSync(big), { 'content-type': 'application/json', 'content-encoding': 'gzip' })).status).toBe(413);
    // Unknown record names are skipped (200, counted); records without a session id are rejected as partial success.
    const odd = JSON.parse(logs197.body) as { resourceLogs: Array<{ scopeLogs: Array<{ logRecords: Array<{ body: { stringValue: string }; attributes: Array<{ key: string }> }> }> }> };
    const recs = odd.resourceLogs[0]!.scopeLogs[0]!.logRecords;
    recs[0]!.body.stringValue = 'claude_code.something_new';
    recs[2]!.attributes = recs[2]!.attributes.filter((a) => a.key !== 'session.id');
    const p = await post('/v1/logs', JSON.stringify(odd), { 'content-type': 'application/json' });
    expect(p.status).toBe(200);
    expect(p.json()).toEqual({ partialSuccess: { rejectedLogRecords: 1, errorMessage: expect.stringMatching(/session\.id/) } });
    // The same in protobuf: partial success as protobuf.
    const pp = await post('/v1/logs', toProtobuf(LogsReq, JSON.stringify(odd)), { 'content-type': 'application/x-protobuf' });
    expect(LogsResp.toObject(LogsResp.decode(pp.buf), { longs: Number })).toMatchObject({ partialSuccess: { rejectedLogRecords: 1 } });
    expect(await session()).toEqual(before);
    // Those counters are written beside the request, not before its answer: wait for them.
    await waitFor(async () => (await metric(/^claude_harness_otlp_ignored_total\{signal="logs"\}/)) >= 2 || undefined);
    await waitFor(async () => (await metric(/^claude_harness_rejects_total\{reason="otlp_logs"\}/)) === 2 || undefined);
    // GET is not an export.
    expect((await fetch(`${serve!.url}/v1/logs`)).status).toBe(405);
  });

  it('an api_error record puts the error on the session; a user_prompt keeps only its length', async () => {
    const logs = JSON.parse(logs197.body) as any;
    const recs = logs.resourceLogs[0].scopeLogs[0].logRecords as Array<{ body: { stringValue: string }; attributes: Array<{ key: string; value: Record<string, unknown> }> }>;
    const err = structuredClone(recs[2]!);
    err.body.stringValue = 'claude_code.api_error';
    err.attributes = err.attributes.filter((a) => ['session.id', 'event.sequence', 'prompt.id', 'model'].includes(a.key));
    err.attributes.push({ key: 'error', value: { stringValue: 'Overloaded' } }, { key: 'status_code', value: { stringValue: '529' } }, { key: 'attempt', value: { intValue: 1 } });
    const prompt = recs[0]!;
    prompt.attributes.push({ key: 'prompt_text', value: { stringValue: 'the secret plan' } });
    prompt.attributes.find((a) => a.key === 'prompt')!.value = { stringValue: 'the secret plan' }; // as with OTEL_LOG_USER_PROMPTS=1
    logs.resourceLogs[0].scopeLogs[0].logRecords = [prompt, err];
    expect((await post('/v1/logs', JSON.stringify(logs), { 'content-type': 'application/json' })).status).toBe(200);
    expect(await session()).toMatchObject({ error: '529 Overloaded', model: 'claude-opus-4-8', input_tokens: 0 });
    await serve!.stop();
    serve = undefined;
    const dump = await dumpDb();
    expect(dump).toContain('prompt_length');
    expect(dump).not.toContain('the secret plan');
  });

  it('needs the collector token when one is set (Claude Code sends it through OTEL_EXPORTER_OTLP_HEADERS)', async () => {
    await serve!.stop();
    serve = await startServe(home.env, ['--db', await freshDb(), '--token', 'tok-1']);
    expect((await post('/v1/logs', logs197.body, { 'content-type': 'application/json' })).status).toBe(401);
    expect((await post('/v1/logs', logs197.body, { 'content-type': 'application/json', authorization: 'Bearer tok-1' })).status).toBe(200);
    expect((await getJson(`${serve.url}/api/sessions`, { authorization: 'Bearer tok-1' })).body.total).toBe(1);
  });

  it('a cumulative metrics exporter counts each series once, by its largest value', async () => {
    const m = JSON.parse(metrics197.body) as any;
    const active = m.resourceMetrics[0].scopeMetrics[0].metrics.find((x: any) => x.name === 'claude_code.active_time.total');
    active.sum.aggregationTemporality = 2;
    const at = (v: number, t: string) => {
      active.sum.dataPoints[0].asDouble = v;
      active.sum.dataPoints[0].timeUnixNano = t;
      return JSON.stringify(m);
    };
    await post('/v1/metrics', at(1.5, '1796157219157000000'), { 'content-type': 'application/json' });
    await post('/v1/metrics', at(4, '1796157229157000000'), { 'content-type': 'application/json' });
    await post('/v1/metrics', at(1.5, '1796157219157000000'), { 'content-type': 'application/json' }); // a late replay
    expect((await session()).active_time_s).toBe(4);
  });

  it('the protobuf descriptor is generated from the vendored official .proto files', () => {
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'gen-otlp-proto.mjs'), '--check'], { stdio: 'pipe' });
    expect(readFileSync(join(ROOT, 'src/collector/ingest/proto/LICENSE'), 'utf8')).toMatch(/Apache License/);
  });
});
}); // describe.each backend
