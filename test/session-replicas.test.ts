/**
 * Session pages and the live stream with two `serve` replicas on one
 * PostgreSQL (a throw-away cluster). Writers post to both replicas at once
 * while a reader pages one session and then follows its live cursor, going
 * back and forth between the replicas, and two viewers (one per replica)
 * follow the stream. A transaction held open by hand meanwhile (a slow
 * replica: a small transaction id that commits after many larger ones) is the
 * case a plain sequence gets wrong. Every event is read exactly once, and the
 * streams tell each one exactly once, in order, whichever replica stored it.
 */
import { request, type ClientRequest } from 'node:http';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Client } from 'pg';
import { uuidv7 } from '../src/ids';
import { getJson, postJson, startServe, tempHome, waitFor, type ServeHandle, type TempHome } from './helpers/cli';
import { startPostgres, type PgCluster } from './helpers/postgres';

let pg: PgCluster;
let home: TempHome;
const serves: ServeHandle[] = [];
const streams: ClientRequest[] = [];

beforeAll(async () => {
  pg = await startPostgres();
}, 120_000);
afterAll(async () => {
  await pg?.stop();
});
beforeEach(() => {
  home = tempHome();
});
afterEach(async () => {
  for (const r of streams.splice(0)) r.destroy();
  await Promise.all(serves.splice(0).map((s) => s.stop()));
  home.cleanup();
});

interface Change {
  id: number;
  event: string;
  data: { seq: number; sessions?: Array<{ id: string; events: number }> };
}

/** A minimal SSE client: every message with its id, until the test ends. */
function follow(url: string): Promise<Change[]> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`stream: HTTP ${res.statusCode}`));
      const out: Change[] = [];
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const m: Partial<Change> = {};
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) m.id = Number(line.slice(4));
            else if (line.startsWith('event: ')) m.event = line.slice(7);
            else if (line.startsWith('data: ')) m.data = JSON.parse(line.slice(6));
          }
          if (m.event) out.push(m as Change);
        }
      });
      resolve(out);
    });
    req.on('error', reject);
    streams.push(req);
    req.end();
  });
}

