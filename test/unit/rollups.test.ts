/**
 * rollups.ts, pure: a session's contribution follows the row (its two days, its
 * dimensions, NULL apart from ''), the diff of two states moves it, and the tool
 * rollup counts a call once however many reports it has.
 */
import { describe, expect, it } from 'vitest';
import { checkedLastSeen, contribution, diff, dimKey, dimValue, RollupDelta, toolRollups, topToolsOf, utcDay, DAY_MS } from '../../src/collector/rollups';
import type { SessionRow } from '../../src/collector/store';
import type { HarnessEvent } from '../../src/event';

const D = Date.UTC(2026, 10, 20);
const iso = (ms: number) => new Date(ms).toISOString();
function session(over: Partial<SessionRow> = {}): SessionRow {
  return {
    id: 's1', claude_session_id: 's1', run_id: null, source: 'interactive', project: 'web', label: null, task_id: null,
    started_at: iso(D + 1000), completed_at: null, last_seen_at: iso(D + 5000), duration_ms: null, success: null, active: false, exit_code: null,
    tool_calls_count: 2, tool_failures: 0, error: null, model: null, num_turns: null, events_count: 3, input_tokens: 10, output_tokens: 5,
    cache_creation_input_tokens: 1, cache_read_input_tokens: 100, cost_usd: 0.0012345678, cost_source: 'estimate', unpriced_requests: 0,
    lines_added: 0, lines_removed: 0, commits: 0, pull_requests: 0, active_time_s: 0, ...over,
  };
}

describe('contribution', () => {
  it('places a running session on its last-seen day, with integer costs and its filter values', () => {
    const c = contribution(session());
    expect(c.row).toEqual({ day: D, seen_day: D, source: '.interactive', project: '.web', label: '', sessions: 1, tasks: 0, succeeded: 0, failed: 0, tool_calls: 2, input_tokens: 10, output_tokens: 5, cache_creation_input_tokens: 1, cache_read_input_tokens: 100, cost_nano: 1234568, cost_micro: 1235 });
    expect(c.filters).toEqual([{ dim: 'source', value: 'interactive', sessions: 1 }, { dim: 'project', value: 'web', sessions: 1 }]);
  });

  it('a completed session counts on its completion day, seen on its last event’s day; a failure is a failed task', () => {
    const c = contribution(session({ completed_at: iso(D + 1000), last_seen_at: iso(D + DAY_MS + 5), success: false }));
    expect(c.row).toMatchObject({ day: D, seen_day: D + DAY_MS, tasks: 1, succeeded: 0, failed: 1 });
    expect(contribution(session({ completed_at: iso(D + 1), success: null })).row).toMatchObject({ tasks: 1, succeeded: 1, failed: 0 });
  });

  it('NULL and the empty string are different keys, and come back as they were', () => {
    expect(dimKey(null)).not.toBe(dimKey(''));
    for (const v of [null, '', 'x', '.x']) expect(dimValue(dimKey(v))).toBe(v);
    expect(contribution(null)).toEqual({ row: null, hour: null, filters: [] });
    expect(contribution(session({ last_seen_at: null, started_at: null })).row).toBeNull();
  });
});

describe('RollupDelta.dimRows', () => {
  it('the per-dimension rows are the cross rows summed by each dimension', () => {
    const d = new RollupDelta();
    d.diff(null, session({ id: 'a' }));
    d.diff(null, session({ id: 'b', project: 'api', label: 'x' }));
    const rows = d.dimRows();
    expect(rows.map((r) => [r.dim, r.value, r.sessions])).toEqual([
      ['label', '', 1],
      ['label', '.x', 1],
      ['project', '.api', 1],
      ['project', '.web', 1],
      ['source', '.interactive', 2],
    ]);
  });
});

describe('diff', () => {
  it('an unchanged session writes nothing; more tokens write only the difference', () => {
    expect(diff(session(), session())).toEqual({ rows: [], filters: [] });
    const d = diff(session(), session({ input_tokens: 15, tool_calls_count: 3 }));
    expect(d.rows).toEqual([{ day: D, seen_day: D, source: '.interactive', project: '.web', label: '', sessions: 0, tasks: 0, succeeded: 0, failed: 0, tool_calls: 1, input_tokens: 5, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, cost_nano: 0, cost_micro: 0 }]);
    expect(d.filters).toEqual([]);
  });

  it('a session that moves to another day (a late completion) leaves the old row and enters the new one', () => {
    const before = session();
    const after = session({ completed_at: iso(D + 2 * DAY_MS), last_seen_at: iso(D + 2 * DAY_MS), success: true });
    const d = diff(before, after);
    expect(d.rows.map((r) => [r.day, r.sessions, r.tasks, r.input_tokens])).toEqual([
      [D, -1, 0, -10],
      [D + 2 * DAY_MS, 1, 1, 10],
    ]);
  });

  it('a label learned later moves the filter count; deleting subtracts everything', () => {
    expect(diff(session(), session({ label: 'nightly' })).filters).toEqual([{ dim: 'label', value: 'nightly', sessions: 1 }]);
    const gone = diff(session(), null);
    expect(gone.rows[0]).toMatchObject({ sessions: -1, tool_calls: -2, cost_nano: -1234568 });
    expect(gone.filters.map((f) => f.sessions)).toEqual([-1, -1]);
  });

  it('adding diffs of a session’s successive states equals its final contribution (any chain)', () => {
    const states = [null, session(), session({ tool_calls_count: 9 }), session({ completed_at: iso(D + 3 * DAY_MS), last_seen_at: iso(D + 3 * DAY_MS), project: 'api' }), session({ completed_at: iso(D + 3 * DAY_MS), last_seen_at: iso(D + 4 * DAY_MS), project: 'api', success: false })];
    const acc = new RollupDelta();
    for (let i = 1; i < states.length; i++) acc.diff(states[i - 1]!, states[i]!);
    const final = new RollupDelta();
    final.diff(null, states[states.length - 1]!);
    expect(acc.rows()).toEqual(final.rows());
    expect(acc.filters()).toEqual(final.filters());
  });
});

