#!/usr/bin/env node
// Opening one long session: a session of 20,000 events (10,000 tool calls, each
// a PreToolUse and a PostToolUse) beside a session of 200 in the same collector,
// measured in the same run: the API (what the page asks for first: the header and
// a first page of 300 steps, together; and every page of steps) and the page in
// Chromium (first render, and every step on screen), medians of several runs,
// each as a ratio to the small session's.
// Usage: node bench/session-open.mjs [--events 20000] [--repeat 5]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : def);
const EVENTS = arg('--events', 20_000);
const REPEAT = arg('--repeat', 5);
const SMALL = 200;

function get(url) {
  return new Promise((res, rej) => {
    request(url, (r) => {
      const c = [];
      r.on('data', (d) => c.push(d));
      r.on('end', () => (r.statusCode === 200 ? res(JSON.parse(Buffer.concat(c).toString())) : rej(new Error(`HTTP ${r.statusCode} ${url}`))));
    })
      .on('error', rej)
      .end();
  });
}
function post(url, body) {
  return new Promise((res, rej) => {
    const text = JSON.stringify(body);
    const q = request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } }, (r) => {
      r.resume();
      r.on('end', () => (r.statusCode === 200 ? res() : rej(new Error(`HTTP ${r.statusCode}`))));
    });
    q.on('error', rej);
    q.end(text);
  });
}

/** A session of n events: tool calls (Pre+Post), a usage event every 20, a failure every 50. */
function session(id, n) {
  const t0 = Date.now() - n * 1000;
  const out = [];
  const tools = ['Bash', 'Read', 'Edit', 'Grep', 'Write'];
  for (let i = 0; out.length < n; i++) {
    const t = t0 + i * 2000;
    const base = { source: 'ralph', run_id: id, session_id: `cc-${id}`, project: 'bench', label: 'long' };
    const tool = tools[i % tools.length];
    out.push({ event_id: `${id}-pre-${i}`, event: 'PreToolUse', tool_name: tool, tool_use_id: `${id}-t${i}`, timestamp: new Date(t).toISOString(), ...base });
    if (i % 20 === 19) out.push({ event_id: `${id}-u-${i}`, event: 'usage', model: 'claude-opus-5-5', usage: { input_tokens: 1200, output_tokens: 300, cache_creation_input_tokens: 500, cache_read_input_tokens: 9000 }, cost_usd: 0.02, timestamp: new Date(t + 500).toISOString(), ...base });
    else out.push({ event_id: `${id}-post-${i}`, event: i % 50 === 7 ? 'PostToolUseFailure' : 'PostToolUse', tool_name: tool, tool_use_id: `${id}-t${i}`, success: i % 50 !== 7, error: i % 50 === 7 ? 'exit 1' : undefined, duration_ms: 300 + (i % 7) * 100, timestamp: new Date(t + 800).toISOString(), ...base });
  }
  return out.slice(0, n);
}

const home = mkdtempSync(join(tmpdir(), 'cm-bench-session-'));
const child = spawn(process.execPath, [join(root, 'bin/claude-metrics'), 'serve', '--port', '0', '--db', join(home, 'c.db')], { env: { PATH: process.env.PATH, HOME: home }, stdio: ['ignore', 'ignore', 'pipe'] });
const url = await new Promise((res, rej) => {
  let err = '';
  child.stderr.on('data', (c) => {
    err += c;
    const m = /listening on (http:\/\/\S+)/.exec(err);
    if (m) res(m[1]);
  });
  child.on('exit', (code) => rej(new Error(`serve exited ${code}: ${err}`)));
});
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
try {
  for (const [id, n] of [['big', EVENTS], ['small', SMALL]]) {
    const evs = session(id, n);
    for (let i = 0; i < evs.length; i += 1000) await post(`${url}/metrics/harness`, { events: evs.slice(i, i + 1000) });
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const measure = async (id) => {
    const api = [];
    const apiFirst = [];
    const first = [];
    const full = [];
    let steps = 0;
    for (let k = 0; k < REPEAT; k++) {
      let t = performance.now();
      await Promise.all([get(`${url}/api/sessions/run:${id}`), get(`${url}/api/sessions/run:${id}/events?limit=300`)]);
      apiFirst.push(performance.now() - t);
      t = performance.now();
      await get(`${url}/api/sessions/run:${id}`);
      let after = '';
      steps = 0;
      for (;;) {
        const p = await get(`${url}/api/sessions/run:${id}/events?limit=5000${after ? `&after=${after}` : ''}`);
        steps += p.steps.length;
        if (!p.next) break;
        after = p.next;
      }
      api.push(performance.now() - t);
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      t = performance.now();
      await page.goto(`${url}/sessions/run%3A${id}`);
      await page.waitForFunction(() => document.body.dataset.state === 'ready', undefined, { timeout: 60_000, polling: 'raf' });
      first.push(performance.now() - t);
      await page.waitForFunction((n) => Number(document.body.dataset.steps) === n, steps, { timeout: 60_000, polling: 'raf' });
      full.push(performance.now() - t);
      await page.close();
    }
    return { api: median(api), apiFirst: median(apiFirst), first: median(first), full: median(full), steps };
  };
  await measure('small'); // warm-up
  const small = await measure('small');
  const big = await measure('big');
  const ms = (v) => Math.round(v);
  console.log(`session open: ${EVENTS} events vs ${SMALL} in the same collector (${REPEAT} runs each, medians)`);
  const ratio = (k) => (big[k] / small[k]).toFixed(2);
  console.table([
    { case: `${SMALL} events (baseline)`, steps: small.steps, 'API header + first page ms': ms(small.apiFirst), 'API all pages ms': ms(small.api), 'first render ms': ms(small.first), 'all steps ms': ms(small.full) },
    { case: `${EVENTS} events`, steps: big.steps, 'API header + first page ms': ms(big.apiFirst), 'API all pages ms': ms(big.api), 'first render ms': ms(big.first), 'all steps ms': ms(big.full) },
    { case: 'ratio', steps: '', 'API header + first page ms': ratio('apiFirst'), 'API all pages ms': ratio('api'), 'first render ms': ratio('first'), 'all steps ms': ratio('full') },
  ]);
  console.log(`target: a ${EVENTS}-event session opens (the page's API reads + first render, in Chromium) in under 1 s: ${ms(big.first)} ms ${big.first < 1000 ? 'OK' : 'MISSED'}; every step on screen: ${ms(big.full)} ms`);
} finally {
  await browser.close();
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  rmSync(home, { recursive: true, force: true });
}
