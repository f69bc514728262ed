/**
 * One session through the API of a real `serve`: the header, steps in time
 * order with deterministic ties, Pre/Post paired by tool_use_id (unfinished and
 * denied too), cursor pages with no gap and no repeat while events keep
 * arriving (some older than the page, some completing a step already read),
 * 404/400 with reasons, the token rules, and query plans that never scan
 * harness_events.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteSessionReads } from '../src/collector/store/session-reads-sqlite';
import { PostgresStore } from '../src/collector/store/postgres';
import { SqliteStore } from '../src/collector/store/sqlite';
import { decodeCursor, encodeCursor } from '../src/collector/session-api';
import { uuidv7 } from '../src/ids';
import { getJson, postJson, startServe, tempHome, type ServeHandle, type TempHome } from './helpers/cli';
import { STORES, useStore } from './helpers/stores';

let home: TempHome;
let serve: ServeHandle | undefined;

beforeEach(() => {
  home = tempHome();
});
afterEach(async () => {
  await serve?.stop();
  serve = undefined;
  home.cleanup();
});

const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const base = { source: 'interactive', session_id: 'S-1', project: 'web-app' };
const ev = (o: Record<string, unknown>) => ({ event_id: uuidv7(), ...base, ...o });

/** A session with a prompt, three tool calls (one failed, one never finished), a subagent, a request, a permission wait, an end. */
function seed() {
  return [
    ev({ event: 'SessionStart', timestamp: at(0), context: { host: 'build-7', cwd: '/w/web', git_branch: 'main', git_commit: 'abc1234', claude_version: '2.1.332', permission_mode: 'default' } }),
    ev({ event: 'UserPromptSubmit', timestamp: at(1), hook: { prompt_size: 42 } }),
    ev({ event: 'PreToolUse', timestamp: at(2), tool_name: 'Bash', tool_use_id: 'tu-1' }),
    ev({ event: 'PostToolUse', timestamp: at(5), tool_name: 'Bash', tool_use_id: 'tu-1', success: true, duration_ms: 2900 }),
    ev({ event: 'PreToolUse', timestamp: at(6), tool_name: 'Read', tool_use_id: 'tu-2' }),
    ev({ event: 'PostToolUseFailure', timestamp: at(6.5), tool_name: 'Read', tool_use_id: 'tu-2', success: false, error: 'File does not exist.' }),
    ev({ event: 'PreToolUse', timestamp: at(7), tool_name: 'Agent', tool_use_id: 'tu-3', attrs: { subagent_type: 'Explore' } }),
    ev({ event: 'PreToolUse', timestamp: at(8), tool_name: 'Grep', tool_use_id: 'tu-4', agent_id: 'ag-1', hook: { agent_type: 'Explore' } }),
    ev({ event: 'PostToolUse', timestamp: at(9), tool_name: 'Grep', tool_use_id: 'tu-4', agent_id: 'ag-1', success: true, duration_ms: 800, hook: { agent_type: 'Explore' } }),
    ev({ event: 'usage', timestamp: at(9.5), agent_id: 'ag-1', model: 'claude-haiku-4-5', usage: { input_tokens: 100, output_tokens: 20, cache_creation_input_tokens: 0, cache_read_input_tokens: 500 }, cost_usd: 0.001 }),
    ev({ event: 'SubagentStop', timestamp: at(10), agent_id: 'ag-1', hook: { agent_type: 'Explore' } }),
    ev({ event: 'PostToolUse', timestamp: at(11), tool_name: 'Agent', tool_use_id: 'tu-3', success: true, duration_ms: 3900 }),
    ev({ event: 'PreToolUse', timestamp: at(12), tool_name: 'Bash', tool_use_id: 'tu-5' }),
    ev({ event: 'PermissionRequest', timestamp: at(12.1), tool_name: 'Bash' }),
    ev({ event: 'Notification', timestamp: at(12.2), hook: { notification_type: 'permission_prompt' } }),
    ev({ event: 'usage', timestamp: at(13), model: 'claude-opus-5-5', usage: { input_tokens: 2400, output_tokens: 160, cache_creation_input_tokens: 6000, cache_read_input_tokens: 1000 }, cost_usd: 0.043 }),
    ev({ event: 'SessionEnd', timestamp: at(120), hook: { reason: 'prompt_input_exit' } }),
  ];
}

