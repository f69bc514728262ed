/**
 * OTLP /v1/traces from the real Claude Code 2.1.332 (fixture): its tool spans
 * join the hooks' step by tool_use_id and split it into the wait for a person
 * (blocked_on_user) and the run (execution); llm_request spans give each API
 * request its duration; JSON and protobuf alike; a replay stores nothing new;
 * bad bodies get a 4xx with a reason.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as protobuf from 'protobufjs/light';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OTLP_DESCRIPTOR } from '../src/collector/ingest/otlp-proto';
import { uuidv7 } from '../src/ids';
import { getJson, postJson, startServe, tempHome, type ServeHandle, type TempHome } from './helpers/cli';

const lines = readFileSync(join(__dirname, 'fixtures', 'otlp', 'claude-2.1.332-otlp-traces.sample.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { url: string; body: string });
const traces = lines.find((l) => l.url === '/v1/traces')!;
const SESSION = '6610dd81-a36d-40b1-a9a3-324f3ffcc182';
const root = protobuf.Root.fromJSON(OTLP_DESCRIPTOR as protobuf.INamespace);
const TraceReq = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');

let home: TempHome;
let serve: ServeHandle;
beforeEach(async () => {
  home = tempHome();
  serve = await startServe(home.env, ['--db', join(home.home, 'c.db')]);
});
afterEach(async () => {
  await serve.stop();
  home.cleanup();
});

const post = async (body: string | Buffer, type = 'application/json') => {
  const r = await fetch(`${serve.url}/v1/traces`, { method: 'POST', headers: { 'content-type': type }, body: typeof body === 'string' ? body : new Uint8Array(body) });
  return { status: r.status, text: Buffer.from(await r.arrayBuffer()) };
};

describe('POST /v1/traces', () => {
  it("joins Claude Code's spans to the hooks' tool step: wait for a person and run, from the trace", async () => {
    // The hooks of the same run (times around the spans).
    const spanStart = (() => {
      const b = JSON.parse(traces.body);
      const tool = b.resourceSpans[0].scopeSpans.flatMap((s: any) => s.spans).find((s: any) => s.name === 'claude_code.tool');
      return Number(String(tool.startTimeUnixNano).slice(0, -6));
    })();
    const h = (o: Record<string, unknown>) => ({ event_id: uuidv7(), source: 'api', session_id: SESSION, ...o });
    await postJson(serve.endpoint, { events: [h({ event: 'PreToolUse', tool_name: 'Bash', tool_use_id: 'toolu_fake_1', timestamp: new Date(spanStart - 2).toISOString() }), h({ event: 'PostToolUse', tool_name: 'Bash', tool_use_id: 'toolu_fake_1', success: true, duration_ms: 95, timestamp: new Date(spanStart + 110).toISOString() })] });
    const r = await post(traces.body);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text.toString())).toEqual({});
    const steps = (await getJson(`${serve.url}/api/sessions/${SESSION}/events`)).body.steps as any[];
    const tool = steps.find((s) => s.id === 'tool:toolu_fake_1');
    expect(tool).toMatchObject({ kind: 'tool', tool_name: 'Bash', status: 'ok', timing: 'trace', wait_ms: 40, run_ms: 60, reason: 'accept' });
    expect(tool.event_ids).toHaveLength(5); // Pre, Post, tool, blocked_on_user, execution
    const reqs = steps.filter((s) => s.kind === 'request');
    expect(reqs.map((s) => [s.id, s.duration_ms, s.model])).toEqual([
      ['req:req_fake_2', 150, 'claude-opus-5-5'],
      ['req:req_fake_3', 41, 'claude-opus-5-5'],
    ]);
    expect(steps.filter((s) => s.kind === 'turn').map((s) => s.duration_ms)).toEqual([475]);
    // A replay is a duplicate, nothing new.
    const before = (await getJson(`${serve.url}/healthz`)).body.events;
    expect((await post(traces.body)).status).toBe(200);
    expect((await getJson(`${serve.url}/healthz`)).body.events).toBe(before);
  });

  it('protobuf bodies give the same steps; bad bodies a 4xx with a reason', async () => {
    const pb = Buffer.from(TraceReq.encode(TraceReq.fromObject(JSON.parse(traces.body))).finish());
    const r = await post(pb, 'application/x-protobuf');
    expect(r.status).toBe(200);
    const steps = (await getJson(`${serve.url}/api/sessions/${SESSION}/events`)).body.steps as any[];
    // No hooks this time: the trace alone makes the step.
    expect(steps.find((s) => s.id === 'tool:toolu_fake_1')).toMatchObject({ status: 'ok', wait_ms: 40, run_ms: 60, duration_ms: 60, timing: 'trace' });
    expect((await post('{nope')).status).toBe(400);
    expect((await post(pb.subarray(0, 20), 'application/x-protobuf')).status).toBe(400);
    const noSession = await post(JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{ name: 'claude_code.tool', traceId: 'aa', spanId: 'bb', startTimeUnixNano: '1796172453555000000', attributes: [] }] }] }] }));
    expect(noSession.status).toBe(200);
    expect(JSON.parse(noSession.text.toString())).toMatchObject({ partialSuccess: { rejectedSpans: 1, errorMessage: expect.stringContaining('no session.id') } });
  });
});
