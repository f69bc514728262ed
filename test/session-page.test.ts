/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The session page in a real Chromium against a real `serve`: a session with
 * tool calls, a failure, a subagent, an API error and a permission wait is
 * opened from the dashboard's row, shows them on the timeline and in the list,
 * shows raw metadata on click and from the keyboard, keeps its URL on reload and
 * Back, grows live when an event is posted (no reload), and keeps hostile
 * strings in every field as text. It also makes the README's screenshot.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './helpers/browser';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/ids';
import { getJson, postJson, ROOT, startServe, tempHome, type ServeHandle, type TempHome } from './helpers/cli';
import { STORES, useStore } from './helpers/stores';

const OUT = join(ROOT, '.test-output');
const XSS = '<img src=x onerror=alert(1)>';
let browser: Browser;

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

let home: TempHome;
let serve: ServeHandle;
afterEach(async () => {
  await serve?.stop();
  home?.cleanup();
});

/** A Ralph task (run) with a Claude Code session inside: tools, a failure, a subagent, a permission wait, requests, an API error. */
function seedSession(t0: number, opts: { run: string; xss?: boolean; done?: boolean }) {
  const x = (v: string) => (opts.xss ? `${v} ${XSS}` : v);
  const at = (s: number) => new Date(t0 + s * 1000).toISOString();
  const b = { source: 'ralph', run_id: opts.run, session_id: `cc-${opts.run}`, project: x('billing-api'), label: x('nightly'), task_id: x('T-42') };
  const events: Array<Record<string, unknown>> = [];
  const ev = (o: Record<string, unknown>) => events.push({ event_id: uuidv7(), ...b, ...o });
  ev({ event: 'ralph_task_started', timestamp: at(0) });
  ev({ event: 'SessionStart', timestamp: at(1), context: { host: x('ci-runner-3'), cwd: x('/srv/billing'), git_branch: x('fix/rounding'), git_commit: '9f8e7d6c5b', claude_version: '2.1.332', permission_mode: 'default' } });
  ev({ event: 'UserPromptSubmit', timestamp: at(2), hook: { prompt_size: 812 } });
  const tool = (id: string, name: string, s: number, d: number, o: Record<string, unknown> = {}) => {
    ev({ event: 'PreToolUse', tool_name: name, tool_use_id: id, timestamp: at(s), ...o });
    if (d >= 0) ev({ event: o.fail ? 'PostToolUseFailure' : 'PostToolUse', tool_name: name, tool_use_id: id, success: !o.fail, duration_ms: d * 1000, error: o.fail ? x(String(o.fail)) : undefined, timestamp: at(s + d), ...(o.agent_id ? { agent_id: o.agent_id, hook: o.hook } : {}) });
  };
  tool('tu-read', x('Read'), 4, 0.2);
  tool('tu-test', 'Bash', 5, 14, { fail: 'npm test: 3 failing' });
  ev({ event: 'usage', model: x('claude-opus-5-5'), usage: { input_tokens: 2400, output_tokens: 160, cache_creation_input_tokens: 6000, cache_read_input_tokens: 1000 }, cost_usd: 0.043, timestamp: at(19) });
  tool('tu-agent', 'Agent', 20, 30, { attrs: { subagent_type: 'Explore' } });
  tool('tu-sub1', 'Grep', 22, 1.5, { agent_id: 'ag-1', hook: { agent_type: x('Explore') } });
  tool('tu-sub2', 'Read', 25, 0.4, { agent_id: 'ag-1', hook: { agent_type: x('Explore') } });
  ev({ event: 'usage', agent_id: 'ag-1', model: 'claude-haiku-4-5', usage: { input_tokens: 900, output_tokens: 300, cache_creation_input_tokens: 0, cache_read_input_tokens: 4000 }, cost_usd: 0.0031, timestamp: at(40) });
  ev({ event: 'SubagentStop', agent_id: 'ag-1', hook: { agent_type: x('Explore') }, timestamp: at(45) });
  // The edit waits 6 minutes for a person to allow it.
  ev({ event: 'PreToolUse', tool_name: 'Edit', tool_use_id: 'tu-edit', timestamp: at(55) });
  ev({ event: 'PermissionRequest', tool_name: 'Edit', timestamp: at(55.2) });
  ev({ event: 'Notification', hook: { notification_type: 'permission_prompt' }, timestamp: at(55.3) });
  ev({ event: 'PostToolUse', tool_name: 'Edit', tool_use_id: 'tu-edit', success: true, duration_ms: 300, timestamp: at(415) });
  ev({ event: 'usage', model: 'claude-opus-5-5', usage: { input_tokens: 3100, output_tokens: 420, cache_creation_input_tokens: 800, cache_read_input_tokens: 9000 }, cost_usd: 0.052, timestamp: at(420) });
  ev({ event: 'StopFailure', error: x('API Error: 529 overloaded_error'), timestamp: at(425) });
  if (opts.done !== false) ev({ event: 'ralph_task_completed', success: false, exit_code: 1, error: x('API Error: 529 overloaded_error'), num_turns: 7, duration_ms: 430_000, timestamp: at(430) });
  return events;
}

