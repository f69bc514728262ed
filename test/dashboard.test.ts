/// <reference lib="dom" />
/**
 * The dashboard in a real Chromium (Debian's, driven by playwright-core) against
 * a real `serve` seeded through POST /metrics/harness: numbers equal the API,
 * filters work and land in the URL, empty and unauthorized states are honest,
 * hostile labels stay text, and the CSP holds (no console errors).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './helpers/browser';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/ids';
import { getJson, postJson, ROOT, startServe, tempHome, type ServeHandle, type TempHome } from './helpers/cli';

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

const DAY = 86_400_000;
/** A realistic week: Ralph tasks on two loops, interactive sessions with tools and usage, one hostile label. */
function seedEvents(now = Date.now()) {
  const events: Array<Record<string, unknown>> = [];
  const ev = (o: Record<string, unknown>) => events.push({ event_id: uuidv7(), ...o });
  const at = (ms: number) => new Date(ms).toISOString();
  for (let d = 6; d >= 0; d--) {
    for (let k = 0; k < 3 + (d % 3); k++) {
      const t0 = now - d * DAY - (k + 1) * 3_600_000;
      const run = `run-${d}-${k}`;
      const label = k % 2 === 0 ? 'nightly' : 'refactor';
      const ok = (d + k) % 4 !== 0;
      ev({ event: 'ralph_task_started', source: 'ralph', run_id: run, task_id: `T-${d}${k}`, label, project: 'billing-api', timestamp: at(t0) });
      ev({ event: 'PostToolUse', source: 'ralph', run_id: run, session_id: `cc-${run}`, tool_name: 'Bash', success: true, duration_ms: 1200, project: 'billing-api', label, timestamp: at(t0 + 60_000) });
      ev({ event: 'PostToolUse', source: 'ralph', run_id: run, session_id: `cc-${run}`, tool_name: 'Edit', success: true, duration_ms: 40, project: 'billing-api', label, timestamp: at(t0 + 90_000) });
      ev({ event: 'usage', source: 'ralph', run_id: run, session_id: `cc-${run}`, model: 'claude-sonnet-4-5-20250929', usage: { input_tokens: 2000, output_tokens: 900, cache_creation_input_tokens: 12000, cache_read_input_tokens: 80000 }, cost_usd: 0.0855, project: 'billing-api', label, timestamp: at(t0 + 100_000) });
      ev({ event: 'ralph_task_completed', source: 'ralph', run_id: run, task_id: `T-${d}${k}`, label, project: 'billing-api', success: ok, exit_code: ok ? 0 : 1, duration_ms: 240_000 + k * 30_000, num_turns: 6, error: ok ? undefined : 'error_max_turns', timestamp: at(t0 + 240_000) });
    }
    const s = `int-${d}`;
    ev({ event: 'SessionStart', source: 'interactive', session_id: s, project: 'web-app', timestamp: at(now - d * DAY - 7_200_000) });
    ev({ event: 'PostToolUseFailure', source: 'interactive', session_id: s, project: 'web-app', tool_name: 'Read', success: false, error: 'File does not exist.', duration_ms: 5, timestamp: at(now - d * DAY - 7_100_000) });
    ev({ event: 'usage', source: 'interactive', session_id: s, project: 'web-app', model: 'claude-opus-4-5', usage: { input_tokens: 500, output_tokens: 2500, cache_creation_input_tokens: 3000, cache_read_input_tokens: 40000 }, cost_usd: 0.1044, timestamp: at(now - d * DAY - 7_000_000) });
    ev({ event: 'SessionEnd', source: 'interactive', session_id: s, project: 'web-app', timestamp: at(now - d * DAY - 6_000_000) });
  }
  // A session whose cost is Claude Code's own (OTel api_request), and one of a model without a price.
  ev({ event: 'usage', source: 'interactive', session_id: 'otel-1', project: 'web-app', model: 'claude-opus-4-8', request_id: 'req-otel-1', usage: { input_tokens: 2400, output_tokens: 160, cache_creation_input_tokens: 6000, cache_read_input_tokens: 1000 }, cost_usd: 0.054, cost_source: 'claude_code', timestamp: at(now - 3_000_000) });
  ev({ event: 'usage', source: 'interactive', session_id: 'unpriced-1', project: 'web-app', model: 'claude-opus-9-1', request_id: 'req-unpriced-1', usage: { input_tokens: 100, output_tokens: 10, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }, cost_usd: null, timestamp: at(now - 2_000_000) });
  // A loop still running (active), and a hostile label.
  ev({ event: 'ralph_task_started', source: 'ralph', run_id: 'run-live', task_id: 'T-live', label: 'nightly', project: 'billing-api', timestamp: at(now - 120_000) });
  ev({ event: 'ralph_task_completed', source: 'api', task_id: 'X-1', label: XSS, project: XSS, success: false, error: XSS, duration_ms: 1000, timestamp: at(now - 60_000) });
  return events;
}

async function openPage(url: string): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
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

