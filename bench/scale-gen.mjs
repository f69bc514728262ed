// The collector-at-scale mix (docs/benchmarks.md, "The collector at scale"), as a
// deterministic, seeded stream of wire events shaped like what the hooks, the
// transcript reader and `claude-metrics run` send. Same seed, size and anchor →
// the same events, byte for byte. Pure: no I/O, no clock, no Math.random.
//
// A session is ~66 events: SessionStart, 2–3 prompts each answered by a Stop,
// ~20 tool calls as PreToolUse/PostToolUse pairs (~6% PostToolUseFailure),
// ~20 `usage` facts (tokens, model, cost), SessionEnd. About a quarter of the
// sessions are Ralph tasks: source `ralph`, run/task ids and a label, between a
// `ralph_task_started` and a `ralph_task_completed` (~12% failed). Sessions start
// evenly over the span (oldest first, the order a collector receives them in),
// over 40 projects and 60 labels (each label at home in one project, half the
// interactive sessions labelled).

/** mulberry32: small, fast, good enough to spread a benchmark's mix. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const PROJECTS = Array.from({ length: 40 }, (_, i) => `${['api', 'web', 'infra', 'ml', 'data', 'mobile', 'docs', 'billing'][i % 8]}-${['core', 'gateway', 'worker', 'console', 'sdk'][Math.floor(i / 8)]}`);
export const LABELS = Array.from({ length: 60 }, (_, i) => `${['nightly', 'refactor', 'triage', 'migrate', 'review', 'tests'][i % 6]}-${String(Math.floor(i / 6) + 1).padStart(2, '0')}`);
const USERS = Array.from({ length: 50 }, (_, i) => `dev${String(i + 1).padStart(2, '0')}`);
const TOOLS = [
  ['Bash', 30], ['Read', 25], ['Edit', 15], ['Grep', 8], ['Glob', 5], ['Write', 5],
  ['TodoWrite', 4], ['Task', 3], ['WebFetch', 2], ['mcp__github__create_pull_request', 1], ['mcp__linear__get_issue', 1], ['NotebookEdit', 1],
];
const MODELS = [['claude-opus-4-5', 45], ['claude-sonnet-4-5', 40], ['claude-haiku-4-5', 15]];
const PRICE = { 'claude-opus-4-5': [5, 25, 6.25, 0.5], 'claude-sonnet-4-5': [3, 15, 3.75, 0.3], 'claude-haiku-4-5': [1, 5, 1.25, 0.1] };
const VERSIONS = ['2.1.297', '2.1.310', '2.1.321', '2.1.332'];
const BRANCHES = ['main', 'main', 'main', 'develop', 'feat/retry-budget', 'fix/flaky-login', 'chore/deps'];
const ERRORS = ['Exit code 1', 'Exit code 2\nnpm ERR! missing script: lint', 'File has not been read yet. Read it first before writing to it.', 'String to replace not found in file.', 'Request failed with status code 404', 'Command timed out after 2m 0.0s'];

const pick = (r, xs) => xs[Math.floor(r() * xs.length)];
function weighted(table) {
  const total = table.reduce((s, [, w]) => s + w, 0);
  return (r) => {
    let x = r() * total;
    for (const [v, w] of table) if ((x -= w) < 0) return v;
    return table[table.length - 1][0];
  };
}
const tool = weighted(TOOLS);
const model = weighted(MODELS);
const int = (r, lo, hi) => lo + Math.floor(r() * (hi - lo + 1));
const hex = (r, n) => {
  let s = '';
  while (s.length < n) s += Math.floor(r() * 0x100000000).toString(16).padStart(8, '0');
  return s.slice(0, n);
};
/** UUIDv7-shaped (time-ordered, as emit's ids are) from the generator, not the clock. */
const uuid7 = (r, ms) => {
  const t = Math.floor(ms).toString(16).padStart(12, '0');
  const h = hex(r, 20);
  return `${t.slice(0, 8)}-${t.slice(8)}-7${h.slice(0, 3)}-${'89ab'[Math.floor(r() * 4)]}${h.slice(3, 6)}-${h.slice(6, 18)}`;
};
const uuid4 = (r) => {
  const h = hex(r, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${'89ab'[Math.floor(r() * 4)]}${h.slice(17, 20)}-${h.slice(20)}`;
};

/** Mean events per session of this mix (for planning how many sessions a size needs). */
export const EVENTS_PER_SESSION = 66;

/**
 * Yields `total` events. `beginMs`..`endMs` is the span sessions start in; `seed`
 * decides everything else (two streams with different seeds share no event id).
 */
export function* generate({ seed, total, beginMs, endMs }) {
  const r = rng(seed);
  const sessions = Math.max(1, Math.ceil(total / EVENTS_PER_SESSION));
  const step = (endMs - beginMs) / sessions;
  let emitted = 0;
  for (let i = 0; emitted < total; i++) {
    const start = beginMs + step * Math.min(i, sessions - 1) + r() * step;
    for (const e of session(r, start)) {
      yield e;
      if (++emitted >= total) return;
    }
  }
}

function* session(r, start) {
  const userN = int(r, 0, USERS.length - 1);
  const user = USERS[userN];
  const project = PROJECTS[(userN * 7 + int(r, 0, 5)) % PROJECTS.length];
  const ralph = r() < 0.25;
  // A label is a loop's or a team's name: each belongs to one project (1–2 a project), so
  // project × label has ~60 pairs, not 2,400.
  const own = LABELS.filter((_, i) => i % PROJECTS.length === PROJECTS.indexOf(project));
  const label = ralph || r() < 0.5 ? pick(r, own) : undefined;
  const source = ralph ? 'ralph' : 'interactive';
  const sessionId = uuid4(r);
  const runId = ralph ? uuid7(r, start) : undefined;
  const taskId = ralph ? `${project.toUpperCase().replace(/-/g, '')}-${int(r, 100, 999)}` : undefined;
  const version = pick(r, VERSIONS);
  const branch = pick(r, BRANCHES);
  const commit = hex(r, 40);
  const cwd = `/home/${user}/src/${project}`;
  const host = `${user}-${['mbp', 'ws', 'devbox'][userN % 3]}`;
  const permission = ralph ? 'bypassPermissions' : pick(r, ['default', 'default', 'acceptEdits', 'plan']);
  const mainModel = model(r);
  let t = start;
  const context = (extra) => ({ host, user, cwd, git_branch: branch, git_commit: commit, claude_version: version, permission_mode: permission, emitter_version: '0.1.0', ...extra });
  const base = (event, extra) => ({
    schema_version: 1,
    event_id: uuid7(r, t),
    event,
    source,
    timestamp: new Date(t).toISOString(),
    session_id: sessionId,
    ...(runId ? { run_id: runId, task_id: taskId } : {}),
    ...(label ? { label } : {}),
    project,
    context: context(),
    ...extra,
  });
  const tick = (lo, hi) => (t += int(r, lo, hi));

  if (ralph) {
    // `run` sends its start before Claude Code has a session id.
    const { session_id: _none, ...started } = base('ralph_task_started', { attrs: { command: 'claude', trace_id: runId.replace(/-/g, ''), span_id: hex(r, 16) } });
    yield started;
    tick(200, 900);
  }
  yield base('SessionStart', { model: mainModel, hook: { start_source: 'startup', transcript_path_size: 96 } });
  const prompts = int(r, 2, 3);
  const tools = int(r, 15, 25);
  const usages = int(r, 15, 25);
  let toolsLeft = tools;
  let usagesLeft = usages;
  let cost = 0;
  const tokens = { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
  for (let p = 0; p < prompts; p++) {
    tick(2_000, 60_000);
    yield base('UserPromptSubmit', { hook: { prompt_id_size: 36, prompt_size: int(r, 12, 2400) } });
    const last = p === prompts - 1;
    const nTools = last ? toolsLeft : Math.min(toolsLeft, Math.round(tools / prompts));
    const nUsage = last ? usagesLeft : Math.min(usagesLeft, Math.round(usages / prompts));
    toolsLeft -= nTools;
    usagesLeft -= nUsage;
    for (let k = 0; k < Math.max(nTools, nUsage); k++) {
      if (k < nUsage) {
        tick(1_500, 20_000);
        const m = r() < 0.85 ? mainModel : 'claude-haiku-4-5';
        const u = { input_tokens: int(r, 1, 40), output_tokens: int(r, 20, 1800), cache_creation_input_tokens: int(r, 0, 12_000), cache_read_input_tokens: int(r, 8_000, 120_000) };
        const [pi, po, pw, pr] = PRICE[m];
        const c = Math.round(((u.input_tokens * pi + u.output_tokens * po + u.cache_creation_input_tokens * pw + u.cache_read_input_tokens * pr) / 1e6) * 1e9) / 1e9;
        cost += c;
        for (const key of Object.keys(tokens)) tokens[key] += u[key];
        yield {
          schema_version: 1,
          event_id: uuid4(r),
          event: 'usage',
          source,
          timestamp: new Date(t).toISOString(),
          session_id: sessionId,
          ...(runId ? { run_id: runId, task_id: taskId } : {}),
          ...(label ? { label } : {}),
          project,
          model: m,
          usage: u,
          cost_usd: c,
          cost_source: 'estimate',
          context: { host, cwd, claude_version: version, emitter_version: '0.1.0' },
          message_id: `msg_01${hex(r, 22)}`,
          request_id: `req_011${hex(r, 21)}`,
        };
      }
      if (k < nTools) {
        const name = tool(r);
        const toolUseId = `toolu_01${hex(r, 22)}`;
        const hook = { prompt_id_size: 36, effort_level: 'medium', tool_input_size: int(r, 30, 4000) };
        tick(50, 3_000);
        yield base('PreToolUse', { tool_name: name, tool_use_id: toolUseId, hook, ...(name === 'Task' ? { attrs: { subagent_type: pick(r, ['general-purpose', 'Explore', 'code-reviewer']) } } : {}) });
        const duration = name === 'Bash' ? int(r, 40, 90_000) : int(r, 2, 900);
        t += duration;
        if (r() < 0.06) yield base('PostToolUseFailure', { tool_name: name, tool_use_id: toolUseId, success: false, duration_ms: duration, error: pick(r, ERRORS), hook: { ...hook, is_interrupt: false } });
        else yield base('PostToolUse', { tool_name: name, tool_use_id: toolUseId, success: true, duration_ms: duration, hook: { ...hook, tool_response_size: int(r, 20, 30_000) } });
      }
    }
    tick(500, 4_000);
    yield base('Stop', { hook: { stop_hook_active: false, last_assistant_message_size: int(r, 40, 3000) } });
  }
  tick(1_000, 120_000);
  yield base('SessionEnd', { hook: { reason: pick(r, ['other', 'prompt_input_exit', 'clear', 'logout']) } });
  if (ralph) {
    tick(100, 600);
    const failed = r() < 0.12;
    yield base('ralph_task_completed', {
      duration_ms: Math.round(t - start),
      exit_code: failed ? 1 : 0,
      success: !failed,
      ...(failed ? { error: 'claude: error_max_turns', is_error: true, result_subtype: 'error_max_turns' } : { is_error: false, result_subtype: 'success' }),
      num_turns: prompts + tools,
      duration_api_ms: Math.round((t - start) * 0.6),
      cost_usd: Math.round(cost * 1e6) / 1e6,
      model: mainModel,
      usage: tokens,
      attrs: { command: 'claude', trace_id: runId.replace(/-/g, ''), span_id: hex(r, 16) },
    });
  }
}
