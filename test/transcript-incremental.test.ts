/**
 * Incremental reading as the hooks use it: offsets across restarts, the last
 * message held back while it may still be streaming, the Stop-before-the-final-
 * message race, subagent files, and deterministic ids through the real worker.
 */
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadState, readNew, saveState } from '../src/transcript/incremental';
import { DIST_CLI, getJson, runCli, startServe, tempHome, waitFor, type ServeHandle, type TempHome } from './helpers/cli';
import { finishOrTakeRequest, handOffToRunningWorker, markWorkerActive, takeRequestAtStart, workerFiles } from '../src/transcript/handoff';

const scratch = mkdtempSync(join(tmpdir(), 'cm-incr-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let n = 0;
const line = (id: string, out: number, extra: Record<string, unknown> = {}) =>
  `${JSON.stringify({ type: 'assistant', timestamp: `2026-11-25T01:00:${String(n++ % 60).padStart(2, '0')}.000Z`, requestId: `req_${id}`, sessionId: 'S', cwd: '/w/app', message: { id, model: 'claude-sonnet-4-5-20250929', usage: { input_tokens: 10, output_tokens: out, cache_creation_input_tokens: 100, cache_read_input_tokens: 1000 } }, ...extra })}\n`;

describe('readNew', () => {
  it('holds back the last message until it is settled, then counts its largest write once', () => {
    const f = join(scratch, 'a.jsonl');
    const dir = join(scratch, 'state-a');
    writeFileSync(f, line('m1', 5) + line('m1', 40) + line('m2', 3));
    let r = readNew(f, loadState(dir, f), false);
    expect(r.lines.map((l) => [l.messageId, l.tokens.output_tokens])).toEqual([['m1', 40]]); // m2 may still stream
    saveState(dir, r.state);
    appendFileSync(f, line('m2', 30)); // its final write
    r = readNew(f, loadState(dir, f), false);
    expect(r.lines).toEqual([]); // still the last message
    saveState(dir, r.state);
    r = readNew(f, loadState(dir, f), true); // settled (quiet file or SessionEnd)
    expect(r.lines.map((l) => [l.messageId, l.tokens.output_tokens])).toEqual([['m2', 30]]);
    saveState(dir, r.state);
    expect(readNew(f, loadState(dir, f), true).lines).toEqual([]); // nothing twice
  });

  it('a Stop that reads before the final message is written misses nothing: the next read has it', () => {
    const f = join(scratch, 'b.jsonl');
    const dir = join(scratch, 'state-b');
    writeFileSync(f, line('t1', 7) + line('t2', 9));
    let r = readNew(f, loadState(dir, f), true); // Stop: final message not written yet
    saveState(dir, r.state);
    expect(r.lines.map((l) => l.messageId)).toEqual(['t1', 't2']);
    appendFileSync(f, line('t3', 11)); // written after Stop, before SessionEnd
    r = readNew(f, loadState(dir, f), true); // SessionEnd
    expect(r.lines.map((l) => l.messageId)).toEqual(['t3']);
  });

  it('costs O(new bytes): the offset survives restarts and points past what was read', () => {
    const f = join(scratch, 'c.jsonl');
    const dir = join(scratch, 'state-c');
    writeFileSync(f, line('x1', 1) + line('x2', 2));
    const r = readNew(f, loadState(dir, f), true);
    saveState(dir, r.state);
    const again = loadState(dir, f); // a new process
    expect(again.offset).toBe(r.state.offset);
    expect(again.offset).toBeGreaterThan(0);
    expect(readNew(f, again, true).lines).toEqual([]);
  });

  it('a torn last line is left for later', () => {
    const f = join(scratch, 'd.jsonl');
    const dir = join(scratch, 'state-d');
    const whole = line('y1', 4);
    writeFileSync(f, whole.slice(0, 30));
    const r = readNew(f, loadState(dir, f), true);
    expect(r.lines).toEqual([]);
    expect(r.state.offset).toBe(0);
    appendFileSync(f, whole.slice(30));
    expect(readNew(f, r.state, true).lines.map((l) => l.messageId)).toEqual(['y1']);
  });
});

describe('handing a read to the running worker', () => {
  it('no live worker: start one; a live one takes the request; it re-reads until none is left', () => {
    const f = workerFiles(join(scratch, 'handoff', 'offsets'), 'sess/1');
    expect(f.active.endsWith('sess_1.worker')).toBe(true);
    expect(handOffToRunningWorker(f, 'Stop')).toBe(false); // nobody running (and the directory did not exist)
    markWorkerActive(f, 2 ** 22 + 12345); // a pid that is not running
    expect(handOffToRunningWorker(f, 'Stop')).toBe(false);
    expect(takeRequestAtStart(f)).toBe('Stop'); // the new worker serves what was asked before it started
    markWorkerActive(f, process.pid);
    expect(handOffToRunningWorker(f, 'SessionEnd')).toBe(true);
    expect(finishOrTakeRequest(f)).toBe('SessionEnd');
    expect(readFileSync(f.active, 'utf8')).toBe(String(process.pid)); // active again for that read
    expect(finishOrTakeRequest(f)).toBeNull();
    expect(existsSync(f.active) || existsSync(f.again)).toBe(false);
  });
});

describe('transcript-worker (the built CLI) into a real collector', () => {
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

  it('sends one usage event per message with deterministic ids, subagents included; re-running adds nothing', async () => {
    const projects = join(home.home, '.claude', 'projects', '-w-app');
    mkdirSync(join(projects, 'S', 'subagents'), { recursive: true });
    const main = join(projects, 'S.jsonl');
    writeFileSync(main, line('a1', 5) + line('a1', 50) + line('a2', 20));
    writeFileSync(join(projects, 'S', 'subagents', 'agent-x1.jsonl'), line('sub1', 8, { isSidechain: true }));
    const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: serve.endpoint, CLAUDE_METRICS_SOURCE: 'interactive', CLAUDE_METRICS_PROJECT: 'app' };
    const args = ['transcript-worker', '--session-id', 'S', '--transcript-path', main, '--hook', 'SessionEnd', '--settle-ms', '100'];
    expect((await runCli(args, { env })).code).toBe(0);
    const s = (await getJson(`${serve.url}/api/sessions`)).body.sessions[0];
    expect(s).toMatchObject({ id: 'session:S', project: 'app', output_tokens: 50 + 20 + 8, input_tokens: 30, cache_creation_input_tokens: 300, cache_read_input_tokens: 3000, model: 'claude-sonnet-4-5-20250929' });
    // 3 messages: 30 input × $3, 78 output × $15, 300 cache write × $3.75, 3000 cache read × $0.30 per million
    expect(s.cost_usd).toBeCloseTo((30 * 3 + 78 * 15 + 300 * 3.75 + 3000 * 0.3) / 1e6, 9);
    // again, and after the state is wiped (a re-read from zero): the ids make it a no-op
    expect((await runCli(args, { env })).code).toBe(0);
    rmSync(join(home.stateDir, 'transcripts'), { recursive: true, force: true });
    expect((await runCli(args, { env })).code).toBe(0);
    const after = (await getJson(`${serve.url}/api/sessions`)).body.sessions[0];
    expect(after.output_tokens).toBe(78);
    expect((await getJson(`${serve.url}/api/summary`)).body.ingest.duplicates).toBe(3);
  });

  it('a SessionEnd while the Stop’s worker runs starts no second process, and its final message is counted', async () => {
    const projects = join(home.home, '.claude', 'projects', '-w-app');
    mkdirSync(projects, { recursive: true });
    const main = join(projects, 'U.jsonl');
    writeFileSync(main, line('c1', 5) + line('c2', 7));
    // Every background process the hooks start goes through this wrapper, which counts them.
    const starts = join(home.home, 'starts.log');
    const self = join(home.home, 'self.sh');
    writeFileSync(self, `#!/bin/sh\necho "$*" >> '${starts}'\nexec '${process.execPath}' '${DIST_CLI}' "$@"\n`);
    chmodSync(self, 0o755);
    const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: serve.endpoint, CLAUDE_METRICS_SELF: self, CLAUDE_METRICS_SETTLE_MS: '1500' };
    const hook = (name: string) => JSON.stringify({ session_id: 'U', transcript_path: main, cwd: home.home, hook_event_name: name, ...(name === 'Stop' ? { stop_hook_active: false } : { reason: 'other' }) });
    expect((await runCli(['emit'], { env, input: hook('Stop') })).code).toBe(0);
    appendFileSync(main, line('c3', 9)); // the final message, written after Stop (as Claude Code does)
    expect((await runCli(['emit'], { env, input: hook('SessionEnd') })).code).toBe(0);
    await waitFor(async () => (await getJson(`${serve.url}/api/sessions`)).body.sessions.find((s: { id: string; output_tokens: number }) => s.id === 'session:U' && s.output_tokens === 5 + 7 + 9), { timeoutMs: 20_000 });
    await waitFor(async () => !existsSync(join(home.stateDir, 'transcripts', 'U.worker')), { timeoutMs: 20_000 });
    expect(readFileSync(starts, 'utf8').trim().split('\n').filter((l) => l.startsWith('transcript-worker'))).toHaveLength(1);
  });

  it('while the collector is down the usage is spooled, and delivered by the next flush', async () => {
    const projects = join(home.home, '.claude', 'projects', '-w-app');
    mkdirSync(projects, { recursive: true });
    const main = join(projects, 'T.jsonl');
    writeFileSync(main, line('b1', 5) + line('b2', 6));
    const { deadPort } = await import('./helpers/cli');
    const down = { ...home.env, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${await deadPort()}/metrics/harness` };
    expect((await runCli(['transcript-worker', '--session-id', 'T', '--transcript-path', main, '--hook', 'SessionEnd', '--settle-ms', '100'], { env: down })).code).toBe(0);
    expect((await runCli(['flush'], { env: { ...home.env, CLAUDE_METRICS_ENDPOINT: serve.endpoint } })).code).toBe(0);
    await waitFor(async () => (await getJson(`${serve.url}/healthz`)).body.events === 2);
  });
});
