/**
 * `<claude-harness-activity>` in Chromium, inside a React page built by Vite
 * (test/fixtures/panel-react), the way a router's dashboard embeds it: the page
 * imports `claude-metrics/panel` through the package's exports, and Vite's
 * preview server proxies `/harness/api/*` to a real `serve` started with a token
 * (standing in for the router's proxy). What the panel shows must equal what
 * the API says; collector text is shown as text; the page's styles stay out and
 * CSS variables get in; a refused token and a dead collector are shown, not thrown.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './helpers/browser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Summary } from '../src/client/index';
import { uuidv7 } from '../src/ids';
import { deadPort, postJson, ROOT, startServe, tempHome, type ServeHandle, type TempHome } from './helpers/cli';

const { createClient } = require(join(ROOT, 'dist', 'client.cjs')) as typeof import('../src/client/index');
const TOKEN = 'panel-test-token-456';
const XSS = '<img src=x onerror="window.__xss=1">';

let home: TempHome;
let serve: ServeHandle;
let site: string;
let previewServer: { close(): Promise<void>; resolvedUrls?: { local: string[] } | null; httpServer: import('node:http').Server };
let browser: Browser;
let page: Page;
let pageUrl = '';
const pageErrors: string[] = [];

beforeAll(async () => {
  home = tempHome('cm-panel-');
  serve = await startServe(home.env, ['--db', join(home.home, 'c.db'), '--token', TOKEN]);
  const now = Date.now();
  const day = 86_400_000;
  const at = (ms: number) => new Date(ms).toISOString();
  const task = (run: string, label: string, ok: boolean, endMs: number) => [
    { event: 'ralph_task_started', source: 'ralph', run_id: run, task_id: run, label, project: 'router', timestamp: at(endMs - 90_000) },
    { event: 'ralph_task_completed', source: 'ralph', run_id: run, task_id: run, label, project: 'router', success: ok, duration_ms: 90_000, timestamp: at(endMs) },
  ];
  const events = [
    ...task('r-old', 'nightly', false, now - 2 * day),
    ...task('r-1', 'nightly', true, now - 120_000),
    ...task('r-2', 'hotfix', false, now - 60_000),
    { event: 'ralph_task_started', source: 'ralph', run_id: 'r-live', task_id: 'r-live', label: 'nightly', project: 'router', timestamp: at(now - 10_000) },
    { event: 'usage', source: 'interactive', session_id: 'i-1', project: XSS, model: 'claude-sonnet-4-5', usage: { input_tokens: 12_000, output_tokens: 3_000 }, cost_usd: 0.25, timestamp: at(now - 30_000) },
    { event: 'SessionEnd', source: 'interactive', session_id: 'i-1', project: XSS, timestamp: at(now - 20_000) },
  ].map((e) => ({ event_id: uuidv7(), ...e }));
  expect((await postJson(serve.endpoint, { events }, { authorization: `Bearer ${TOKEN}` })).status).toBe(200);

  // The React page, built the way its own project would build it, with claude-metrics "installed".
  site = mkdtempSync(join(tmpdir(), 'cm-panel-site-'));
  cpSync(join(ROOT, 'test', 'fixtures', 'panel-react'), site, { recursive: true });
  cpSync(join(ROOT, 'hooks-templates', 'router', 'dashboard', 'HarnessActivity.tsx'), join(site, 'HarnessActivity.tsx'));
  mkdirSync(join(site, 'node_modules'));
  for (const [name, target] of [['claude-metrics', ROOT], ['react', join(ROOT, 'node_modules', 'react')], ['react-dom', join(ROOT, 'node_modules', 'react-dom')]] as const) symlinkSync(target, join(site, 'node_modules', name));
  const vite = await import('vite');
  await vite.build({ root: site, configFile: false, logLevel: 'warn', build: { outDir: join(site, 'dist'), emptyOutDir: true } });
  previewServer = (await vite.preview({
    root: site,
    configFile: false,
    logLevel: 'warn',
    build: { outDir: join(site, 'dist') },
    // The router's side: /harness/api/* → the collector's /api/*, the browser's Authorization header passed on.
    preview: { host: '127.0.0.1', port: 0, strictPort: false, proxy: { '/harness/api': { target: serve.url, rewrite: (p: string) => p.replace(/^\/harness/, '') } } },
  })) as unknown as typeof previewServer;
  const addr = previewServer.httpServer.address() as import('node:net').AddressInfo;
  const dead = `http://127.0.0.1:${await deadPort()}`;
  pageUrl = `http://127.0.0.1:${addr.port}/?endpoint=/harness&token=${TOKEN}&dead=${encodeURIComponent(dead)}`;

  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(pageUrl);
  try {
    for (const sel of ['#with-token[data-state=ready]', '#no-token[data-state=error]', '#dead[data-state=error]', '#component[data-state=ready]']) await page.waitForSelector(sel, { state: 'attached', timeout: 30_000 });
  } catch (err) {
    const states = await page.evaluate(() => Array.from(document.querySelectorAll('claude-harness-activity')).map((e) => `${e.id}=${e.getAttribute('data-state')}: ${e.shadowRoot?.textContent?.slice(-300)}`));
    throw new Error(`${(err as Error).message}\npanels: ${states.join('\n')}\npage errors: ${pageErrors.join('; ')}\nbody: ${(await page.content()).slice(0, 500)}`);
  }
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await previewServer?.close();
  await serve?.stop();
  if (site) rmSync(site, { recursive: true, force: true });
  home?.cleanup();
});

/** Text of elements inside the panel's shadow root. */
const inPanel = (id: string, selector: string) =>
  page.evaluate(([id, selector]) => Array.from(document.getElementById(id!)!.shadowRoot!.querySelectorAll(selector!) as NodeListOf<HTMLElement>).map((e) => e.textContent ?? ''), [id, selector] as const);