describe('session reads across replicas on one PostgreSQL', () => {
  it('concurrent ingest on two replicas: the paged reader and both streams see every event once, a late-committing transaction included', async () => {
    const db = await pg.createDb();
    const env = { ...home.env, CLAUDE_METRICS_STREAM_POLL_MS: '100' };
    const a = await startServe(env, ['--db', db]);
    serves.push(a);
    const b = await startServe(env, ['--db', db]);
    serves.push(b);
    const replicas = [a, b];
    const key = 'session:S';
    const t0 = Date.parse('2026-12-01T10:00:00Z');
    const sent = new Set<string>();
    let clock = 0;
    /** A batch of S's events (and one of another session's, which nobody here follows). */
    const batch = (n: number) => {
      const events = Array.from({ length: n }, () => ({ event_id: uuidv7(), event: 'Stop', source: 'interactive', session_id: 'S', project: 'p', timestamp: new Date(t0 + ++clock * 10).toISOString() }));
      for (const e of events) sent.add(e.event_id);
      return [...events, { event_id: uuidv7(), event: 'Stop', source: 'interactive', session_id: 'other', project: 'q', timestamp: new Date(t0).toISOString() }];
    };

    const viewerA = await follow(`${a.url}/api/stream?session=${encodeURIComponent(key)}`);
    const viewerB = await follow(`${b.url}/api/stream?session=${encodeURIComponent(key)}`);
    await waitFor(() => viewerA.length > 0 && viewerB.length > 0);
    expect(viewerA[0]!.event).toBe('hello');

    // Something to page through before the storm.
    expect((await postJson(a.endpoint, { events: batch(30) })).status).toBe(200);

    // A slow transaction: takes its id now, commits after many others have.
    const slow = new Client({ connectionString: db });
    await slow.connect();
    await slow.query('BEGIN');
    const slowId = uuidv7();
    await slow.query(
      // A row as a migrated one is kept: the body whole, under the layout "verbatim" (part 1); the session key interned before.
      `INSERT INTO harness_events (event_id, event, source, ts_ms, received_ms, skey, session_id, project, layout_id, residue)
       VALUES ($1, 'Stop', 'interactive', $2, $2, (SELECT id FROM harness_event_parts WHERE text = $3), 'S', 'p', 1, $4)`,
      [slowId, t0 + 5, key, JSON.stringify({ event_id: slowId, event: 'Stop', source: 'interactive', session_id: 'S' })],
    );
    sent.add(slowId);

    // Writers: two per replica, batches of 12 (the reader's pages of 5 cut transactions in the middle);
    // a few batches are sent again through the other replica (duplicates: stored once, told once).
    let writing = true;
    const writer = async (w: number) => {
      for (let i = 0; i < 12; i++) {
        const events = batch(12);
        expect((await postJson(replicas[w % 2]!.endpoint, { events })).status).toBe(200);
        if (i % 5 === 0) expect((await postJson(replicas[(w + 1) % 2]!.endpoint, { events })).status).toBe(200);
        if (w === 0 && i === 6) await slow.query('COMMIT');
      }
    };

    // The reader: the first page's snapshot in pages of 7, then the live cursor in pages of 5, alternating replicas.
    const seen = new Map<string, number>();
    const take = (steps: Array<{ event_ids: string[] }>) => {
      for (const s of steps) for (const id of s.event_ids) seen.set(id, (seen.get(id) ?? 0) + 1);
    };
    const reader = async () => {
      let after: string | null = null;
      let live = '';
      for (let i = 0; ; i++) {
        const r = await getJson(`${replicas[i % 2]!.url}/api/sessions/${key}/events?limit=7${after ? `&after=${after}` : ''}`);
        expect(r.status).toBe(200);
        take(r.body.steps);
        live = r.body.live;
        if (!r.body.next) break;
        after = r.body.next;
      }
      // Follow until the writers are done and reads keep bringing nothing new.
      let idle = 0;
      for (let i = 0; i < 20_000 && idle < 25; i++) {
        const r = await getJson(`${replicas[i % 2]!.url}/api/sessions/${key}/events?limit=5&after=${live}`);
        expect(r.status).toBe(200);
        take(r.body.steps);
        live = r.body.live;
        idle = !writing && r.body.steps.length === 0 ? idle + 1 : 0;
        if (r.body.steps.length === 0) await new Promise((res) => setTimeout(res, 20));
      }
    };

    const readerDone = reader();
    await Promise.all([0, 1, 2, 3].map(writer));
    writing = false;
    await readerDone;
    await slow.end();

    // The reader: every event, none twice, the late one included.
    expect(seen.get(slowId)).toBe(1);
    expect([...seen.entries()].filter(([, n]) => n !== 1)).toEqual([]);
    expect([...seen.keys()].sort()).toEqual([...sent].sort());

    // Both streams: S's events told exactly once in all (the 30 before the storm too), in increasing positions.
    const told = (v: Change[]) => v.filter((m) => m.event === 'change').reduce((n, m) => n + (m.data.sessions ?? []).filter((s) => s.id === key).reduce((x, s) => x + s.events, 0), 0);
    await waitFor(() => told(viewerA) >= sent.size && told(viewerB) >= sent.size, { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 400)); // a few more polls: nothing more may come
    for (const v of [viewerA, viewerB]) {
      expect(v.filter((m) => m.event === 'reset')).toEqual([]);
      expect(told(v)).toBe(sent.size);
      const ids = v.map((m) => m.id);
      expect(ids).toEqual([...ids].sort((x, y) => x - y));
      expect(new Set(ids.slice(1)).size).toBe(ids.length - 1);
    }
    // A viewer that resumes from a message's id on the other replica gets only what came after it.
    const mid = viewerA.filter((m) => m.event === 'change')[3]!;
    const after = viewerA.filter((m) => m.event === 'change' && m.id > mid.id).reduce((n, m) => n + m.data.sessions!.reduce((x, s) => x + s.events, 0), 0);
    const resumed = await follow(`${b.url}/api/stream?session=${encodeURIComponent(key)}&last_event_id=${mid.id}`);
    await waitFor(() => resumed.length > 0);
    expect(resumed[0]).toMatchObject({ event: 'change', data: { catch_up: true } });
    expect(resumed[0]!.data.sessions!.find((s) => s.id === key)?.events).toBe(after);
  }, 120_000);
});
