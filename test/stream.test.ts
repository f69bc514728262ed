/**
 * GET /api/stream against a real `serve`: messages name the sessions a commit
 * touched, filters hold, heartbeats come, Last-Event-ID resumes with nothing
 * lost (also across a collector restart), the cap answers 503 with a reason, a
 * viewer that stops reading is dropped while ingest goes on, and the token
 * rules hold.
 */
import { request, type IncomingMessage } from 'node:http';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/ids';
import { getJson, postJson, startServe, tempHome, waitFor, type ServeHandle, type TempHome } from './helpers/cli';
import { STORES, useStore } from './helpers/stores';

let home: TempHome;
let serve: ServeHandle | undefined;
const open: Array<{ close(): void }> = [];

beforeEach(() => {
  home = tempHome();
});
afterEach(async () => {
  for (const o of open.splice(0)) o.close();
  await serve?.stop();
  serve = undefined;
  home.cleanup();
});

interface Msg {
  id?: string;
  event?: string;
  data?: any;
  comment?: string;
}

/** A tiny SSE client: every message (and comment) parsed, in order. */
function stream(url: string, headers: Record<string, string> = {}): Promise<{ status: number; messages: Msg[]; res: IncomingMessage; body: string; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      const messages: Msg[] = [];
      let buf = '';
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const m: Msg = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) m.comment = line.slice(1).trim();
            else if (line.startsWith('id: ')) m.id = line.slice(4);
            else if (line.startsWith('event: ')) m.event = line.slice(7);
            else if (line.startsWith('data: ')) m.data = JSON.parse(line.slice(6));
          }
          if (m.event || m.comment) messages.push(m);
        }
      });
      res.on('error', () => {});
      const handle = { status: res.statusCode ?? 0, messages, res, get body() { return body; }, close: () => req.destroy() };
      open.push(handle);
      resolve(handle);
    });
    req.on('error', reject);
    req.end();
  });
}

const STUCK = `
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
s.connect(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'GET /api/stream HTTP/1.1\\r\\nHost: x\\r\\nAccept: text/event-stream\\r\\n\\r\\n')
print('sent', flush=True)
time.sleep(120)
`;
const ev = (o: Record<string, unknown>) => ({ event_id: uuidv7(), event: 'PostToolUse', source: 'interactive', tool_name: 'Bash', success: true, timestamp: new Date().toISOString(), ...o });
const changes = (s: { messages: Msg[] }) => s.messages.filter((m) => m.event === 'change');