async function openPage(url: string, viewport = { width: 1280, height: 800 }): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport });
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('dialog', async (d) => {
    problems.push(`dialog: ${d.message()}`);
    await d.dismiss();
  });
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.state === 'ready' || document.body.dataset.state === 'error', undefined, { timeout: 20_000 });
  return { page, problems };
}

describe.each(STORES)('session page on %s', (backend) => {
  const store = useStore(backend);
  let db = '';

  describe('session page', () => {
    it('opens from the dashboard row; timeline, list, raw metadata, keyboard, URL, Back, reload; grows live', async () => {
      home = tempHome();
      db = await store.fresh(home);
      serve = await startServe(home.env, ['--db', db]);
      const t0 = Date.now() - 10 * 60_000;
      const events = seedSession(t0, { run: 'r-live', done: false });
      expect((await postJson(serve.endpoint, { events })).status).toBe(200);

      const { page, problems } = await openPage(`${serve.url}/`);
      const link = page.locator('#sessions a.session-link', { hasText: 'T-42' });
      await link.click();
      await page.waitForURL(/\/sessions\/run%3Ar-live$/);
      await page.waitForFunction(() => document.body.dataset.state === 'ready');
      expect(await page.textContent('#title')).toBe('Session T-42');
      // The header: outcome, project, tokens, cost, host, git.
      const facts = await page.textContent('#facts');
      for (const want of ['billing-api', 'nightly', 'ci-runner-3', 'fix/rounding @ 9f8e7d6c5b', '2.1.332', '$0.0981']) expect(facts).toContain(want);
      expect(await page.textContent('#outcome')).toContain('running');

      // Timeline: main-agent bars, the failed one marked, the subagent's steps nested in their own lane, the wait compressed.
      const mainBars = await page.$$eval('.lane.tools:not(.sub) .bar-item', (els) => els.map((e) => e.className));
      expect(mainBars.length).toBe(4); // Read, Bash (failed), Agent, Edit
      expect(mainBars.filter((c) => c.includes('failed')).length).toBe(1);
      const sub = await page.$$eval('.lane.tools.sub', (els) => els.map((e) => ({ label: e.querySelector('.lane-label')!.textContent, title: e.querySelector('.lane-label')!.getAttribute('title'), bars: e.querySelectorAll('.bar-item').length })));
      expect(sub).toEqual([{ label: '↳ Explore', title: expect.stringContaining('started by Agent at +0:20'), bars: 2 }]);
      expect(await page.$$eval('.lane.waits .bar-item.wait', (els) => els.length)).toBe(1);
      const gaps = await page.$$eval('.gap-label', (els) => els.map((e) => ({ text: e.textContent, waiting: e.classList.contains('waiting') })));
      expect(gaps).toContainEqual({ text: '⋯ 5 min 59 s', waiting: true }); // 55.3 s (the prompt) to 414.7 s (the run)
      // The Edit call's bar shows its wait for the person, then its run.
      expect(await page.$$eval('.bar-item.waited .wait-part', (els) => els.length)).toBe(1);
      expect(await page.$$eval('.lane.marks .mark.failed', (els) => els.length)).toBe(1); // the API error
      expect(await page.$$eval('.lane.reqs .req', (els) => els.length)).toBe(3);
      // The subagent's bars lie inside the Agent call's bar.
      const geo = await page.evaluate(() => {
        const box = (sel: string) => document.querySelector(sel)!.getBoundingClientRect();
        const agent = [...document.querySelectorAll('.lane.tools:not(.sub) .bar-item')].find((e) => e.getAttribute('title')!.startsWith('Agent'))!.getBoundingClientRect();
        const subs = [...document.querySelectorAll('.lane.tools.sub .bar-item')].map((e) => e.getBoundingClientRect());
        return { agent: [agent.left, agent.right], subs: subs.map((r) => [r.left, r.right]), track: box('.lane-track').width };
      });
      for (const [l, r] of geo.subs) expect(l! >= geo.agent[0]! && r! <= geo.agent[1]! + 1).toBe(true);
      // Failures stand out, worth-a-look links to the first one.
      expect(await page.textContent('#worth')).toContain('2 failed steps · first: Bash — npm test: 3 failing');
      expect(await page.textContent('#worth')).toMatch(/longest idle: 5 min 59 s \(waiting on a person\)/);

      // The list: filter by tool and failures only.
      const rowCount = () => page.$$eval('#steps tbody tr.step', (trs) => trs.length);
      const all = await rowCount();
      expect(all).toBe((await getJson(`${serve.url}/api/sessions/run:r-live/events`)).body.steps.length);
      await page.check('#f-failed');
      expect(await page.$$eval('#steps tbody tr.step', (trs) => trs.map((t) => t.children[2]!.textContent))).toEqual(['Bash', 'StopFailure']);
      await page.uncheck('#f-failed');
      await page.selectOption('#f-tool', 'Read');
      expect(await rowCount()).toBe(2);
      await page.selectOption('#f-tool', '');

      // Click a bar: its row opens with the raw metadata of its two events.
      await page.click('.lane.tools:not(.sub) .bar-item.failed');
      await page.waitForFunction(() => /PostToolUseFailure/.test(document.querySelector('pre.raw')?.textContent ?? ''));
      expect(await page.textContent('pre.raw')).toContain('npm test: 3 failing');
      expect(new URL(page.url()).hash).toBe('#step=tool%3Atu-test');
      // Reload keeps the page and the selected step.
      await page.reload();
      await page.waitForFunction(() => /PostToolUseFailure/.test(document.querySelector('pre.raw')?.textContent ?? ''));
      expect(await page.getAttribute('#steps tr.step.selected', 'data-step')).toBe('tool:tu-test');

      // Keyboard: rows are reachable, arrows move, Enter opens and closes the raw metadata.
      await page.focus('#steps tbody tr.step');
      await page.keyboard.press('ArrowDown');
      const focused = await page.evaluate(() => (document.activeElement as HTMLElement).dataset.step);
      await page.keyboard.press('Enter');
      await page.waitForFunction((id) => document.querySelector('#steps tr.step.selected')?.getAttribute('data-step') === id, focused);
      expect(await page.$$eval('tr.detail-row', (r) => r.length)).toBe(1);
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => document.querySelectorAll('tr.detail-row').length === 0);

      // Live: a new step appears without a reload, through the stream.
      expect(await page.textContent('#updated')).toMatch(/^Live/);
      const before = await rowCount();
      const late = { event_id: uuidv7(), source: 'ralph', run_id: 'r-live', session_id: 'cc-r-live', event: 'PostToolUseFailure', tool_name: 'WebFetch', tool_use_id: 'tu-late', success: false, error: 'fetch failed: ENOTFOUND', timestamp: new Date().toISOString() };
      const marker = await page.evaluate(() => ((window as unknown as { __marker: number }).__marker = 42));
      expect((await postJson(serve.endpoint, late)).status).toBe(200);
      await page.waitForFunction((n) => document.querySelectorAll('#steps tbody tr.step').length === n + 1, before, { timeout: 5000 });
      expect(await page.evaluate(() => (window as unknown as { __marker: number }).__marker)).toBe(marker); // same document: no reload
      expect(await page.textContent('#steps')).toContain('fetch failed: ENOTFOUND');

      // Back returns to the dashboard.
      await page.goBack();
      await page.waitForURL(`${serve.url}/`);
      expect(problems).toEqual([]);
    }, 120_000);

    it('hostile strings in every field stay text; readable at 1280×800 and on a phone; makes the README screenshot', async () => {
      home = tempHome();
      db = await store.fresh(home);
      serve = await startServe(home.env, ['--db', db]);
      const t0 = Date.now() - 20 * 60_000;
      await postJson(serve.endpoint, { events: seedSession(t0, { run: 'r-shot' }) });
      await postJson(serve.endpoint, { events: seedSession(t0 - 3_600_000, { run: 'r-xss', xss: true }) });

      const { page, problems } = await openPage(`${serve.url}/sessions/run%3Ar-shot`);
      expect(await page.textContent('#outcome')).toContain('failed');
      expect(await page.textContent('#end-error')).toContain('API Error: 529 overloaded_error');
      await page.screenshot({ path: join(OUT, 'session.png'), fullPage: true });
      // Nothing wider than the window but the timeline's own scroller.
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(1280);

      const { page: x } = await openPage(`${serve.url}/sessions/run%3Ar-xss`);
      await x.click('#steps tbody tr.step');
      await x.waitForFunction(() => (document.querySelector('pre.raw')?.textContent ?? '').includes('onerror'));
      const text = await x.evaluate(() => document.body.innerText);
      for (const v of ['billing-api', 'nightly', 'T-42', 'ci-runner-3', '/srv/billing', 'fix/rounding', 'npm test: 3 failing', 'API Error: 529 overloaded_error', 'Explore']) expect(text).toContain(`${v} ${XSS}`);
      expect(await x.$$eval('img', (imgs) => imgs.length)).toBe(0);
      expect(await x.evaluate(() => document.querySelectorAll('[onerror]').length)).toBe(0);

      const { page: phone, problems: phoneProblems } = await openPage(`${serve.url}/sessions/run%3Ar-shot`, { width: 390, height: 844 });
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
      expect(await phone.isVisible('#steps')).toBe(true);
      await phone.screenshot({ path: join(OUT, 'session-phone.png'), fullPage: true });
      expect([...problems, ...phoneProblems]).toEqual([]);
    }, 120_000);

    it('the dashboard updates live from the stream (no polling), and lists who is waiting on a person until answered', async () => {
      home = tempHome();
      db = await store.fresh(home);
      serve = await startServe(home.env, ['--db', db]);
      const t0 = Date.now() - 5 * 60_000;
      await postJson(serve.endpoint, { events: seedSession(t0, { run: 'r-1' }) });
      const { page, problems } = await openPage(`${serve.url}/`);
      await page.waitForFunction(() => /live/.test(document.getElementById('updated')!.textContent!));
      const summaries: number[] = [];
      page.on('request', (r) => {
        if (r.url().includes('/api/summary')) summaries.push(Date.now());
      });
      const tasks = Number(await page.textContent('#t-tasks'));
      expect(await page.isHidden('#waiting-panel')).toBe(true);

      // A task completes elsewhere: the tile and the table follow, well before the 15 s poll would.
      const done = (run: string, task: string) => [
        { event_id: uuidv7(), source: 'ralph', run_id: run, task_id: task, label: 'nightly', project: 'billing-api', event: 'ralph_task_started', timestamp: new Date(Date.now() - 1000).toISOString() },
        { event_id: uuidv7(), source: 'ralph', run_id: run, task_id: task, label: 'nightly', project: 'billing-api', event: 'ralph_task_completed', success: true, duration_ms: 900, timestamp: new Date().toISOString() },
      ];
      await postJson(serve.endpoint, { events: done('r-2', 'T-77') });
      await page.waitForFunction((n) => Number(document.getElementById('t-tasks')!.textContent) === n + 1, tasks, { timeout: 5000 });
      await page.waitForFunction(() => [...document.querySelectorAll('#sessions a.session-link')].some((a) => a.textContent === 'T-77'), undefined, { timeout: 5000 });

      // An interactive session on another machine asks for permission: it shows under "Waiting on you"…
      const sid = 'cc-waiting-1';
      const w = (o: Record<string, unknown>) => ({ event_id: uuidv7(), source: 'interactive', session_id: sid, project: 'web-app', context: { host: 'laptop-9', user: 'ana' }, timestamp: new Date().toISOString(), ...o });
      await postJson(serve.endpoint, { events: [w({ event: 'PreToolUse', tool_name: 'Bash', tool_use_id: 'tw' }), w({ event: 'PermissionRequest', tool_name: 'Bash' }), w({ event: 'Notification', hook: { notification_type: 'permission_prompt' } })] });
      await page.waitForSelector('#waiting-panel:not([hidden])', { timeout: 5000 });
      const item = await page.textContent('#waiting-list li');
      expect(item).toContain('permission (Bash)');
      expect(item).toContain('ana@laptop-9');
      expect(await page.getAttribute('#waiting-list a', 'href')).toBe(`/sessions/${encodeURIComponent(`session:${sid}`)}`);
      // …its page says so too…
      const { page: sp } = await openPage(`${serve.url}/sessions/${encodeURIComponent(`session:${sid}`)}`);
      expect(await sp.textContent('#waiting')).toContain('Waiting on you');
      // …until the person answers.
      await postJson(serve.endpoint, w({ event: 'PostToolUse', tool_name: 'Bash', tool_use_id: 'tw', success: true, duration_ms: 20 }));
      await page.waitForSelector('#waiting-panel[hidden]', { state: 'attached', timeout: 5000 });
      await sp.waitForSelector('#waiting[hidden]', { state: 'attached', timeout: 5000 });
      // Three changes, three refreshes: the stream drove them (a poll would be 15 s apart).
      expect(summaries.length).toBeGreaterThanOrEqual(3);
      expect(summaries.length).toBeLessThanOrEqual(6);
      expect([...problems]).toEqual([]);
    }, 120_000);

    it('a change told while a catch-up is in flight is read after it, not dropped', async () => {
      home = tempHome();
      db = await store.fresh(home);
      serve = await startServe(home.env, ['--db', db]);
      const t0 = Date.now() - 5 * 60_000;
      await postJson(serve.endpoint, { events: seedSession(t0, { run: 'r-race', done: false }) });
      const { page, problems } = await openPage(`${serve.url}/sessions/run%3Ar-race`);
      await page.waitForFunction(() => /^Live/.test(document.getElementById('updated')!.textContent!));
      const rows = () => page.$$eval('#steps tbody tr.step', (trs) => trs.length);
      const before = await rows();
      // The next catch-up reads the server at once but gets its answer late: a change told
      // meanwhile was stored after that read, so only a second catch-up can show it.
      let held!: () => void;
      const release = new Promise<void>((r) => (held = r));
      let fetched!: () => void;
      const readDone = new Promise<void>((r) => (fetched = r));
      let armed = true;
      await page.route(/\/api\/sessions\/[^/]+\/events\?.*after=/, async (route) => {
        if (!armed) return route.continue();
        armed = false;
        const response = await route.fetch();
        fetched();
        await release;
        await route.fulfill({ response });
      });
      const ev = (id: string) => ({ event_id: uuidv7(), source: 'ralph', run_id: 'r-race', session_id: 'cc-r-race', event: 'PreToolUse', tool_name: 'Glob', tool_use_id: id, timestamp: new Date().toISOString() });
      expect((await postJson(serve.endpoint, ev('tu-race-1'))).status).toBe(200);
      await readDone;
      expect((await postJson(serve.endpoint, ev('tu-race-2'))).status).toBe(200);
      // Let the stream's "change" for the second event reach the page while the first answer is held.
      await page.waitForTimeout(1500);
      held();
      await page.waitForFunction((n) => document.querySelectorAll('#steps tbody tr.step').length === n + 2, before, { timeout: 5000 });
      expect(problems).toEqual([]);
    }, 60_000);

    it('an unknown session says so', async () => {
      home = tempHome();
      db = await store.fresh(home);
      serve = await startServe(home.env, ['--db', db]);
      const { page } = await openPage(`${serve.url}/sessions/nope`);
      expect(await page.textContent('#banner')).toContain('No such session');
    }, 60_000);
  });
});

