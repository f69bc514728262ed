/**
 * Interactive Claude Code, as a person runs it: the pinned real client in a
 * terminal (a private tmux server), typed into with send-keys and read with
 * capture-pane, offline against the scripted fake Messages API, with the hooks
 * `install` writes (the default fast hook) and `claude-metrics serve` as the
 * collector. What the client does here is written up in docs/interactive.md.
 *
 * Every case prints its final screens into the test output (and
 * .test-output/interactive/), so a failure shows what the person saw.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { decodeBody, type StoredParts } from '../../src/collector/store/event-codec';
import { BODY_PARTS } from '../../src/collector/store/migrations/sqlite-compact-events';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeAnthropic, type FakeAnthropic, type Scenario, type Usage } from '../fake-anthropic/server';
import { getJson, ROOT, runCli, startServe, tempHome, waitDelivered, waitFor, type ServeHandle, type TempHome } from '../helpers/cli';
import { launchChromium } from '../helpers/browser';
import { Tmux } from '../helpers/tmux';

const CLAUDE = join(ROOT, 'node_modules', '.bin', 'claude');
const MODEL = 'claude-sonnet-4-5-20250929';
const API_KEY = 'sk-ant-api03-e2e-interactive-0123456789abcdef';
const PINNED = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies['@anthropic-ai/claude-code']!;
/** Whether tmux is here at all (scripts/test.sh installs it; without it this suite cannot run). */
const HAVE_TMUX = (() => {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
/** The client's idle input line: the prompt box is ready for typing. */
const IDLE = /\? for shortcuts/;
const CASE_MS = 300_000;

beforeAll(() => {
  const version = execFileSync(CLAUDE, ['--version'], { encoding: 'utf8' }).trim();
  console.log(`interactive e2e: Claude Code ${version} (pinned ${PINNED}), ${HAVE_TMUX ? execFileSync('tmux', ['-V'], { encoding: 'utf8' }).trim() : 'no tmux'}`);
  expect(version).toContain(PINNED);
});

interface World {
  home: TempHome;
  project: string;
  configDir: string;
  serve: ServeHandle;
  db: string;
  env: Record<string, string>;
  tmux: Tmux;
  sessions: string[];
  /** Screens kept along the way (the conversation before /exit clears it). */
  screens: Array<[string, string]>;
}
let worlds: World[] = [];

afterEach(async (ctx) => {
  for (const w of worlds) {
    // The screens at the end of the case, whatever happened.
    const dir = join(ROOT, '.test-output', 'interactive');
    mkdirSync(dir, { recursive: true });
    for (const name of w.sessions) w.screens.push([`${name}, at the end`, (await w.tmux.capture(name)) || w.tmux.lastScreen(name)]);
    const text = w.screens
      .map(([what, screen]) => `┌── ${ctx.task.name}: terminal ${what}\n${screen.replace(/\s+$/, '').replace(/\n{3,}/g, '\n\n').split('\n').map((l) => `│ ${l}`).join('\n')}\n└──`)
      .join('\n');
    console.log(`\n${text}`);
    writeFileSync(join(dir, `${ctx.task.name.replace(/[^\w]+/g, '-').slice(0, 60)}.txt`), `${text}\n`);
    await w.tmux.killServer();
    await w.serve.stop();
    w.home.cleanup();
  }
  worlds = [];
});

/** A temp HOME prepared so the client's first-run screens do not block, our hooks installed, a collector. */
async function world(fakeUrl: string, serveArgs: string[] = []): Promise<World> {
  const home = tempHome('cm-tmux-');
  const project = join(home.home, 'work', 'demo-app');
  mkdirSync(project, { recursive: true });
  const configDir = home.env.CLAUDE_CONFIG_DIR!;
  const db = join(home.home, 'collector.db');
  const serve = await startServe(home.env, ['--db', db, ...serveArgs]);
  const w: World = { home, project, configDir, serve, db, env: {}, tmux: undefined as unknown as Tmux, sessions: [], screens: [] };
  worlds.push(w);
  const r = await runCli(['install', '--settings', join(configDir, 'settings.json')], { env: home.env });
  expect(r.code, r.stderr).toBe(0);
  // The global config the client reads ($CLAUDE_CONFIG_DIR/.claude.json, else ~/.claude.json):
  // onboarding done, this API key approved (by its last 20 characters), this folder trusted.
  writeFileSync(
    join(configDir, '.claude.json'),
    JSON.stringify({ hasCompletedOnboarding: true, customApiKeyResponses: { approved: [API_KEY.slice(-20)], rejected: [] }, projects: { [project]: { hasTrustDialogAccepted: true } } }, null, 2),
  );
  w.env = {
    ...home.env,
    LANG: 'C.UTF-8',
    ANTHROPIC_API_KEY: API_KEY,
    ANTHROPIC_BASE_URL: fakeUrl,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    CLAUDE_METRICS_ENDPOINT: serve.endpoint,
    CLAUDE_METRICS_SETTLE_MS: '300',
    CLAUDE_METRICS_TIMEOUT_MS: '2000',
  };
  w.tmux = new Tmux(join(home.home, 'tmux.sock'), w.env);
  return w;
}

/** Opens a terminal running `claude` in the project and waits for its prompt box. */
async function openClaude(w: World, name: string, args: string[], env: Record<string, string> = {}): Promise<void> {
  w.sessions.push(name);
  await w.tmux.start(name, [CLAUDE, '--model', MODEL, ...args], { cwd: w.project, env });
  await w.tmux.waitForScreen(name, IDLE);
}

/** Types a line into the prompt box and sends it once the box shows it (keys typed too early are lost). */
async function say(w: World, name: string, text: string): Promise<void> {
  await w.tmux.type(name, text);
  await w.tmux.waitForScreen(name, new RegExp(`❯\\s+${text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  await w.tmux.press(name, 'Enter');
}

/** `/exit`, then the pane's program ends; returns the session id the client prints for --resume. */
async function exitClaude(w: World, name: string): Promise<string> {
  w.screens.push([`${name}, before /exit`, await w.tmux.capture(name)]);
  await say(w, name, '/exit');
  const m = await w.tmux.waitForScreen(name, /--resume ([0-9a-f-]{36})/);
  await waitFor(async () => (await w.tmux.pane(name)).dead, { timeoutMs: 30_000, intervalMs: 200 });
  return m[1]!;
}

/** Every event that will arrive has arrived (see waitDelivered). */
const delivered = (w: World) => waitDelivered(w.home.stateDir);

interface StoredEvent {
  event: string;
  ts_ms: number;
  event_id: string;
  session_id: string | null;
  tool_name: string | null;
  duration_ms: number | null;
  body: { hook?: Record<string, unknown>; source: string; [k: string]: unknown };
}

/** The events the collector stored (read-only from its SQLite file), in time order. */
function stored(w: World, sessionId?: string): StoredEvent[] {
  if (!existsSync(w.db)) return [];
  const db = new Database(w.db, { readonly: true, fileMustExist: true });
  try {
    // harness_events is a view of compact rows: each body is rebuilt from its parts, as the collector's reads do.
    const rows = db.prepare(`SELECT received_ms, ${BODY_PARTS} FROM harness_events ${sessionId ? 'WHERE session_id = ?' : ''} ORDER BY ts_ms, event_id`).all(...(sessionId ? [sessionId] : [])) as Array<StoredParts & { received_ms: number }>;
    return rows.map((r) => ({ event_id: r.event_id, event: r.event, ts_ms: r.ts_ms, received_ms: r.received_ms, session_id: r.session_id, tool_name: r.tool_name, duration_ms: r.duration_ms, body: JSON.parse(decodeBody(r)) as StoredEvent['body'] }));
  } finally {
    db.close();
  }
}

/** waitFor, typed for conditions that return the thing waited for or nothing. */
const until = async <T,>(fn: () => T | undefined | false | Promise<T | undefined | false>, opts?: { timeoutMs?: number; intervalMs?: number; what?: string; w?: World }): Promise<T> => {
  try {
    return (await waitFor(fn, opts)) as T;
  } catch (err) {
    // Say what was awaited and what the collector had, so a failure explains itself.
    const w = opts?.w;
    const have = w ? `; sessions: ${JSON.stringify(await sessions(w).catch(() => []))}; events: ${stored(w).map((e) => e.event).join(', ')}` : '';
    throw new Error(`${opts?.what ?? 'condition'}: ${(err as Error).message}${have}`);
  }
};
const count = (events: StoredEvent[], name: string) => events.filter((e) => e.event === name).length;
const sum = (u: Usage) => u.input_tokens + u.output_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens;
const tokensOf = (s: Usage) => ({ input_tokens: s.input_tokens, output_tokens: s.output_tokens, cache_creation_input_tokens: s.cache_creation_input_tokens, cache_read_input_tokens: s.cache_read_input_tokens });

async function sessions(w: World): Promise<Array<Record<string, any>>> {
  return (await getJson(`${w.serve.url}/api/sessions`)).body.sessions as Array<Record<string, any>>;
}

/** What the client itself saved for the project at exit: cost, tokens, tool time, and which session. */
function clientTotals(w: World): { lastSessionId: string; lastCost: number; lastToolDuration: number; lastTotalInputTokens: number; lastTotalOutputTokens: number; lastTotalCacheCreationInputTokens: number; lastTotalCacheReadInputTokens: number } {
  const config = JSON.parse(readFileSync(join(w.configDir, '.claude.json'), 'utf8')) as { projects: Record<string, any> };
  return config.projects[w.project];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!HAVE_TMUX)('interactive Claude Code in a terminal (tmux), through our hooks', () => {
  it(
    'a person: a prompt whose tool call needs permission, answered; a second prompt; /cost; /exit',
    async () => {
      const fake = await startFakeAnthropic({
        model: MODEL,
        main: [
          { kind: 'tool', name: 'Bash', input: { command: 'touch made-by-claude.txt', description: 'make a file' }, usage: { input_tokens: 1500, output_tokens: 60, cache_creation_input_tokens: 4000, cache_read_input_tokens: 12000 } },
          { kind: 'text', text: 'Made the file.', usage: { input_tokens: 200, output_tokens: 80, cache_creation_input_tokens: 100, cache_read_input_tokens: 16500 } },
          { kind: 'text', text: 'The second answer.', usage: { input_tokens: 210, output_tokens: 30, cache_creation_input_tokens: 50, cache_read_input_tokens: 17000 } },
        ],
      });
      try {
        const w = await world(fake.url);
        // "default" asks before a Bash command runs (the pinned client starts in its own mode otherwise).
        await openClaude(w, 'person', ['--permission-mode', 'default']);
        await say(w, 'person', 'make a file please');
        await w.tmux.waitForScreen('person', /Do you want to proceed\?[\s\S]*1\. Yes/);
        // A person takes a moment: the client notifies while it waits for the answer.
        const notified = await until(() => stored(w).find((e) => e.event === 'Notification'), { timeoutMs: 60_000, intervalMs: 250, what: 'the Notification of the permission prompt', w });
        expect(existsSync(join(w.project, 'made-by-claude.txt'))).toBe(false); // nothing ran before the answer
        await w.tmux.press('person', 'Enter'); // "1. Yes"
        await w.tmux.waitForScreen('person', /Made the file\.[\s\S]*\? for shortcuts/);
        expect(existsSync(join(w.project, 'made-by-claude.txt'))).toBe(true);
        await say(w, 'person', 'and a second question');
        await w.tmux.waitForScreen('person', /The second answer\.[\s\S]*\? for shortcuts/);
        // The client's own cost figure, as the person sees it.
        await say(w, 'person', '/cost');
        const shown = await w.tmux.waitForScreen('person', /(?:Estimated|Total) cost:\s+\$(\d+\.\d+)/);
        await w.tmux.press('person', 'Escape');
        await w.tmux.waitForScreen('person', IDLE);
        const id = await exitClaude(w, 'person');

        const served = fake.totals();
        const s = await until(
          async () => {
            const row = (await sessions(w)).find((x) => x.claude_session_id === id);
            return row && row.completed_at && sum(row as unknown as Usage) >= sum(served) ? row : undefined;
          },
          { timeoutMs: 60_000, intervalMs: 250, what: 'the session completed with every token', w },
        );
        const client = clientTotals(w);
        expect(client.lastSessionId).toBe(id);
        expect(await sessions(w)).toHaveLength(1);
        expect(s).toMatchObject({ id: `session:${id}`, source: 'interactive', project: 'demo-app', model: MODEL, success: true, active: false, tool_calls_count: 1, tool_failures: 0, ...tokensOf(served) });
        // Tokens: what the fake served = what the client counted = what we show.
        expect({ input_tokens: client.lastTotalInputTokens, output_tokens: client.lastTotalOutputTokens, cache_creation_input_tokens: client.lastTotalCacheCreationInputTokens, cache_read_input_tokens: client.lastTotalCacheReadInputTokens }).toEqual(tokensOf(served));
        // Cost: Claude Code's own figure for the session (saved at exit; /cost shows it rounded).
        expect(s.cost_usd).toBeCloseTo(client.lastCost, 9);
        expect(Number(shown[1])).toBeCloseTo(s.cost_usd, 4);

        await delivered(w);
        const events = stored(w, id);
        expect(events.every((e) => e.body.source === 'interactive')).toBe(true);
        expect(new Set(events.map((e) => e.event_id)).size).toBe(events.length);
        // Slash commands (/cost, /exit) are not prompts.
        expect(count(events, 'UserPromptSubmit')).toBe(2);
        expect(count(events, 'SessionStart')).toBe(1);
        expect(count(events, 'Stop')).toBe(2);
        const order = (name: string) => events.findIndex((e) => e.event === name);
        // The permission prompt: PreToolUse, PermissionRequest, Notification, then (after the answer) PostToolUse.
        expect(order('PreToolUse')).toBeLessThan(order('PermissionRequest'));
        expect(order('PermissionRequest')).toBeLessThan(order('Notification'));
        expect(order('Notification')).toBeLessThan(order('PostToolUse'));
        expect(events.find((e) => e.event === 'PermissionRequest')).toMatchObject({ tool_name: 'Bash' });
        expect(notified.body.hook).toMatchObject({ notification_type: 'permission_prompt' });
        // The tool call with its duration: the client's own tool time (not the wait for the person).
        const post = events.filter((e) => e.event === 'PostToolUse');
        expect(post).toHaveLength(1);
        expect(post[0]).toMatchObject({ tool_name: 'Bash' });
        expect(post[0]!.duration_ms).toBe(client.lastToolDuration);
        const waited = post[0]!.ts_ms - events[order('PreToolUse')]!.ts_ms;
        expect(waited).toBeGreaterThan(post[0]!.duration_ms!);
        const asked = events[order('PermissionRequest')]!.ts_ms;
        console.log(`interactive e2e: Notification ${notified.ts_ms - asked} ms after PermissionRequest; the tool call waited ${waited} ms in all and ran ${post[0]!.duration_ms} ms`);
        const bash = ((await getJson(`${w.serve.url}/api/summary`)).body.top_tools as Array<{ tool: string; calls: number; avg_duration_ms: number }>).find((t) => t.tool === 'Bash');
        expect(bash).toMatchObject({ calls: 1, avg_duration_ms: client.lastToolDuration });
        // How it ended.
        const end = events.filter((e) => e.event === 'SessionEnd');
        expect(end).toHaveLength(1);
        expect(end[0]!.body.hook).toMatchObject({ reason: 'prompt_input_exit' });
        const metrics = (await getJson(`${w.serve.url}/metrics`)).body as string;
        expect(metrics).toMatch(/claude_harness_events_total\{[^}]*event="Notification"[^}]*source="interactive"[^}]*\} 1\n/);
        // Delivery is at-least-once (a reply slower than the emit deadline is sent again), so the
        // collector may have seen duplicates; what it stored and counted is each event once.
        const ingest = (await getJson(`${w.serve.url}/api/summary`)).body.ingest as { events: number; duplicates: number };
        expect(ingest.events).toBe(stored(w).length);
      } finally {
        await fake.close();
      }
    },
    CASE_MS,
  );

  it(
    'a permission prompt left unanswered: the session is in "Waiting on you" (API and main page), its wait growing, until the person answers',
    async () => {
      const fake = await startFakeAnthropic({
        model: MODEL,
        main: [
          { kind: 'tool', name: 'Bash', input: { command: 'touch asked-first.txt', description: 'make a file' }, usage: { input_tokens: 900, output_tokens: 40, cache_creation_input_tokens: 2000, cache_read_input_tokens: 8000 } },
          { kind: 'text', text: 'Done after asking.', usage: { input_tokens: 120, output_tokens: 30, cache_creation_input_tokens: 60, cache_read_input_tokens: 10000 } },
        ],
      });
      const browser = await launchChromium();
      try {
        const w = await world(fake.url);
        const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
        const problems: string[] = [];
        page.on('pageerror', (e) => problems.push(e.message));
        page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
        await page.goto(`${w.serve.url}/`);
        await page.waitForFunction(() => document.body.dataset.state === 'ready' && /live/.test(document.getElementById('updated')!.textContent!), undefined, { timeout: 30_000 });
        expect(await page.isHidden('#waiting-panel')).toBe(true);

        await openClaude(w, 'asker', ['--permission-mode', 'default']);
        await say(w, 'asker', 'make a file, asking first');
        await w.tmux.waitForScreen('asker', /Do you want to proceed\?[\s\S]*1\. Yes/);
        type Waiting = { id: string; claude_session_id: string; since: string; waited_ms: number; kind: string; tool_name: string | null; source: string; project: string; host: string | null };
        const waiting = async () => (await getJson(`${w.serve.url}/api/waiting`)).body.waiting as Waiting[];
        // The collector hears of the prompt from the hooks (PermissionRequest at once, Notification seconds later).
        const first = await until(async () => (await waiting())[0], { timeoutMs: 60_000, intervalMs: 250, what: 'the session in /api/waiting', w });
        expect(first).toMatchObject({ source: 'interactive', project: 'demo-app', tool_name: 'Bash' });
        expect(first.id).toBe(`session:${first.claude_session_id}`);
        // The main page lists it (told by the stream, no reload), linking to its page.
        await page.waitForSelector('#waiting-panel:not([hidden])', { timeout: 10_000 });
        const href = `/sessions/${encodeURIComponent(first.id)}`;
        expect(await page.getAttribute('#waiting-list li a', 'href')).toBe(href);
        expect(await page.textContent('#waiting-list li')).toContain('permission (Bash)');
        const shown = async () => Number((await page.getAttribute('#waiting-list li strong.waited', 'data-waited-ms')) ?? NaN);
        const shownText = () => page.textContent('#waiting-list li strong.waited');

        // Nobody answers: the Notification comes too, the wait keeps its start and grows, on the API and on the page.
        await until(() => stored(w).find((e) => e.event === 'Notification'), { timeoutMs: 60_000, intervalMs: 250, what: 'the Notification of the permission prompt', w });
        const later = await until(
          async () => {
            const x = (await waiting()).find((r) => r.id === first.id);
            return x && x.waited_ms >= first.waited_ms + 2000 ? x : undefined;
          },
          { timeoutMs: 30_000, intervalMs: 250, what: 'a longer wait', w },
        );
        expect(later.since).toBe(first.since);
        expect(await waiting()).toHaveLength(1);
        // On the page the wait counts on between refreshes (nothing new arrives while nobody answers).
        await page.waitForFunction(
          () => {
            const el = document.querySelector<HTMLElement>('#waiting-list li strong.waited');
            const m = /^waited (?:(\d+) min )?(\d+(?:\.\d)?) s$/.exec(el?.textContent ?? '');
            return m && (Number(m[1] ?? 0) * 60 + Number(m[2])) * 1000 >= Number(el!.dataset.waitedMs) + 2000;
          },
          undefined,
          { timeout: 10_000 },
        );
        expect(await page.getAttribute('#waiting-list li a', 'href')).toBe(href);
        expect(existsSync(join(w.project, 'asked-first.txt'))).toBe(false);
        const pageBefore = `${await shownText()} (${await shown()} ms when fetched)`;

        // The person answers "1. Yes": the tool runs, the session leaves the list, on the API and on the page.
        await w.tmux.press('asker', 'Enter');
        await w.tmux.waitForScreen('asker', /Done after asking\.[\s\S]*\? for shortcuts/);
        expect(existsSync(join(w.project, 'asked-first.txt'))).toBe(true);
        await until(async () => (await waiting()).length === 0, { timeoutMs: 60_000, intervalMs: 250, what: 'the session gone from /api/waiting', w });
        await page.waitForSelector('#waiting-panel[hidden]', { state: 'attached', timeout: 10_000 });
        expect(await page.$$eval('#waiting-list li', (li) => li.length)).toBe(0);

        const id = await exitClaude(w, 'asker');
        expect(first.claude_session_id).toBe(id);
        await delivered(w);
        const events = stored(w, id);
        const at = (name: string) => events.find((e) => e.event === name)!.ts_ms;
        // The wait counted from the permission request to (at least) the last look before the answer.
        expect(Date.parse(first.since)).toBe(at('PermissionRequest'));
        expect(at('PostToolUse')).toBeGreaterThanOrEqual(Date.parse(later.since) + later.waited_ms);
        console.log(`interactive e2e: "Waiting on you" listed the session ${first.waited_ms} ms after it asked; before the answer the API said ${later.waited_ms} ms, the page ${pageBefore}; answered ${at('PostToolUse') - at('PermissionRequest')} ms after the request`);
        expect(problems).toEqual([]);
      } finally {
        await browser.close();
        await fake.close();
      }
    },
    CASE_MS,
  );

  it(
    "with Claude Code's OpenTelemetry export on as well: the session's cost is Claude Code's own (cost_source claude_code), each request counted once",
    async () => {
      const fake = await startFakeAnthropic({
        model: MODEL,
        main: [
          { kind: 'tool', name: 'Bash', input: { command: 'echo with-otel', description: 'say it' }, usage: { input_tokens: 1200, output_tokens: 50, cache_creation_input_tokens: 3000, cache_read_input_tokens: 9000 } },
          { kind: 'text', text: 'Told you.', usage: { input_tokens: 150, output_tokens: 35, cache_creation_input_tokens: 80, cache_read_input_tokens: 12500 } },
        ],
      });
      try {
        const w = await world(fake.url);
        const otel = {
          CLAUDE_CODE_ENABLE_TELEMETRY: '1',
          OTEL_LOGS_EXPORTER: 'otlp',
          OTEL_METRICS_EXPORTER: 'otlp',
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
          OTEL_EXPORTER_OTLP_ENDPOINT: w.serve.url,
          OTEL_LOGS_EXPORT_INTERVAL: '1000',
          OTEL_METRIC_EXPORT_INTERVAL: '1000',
        };
        await openClaude(w, 'otel', ['--permission-mode', 'default', '--allowedTools', 'Bash'], otel);
        await say(w, 'otel', 'say it with otel');
        await w.tmux.waitForScreen('otel', /Told you\.[\s\S]*\? for shortcuts/);
        const id = await exitClaude(w, 'otel');
        const served = fake.totals();
        const client = clientTotals(w);
        expect(client.lastSessionId).toBe(id);
        const s = await until(
          async () => {
            const row = (await sessions(w)).find((x) => x.claude_session_id === id);
            return row && row.completed_at && row.cost_source === 'claude_code' && sum(row as unknown as Usage) >= sum(served) ? row : undefined;
          },
          { timeoutMs: 60_000, intervalMs: 250, what: 'the session completed with every token', w },
        );
        expect(s).toMatchObject({ source: 'interactive', cost_source: 'claude_code', tool_calls_count: 1, ...tokensOf(served) });
        expect(s.cost_usd).toBeCloseTo(client.lastCost, 9);
        await delivered(w);
        expect(count(stored(w, id), 'usage')).toBeGreaterThan(0);
      } finally {
        await fake.close();
      }
    },
    CASE_MS,
  );

  it(
    'the terminal is closed (tmux kill-session) mid-turn: everything hooked is kept and the session ends',
    async () => {
      const fake = await startFakeAnthropic({
        model: MODEL,
        main: [
          { kind: 'tool', name: 'Bash', input: { command: 'echo first-step', description: 'first step' }, usage: { input_tokens: 1500, output_tokens: 60, cache_creation_input_tokens: 4000, cache_read_input_tokens: 12000 } },
          { kind: 'hang' },
        ],
      });
      try {
        const w = await world(fake.url);
        await openClaude(w, 'closed', ['--permission-mode', 'default', '--allowedTools', 'Bash']);
        const pid = (await w.tmux.pane('closed')).pid;
        await say(w, 'closed', 'do two steps');
        // Mid-turn: the tool ran and the model is halfway through its next answer.
        await waitFor(() => fake.hanging() === 1 && stored(w).some((e) => e.event === 'PostToolUse'), { timeoutMs: 90_000, intervalMs: 250 });
        await w.tmux.waitForScreen('closed', /esc to interrupt/);
        const before = stored(w).map((e) => e.event_id);
        await w.tmux.killSession('closed');
        await waitFor(() => !alive(pid), { timeoutMs: 30_000, intervalMs: 100 });

        const served = fake.totals();
        const s = await until(
          async () => {
            const row = (await sessions(w))[0];
            return row && (row.completed_at || row.active === false) && sum(row as unknown as Usage) >= sum(served) ? row : undefined;
          },
          { timeoutMs: 60_000, intervalMs: 250, what: 'the session completed with every token', w },
        );
        await delivered(w);
        const events = stored(w, s.claude_session_id);
        expect(events.map((e) => e.event_id)).toEqual(expect.arrayContaining(before));
        for (const name of ['SessionStart', 'UserPromptSubmit', 'PreToolUse', 'PostToolUse']) expect(count(events, name), name).toBe(1);
        // The pinned client runs SessionEnd on SIGHUP (reason "other"), so the session is ended, not left running.
        const end = events.filter((e) => e.event === 'SessionEnd');
        expect(end).toHaveLength(1);
        expect(end[0]!.body.hook).toMatchObject({ reason: 'other' });
        expect(s).toMatchObject({ source: 'interactive', active: false, tool_calls_count: 1, ...tokensOf(served) });
        expect(s.completed_at).not.toBeNull();
        expect(fake.hanging()).toBe(0); // the client is gone, its request with it
        expect((await getJson(`${w.serve.url}/api/summary`)).body.active.total).toBe(0);
      } finally {
        await fake.close();
      }
    },
    CASE_MS,
  );

  it(
    'the client is killed (SIGKILL) mid-turn: nothing hooked is lost, the session goes stale after the active window, backfill adds its tokens',
    async () => {
      const fake = await startFakeAnthropic({
        model: MODEL,
        main: [
          { kind: 'tool', name: 'Bash', input: { command: 'echo first-step', description: 'first step' }, usage: { input_tokens: 1500, output_tokens: 60, cache_creation_input_tokens: 4000, cache_read_input_tokens: 12000 } },
          { kind: 'hang' },
        ],
      });
      try {
        const windowMs = 15_000;
        const w = await world(fake.url, ['--active-window-ms', String(windowMs)]);
        await openClaude(w, 'killed', ['--permission-mode', 'default', '--allowedTools', 'Bash']);
        const pid = (await w.tmux.pane('killed')).pid;
        await say(w, 'killed', 'do two steps');
        await waitFor(() => fake.hanging() === 1 && stored(w).some((e) => e.event === 'PostToolUse'), { timeoutMs: 90_000, intervalMs: 250 });
        await w.tmux.waitForScreen('killed', /esc to interrupt/);
        const running = (await sessions(w))[0]!;
        expect(running).toMatchObject({ source: 'interactive', active: true, completed_at: null });
        const before = stored(w).map((e) => e.event_id);
        process.kill(pid, 'SIGKILL'); // no SessionEnd, no Stop: nothing of the client runs after this
        await waitFor(async () => (await w.tmux.pane('killed')).dead, { timeoutMs: 30_000, intervalMs: 100 });

        // Stale, never "running" forever: once the window has passed without an event.
        const stale = await until(async () => ((await sessions(w))[0]!.active === false ? (await sessions(w))[0]! : undefined), { timeoutMs: windowMs + 60_000, intervalMs: 500 });
        expect(stale).toMatchObject({ id: running.id, completed_at: null, success: null });
        await delivered(w);
        const events = stored(w, stale.claude_session_id);
        expect(events.map((e) => e.event_id)).toEqual(expect.arrayContaining(before));
        expect(count(events, 'SessionEnd')).toBe(0);
        for (const name of ['SessionStart', 'UserPromptSubmit', 'PreToolUse', 'PostToolUse']) expect(count(events, name), name).toBe(1);
        expect((await getJson(`${w.serve.url}/api/summary`)).body.active.total).toBe(0);
        expect((await getJson(`${w.serve.url}/metrics`)).body).not.toMatch(/claude_harness_active_sessions\{[^}]*\} [1-9]/);

        // The answer that completed before the kill is in the transcript; no hook read it. backfill does, once.
        const served = fake.totals();
        for (let i = 0; i < 2; i++) {
          const b = await runCli(['backfill', '--projects-dir', join(w.configDir, 'projects')], { env: w.env });
          expect(b.code, b.stderr).toBe(0);
        }
        const after = await until(async () => {
          const row = (await sessions(w))[0]!;
          return sum(row as unknown as Usage) >= sum(served) ? row : undefined;
        });
        expect(after).toMatchObject({ id: running.id, active: false, completed_at: null, ...tokensOf(served) });
      } finally {
        await fake.close();
      }
    },
    CASE_MS,
  );

  it(
    'two people in the same project at once: each session keeps its own events, tokens and cost',
    async () => {
      const scenario = (tag: string, base: number): Scenario => ({
        model: MODEL,
        main: [
          { kind: 'tool', name: 'Bash', input: { command: `echo from-${tag}`, description: `say ${tag}` }, usage: { input_tokens: base, output_tokens: 40, cache_creation_input_tokens: 2 * base, cache_read_input_tokens: 5 * base } },
          { kind: 'text', text: `Answer for ${tag}.`, usage: { input_tokens: base / 10, output_tokens: 25, cache_creation_input_tokens: 30, cache_read_input_tokens: 6 * base } },
        ],
      });
      const fakeA = await startFakeAnthropic(scenario('alice', 1000));
      const fakeB = await startFakeAnthropic(scenario('bob', 3000));
      try {
        const w = await world(fakeA.url);
        const args = ['--permission-mode', 'default', '--allowedTools', 'Bash'];
        await openClaude(w, 'alice', args);
        await openClaude(w, 'bob', args, { ANTHROPIC_BASE_URL: fakeB.url });
        // Both turns in flight together.
        await say(w, 'alice', 'alice asks');
        await say(w, 'bob', 'bob asks');
        await w.tmux.waitForScreen('alice', /Answer for alice\.[\s\S]*\? for shortcuts/);
        await w.tmux.waitForScreen('bob', /Answer for bob\.[\s\S]*\? for shortcuts/);
        const idA = await exitClaude(w, 'alice');
        const costA = clientTotals(w);
        expect(costA.lastSessionId).toBe(idA);
        const idB = await exitClaude(w, 'bob');
        const costB = clientTotals(w);
        expect(costB.lastSessionId).toBe(idB);
        expect(idA).not.toBe(idB);

        const rows = await until(
          async () => {
            const all = await sessions(w);
            const a = all.find((x) => x.claude_session_id === idA);
            const b = all.find((x) => x.claude_session_id === idB);
            const done = (r: Record<string, any> | undefined, f: FakeAnthropic) => r && r.completed_at && sum(r as unknown as Usage) >= sum(f.totals());
            return done(a, fakeA) && done(b, fakeB) ? { a: a!, b: b!, all } : undefined;
          },
          { timeoutMs: 60_000, intervalMs: 250, what: 'the session completed with every token', w },
        );
        await delivered(w);
        expect(rows.all).toHaveLength(2);
        for (const [row, fake, client, tag] of [
          [rows.a, fakeA, costA, 'alice'],
          [rows.b, fakeB, costB, 'bob'],
        ] as const) {
          expect(row, tag).toMatchObject({ source: 'interactive', project: 'demo-app', success: true, tool_calls_count: 1, ...tokensOf(fake.totals()) });
          expect(row.cost_usd, tag).toBeCloseTo(client.lastCost, 9);
          const events = stored(w, row.claude_session_id);
          for (const name of ['SessionStart', 'UserPromptSubmit', 'PreToolUse', 'PostToolUse', 'Stop', 'SessionEnd']) expect(count(events, name), `${tag} ${name}`).toBe(1);
          expect(events.filter((e) => e.event === 'usage')).toHaveLength(2);
        }
        // Nothing landed outside the two sessions.
        expect(stored(w).every((e) => e.session_id === idA || e.session_id === idB)).toBe(true);
        // Delivery is at-least-once (a reply slower than the emit deadline is sent again), so the
        // collector may have seen duplicates; what it stored and counted is each event once.
        const ingest = (await getJson(`${w.serve.url}/api/summary`)).body.ingest as { events: number; duplicates: number };
        expect(ingest.events).toBe(stored(w).length);
      } finally {
        await fakeA.close();
        await fakeB.close();
      }
    },
    CASE_MS,
  );
});