describe.each(STORES)('stream on %s', (backend) => {
  const store = useStore(backend);
  let db = '';
  beforeEach(async () => {
    db = await store.fresh(home);
  });

  describe('GET /api/stream', () => {
    it('says which sessions changed, filtered by session, project and source; hello carries the resume point', async () => {
      serve = await startServe({ ...home.env, CLAUDE_METRICS_STREAM_HEARTBEAT_MS: '100' }, ['--db', db]);
      const all = await stream(`${serve.url}/api/stream`);
      const one = await stream(`${serve.url}/api/stream?session=${encodeURIComponent('session:A')}`);
      const proj = await stream(`${serve.url}/api/stream?project=p2`);
      const ralph = await stream(`${serve.url}/api/stream?source=ralph`);
      expect(all.status).toBe(200);
      expect(all.res.headers['content-type']).toMatch(/^text\/event-stream/);
      await waitFor(() => all.messages.length > 0);
      // The resume point is a position in the store's ingest order (SQLite: a rowid; PostgreSQL: a settled transaction id).
      expect(all.messages[0]).toMatchObject({ event: 'hello', id: expect.stringMatching(/^\d+$/) });
      const h0 = Number(all.messages[0]!.id);
      expect(all.messages[0]!.data).toEqual({ seq: h0 });

      expect((await postJson(serve.endpoint, { events: [ev({ session_id: 'A', project: 'p1' }), ev({ session_id: 'A', project: 'p1' }), ev({ session_id: 'B', project: 'p2' })] })).status).toBe(200);
      await postJson(serve.endpoint, ev({ source: 'ralph', run_id: 'R', project: 'p1' }));
      const told = (m: Msg[]) => {
        const n = new Map<string, number>();
        for (const c of changes({ messages: m })) for (const x of c.data.sessions) n.set(x.id, (n.get(x.id) ?? 0) + x.events);
        return Object.fromEntries(n);
      };
      await waitFor(() => told(all.messages)['run:R'] === 1 && changes(ralph).length === 1);
      // Every commit told once, in order (PostgreSQL's poller may tell two commits in one message).
      expect(told(all.messages)).toEqual({ 'session:A': 2, 'session:B': 1, 'run:R': 1 });
      const ids = changes(all).map((m) => Number(m.id));
      expect(ids[0]).toBeGreaterThan(h0);
      expect(ids).toEqual([...new Set(ids)].sort((a, b) => a - b));
      if (backend === 'sqlite') expect(ids).toEqual([h0 + 3, h0 + 4]);
      expect(changes(one).map((m) => m.data.sessions.map((s: any) => s.id))).toEqual([['session:A']]);
      expect(changes(proj).map((m) => m.data.sessions.map((s: any) => s.id))).toEqual([['session:B']]);
      expect(changes(ralph).map((m) => m.data.sessions.map((s: any) => s.id))).toEqual([['run:R']]);
      // A duplicate changes nothing and says nothing.
      const dup = (await getJson(`${serve.url}/api/sessions/run:R/events`)).body.steps[0].event_ids[0];
      const before = changes(all).length;
      await postJson(serve.endpoint, ev({ source: 'ralph', run_id: 'R', project: 'p1', event_id: dup }));
      // Heartbeats keep idle streams open through proxies.
      await waitFor(() => all.messages.filter((m) => m.comment?.startsWith('heartbeat')).length >= 2);
      expect(changes(all).length).toBe(before);
    });

    it('Last-Event-ID resumes with nothing lost, also across a collector restart', async () => {
      serve = await startServe(home.env, ['--db', db]);
      await postJson(serve.endpoint, ev({ session_id: 'A' }));
      const s1 = await stream(`${serve.url}/api/stream`);
      await waitFor(() => s1.messages.length > 0);
      const last = s1.messages[0]!.id!;
      expect(s1.messages[0]).toMatchObject({ event: 'hello', data: { seq: Number(last) } });
      s1.close();
      // While disconnected: three sessions change.
      await postJson(serve.endpoint, { events: [ev({ session_id: 'B' }), ev({ session_id: 'C' })] });
      await postJson(serve.endpoint, ev({ session_id: 'A' }));
      const s2 = await stream(`${serve.url}/api/stream`, { 'last-event-id': last });
      await waitFor(() => s2.messages.length > 0);
      expect(s2.messages[0]).toMatchObject({ event: 'change', data: { catch_up: true, events: 3 } });
      const caught = s2.messages[0]!.id!;
      expect(Number(caught)).toBeGreaterThan(Number(last));
      expect(s2.messages[0]!.data.sessions.map((s: any) => s.id).sort()).toEqual(['session:A', 'session:B', 'session:C']);
      // Up to date: a resume from the newest id is just a hello.
      const s3 = await stream(`${serve.url}/api/stream?last_event_id=${caught}`);
      await waitFor(() => s3.messages.length > 0);
      expect(s3.messages[0]).toMatchObject({ event: 'hello', id: caught });

      // Restart the collector: the position is the store's, so the id still means the same.
      s2.close();
      s3.close();
      await serve.stop();
      serve = await startServe(home.env, ['--db', db]);
      await postJson(serve.endpoint, ev({ session_id: 'D' }));
      const s4 = await stream(`${serve.url}/api/stream`, { 'last-event-id': caught });
      await waitFor(() => s4.messages.length > 0);
      expect(s4.messages[0]).toMatchObject({ event: 'change', data: { sessions: [{ id: 'session:D', events: 1 }] } });
      expect(Number(s4.messages[0]!.id)).toBeGreaterThan(Number(caught));
      // An id from another database is ahead of this one: reset, read again.
      const s5 = await stream(`${serve.url}/api/stream`, { 'last-event-id': '999999999999' });
      await waitFor(() => s5.messages.length > 0);
      expect(s5.messages[0]).toMatchObject({ event: 'reset' });
      expect(Number(s5.messages[0]!.id)).toBeGreaterThanOrEqual(Number(s4.messages[0]!.id));
    });

    it('past the cap: 503 with a reason; a slot frees when a viewer leaves', async () => {
      serve = await startServe({ ...home.env, CLAUDE_METRICS_MAX_STREAMS: '2' }, ['--db', db]);
      const a = await stream(`${serve.url}/api/stream`);
      await stream(`${serve.url}/api/stream`);
      const c = await stream(`${serve.url}/api/stream`);
      expect(c.status).toBe(503);
      expect(c.res.headers['retry-after']).toBe('5');
      await waitFor(() => c.body.length > 0);
      expect(JSON.parse(c.body).error).toMatch(/too many live streams \(2 open\)/);
      a.close();
      const d = await waitFor(async () => {
        const s = await stream(`${serve!.url}/api/stream`);
        return s.status === 200 ? s : (s.close(), undefined);
      });
      expect(d!.status).toBe(200);
    });

    it('a viewer that stops reading is dropped; ingest goes on, every event stored once', async () => {
      serve = await startServe({ ...home.env, CLAUDE_METRICS_STREAM_MAX_BUFFER: '4096' }, ['--db', db]);
      const port = Number(new URL(serve.url).port);
      // A viewer that sends the request and then never reads a byte (a tiny receive window, so the
      // kernel does not absorb megabytes first).
      const stuck = spawn('/usr/bin/python3', ['-c', STUCK, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
      open.push({ close: () => stuck.kill('SIGKILL') });
      await new Promise<void>((r) => stuck.stdout!.once('data', () => r()));
      await waitFor(async () => /^claude_harness_streams_open 1$/m.test((await getJson(`${serve!.url}/metrics`)).body));
      const reader = await stream(`${serve.url}/api/stream`);
      // Messages of 200 sessions each, until the kernel's buffers are full and ours passes the bound.
      let sent = 0;
      const dropped = async () => {
        const text = (await getJson(`${serve!.url}/metrics`)).body as string;
        return Number(/^claude_harness_stream_dropped_total (\d+)/m.exec(text)?.[1]);
      };
      expect(await dropped()).toBe(0);
      for (let round = 0; round < 600 && (round % 5 !== 0 || (await dropped()) === 0); round++) {
        const events = Array.from({ length: 200 }, (_, i) => ev({ session_id: `s-${round}-${i}-${'x'.repeat(240)}` }));
        const r = await postJson(serve.endpoint, { events });
        expect(r.status).toBe(200);
        expect(r.body.accepted).toBe(200);
        sent += 200;
      }
      expect(await dropped()).toBe(1);
      // The reader that keeps up was told about every commit.
      await waitFor(() => changes(reader).reduce((a, m) => a + m.data.events, 0) === sent);
      expect((await getJson(`${serve.url}/healthz`)).body.events).toBe(sent);
    });

    it('the token rules: no token, no stream', async () => {
      serve = await startServe(home.env, ['--db', db, '--token', 'tok-st']);
      expect((await stream(`${serve.url}/api/stream`)).status).toBe(401);
      expect((await stream(`${serve.url}/api/stream`, { authorization: 'Bearer tok-st' })).status).toBe(200);
      expect((await stream(`${serve.url}/api/stream`, { cookie: 'cm_token=tok-st' })).status).toBe(200);
    });
  });
});
