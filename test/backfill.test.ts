/** backfill into a real collector: equals ccusage per session, idempotent, and agrees with the hooks' ids. */
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { deadPort, getJson, ROOT, runCli, startServe, tempHome, type ServeHandle, type TempHome } from './helpers/cli';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'transcripts', 'sniffly');
let home: TempHome;
// A copy, so every transcript has a fresh mtime the way a clean checkout gives it.
let SNIFFLY: string;
let serve: ServeHandle;
beforeEach(async () => {
  home = tempHome();
  SNIFFLY = join(home.home, 'sniffly');
  cpSync(FIXTURE, SNIFFLY, { recursive: true });
  serve = await startServe(home.env, ['--db', join(home.home, 'c.db')]);
});
afterEach(async () => {
  await serve.stop();
  home.cleanup();
});

describe('backfill', () => {
  it('sends usage equal to ccusage per session plus one summary each; a second run changes nothing', async () => {
    const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: serve.endpoint };
    const first = await runCli(['backfill', '--projects-dir', join(SNIFFLY, 'projects')], { env });
    expect(first.code).toBe(0);
    expect(first.stderr).toMatch(/3 sessions: 90 usage events and 3 summaries; delivered 93/);
    const expected = (await import(join(FIXTURE, 'expected-ccusage.json'))) as { session: Array<{ period: string; inputTokens: number; outputTokens: number; cacheCreationTokens: number; cacheReadTokens: number; totalCost: number }> };
    const before = (await getJson(`${serve.url}/api/sessions`)).body.sessions as Array<Record<string, number | string | boolean>>;
    for (const e of expected.session) {
      const s = before.find((x) => x.id === `session:${e.period}`)!;
      expect([s.input_tokens, s.output_tokens, s.cache_creation_input_tokens, s.cache_read_input_tokens]).toEqual([e.inputTokens, e.outputTokens, e.cacheCreationTokens, e.cacheReadTokens]);
      expect(s.cost_usd as number).toBeCloseTo(e.totalCost, 6);
      expect(s.completed_at).toBeTruthy();
    }
    const again = await runCli(['backfill', '--projects-dir', join(SNIFFLY, 'projects')], { env });
    expect(again.code).toBe(0);
    expect((await getJson(`${serve.url}/api/sessions`)).body.sessions).toEqual(before);
    expect((await getJson(`${serve.url}/api/summary`)).body.ingest.duplicates).toBe(93);
  });

  it('after the hooks sent the same messages, adds nothing (same deterministic ids)', async () => {
    const env = { ...home.env, CLAUDE_METRICS_ENDPOINT: serve.endpoint, CLAUDE_METRICS_SOURCE: 'interactive' };
    const file = join(SNIFFLY, 'projects', '-Users-chip-dev-ai-music', 'ba79134d-b6e9-4867-af0c-6941038c9e4b.jsonl');
    expect((await runCli(['transcript-worker', '--session-id', 'ba79134d-b6e9-4867-af0c-6941038c9e4b', '--transcript-path', file, '--hook', 'SessionEnd', '--settle-ms', '50'], { env })).code).toBe(0);
    const viaHooks = (await getJson(`${serve.url}/api/sessions`)).body.sessions[0];
    await runCli(['backfill', '--projects-dir', join(SNIFFLY, 'projects')], { env });
    const after = (await getJson(`${serve.url}/api/sessions`)).body.sessions.find((s: { id: string }) => s.id === viaHooks.id);
    expect([after.input_tokens, after.output_tokens, after.cache_read_input_tokens]).toEqual([viaHooks.input_tokens, viaHooks.output_tokens, viaHooks.cache_read_input_tokens]);
  });

  it('--dry-run sends nothing; a dead collector spools and exits 75', async () => {
    const dry = await runCli(['backfill', '--projects-dir', join(SNIFFLY, 'projects'), '--dry-run'], { env: { ...home.env, CLAUDE_METRICS_ENDPOINT: serve.endpoint } });
    expect(dry.code).toBe(0);
    expect(dry.stderr).toMatch(/would be sent/);
    expect((await getJson(`${serve.url}/healthz`)).body.events).toBe(0);
    const down = await runCli(['backfill', '--projects-dir', join(SNIFFLY, 'projects')], { env: { ...home.env, CLAUDE_METRICS_ENDPOINT: `http://127.0.0.1:${await deadPort()}/metrics/harness` } });
    expect(down.code).toBe(75);
    expect((await runCli(['flush'], { env: { ...home.env, CLAUDE_METRICS_ENDPOINT: serve.endpoint } })).code).toBe(0);
    expect((await getJson(`${serve.url}/healthz`)).body.events).toBe(93);
  });
});