async function allSteps(url: string, id: string, limit = 500) {
  const steps: any[] = [];
  let after: string | null = null;
  let live = '';
  for (let i = 0; i < 1000; i++) {
    const r = await getJson(`${url}/api/sessions/${encodeURIComponent(id)}/events?limit=${limit}${after ? `&after=${after}` : ''}`);
    expect(r.status).toBe(200);
    steps.push(...r.body.steps);
    live = r.body.live;
    if (!r.body.next) break;
    after = r.body.next;
  }
  return { steps, live };
}

describe.each(STORES)('session API on %s', (backend) => {
  const store = useStore(backend);
  let db = '';
  beforeEach(async () => {
    db = await store.fresh(home);
  });

  describe('GET /api/sessions/{id}', () => {
    it('the header: row, context, subagents, counts, end reason; any of the ids finds it', async () => {
      serve = await startServe(home.env, ['--db', db]);
      expect((await postJson(serve.endpoint, { events: seed() })).status).toBe(200);
      const r = await getJson(`${serve.url}/api/sessions/${encodeURIComponent('session:S-1')}`);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({
        id: 'session:S-1',
        claude_session_id: 'S-1',
        project: 'web-app',
        host: 'build-7',
        cwd: '/w/web',
        git_branch: 'main',
        git_commit: 'abc1234',
        claude_version: '2.1.332',
        permission_mode: 'default',
        end_reason: 'prompt_input_exit',
        prompts: 1,
        requests: 2,
        waits: 2,
        tool_calls_count: 4,
        tool_failures: 1,
        input_tokens: 2500,
        cost_source: 'estimate',
      });
      expect(r.body.subagents).toEqual([{ agent_id: 'ag-1', agent_type: 'Explore', events: 4, first_at: at(8), last_at: at(10), tokens: 620, cost_usd: 0.001 }]);
      expect(r.body.sources.unpriced_models).toEqual([]);
      // The bare Claude Code session id resolves to the same session.
      expect((await getJson(`${serve.url}/api/sessions/S-1`)).body.id).toBe('session:S-1');
      // A running session with a request of a model no price is known for: no end reason yet, the model named.
      const run = (o: Record<string, unknown>) => ({ event_id: uuidv7(), source: 'interactive', session_id: 'S-2', timestamp: at(1), ...o });
      await postJson(serve.endpoint, { events: [run({ event: 'UserPromptSubmit' }), run({ event: 'usage', model: 'claude-opus-9-1', usage: { input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 } })] });
      const running = (await getJson(`${serve.url}/api/sessions/S-2`)).body;
      expect(running).toMatchObject({ end_reason: null, completed_at: null, sources: { unpriced_models: ['claude-opus-9-1'], requests: { unpriced: 1 } } });
      // It ends: the reason is the end event's.
      await postJson(serve.endpoint, run({ event: 'SessionEnd', timestamp: at(30), hook: { reason: 'clear' } }));
      expect((await getJson(`${serve.url}/api/sessions/S-2`)).body).toMatchObject({ end_reason: 'clear', completed_at: at(30) });
    });

    it('unknown ids: 404 with a reason; a bad cursor or limit: 400 with a reason', async () => {
      serve = await startServe(home.env, ['--db', db]);
      await postJson(serve.endpoint, { events: seed() });
      const miss = await getJson(`${serve.url}/api/sessions/nope`);
      expect(miss.status).toBe(404);
      expect(miss.body.error).toMatch(/no session, task or run with id "nope"/);
      expect((await getJson(`${serve.url}/api/sessions/nope/events`)).status).toBe(404);
      expect((await getJson(`${serve.url}/api/events/nope`)).status).toBe(404);
      const bad = await getJson(`${serve.url}/api/sessions/S-1/events?after=garbage`);
      expect(bad).toMatchObject({ status: 400, body: { error: expect.stringMatching(/after: not a cursor/) } });
      // Well-formed but impossible (a negative position, a fractional time): refused, never handed to the store.
      for (const c of [{ s: -1, t: 0, e: '' }, { s: 1, t: 0.5, e: '' }, { a: 1, r: -1 }]) expect((await getJson(`${serve.url}/api/sessions/S-1/events?after=${encodeCursor(c as never)}`)).status).toBe(400);
      expect((await getJson(`${serve.url}/api/sessions/S-1/events?limit=0`)).body.error).toMatch(/limit: expected 1 to 5000/);
      expect((await getJson(`${serve.url}/api/sessions/S-1/events?limit=x`)).status).toBe(400);
      expect((await getJson(`${serve.url}/api/sessions/%E0%A4%A/events`)).status).toBe(400);
    });

    it('the same token rules as every other route', async () => {
      serve = await startServe(home.env, ['--db', db, '--token', 'tok-s']);
      const auth = { authorization: 'Bearer tok-s' };
      expect((await postJson(serve.endpoint, { events: seed() }, auth)).status).toBe(200);
      for (const p of ['/api/sessions/S-1', '/api/sessions/S-1/events', '/api/waiting', '/api/stream', `/api/events/x`]) {
        expect((await getJson(`${serve.url}${p}`)).status, p).toBe(401);
        expect((await getJson(`${serve.url}${p}`, { authorization: 'Bearer wrong' })).status, p).toBe(401);
      }
      expect((await getJson(`${serve.url}/api/sessions/S-1`, auth)).status).toBe(200);
      expect((await getJson(`${serve.url}/api/sessions/S-1/events`, auth)).body.steps.length).toBeGreaterThan(0);
      // The session page itself needs the token too (the cookie the dashboard sets).
      expect((await fetch(`${serve.url}/sessions/S-1`)).status).toBe(401);
      const page = await fetch(`${serve.url}/sessions/S-1?token=tok-s`);
      expect(page.status).toBe(200);
      expect(page.headers.get('set-cookie')).toMatch(/cm_token=tok-s; HttpOnly/);
    });
  });

  describe('GET /api/sessions/{id}/events', () => {
    it('steps in time order, Pre and Post paired by tool_use_id, unfinished/denied, failures, subagents, requests, waits', async () => {
      serve = await startServe(home.env, ['--db', db]);
      const events = seed();
      // Sent in reverse: order comes from time, not arrival.
      expect((await postJson(serve.endpoint, { events: [...events].reverse() })).status).toBe(200);
      const { steps } = await allSteps(serve.url, 'S-1');
      expect(steps.map((s: any) => `${s.kind}:${s.kind === 'tool' ? s.tool_name : s.event}`)).toEqual([
        'start:SessionStart', 'prompt:UserPromptSubmit', 'tool:Bash', 'tool:Read', 'tool:Agent', 'tool:Grep', 'request:usage', 'subagent_stop:SubagentStop', 'tool:Bash', 'wait:PermissionRequest', 'wait:Notification', 'request:usage', 'end:SessionEnd',
      ]);
      const byId = new Map(steps.map((s: any) => [s.id, s]));
      expect(byId.get('tool:tu-1')).toMatchObject({ status: 'ok', duration_ms: 2900, at: at(2), end_ms: T0 + 5000, wait_ms: 0, event_ids: [events[2]!.event_id, events[3]!.event_id] });
      expect(byId.get('tool:tu-2')).toMatchObject({ status: 'failed', success: false, error: 'File does not exist.', duration_ms: 500 });
      expect(byId.get('tool:tu-3')).toMatchObject({ status: 'ok', subagent_type: 'Explore', duration_ms: 3900 });
      expect(byId.get('tool:tu-4')).toMatchObject({ agent_id: 'ag-1', agent_type: 'Explore' });
      // Never answered and the session ended: denied (or interrupted); no duration is made up.
      expect(byId.get('tool:tu-5')).toMatchObject({ status: 'denied', duration_ms: null, end_ms: null });
      expect(steps.find((s: any) => s.kind === 'prompt')).toMatchObject({ prompt_length: 42, prompt: null });
      expect(steps.find((s: any) => s.event === 'Notification')).toMatchObject({ notification_type: 'permission_prompt' });
      expect(steps.filter((s: any) => s.kind === 'request').map((s: any) => [s.model, s.input_tokens, s.output_tokens, s.cache_creation_input_tokens, s.cache_read_input_tokens, s.cost_usd])).toEqual([
        ['claude-haiku-4-5', 100, 20, 0, 500, 0.001],
        ['claude-opus-5-5', 2400, 160, 6000, 1000, 0.043],
      ]);
      // Every event is in exactly one step.
      expect(steps.flatMap((s: any) => s.event_ids).sort()).toEqual(events.map((e) => e.event_id).sort());
      // Raw metadata of one step.
      const raw = await getJson(`${serve.url}/api/events/${events[3]!.event_id}`);
      expect(raw.body).toMatchObject({ session_id: 'session:S-1', event: { event: 'PostToolUse', tool_use_id: 'tu-1', duration_ms: 2900 } });
    });

    it("hooks and Claude Code's OTel logs together: one step per tool call and per API request, metric points left out", async () => {
      serve = await startServe(home.env, ['--db', db]);
      const o = { session_id: 'S-O' };
      await postJson(serve.endpoint, {
        events: [
          ev({ ...o, event: 'PreToolUse', tool_name: 'Bash', tool_use_id: 'to-1', timestamp: at(1) }),
          ev({ ...o, event: 'tool_decision', tool_name: 'Bash', tool_use_id: 'to-1', attrs: { decision: 'accept', source: 'config' }, timestamp: at(1.01) }),
          ev({ ...o, event: 'tool_result', tool_name: 'Bash', tool_use_id: 'to-1', success: true, duration_ms: 900, timestamp: at(2) }),
          ev({ ...o, event: 'PostToolUse', tool_name: 'Bash', tool_use_id: 'to-1', success: true, duration_ms: 950, timestamp: at(2.01) }),
          // OTel only (no hooks): its tool_decision rejects the call, no result.
          ev({ ...o, event: 'tool_decision', tool_name: 'Write', tool_use_id: 'to-2', attrs: { decision: 'reject', source: 'user_reject' }, timestamp: at(3) }),
          // One request, from the transcript (estimate) and from OTel (Claude Code's cost).
          ev({ ...o, event: 'usage', request_id: 'req_1', model: 'claude-opus-5-5', usage: { input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }, cost_usd: 0.0002, timestamp: at(4) }),
          ev({ ...o, event: 'usage', request_id: 'req_1', model: 'claude-opus-5-5', usage: { input_tokens: 10, output_tokens: 7, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }, cost_usd: 0.0003, cost_source: 'claude_code', timestamp: at(4.2) }),
          ev({ ...o, event: 'api_error', error: '529 overloaded', model: 'claude-opus-5-5', timestamp: at(5) }),
          ev({ ...o, event: 'otel_metric', timestamp: at(6), attrs: { name: 'claude_code.lines_of_code.count' } }),
        ],
      });
      const { steps } = await allSteps(serve.url, 'S-O');
      expect(steps.map((s: any) => s.id)).toEqual(['tool:to-1', 'tool:to-2', 'req:req_1', expect.any(String)]);
      expect(steps[0]).toMatchObject({ status: 'ok', duration_ms: 950, reason: 'accept' });
      expect(steps[0].event_ids).toHaveLength(4);
      expect(steps[1]).toMatchObject({ tool_name: 'Write', status: 'denied', reason: 'reject' });
      expect(steps[2]).toMatchObject({ kind: 'request', output_tokens: 7, cost_usd: 0.0003, cost_source: 'claude_code' });
      expect(steps[2].event_ids).toHaveLength(2);
      expect(steps[3]).toMatchObject({ kind: 'error', error: '529 overloaded' });
    });

    it('a Pre without its Post in a running session is unfinished; equal timestamps are ordered by event id, the same every time', async () => {
      serve = await startServe(home.env, ['--db', db]);
      const same = Array.from({ length: 30 }, (_, i) => ev({ session_id: 'S-2', event: 'Stop', timestamp: at(1), event_id: `0000-${String((i * 7) % 30).padStart(2, '0')}` }));
      await postJson(serve.endpoint, { events: [ev({ session_id: 'S-2', event: 'PreToolUse', tool_name: 'Bash', tool_use_id: 'tx', timestamp: at(0) }), ...same] });
      const a = await allSteps(serve.url, 'S-2', 7);
      const b = await allSteps(serve.url, 'S-2', 30);
      expect(a.steps[0]).toMatchObject({ id: 'tool:tx', status: 'unfinished' });
      const ids = a.steps.slice(1).map((s: any) => s.id);
      expect(ids).toEqual([...ids].sort());
      expect(a.steps.map((s: any) => s.id)).toEqual(b.steps.map((s: any) => s.id));
    });

    it('pages under concurrent ingest: no gap, no repeat; what arrives later comes through the live cursor as whole steps', async () => {
      serve = await startServe(home.env, ['--db', db]);
      const key = 'session:S-3';
      const sent: Array<Record<string, unknown>> = [];
      const post = async (events: Array<Record<string, unknown>>) => {
        sent.push(...events);
        expect((await postJson(serve!.endpoint, { events })).status).toBe(200);
      };
      const tool = (i: number, t: number) => [
        ev({ session_id: 'S-3', event: 'PreToolUse', tool_name: 'Bash', tool_use_id: `u${i}`, timestamp: at(t) }),
        ev({ session_id: 'S-3', event: 'PostToolUse', tool_name: 'Bash', tool_use_id: `u${i}`, success: true, duration_ms: 100, timestamp: at(t + 0.1) }),
      ];
      const first: Array<Record<string, unknown>> = [];
      for (let i = 0; i < 40; i++) first.push(...tool(i, 10 + i));
      // Pres whose Posts arrive later, while the reader pages.
      const open = Array.from({ length: 5 }, (_, i) => tool(100 + i, 100 + i));
      await post([...first, ...open.map((p) => p[0]!)]);

      const seen = new Map<string, any>(); // step id → step (upserted)
      const eventSeen = new Set<string>();
      const take = (steps: any[], live: boolean) => {
        for (const s of steps) {
          const fresh = s.event_ids.filter((id: string) => !eventSeen.has(id));
          // A page never repeats an event; a live step always brings at least one new event.
          if (!live) expect(fresh.length, `repeat of ${s.id}`).toBe(s.event_ids.length);
          else expect(fresh.length, `live repeat of ${s.id}`).toBeGreaterThan(0);
          for (const id of s.event_ids) eventSeen.add(id);
          seen.set(s.id, s);
        }
      };
      let after: string | null = null;
      let live = '';
      let round = 0;
      for (;;) {
        const r = await getJson(`${serve.url}/api/sessions/${key}/events?limit=6${after ? `&after=${after}` : ''}`);
        take(r.body.steps, false);
        live = r.body.live;
        // Meanwhile: older events (before the page), newer ones, and the Posts of open steps.
        if (round < 5) await post([...tool(200 + round, 1 + round * 0.01), ...tool(300 + round, 500 + round), open[round]![1]!]);
        round++;
        if (!r.body.next) break;
        after = r.body.next;
      }
      // Now the arrivals since the snapshot, a few at a time.
      for (let i = 0; i < 100; i++) {
        const r = await getJson(`${serve.url}/api/sessions/${key}/events?limit=3&after=${live}`);
        take(r.body.steps, true);
        live = r.body.live;
        if (!r.body.next) break;
      }
      expect([...eventSeen].sort()).toEqual(sent.map((e) => e.event_id as string).sort());
      // The upserted view equals a fresh read.
      const fresh = await allSteps(serve.url, key);
      expect(fresh.steps.map((s: any) => [s.id, s.status, s.event_ids.length])).toEqual(
        [...seen.values()].sort((a, b) => a.at_ms - b.at_ms || (a.id < b.id ? -1 : 1)).map((s) => [s.id, s.status, s.event_ids.length]),
      );
      expect(fresh.steps.every((s: any) => s.status === 'ok' && s.event_ids.length === 2)).toBe(true);
    });
  });
});