describe('toolRollups', () => {
  const ev = (over: Partial<HarnessEvent>): HarnessEvent => ({ event_id: `e${Math.random()}`, event: 'PostToolUse', source: 'interactive', timestamp: iso(D + 60_000), session_id: 'S', project: 'web', tool_name: 'Bash', tool_use_id: 't1', success: true, duration_ms: 12, ...over }) as HarnessEvent;
  it('a call reported twice counts once; a later failure report adds the failure; a call already stored adds only what changed', () => {
    const rows = toolRollups([ev({}), ev({ event: 'tool_result', success: false, duration_ms: undefined }), ev({ tool_use_id: 't2', tool_name: 'Read', duration_ms: 4 })], new Map());
    // One row per dimension (every call, its source, its project, its label), never their cross product.
    expect(rows.filter((r) => r.dim === '').map((r) => [r.tool, r.calls, r.failures, r.dur_sum, r.dur_count])).toEqual([
      ['Bash', 1, 1, 12, 1],
      ['Read', 1, 0, 4, 1],
    ]);
    expect(rows.filter((r) => r.tool === 'Bash').map((r) => [r.dim, r.value, r.day, r.calls])).toEqual([
      ['', '', utcDay(D), 1],
      ['label', '', utcDay(D), 1],
      ['project', '.web', utcDay(D), 1],
      ['source', '.interactive', utcDay(D), 1],
    ]);
    const stored = new Map([['S\u0000tool\u0000tool:t1', { session_key: 'session:S', model: null, ts_ms: D, unpriced: 0, state: { failed: false } }]]);
    expect(toolRollups([ev({})], stored)).toEqual([]);
    expect(toolRollups([ev({ success: false })], stored).map((r) => [r.calls, r.failures])).toEqual([[0, 1], [0, 1], [0, 1], [0, 1]]);
  });

  it('topToolsOf: most calls first, ties by name, averages of the durations known, empty tools left out', () => {
    expect(topToolsOf([{ tool: 'B', calls: 2, failures: 1, dur_sum: 30, dur_count: 2 }, { tool: 'A', calls: 2, failures: 0, dur_sum: 0, dur_count: 0 }, { tool: 'B', calls: 1, failures: 0, dur_sum: 1, dur_count: 1 }, { tool: 'C', calls: 0, failures: 1, dur_sum: 0, dur_count: 0 }], 10)).toEqual([
      { tool: 'B', calls: 3, failures: 1, avg_duration_ms: 10 },
      { tool: 'A', calls: 2, failures: 0, avg_duration_ms: null },
    ]);
  });
});

describe('checkedLastSeen', () => {
  const entry = (project: string | null, ms: number) => ({ source: '.interactive', project: dimKey(project), label: '', last_seen_ms: ms });
  const seen = (project: string | null, ms: number) => ({ source: 'interactive', project, label: null, last_seen_ms: ms });
  it('entries a session holds are the answer, without grouping the sessions', async () => {
    let recomputed = 0;
    const out = await checkedLastSeen([entry('web', 5), entry(null, 7)], async (times) => [seen('web', 5), seen(null, 7), seen('api', 5)].filter((s) => times.includes(s.last_seen_ms)), async () => (recomputed++, []));
    expect(out).toEqual({ latest: [seen('web', 5), seen(null, 7)], stale: [] });
    expect(recomputed).toBe(0);
  });
  it('one entry no session holds makes the answer the sessions’ own grouping, and is reported stale', async () => {
    const out = await checkedLastSeen([entry('web', 5), entry(null, 7)], async () => [seen('web', 5), seen('web', 7)], async () => [seen('web', 7), seen(null, 3)]);
    expect(out).toEqual({ latest: [seen('web', 7), seen(null, 3)], stale: [entry(null, 7)] });
  });
});
