/**
 * The folding rules alone (src/collector/fold.ts): a session's row and the
 * counters do not depend on the order the events come in, nor on how they are
 * split into transactions, and a completion is counted once.
 */
import { describe, expect, it } from 'vitest';
import type { HarnessEvent } from '../../src/event';
import { applyCompletions, CounterSet, foldEvents, mergeDelta, type CompletionState, type FactRow, type SessionDelta } from '../../src/collector/fold';
import { rng, shuffle } from '../helpers/random';


const at = (s: number) => new Date(Date.UTC(2026, 10, 25, 1, 0, s)).toISOString();
const E = (i: number, over: Partial<HarnessEvent>): HarnessEvent => ({ event_id: `e-${String(i).padStart(3, '0')}`, event: 'PostToolUse', source: 'interactive', timestamp: at(i), ...over }) as HarnessEvent;

/** Two sessions: a ralph run wrapping a Claude session (ranked source), tools, usage, errors, models, two completions. */
const EVENTS: HarnessEvent[] = [
  E(0, { event: 'ralph_task_started', source: 'ralph', run_id: 'r1', task_id: 'T', label: 'loop' }),
  E(1, { event: 'SessionStart', run_id: 'r1', session_id: 'cc-1', project: 'p' }),
  E(2, { run_id: 'r1', session_id: 'cc-1', tool_name: 'Bash', success: true, duration_ms: 5 }),
  E(3, { event: 'PostToolUseFailure', run_id: 'r1', session_id: 'cc-1', tool_name: 'Bash', success: false, error: 'exit 1' }),
  E(4, { event: 'usage', run_id: 'r1', session_id: 'cc-1', model: 'claude-a', usage: { input_tokens: 10, output_tokens: 5 }, cost_usd: 0.25 }),
  E(5, { event: 'usage', run_id: 'r1', session_id: 'cc-1', model: 'claude-b', usage: { input_tokens: 1, cache_read_input_tokens: 7 }, cost_usd: 0.5 }),
  E(6, { run_id: 'r1', session_id: 'cc-1', tool_name: 'Read', error: 'later error' }),
  E(7, { event: 'ralph_task_completed', source: 'ralph', run_id: 'r1', task_id: 'T', success: false, exit_code: 2, cost_usd: 0.8 }),
  E(8, { event: 'ralph_task_completed', source: 'ralph', run_id: 'r1', task_id: 'T', success: true, exit_code: 0, duration_ms: 9000 }),
  E(9, { event: 'SessionStart', session_id: 'other', project: 'q', label: 'x' }),
  E(10, { session_id: 'other', tool_name: 'Edit', success: true }),
  // One API request reported twice (the transcript's usage with our estimate, OTel's with Claude Code's cost), one tool call twice.
  E(11, { event: 'usage', session_id: 'other', request_id: 'req-1', model: 'claude-a', usage: { input_tokens: 100, output_tokens: 10 }, cost_usd: 0.02 }),
  E(12, { event: 'usage', session_id: 'other', request_id: 'req-1', model: 'claude-a', usage: { input_tokens: 100, output_tokens: 12 }, cost_usd: 0.03, cost_source: 'claude_code' }),
  E(13, { session_id: 'other', tool_name: 'Bash', tool_use_id: 'tu-1', success: true }),
  E(14, { event: 'tool_result', session_id: 'other', tool_name: 'Bash', tool_use_id: 'tu-1', success: false }),
  // OTel names the headless session inside the ralph run `api`, with a project of its own: ralph wins, the smaller project wins
  E(15, { event: 'tool_result', source: 'api', run_id: 'r1', session_id: 'cc-1', project: 'a-project', tool_name: 'Bash', tool_use_id: 'tu-9', success: true }),
];

const sorted = (ds: SessionDelta[]) => [...ds].sort((a, b) => (a.id < b.id ? -1 : 1));

/** Folds events split into transactions, the way a store applies them: each transaction's deltas merged into the row. */
function foldInParts(events: HarnessEvent[], parts: number, r: () => number) {
  const rows = new Map<string, SessionDelta>();
  const facts = new Map<string, FactRow>();
  const states = new Map<string, CompletionState>();
  const counters = new CounterSet();
  const writes = new Map<string, { ts_ms: number; event_id: string; success: number }>();
  let rest = events;
  for (let p = 0; p < parts && rest.length > 0; p++) {
    const n = p === parts - 1 ? rest.length : 1 + Math.floor(r() * rest.length);
    const f = foldEvents(rest.slice(0, n), facts);
    rest = rest.slice(n);
    for (const d of f.sessions) rows.set(d.id, rows.has(d.id) ? mergeDelta(rows.get(d.id)!, d) : d);
    for (const c of f.completions) if (!states.has(c.id)) states.set(c.id, { started_ms: 0, completed_ms: null, completion_event_id: null });
    for (const [id, s] of states) s.started_ms = rows.get(id)!.started_ms;
    for (const c of applyCompletions(states, f.completions, f.counters)) writes.set(c.id, c);
    for (const row of f.counters.rows()) counters.bump(row.metric, JSON.parse(row.labels), row.by);
  }
  return { rows: sorted([...rows.values()]), writes, counters: counters.rows() };
}