describe('query plans', () => {
  it('SQLite: reading one session, its arrivals and the waiting list never scans harness_events', async () => {
    const store = new SqliteStore(':memory:');
    const reads = store.sessionReads();
    const plans: Record<string, string[]> = {
      page: reads.explain('page', { key: 'k', snapshot: 9, ts_ms: 0, event_id: '', limit: 5 }),
      since: reads.explain('since', { key: 'k', after: 1, limit: 5 }),
      byToolUses: reads.explain('byToolUses', { key: 'k', ids: '["a","b"]', snapshot: 9 }),
      context: reads.explain('context', { key: 'k' }),
      subagents: reads.explain('subagents', { key: 'k' }),
      counts: reads.explain('counts', { key: 'k' }),
      unpriced: reads.explain('unpriced', { key: 'k' }),
      endEvent: reads.explain('endEvent', { key: 'k' }),
      waiting: reads.explain('waiting', { from: 0, limit: 5 }),
      changedSince: reads.explain('changedSince', [1, 5]),
      changedSinceCount: reads.explain('changedSinceCount', [1]),
    };
    for (const [name, plan] of Object.entries(plans)) {
      const text = plan.join('\n');
      // A SCAN of the table (or of an index of it) reads every event; SEARCH … USING is a range of one session.
      expect(text, `${name}:\n${text}`).not.toMatch(/\bSCAN (?!json_each|\(subquery|c\b)/); // the list of ids a page asks for, or a bounded subquery, is scanned; never the events
      expect(text, name).toMatch(/SEARCH \w+ USING (INDEX harness_events_|INTEGER PRIMARY KEY)/);
    }
    expect(plans.page!.join('\n')).toMatch(/USING INDEX harness_events_session \(skey=\? AND ts_ms>\?\)/);
    // A page's tool calls: one probe of the tool index per id, not a walk of the whole session.
    expect(plans.byToolUses!.join('\n')).toMatch(/USING INDEX harness_events_session_tool \(skey=\? AND tool_use_id=\?/);
    await store.close();
  });

  describe('PostgreSQL', () => {
    const store = useStore('postgres');
    it('reading one session, its arrivals and the waiting list never scans harness_events (40,000 events, 20,000 sessions, analyzed)', async () => {
      const url = await store.pg!.createDb();
      const pgStore = await PostgresStore.open(url);
      try {
        const day = 86_400_000;
        const t1 = Date.parse('2026-12-01T00:00:00Z');
        // 90 days of 400 sessions' events, one in 50 a wait, and 20,000 sessions; then the planner's statistics.
        // Session keys are interned (harness_event_parts), as ingest does; bodies are kept whole (layout 1, "verbatim").
        await pgStore.pool.query(`INSERT INTO harness_event_parts (text) SELECT 'session:s' || i FROM generate_series(0, 399) AS i`);
        await pgStore.pool.query(`INSERT INTO harness_events (event_id, event, source, ts_ms, received_ms, skey, tool_name, tool_use_id, layout_id, residue)
          SELECT 'e' || i, CASE WHEN i % 50 = 0 THEN 'Notification' ELSE (ARRAY['PreToolUse', 'PostToolUse', 'usage', 'UserPromptSubmit'])[1 + i % 4] END, 'interactive', $1::bigint + (i::bigint * 90 * ${day}) / 40000, 0,
            k.id, 'Bash', 'tu' || (i / 2), 1, '{"agent_id":"a"}'
          FROM generate_series(1, 40000) AS i JOIN harness_event_parts k ON k.text = 'session:s' || (i % 400)`, [t1 - 90 * day]);
        await pgStore.pool.query(`INSERT INTO harness_sessions (id, claude_session_id, source, started_ms, last_seen_ms) SELECT 'session:s' || i, 's' || i, 'interactive', $1::bigint + i, $1::bigint + i FROM generate_series(0, 19999) AS i`, [t1 - 90 * day]);
        await pgStore.pool.query('ANALYZE harness_events');
        await pgStore.pool.query('ANALYZE harness_sessions');
        const reads = pgStore.sessionReads();
        const hw = await reads.highWater();
        const key = 'session:s7';
        const plans: Record<string, string[]> = {
          page: await reads.explain('page', { key, snapshot: hw, ts_ms: 0, event_id: '', limit: 5 }),
          since: await reads.explain('since', { key, after: hw - 1, after_ord: '9223372036854775807', limit: 5 }),
          // A cursor from long ago: a range of the session, not of everything since.
          sinceOld: await reads.explain('since', { key, after: 1, after_ord: '9223372036854775807', limit: 5 }),
          byToolUses: await reads.explain('byToolUses', { key, ids: ['tu1', 'tu2'], snapshot: hw, snapshot_ord: '9223372036854775807' }),
          context: await reads.explain('context', { key }),
          subagents: await reads.explain('subagents', { key }),
          counts: await reads.explain('counts', { key }),
          unpriced: await reads.explain('unpriced', { key }),
          endEvent: await reads.explain('endEvent', { key }),
          one: await reads.explain('one', { event_id: 'e5' }),
          resolve: await reads.explain('resolve', { id: 's7' }),
          waiting: await reads.explain('waiting', { from: t1 - day, limit: 5 }),
          changedSince: await reads.explain('changedSince', { after: hw, limit: 5 }),
        };
        for (const [name, plan] of Object.entries(plans)) {
          const text = plan.join('\n');
          expect(text, `${name}:\n${text}`).not.toMatch(/Seq Scan on harness_events/);
          expect(text, `${name}:\n${text}`).toMatch(/Index (Only )?Scan (Backward )?using harness_(events|sessions)_\w+|Bitmap Index Scan on harness_(events|sessions)_\w+/);
        }
        expect(plans.page!.join('\n')).toMatch(/Index Scan using harness_events_session on harness_events e[\s\S]*Index Cond: \(\(skey = \$\d\) AND/);
        expect(plans.sinceOld!.join('\n')).toMatch(/harness_events_session_tx/);
        expect(plans.changedSince!.join('\n')).toMatch(/harness_events_tx/);
      } finally {
        await pgStore.close();
      }
    });
  });
});

describe('cursors', () => {
  it('round-trip; a crafted one that no store could take is refused (a 400), not passed on', () => {
    for (const c of [{ a: 0 }, { a: 42, r: 7 }, { s: 9, t: -Number.MAX_SAFE_INTEGER, e: '' }, { s: 9, t: 1_764_000_000_000, e: 'x' }]) expect(decodeCursor(encodeCursor(c))).toEqual(c);
    expect(decodeCursor('123')).toEqual({ a: 123 });
    const bad = [{ a: -1 }, { a: 1.5 }, { a: 1, r: -2 }, { a: 1, r: 'x' }, { s: -1, t: 0, e: '' }, { s: 1, t: 1.5, e: '' }, { s: 1, t: 0, e: 5 }, { s: 1e300, t: 0, e: '' }];
    for (const c of bad) expect(decodeCursor(encodeCursor(c as never)), JSON.stringify(c)).toBeNull();
    expect(decodeCursor('garbage')).toBeNull();
  });
});