describe('dashboard', () => {
  it('shows the API’s numbers, filters by project into the URL, keeps hostile text as text', async () => {
    home = tempHome();
    serve = await startServe(home.env, ['--db', join(home.home, 'c.db')]);
    const events = seedEvents();
    for (let i = 0; i < events.length; i += 200) expect((await postJson(serve.endpoint, { events: events.slice(i, i + 200) })).status).toBe(200);
    const summary = (await getJson(`${serve.url}/api/summary?since=7d`)).body;

    const { page, problems } = await openPage(`${serve.url}/`);
    expect(await page.textContent('#t-tasks')).toBe(String(summary.today.tasks));
    expect(await page.textContent('#t-ralph')).toBe(String(summary.active.ralph));
    expect(summary.active.ralph).toBe(1);
    expect(await page.textContent('#t-rate')).toBe(summary.today.success_rate === null ? '–' : `${(summary.today.success_rate * 100).toFixed(summary.today.success_rate === 1 || summary.today.success_rate === 0 ? 0 : 1)}%`);
    expect(await page.textContent('#t-rejects')).toBe('0 rejected');
    expect(await page.isHidden('#empty')).toBe(true);
    const rows = await page.$$eval('#sessions tbody tr', (trs) => trs.length);
    expect(rows).toBe(Math.min(50, (await getJson(`${serve.url}/api/sessions?since=7d&limit=50`)).body.sessions.length));
    await page.screenshot({ path: join(OUT, 'dashboard.png'), fullPage: true });
    // Each session's cost says where it came from, as the API does.
    const apiSessions = (await getJson(`${serve.url}/api/sessions?since=7d&limit=50`)).body.sessions as Array<{ cost_source: string }>;
    const shown = await page.$$eval('#sessions td [data-cost-source]', (els) => els.map((e) => e.getAttribute('data-cost-source')));
    expect(shown).toEqual(apiSessions.map((x) => x.cost_source));
    expect(new Set(shown)).toEqual(new Set(['claude_code', 'estimate', 'none']));
    expect(await page.$$eval('#sessions td .cost-none', (els) => els.map((e) => e.textContent))).toContain('unpriced');

    // Hostile text is shown literally and creates no element.
    const cells = await page.$$eval('#sessions td', (tds) => tds.map((t) => t.textContent));
    expect(cells).toContain(XSS);
    expect(await page.$$eval('img', (imgs) => imgs.length)).toBe(0);

    // Filter by project: table and URL follow.
    await page.selectOption('#f-project', 'web-app');
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#sessions tbody tr td:nth-child(2)')).every((td) => td.textContent === 'web-app'));
    expect(new URL(page.url()).searchParams.get('project')).toBe('web-app');
    const webRows = await page.$$eval('#sessions tbody tr', (trs) => trs.length);
    expect(webRows).toBe((await getJson(`${serve.url}/api/sessions?since=7d&project=web-app`)).body.total);
    // A shared URL opens the same view.
    const { page: shared } = await openPage(page.url());
    expect(await shared.inputValue('#f-project')).toBe('web-app');
    expect(problems).toEqual([]);
  }, 90_000);

  it('an empty collector says so and shows how to send an event', async () => {
    home = tempHome();
    serve = await startServe(home.env, ['--db', join(home.home, 'c.db')]);
    const { page, problems } = await openPage(`${serve.url}/`);
    expect(await page.isVisible('#empty')).toBe(true);
    expect(await page.textContent('#empty-example')).toContain('/metrics/harness');
    expect(await page.textContent('#t-tasks')).toBe('0');
    expect(await page.textContent('#sessions tbody')).toContain('No sessions match');
    await page.screenshot({ path: join(OUT, 'dashboard-empty.png') });
    expect(problems).toEqual([]);
  }, 60_000);

  it('with a token: unauthorized is explained; ?token= opens it and leaves the URL clean', async () => {
    home = tempHome();
    serve = await startServe(home.env, ['--db', join(home.home, 'c.db'), '--token', 'tok-dash']);
    const denied = await browser.newPage();
    const res = await denied.goto(`${serve.url}/`);
    expect(res?.status()).toBe(401);
    const { page } = await openPage(`${serve.url}/?token=tok-dash`);
    expect(await page.evaluate(() => document.body.dataset.state)).toBe('ready');
    expect(new URL(page.url()).searchParams.has('token')).toBe(false);
  }, 60_000);

  it('when the collector goes away the page says so', async () => {
    home = tempHome();
    serve = await startServe(home.env, ['--db', join(home.home, 'c.db')]);
    const { page } = await openPage(`${serve.url}/`);
    await serve.stop();
    await page.click('#refresh-toggle'); // off
    await page.click('#refresh-toggle'); // on: refreshes now
    await page.waitForFunction(() => document.body.dataset.state === 'error', undefined, { timeout: 20_000 });
    expect(await page.textContent('#banner')).toContain('Collector unreachable');
  }, 60_000);
});