describe('session fold', () => {
  const reference = foldInParts(EVENTS, 1, rng(0));

  it('folds the example into the row a person would write down', () => {
    const run = reference.rows.find((d) => d.id === 'run:r1')!;
    expect(run).toMatchObject({
      source: 'ralph', session_id: 'cc-1', task_id: 'T', label: 'loop', project: 'a-project', started_ms: Date.parse(at(0)), last_seen_ms: Date.parse(at(15)),
      events_count: 10, tool_call: 4, tool_failure: 1, usage_event: 2, input_tokens: 11, output_tokens: 5, cache_read_input_tokens: 7, cost_usd: 0.75,
      error: 'later error', model: 'claude-b',
    });
    // the latest completion decides the result
    expect(reference.writes.get('run:r1')).toMatchObject({ event_id: 'e-008', success: 1 });
    // a request reported twice counts once, at Claude Code's cost and the larger token counts; a tool call reported twice is one failed call
    expect(reference.rows.find((d) => d.id === 'session:other')).toMatchObject({ usage_event: 1, input_tokens: 100, output_tokens: 12, cost_usd: 0.03, claude_cost_requests: 1, estimate_cost_requests: 0, tool_call: 2, tool_failure: 1 });
  });

  it('gives the same rows, the same latest completion and the same totals in any order and any split into transactions', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed);
      const got = foldInParts(shuffle(EVENTS, r), 1 + Math.floor(r() * 5), r);
      expect(got.rows, `seed ${seed}`).toEqual(reference.rows);
      expect(got.writes.get('run:r1')?.event_id, `seed ${seed}`).toBe('e-008');
      // Counters: the same series and totals, except which outcome the first completion had.
      // (and a tool call counts under its first report's outcome: a counter cannot move between series)
      const strip = (rows: typeof got.counters) => rows.filter((c) => !/^(sessions_completed_total|task_duration_seconds|run_reported|tool_calls_total)/.test(c.metric)).map((c) => ({ ...c, by: Math.round(c.by * 1e9) }));
      const tools = (rows: typeof got.counters) => rows.filter((c) => c.metric === 'tool_calls_total').reduce((a, c) => a + c.by, 0);
      expect(tools(got.counters), `seed ${seed}`).toBe(tools(reference.counters));
      expect(strip(got.counters), `seed ${seed}`).toEqual(strip(reference.counters));
      const completed = got.counters.filter((c) => c.metric === 'sessions_completed_total').reduce((a, c) => a + c.by, 0);
      expect(completed, `seed ${seed}`).toBe(1); // two completion events, one session completed
    }
  });

  it('merging is associative and commutative on every field', () => {
    const ds = foldEvents(EVENTS.slice(0, 9)).sessions;  // no fact reported twice among these
    expect(ds).toHaveLength(1);
    const one = EVENTS.slice(0, 9).map((e) => foldEvents([e]).sessions[0]!);
    const r = rng(7);
    for (let k = 0; k < 50; k++) {
      const xs = shuffle(one, r);
      const merged = xs.reduce((a, b) => mergeDelta(a, b));
      expect({ ...merged, cost_usd: Math.round(merged.cost_usd * 1e9) }).toEqual({ ...ds[0]!, cost_usd: Math.round(ds[0]!.cost_usd * 1e9) });
    }
  });

  it('sorts sessions and counter series so row locks are always taken in one order', () => {
    const f = foldEvents(shuffle(EVENTS, rng(3)));
    expect(f.sessions.map((s) => s.id)).toEqual(['run:r1', 'session:other']);
    const keys = f.counters.rows().map((c) => `${c.metric}\u0000${c.labels}`);
    expect(keys).toEqual([...keys].sort());
  });

  it('counts a duplicate, and a completion already stored counts nothing again', () => {
    const f = foldEvents([EVENTS[7]!], new Map(), 3);
    expect(f.counters.rows().find((c) => c.metric === 'duplicates_total')?.by).toBe(3);
    const states = new Map<string, CompletionState>([['run:r1', { started_ms: 0, completed_ms: Date.parse(at(8)), completion_event_id: 'e-008' }]]);
    const counters = new CounterSet();
    expect(applyCompletions(states, f.completions, counters)).toEqual([]); // e-007 is earlier than the stored e-008
    expect(counters.size).toBe(0);
  });
});
