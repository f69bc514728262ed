/**
 * The real Claude Code CLI (pinned in devDependencies) through our hooks,
 * offline against a scripted fake of the Messages API, with `claude-metrics
 * serve` as the collector. What the collector shows must equal what the fake
 * served and what Claude Code itself reports.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeAnthropic, type FakeAnthropic, type Scenario } from '../fake-anthropic/server';
import { deadPort, getJson, ROOT, runCli, runProcess, startServe, tempHome, waitDelivered, waitFor, type ServeHandle, type TempHome } from '../helpers/cli';

const CLAUDE = join(ROOT, 'node_modules', '.bin', 'claude');
const MODEL = 'claude-sonnet-4-5-20250929';
const MODEL_DEPENDENT = new Set(['effort']);
const PINNED = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies['@anthropic-ai/claude-code']!;

const TOOL_THEN_ANSWER: Scenario = {
  model: MODEL,
  main: [
    { kind: 'tool', name: 'Bash', input: { command: 'echo hello-from-tool', description: 'say hello' }, usage: { input_tokens: 1500, output_tokens: 60, cache_creation_input_tokens: 4000, cache_read_input_tokens: 12000 } },
    { kind: 'tool', name: 'Bash', input: { command: 'exit 3', description: 'fail on purpose' }, usage: { input_tokens: 300, output_tokens: 45, cache_creation_input_tokens: 500, cache_read_input_tokens: 16000 } },
    { kind: 'text', text: 'All done: one command worked, one failed.', usage: { input_tokens: 200, output_tokens: 80, cache_creation_input_tokens: 100, cache_read_input_tokens: 16500 } },
  ],
};

let version = '';
beforeAll(() => {
  version = execFileSync(CLAUDE, ['--version'], { encoding: 'utf8' }).trim();
  // Say which Claude Code this ran against; a different one must be a deliberate bump.
  console.log(`e2e: Claude Code ${version} (pinned ${PINNED})`);
  expect(version).toContain(PINNED);
});

interface World {
  home: TempHome;
  project: string;
  fake: FakeAnthropic;
  serve?: ServeHandle;
  claudeEnv: Record<string, string>;
}
let worlds: World[] = [];
afterEach(async () => {
  for (const w of worlds) {
    await w.serve?.stop();
    await w.fake.close();
    w.home.cleanup();
  }
  worlds = [];
});

async function world(scenario: Scenario, opts: { hooks?: boolean; serve?: boolean; endpoint?: string; capture?: boolean } = {}): Promise<World> {
  const home = tempHome('cm-e2e-');
  const project = join(home.home, 'work', 'demo-app');
  mkdirSync(project, { recursive: true });
  const fake = await startFakeAnthropic(scenario);
  const w: World = { home, project, fake, claudeEnv: {} };
  worlds.push(w);
  if (opts.serve !== false) w.serve = await startServe(home.env, ['--db', join(home.home, 'collector.db')]);
  const endpoint = opts.endpoint ?? w.serve?.endpoint ?? '';
  w.claudeEnv = {
    ...home.env,
    ANTHROPIC_API_KEY: 'sk-ant-dummy-e2e',
    ANTHROPIC_BASE_URL: fake.url,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    CLAUDE_METRICS_ENDPOINT: endpoint,
    CLAUDE_METRICS_SETTLE_MS: '300',
    CLAUDE_METRICS_TIMEOUT_MS: '2000',
  };
  if (opts.hooks !== false) {
    const settings = join(home.home, '.claude', 'settings.json');
    const r = await runCli(['install', '--settings', settings], { env: home.env });
    expect(r.code, r.stderr).toBe(0);
    if (opts.capture) {
      // A second hook beside ours that keeps each raw payload, to compare field sets with the fixtures.
      const dir = join(home.home, 'payloads');
      mkdirSync(dir);
      const script = join(home.home, 'capture.sh');
      writeFileSync(script, `#!/bin/sh\ncat > "${dir}/$(date +%s%N).json"\n`);
      chmodSync(script, 0o755);
      const s = JSON.parse(readFileSync(settings, 'utf8')) as { hooks: Record<string, Array<{ hooks: Array<Record<string, unknown>> }>> };
      for (const groups of Object.values(s.hooks)) groups[0]!.hooks.push({ type: 'command', command: script });
      writeFileSync(settings, JSON.stringify(s, null, 2));
    }
  }
  return w;
}

function claude(w: World, prompt: string, extra: string[] = [], format = 'json') {
  return runProcess(CLAUDE, ['-p', prompt, '--output-format', format, '--allowedTools', 'Bash', '--model', MODEL, ...extra], { env: w.claudeEnv, cwd: w.project, killAfterMs: 90_000 });
}

async function sessionWhenSettled(w: World, expectTokens: number) {
  // Hook events may land after the tokens do (a loaded machine): wait until nothing is left to deliver.
  await waitDelivered(w.home.stateDir);
  let last: unknown;
  return waitFor(
    async () => {
      const { body } = await getJson(`${w.serve!.url}/api/sessions`);
      last = body.sessions;
      const s = body.sessions?.[0];
      const tokens = s ? s.input_tokens + s.output_tokens + s.cache_creation_input_tokens + s.cache_read_input_tokens : 0;
      return s && s.completed_at && tokens >= expectTokens ? s : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 250 },
  ).catch((err: Error) => {
    // What it saw last, so that a run that never settles says which part was missing: the sessions,
    // what the state dir holds, the end of our own log, the collector's stderr.
    const files = existsSync(w.home.stateDir) ? readdirSync(w.home.stateDir, { recursive: true }).map(String).join(', ') : '(no state dir)';
    const logFile = join(w.home.stateDir, 'claude-metrics.log');
    const log = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-3000) : '(no log)';
    throw new Error(`${err.message}: wanted a completed session with ${expectTokens} tokens; the sessions were ${JSON.stringify(last)}; state dir: ${files}; log: ${log}; serve stderr: ${w.serve?.stderr().slice(-2000)}`);
  });
}

const sum = (u: { input_tokens: number; output_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number }) => u.input_tokens + u.output_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens;

// Generous bounds: with the whole suite running on two cores, one real Claude Code run can take a minute.
describe(`the real Claude Code CLI through our hooks`, { timeout: 180_000 }, () => {
  it('a claude -p session: source, project, tool calls with durations, outcome, tokens = what the API served, cost = Claude Code’s', async () => {
    const w = await world(TOOL_THEN_ANSWER, { capture: true });
    const r = await claude(w, 'run two commands');
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { total_cost_usd: number; usage: Record<string, number>; session_id: string; num_turns: number };
    const served = w.fake.totals();
    const s = await sessionWhenSettled(w, sum(served));
    expect(s).toMatchObject({
      id: `session:${result.session_id}`, source: 'api', project: 'demo-app', success: true, tool_calls_count: 2, tool_failures: 1,
      input_tokens: served.input_tokens, output_tokens: served.output_tokens, cache_creation_input_tokens: served.cache_creation_input_tokens, cache_read_input_tokens: served.cache_read_input_tokens,
      model: MODEL,
    });
    // Claude Code's own accounting agrees with the fake and with us.
    expect(result.usage).toMatchObject(served);
    expect(s.cost_usd).toBeCloseTo(result.total_cost_usd, 9);
    const summary = (await getJson(`${w.serve!.url}/api/summary`)).body;
    const bash = summary.top_tools.find((t: { tool: string }) => t.tool === 'Bash');
    expect(bash).toMatchObject({ calls: 2, failures: 1 });
    expect(bash.avg_duration_ms).toBeGreaterThan(0); // PostToolUse's duration_ms

    // The payload field sets still match the captured 2.1.331 ones (a renamed field fails here).
    const dir = join(w.home.home, 'payloads');
    const live = readdirSync(dir).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, unknown>);
    for (const name of ['SessionStart', 'UserPromptSubmit', 'PreToolUse', 'PostToolUse', 'Stop', 'SessionEnd']) {
      const fixture = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'hooks-real', `${name}.json`), 'utf8')) as Record<string, unknown>;
      const got = live.find((p) => p.hook_event_name === name);
      expect(got, `${name} fired`).toBeDefined();
      // `effort` is there only for models with effort levels (the fixture was captured with the default model).
      const strip = (keys: string[]) => keys.filter((k) => !MODEL_DEPENDENT.has(k)).sort();
      expect(strip(Object.keys(got!)), `${name} fields (Claude Code ${version})`).toEqual(strip(Object.keys(fixture)));
    }
  });

  it("the session's page data and `show` find the Bash step; with Claude Code's traces on, its execution span is joined to it, and run's TRACEPARENT is the spans' trace", async () => {
    const w = await world(TOOL_THEN_ANSWER);
    const otel = {
      CLAUDE_CODE_ENABLE_TELEMETRY: '1',
      CLAUDE_CODE_ENHANCED_TELEMETRY_BETA: '1',
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_LOGS_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_ENDPOINT: w.serve!.url,
      OTEL_LOGS_EXPORT_INTERVAL: '500',
      OTEL_BSP_SCHEDULE_DELAY: '500',
    };
    const r = await runProcess(process.execPath, [join(ROOT, 'bin', 'claude-metrics'), 'run', '--task-id', 'T-trace', '--', CLAUDE, '-p', 'run two commands', '--output-format', 'json', '--allowedTools', 'Bash', '--model', MODEL], { env: { ...w.claudeEnv, ...otel }, cwd: w.project, killAfterMs: 90_000 });
    expect(r.code, r.stderr).toBe(0);
    const env = { ...w.home.env, CLAUDE_METRICS_ENDPOINT: w.serve!.endpoint };
    const show = await waitFor(
      async () => {
        const j = await runCli(['show', 'T-trace', '--json'], { env });
        if (j.code !== 0) return undefined;
        const parsed = JSON.parse(j.stdout) as { session: { id: string }; steps: Array<Record<string, any>> };
        const bash = parsed.steps.filter((s) => s.kind === 'tool' && s.tool_name === 'Bash');
        return bash.length === 2 && bash.every((s) => s.timing === 'trace') ? parsed : undefined;
      },
      { timeoutMs: 45_000, intervalMs: 500 },
    );
    const bash = show!.steps.filter((s) => s.kind === "tool" && s.tool_name === "Bash");
    expect(bash.map((s) => s.status)).toEqual(['ok', 'failed']);
    for (const s of bash) {
      expect(s.run_ms, 'the execution span').toBeGreaterThanOrEqual(0);
      expect(s.event_ids.length).toBeGreaterThanOrEqual(4); // Pre, Post, and the tool / execution spans
    }
    const text = await runCli(['show', 'T-trace'], { env });
    expect(text.stdout).toMatch(/✓ +tool +Bash/);
    expect(text.stdout).toMatch(/✗ +tool +Bash/);
    // What Claude Code does with the TRACEPARENT run passes: its spans join our trace (or not; say which).
    const started = show!.steps.find((s) => s.event === 'ralph_task_started')!;
    const raw = (await getJson(`${w.serve!.url}/api/events/${started.event_ids[0]}`)).body.event;
    const spans = await Promise.all(bash[0]!.event_ids.map(async (id: string) => (await getJson(`${w.serve!.url}/api/events/${id}`)).body.event));
    const traceIds = [...new Set(spans.map((e: any) => e.attrs?.trace_id).filter(Boolean))];
    console.log(`e2e: run trace ${raw.attrs.trace_id}; Claude Code's tool spans in trace(s) ${traceIds.join(', ')}`);
    expect(traceIds).toEqual([raw.attrs.trace_id]);
  }, 150_000);

  it('a Ralph task through claude-metrics run: one task session with outcome, turns, cost, and the hooks inside it', async () => {
    const w = await world(TOOL_THEN_ANSWER);
    const r = await runProcess(process.execPath, [join(ROOT, 'bin', 'claude-metrics'), 'run', '--task-id', 'T-77', '--label', 'nightly', '--', CLAUDE, '-p', 'do the task', '--output-format', 'json', '--allowedTools', 'Bash', '--model', MODEL], {
      env: w.claudeEnv,
      cwd: w.project,
    });
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { total_cost_usd: number; num_turns: number; session_id: string };
    const s = await sessionWhenSettled(w, sum(w.fake.totals()));
    expect(s.id).toMatch(/^run:/);
    expect(s).toMatchObject({ source: 'ralph', task_id: 'T-77', label: 'nightly', success: true, exit_code: 0, num_turns: result.num_turns, claude_session_id: result.session_id, tool_calls_count: 2 });
    expect(s.cost_usd).toBeCloseTo(result.total_cost_usd, 9);
    expect(s.duration_ms).toBeGreaterThan(0);
    const { body } = await getJson(`${w.serve!.url}/api/sessions`);
    expect(body.total).toBe(1); // the Claude session folded into the task, not a second row
  });

  it('a subagent (the Agent tool) with its own transcript: its tokens and tool calls count in the session', async () => {
    const w = await world({
      model: MODEL,
      main: [
        { kind: 'tool', name: 'Agent', input: { description: 'look around', prompt: 'List the files', subagent_type: 'general-purpose' }, usage: { input_tokens: 900, output_tokens: 70, cache_creation_input_tokens: 2000, cache_read_input_tokens: 8000 } },
        { kind: 'text', text: 'The agent is on it.', usage: { input_tokens: 150, output_tokens: 20, cache_creation_input_tokens: 50, cache_read_input_tokens: 10000 } },
      ],
      subagent: [
        { kind: 'tool', name: 'Bash', input: { command: 'ls', description: 'list files' }, usage: { input_tokens: 700, output_tokens: 30, cache_creation_input_tokens: 1500, cache_read_input_tokens: 0 } },
        { kind: 'text', text: 'Two files.', usage: { input_tokens: 90, output_tokens: 25, cache_creation_input_tokens: 10, cache_read_input_tokens: 2200 } },
      ],
    });
    const r = await claude(w, 'ask an agent', ['--allowedTools', 'Bash,Agent']);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { total_cost_usd: number; session_id: string };
    expect(w.fake.served.filter((x) => x.subagent)).toHaveLength(2); // the subagent really ran
    const served = w.fake.totals();
    const s = await sessionWhenSettled(w, sum(served));
    expect(s).toMatchObject({ id: `session:${result.session_id}`, success: true, input_tokens: served.input_tokens, output_tokens: served.output_tokens, cache_creation_input_tokens: served.cache_creation_input_tokens, cache_read_input_tokens: served.cache_read_input_tokens });
    expect(s.cost_usd).toBeCloseTo(result.total_cost_usd, 9);
    const tools = (await getJson(`${w.serve!.url}/api/summary`)).body.top_tools as Array<{ tool: string; calls: number }>;
    expect(tools.find((t) => t.tool === 'Agent')?.calls).toBe(1);
    expect(tools.find((t) => t.tool === 'Bash')?.calls).toBe(1); // the subagent's own tool call
  });

  it('an API error: claude -p fails, and the task through run is recorded as a failure with its exit code', async () => {
    const w = await world({ model: MODEL, main: [{ kind: 'error', status: 400, type: 'invalid_request_error', message: 'prompt is too long' }] });
    const r = await runProcess(process.execPath, [join(ROOT, 'bin', 'claude-metrics'), 'run', '--task-id', 'T-err', '--', CLAUDE, '-p', 'too much', '--output-format', 'json', '--allowedTools', 'Bash', '--model', MODEL], { env: w.claudeEnv, cwd: w.project });
    expect(r.code).toBe(1); // run exits with Claude Code's status
    const result = JSON.parse(r.stdout) as { is_error: boolean; session_id: string };
    expect(result.is_error).toBe(true);
    const s = await waitFor(
      async () => (await getJson(`${w.serve!.url}/api/sessions`)).body.sessions?.find((x: { task_id: string; completed_at: string | null }) => x.task_id === 'T-err' && x.completed_at),
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(s).toMatchObject({ source: 'ralph', success: false, exit_code: 1, claude_session_id: result.session_id, input_tokens: 0, output_tokens: 0 });
    const summary = (await getJson(`${w.serve!.url}/api/summary`)).body;
    expect(summary.last_7d).toMatchObject({ tasks: 1, succeeded: 0, failed: 1, success_rate: 0 });
  });

  it('a long session (25 tool calls): every call and every token, once', async () => {
    const calls = Array.from({ length: 25 }, (_, i): Scenario['main'][number] => ({ kind: 'tool', name: 'Bash', input: { command: `echo step-${i}`, description: `step ${i}` }, usage: { input_tokens: 100 + i, output_tokens: 20 + i, cache_creation_input_tokens: 50, cache_read_input_tokens: 1000 * (i + 1) } }));
    const w = await world({ model: MODEL, main: [...calls, { kind: 'text', text: 'All 25 steps done.', usage: { input_tokens: 80, output_tokens: 30, cache_creation_input_tokens: 0, cache_read_input_tokens: 26_000 } }] });
    const r = await claude(w, 'do 25 steps');
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { total_cost_usd: number; session_id: string; num_turns: number };
    const served = w.fake.totals();
    const s = await sessionWhenSettled(w, sum(served));
    expect(s).toMatchObject({ id: `session:${result.session_id}`, tool_calls_count: 25, tool_failures: 0, input_tokens: served.input_tokens, output_tokens: served.output_tokens, cache_read_input_tokens: served.cache_read_input_tokens });
    expect(s.cost_usd).toBeCloseTo(result.total_cost_usd, 9);
    expect((await getJson(`${w.serve!.url}/api/summary`)).body.ingest.duplicates).toBe(0);
  });

  it('with the collector down during the run, then up and flushed: the same state, nothing twice', async () => {
    const port = await deadPort();
    const w = await world(TOOL_THEN_ANSWER, { serve: false, endpoint: `http://127.0.0.1:${port}/metrics/harness` });
    const r = await claude(w, 'run two commands');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { total_cost_usd: number; session_id: string };
    // Let the detached transcript worker finish spooling (its lock file disappears).
    await waitFor(() => {
      const dir = join(w.home.stateDir, 'transcripts');
      return existsSync(dir) && readdirSync(dir).some((f) => f.endsWith('.json')) && !readdirSync(dir).some((f) => f.endsWith('.lock') || f.endsWith('.worker'));
    }, { timeoutMs: 45_000 });
    w.serve = await startServe(w.home.env, ['--db', join(w.home.home, 'collector.db'), '--port', String(port)]);
    const f1 = await runCli(['flush'], { env: w.claudeEnv });
    expect(f1.code).toBe(0);
    const f2 = await runCli(['flush'], { env: w.claudeEnv });
    expect(f2.code).toBe(0);
    const served = w.fake.totals();
    const s = await sessionWhenSettled(w, sum(served));
    expect(s).toMatchObject({ id: `session:${result.session_id}`, success: true, tool_calls_count: 2, input_tokens: served.input_tokens, output_tokens: served.output_tokens, cache_read_input_tokens: served.cache_read_input_tokens });
    expect(s.cost_usd).toBeCloseTo(result.total_cost_usd, 9);
    const health = (await getJson(`${w.serve.url}/healthz`)).body;
    expect(health.events).toBe(s.events_count); // every stored event folded once
  });

  it('stdout is byte-identical with and without our hooks, and nothing of ours reaches the model', async () => {
    const scenario: Scenario = { model: MODEL, main: [{ kind: 'text', text: 'Plain answer — 42 ✓' }] };
    const bare = await world(scenario, { hooks: false, serve: false });
    const hooked = await world(scenario);
    const a = await claude(bare, 'answer', [], 'text');
    const b = await claude(hooked, 'answer', [], 'text');
    const c = await runProcess(process.execPath, [join(ROOT, 'bin', 'claude-metrics'), 'run', '--', CLAUDE, '-p', 'answer', '--output-format', 'text', '--allowedTools', 'Bash', '--model', MODEL], { env: hooked.claudeEnv, cwd: hooked.project });
    expect(a.code).toBe(0);
    expect(Buffer.from(b.stdout)).toEqual(Buffer.from(a.stdout));
    expect(Buffer.from(c.stdout)).toEqual(Buffer.from(a.stdout));
    expect(a.stdout).toBe('Plain answer — 42 ✓\n');
    const bodies = hooked.fake.requests.map((q) => q.body).join('\n');
    expect(bodies).not.toMatch(/claude-metrics|claude_harness|event_id/);
    expect(hooked.fake.requests.filter((q) => q.url.startsWith('/v1/messages?') || q.url === '/v1/messages').length).toBe(bare.fake.requests.filter((q) => q.url.startsWith('/v1/messages?') || q.url === '/v1/messages').length * 2);
  });
});