describe('the panel in a Vite + React page', () => {
  it('shows the tiles the API computes: tasks today, success rate, active Ralph instances, tokens and cost', async () => {
    const r = await createClient({ endpoint: serve.url, token: TOKEN }).summary();
    expect(r.ok).toBe(true);
    const s = (r as { data: Summary }).data;
    expect(s.today.tasks).toBe(3); // r-1, r-2, the interactive session
    expect(s.active.ralph).toBe(1);
    const tile = async (key: string) => (await inPanel('with-token', `[data-tile=${key}] .value`))[0];
    expect(await tile('tasks-today')).toBe(String(s.today.tasks));
    expect(await tile('success-rate')).toBe(`${((s.today.success_rate ?? 0) * 100).toFixed(1)}%`);
    expect(await tile('active-ralph')).toBe('1');
    expect(await tile('tokens-today')).toBe('15.0k');
    expect((await inPanel('with-token', '[data-tile=tokens-today] .sub'))[0]).toBe('$0.25 estimated');
    // React's own part of the page is untouched, and it saw the load event.
    expect(await page.textContent('#router-own')).toBe('Requests today: 1234');
    expect(await page.textContent('#loads')).toMatch(/loads: [12]/);
    // PANEL_SCREENSHOT=docs/panel.png refreshes the picture in the docs.
    if (process.env.PANEL_SCREENSHOT) await page.locator('#with-token').screenshot({ path: join(ROOT, process.env.PANEL_SCREENSHOT) });
  });

  it('lists recent sessions (running, failed, succeeded), by project and by label, and a daily chart of the last 7 days', async () => {
    const outcomes = await inPanel('with-token', '[data-card=recent] tbody td:nth-child(5)');
    expect(outcomes).toEqual(['running', 'succeeded', 'failed', 'succeeded', 'failed']);
    const api = await createClient({ endpoint: serve.url, token: TOKEN }).summary();
    const labels = api.ok ? api.data.by_label.map((l) => l.label) : [];
    expect(labels).toEqual(['nightly', '(none)', 'hotfix']);
    expect(await inPanel('with-token', '[data-card=by-label] tbody td:first-child')).toEqual(labels);
    const bars = await page.evaluate(() => Array.from(document.getElementById('with-token')!.shadowRoot!.querySelectorAll('svg g[data-date]')).map((g) => [g.getAttribute('data-date'), Number(g.getAttribute('data-tasks')), Number(g.getAttribute('data-failed'))]));
    expect(bars).toHaveLength(7);
    const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    expect(bars.find((b) => b[0] === dayOf(Date.now() - 2 * 86_400_000))).toEqual([dayOf(Date.now() - 2 * 86_400_000), 1, 1]);
    expect(bars[6]).toEqual([dayOf(Date.now()), 3, 1]);
  });

  it('shows collector text as text: a project named like HTML does not run', async () => {
    expect(await inPanel('with-token', '[data-card=by-project] tbody td:first-child')).toContain(XSS);
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
    expect(await page.evaluate(() => document.getElementById('with-token')!.shadowRoot!.querySelectorAll('img').length)).toBe(0);
  });

  it("keeps the page's styles out and takes CSS variables in", async () => {
    const styles = await page.evaluate(() => {
      const root = document.getElementById('with-token')!.shadowRoot!;
      const td = root.querySelector('tbody td') as HTMLElement;
      const running = root.querySelector('td.running') as HTMLElement;
      const tile = root.querySelector('.tile') as HTMLElement;
      return { font: getComputedStyle(td).fontFamily, color: getComputedStyle(td).color, running: getComputedStyle(running).color, radius: getComputedStyle(tile).borderTopLeftRadius };
    });
    expect(styles.font).not.toMatch(/Comic Sans/);
    expect(styles.color).not.toBe('rgb(1, 2, 3)');
    expect(styles.running).toBe('rgb(255, 0, 128)');
    expect(styles.radius).toBe('3px');
  });

  it('a panel without the token says the collector refused it; one pointed at a dead collector says it is unreachable; no page errors', async () => {
    const noToken = await page.evaluate(() => {
      const box = document.getElementById('no-token')!.shadowRoot!.querySelector('.error') as HTMLElement;
      return { kind: box.dataset.kind, text: box.textContent, hidden: box.hidden };
    });
    expect(noToken).toMatchObject({ kind: 'unauthorized', hidden: false });
    expect(noToken.text).toMatch(/^The collector refused the token: HTTP 401/);
    const dead = await page.evaluate(() => (document.getElementById('dead')!.shadowRoot!.querySelector('.error') as HTMLElement).dataset.kind);
    expect(dead).toBe('network');
    expect(pageErrors).toEqual([]);
  });

  it("the router template's React component (HarnessActivity.tsx): token as a property, filter and heading as props, no error on the way", async () => {
    expect(await page.evaluate(() => document.getElementById('component')!.hasAttribute('token'))).toBe(false);
    expect(await inPanel('component', 'h2')).toEqual(['Claude Code (nightly)']);
    expect(await inPanel('component', '[data-card=by-label] tbody td:first-child')).toEqual(['nightly']);
    expect(await page.evaluate(() => (window as unknown as { __componentError?: unknown }).__componentError)).toBeUndefined();
  });

  it('reload() after new events shows them; changing the filter attribute reloads', async () => {
    await postJson(serve.endpoint, { event_id: uuidv7(), event: 'ralph_task_started', source: 'ralph', run_id: 'r-live-2', task_id: 'r-live-2', label: 'nightly', project: 'router', timestamp: new Date().toISOString() }, { authorization: `Bearer ${TOKEN}` });
    await page.evaluate(() => (document.getElementById('with-token') as unknown as { reload(): Promise<void> }).reload());
    expect((await inPanel('with-token', '[data-tile=active-ralph] .value'))[0]).toBe('2');
    await page.evaluate(() => {
      const el = document.getElementById('with-token')!;
      el.setAttribute('data-state', 'loading');
      el.setAttribute('label', 'hotfix');
    });
    await page.waitForSelector('#with-token[data-state=ready]', { state: 'attached' });
    expect(await inPanel('with-token', '[data-card=by-label] tbody td:first-child')).toEqual(['hotfix']);
  });
});