describe('session page, long sessions (SQLite)', () => {
  it('a long session: drawn from its first page at once, the rest paged in behind; every call on the timeline in a bounded number of elements', async () => {
    home = tempHome();
    serve = await startServe(home.env, ['--db', join(home.home, 'c.db')]);
    // 3,000 tool calls 2 s apart (one in 40 failing), a request every 4: far more calls than the timeline has pixels.
    const calls = 3000;
    const t0 = Date.now() - calls * 2000 - 60_000;
    const b = { source: 'ralph', run_id: 'r-long', session_id: 'cc-r-long', project: 'long', label: 'soak' };
    const events: Array<Record<string, unknown>> = [];
    for (let i = 0; i < calls; i++) {
      const at = (ms: number) => new Date(t0 + i * 2000 + ms).toISOString();
      const fail = i % 40 === 7;
      events.push({ event_id: `long-pre-${i}`, event: 'PreToolUse', tool_name: i % 2 ? 'Read' : 'Bash', tool_use_id: `long-t${i}`, timestamp: at(0), ...b });
      events.push({ event_id: `long-post-${i}`, event: fail ? 'PostToolUseFailure' : 'PostToolUse', tool_name: i % 2 ? 'Read' : 'Bash', tool_use_id: `long-t${i}`, success: !fail, error: fail ? 'exit 1' : undefined, duration_ms: 300, timestamp: at(300), ...b });
      if (i % 4 === 3) events.push({ event_id: `long-u-${i}`, event: 'usage', model: 'claude-opus-5-5', usage: { input_tokens: 100 + i, output_tokens: 50, cache_creation_input_tokens: 0, cache_read_input_tokens: 900 }, cost_usd: 0.001, timestamp: at(500), ...b });
    }
    for (let i = 0; i < events.length; i += 1000) expect((await postJson(serve.endpoint, { events: events.slice(i, i + 1000) })).status).toBe(200);
    const steps = calls + calls / 4;

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    const asked: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('/api/sessions/')) asked.push(decodeURIComponent(new URL(r.url()).pathname + new URL(r.url()).search));
    });
    // How many steps the first render drew, noted by the page itself (the rest may follow within milliseconds).
    await page.addInitScript(() => {
      new MutationObserver((_, obs) => {
        if (document.body?.dataset.state !== 'ready') return;
        (window as unknown as { __firstSteps: number }).__firstSteps = Number(document.body.dataset.steps);
        obs.disconnect();
      }).observe(document, { attributes: true, subtree: true, attributeFilter: ['data-state'] });
    });
    await page.goto(`${serve.url}/sessions/run%3Ar-long`);
    // The first render comes from the header and one small page, asked for together before any other page.
    await page.waitForFunction(() => document.body.dataset.state === 'ready');
    expect(await page.evaluate(() => (window as unknown as { __firstSteps: number }).__firstSteps)).toBe(300);
    expect(asked.slice(0, 2).sort()).toEqual(['/api/sessions/run:r-long', '/api/sessions/run:r-long/events?limit=300']);
    // Then every step, with no reload.
    await page.waitForFunction((n) => Number(document.body.dataset.steps) === n, steps, { timeout: 30_000 });
    expect(await page.textContent('#steps-count')).toBe(`(${steps.toLocaleString('en-US')})`);
    expect(await page.$$eval('#steps tbody tr.step', (trs) => trs.length)).toBe(500);
    expect(await page.textContent('#more')).toBe(`Show more (${(steps - 500).toLocaleString('en-US')} left)`);

    // The main lane: each failed call its own bar; the rest in bars that stand for one call or a run of them, none lost.
    const bars = await page.$$eval('.lane.tools:not(.sub) .bar-item', (els) => els.map((e) => ({ failed: e.classList.contains('failed'), cluster: e.classList.contains('cluster'), title: e.getAttribute('title')! })));
    expect(bars.filter((x) => x.failed)).toHaveLength(calls / 40);
    const stands = bars.reduce((n, x) => n + (x.cluster ? Number(/^([\d,]+) tool calls/.exec(x.title)![1]!.replace(/,/g, '')) : 1), 0);
    expect(stands).toBe(calls);
    expect(bars.some((x) => x.cluster)).toBe(true);
    expect(bars.length).toBeLessThan(calls / 4);
    // Requests: at most one marker per 2 px, the largest there, and each marker says how many it stands for.
    const reqs = await page.$$eval('.lane.reqs .req', (els) => els.map((e) => e.getAttribute('title')!));
    expect(reqs.length).toBeLessThan(calls / 4);
    expect(reqs.reduce((n, t) => n + Number(/the largest of ([\d,]+) here/.exec(t)?.[1]?.replace(/,/g, '') ?? 1), 0)).toBe(calls / 4);
    // A cluster is a way in: clicking it opens its first call's row.
    await page.click('.lane.tools:not(.sub) .bar-item.cluster');
    await page.waitForSelector('#steps tr.step.selected');
    await page.waitForFunction(() => document.querySelector('pre.raw')?.textContent?.includes('PreToolUse'));
    expect(problems).toEqual([]);
  }, 120_000);

});
