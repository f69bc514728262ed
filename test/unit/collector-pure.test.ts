import { nextSweepChunk, SWEEP_CHUNK } from '../../src/collector/store';
import { describe, expect, it } from 'vitest';
import { completeBare, parseBody, sessionKey } from '../../src/collector/normalize';
import { bucketIndex, escapeLabelValue, histogramSamples, serialize } from '../../src/collector/prometheus';
import type { HarnessEvent } from '../../src/event';

describe('Prometheus serializer', () => {
  it('renders families deterministically, escaping label values', () => {
    const text = serialize([
      { name: 'b_total', help: 'B things.', type: 'counter', samples: [{ labels: { z: '1', a: 'x"y\\z\nw' }, value: 2 }, { labels: { a: 'a', z: '0' }, value: 0.1 + 0.2 }] },
      { name: 'a_seconds', help: 'A\nhelp', type: 'histogram', samples: histogramSamples({ k: 'v' }, [1, 5], [1, 2, 3], 42.5) },
    ]);
    expect(text).toBe(
      [
        '# HELP a_seconds A\\nhelp',
        '# TYPE a_seconds histogram',
        'a_seconds_bucket{k="v",le="1"} 1',
        'a_seconds_bucket{k="v",le="5"} 3',
        'a_seconds_bucket{k="v",le="+Inf"} 6',
        'a_seconds_sum{k="v"} 42.5',
        'a_seconds_count{k="v"} 6',
        '# HELP b_total B things.',
        '# TYPE b_total counter',
        'b_total{a="a",z="0"} 0.3',
        'b_total{a="x\\"y\\\\z\\nw",z="1"} 2',
        '',
      ].join('\n'),
    );
  });
  it('escapes and buckets', () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    expect(bucketIndex([1, 5, 15], 0.5)).toBe(0);
    expect(bucketIndex([1, 5, 15], 5)).toBe(1);
    expect(bucketIndex([1, 5, 15], 99)).toBe(3);
  });
});

describe('request bodies', () => {
  const at = new Date('2026-11-25T00:00:00Z');
  it('derives the bare id from the body as sent (retries match, the filled timestamp does not change it)', () => {
    const body = { source: 'ralph', event: 'ralph_task_started', task_id: 'T' };
    const a = completeBare(body, at);
    const b = completeBare({ task_id: 'T', event: 'ralph_task_started', source: 'ralph' }, new Date());
    expect(a.event_id).toBe(b.event_id);
    expect(a.timestamp).toBe('2026-11-25T00:00:00.000Z');
    expect(completeBare({ ...body, task_id: 'U' }, at).event_id).not.toBe(a.event_id);
  });
  it('classifies single, batch and invalid bodies', () => {
    const good = { event_id: 'e1', event: 'x', source: 'api', timestamp: '2026-11-25T00:00:00Z' };
    expect(parseBody(good, at).kind).toBe('single');
    const batch = parseBody({ events: [good, { ...good, source: 'nope' }] }, at);
    expect(batch.kind).toBe('batch');
    if (batch.kind === 'batch') expect(batch.rejected).toEqual([{ index: 1, event_id: 'e1', reason: 'source: must be one of interactive, ralph, api, cron, backfill, got "nope"' }]);
    expect(parseBody('str', at)).toMatchObject({ kind: 'invalid', status: 422 });
    expect(parseBody(null, at)).toMatchObject({ kind: 'invalid' });
  });
  it('keys sessions by run, then Claude session, then task', () => {
    const base = { event_id: 'x', event: 'e', source: 'ralph', timestamp: 't' } as HarnessEvent;
    expect(sessionKey({ ...base, run_id: 'r', session_id: 's' })).toBe('run:r');
    expect(sessionKey({ ...base, session_id: 's', task_id: 't' })).toBe('session:s');
    expect(sessionKey({ ...base, task_id: 't', label: 'l' })).toBe('task:ralph:l:t');
  });
});

describe('nextSweepChunk (the SQLite sweep paces its chunks)', () => {
  it('shrinks a chunk that ran over the target in proportion, never below 50 rows', () => {
    expect(nextSweepChunk(1000, 80, 20)).toBe(250);
    expect(nextSweepChunk(1000, 21, 20)).toBe(952);
    expect(nextSweepChunk(100, 10_000, 20)).toBe(50);
  });
  it('grows back to SWEEP_CHUNK when chunks run well under, and holds in between', () => {
    expect(nextSweepChunk(250, 5, 20)).toBe(500);
    expect(nextSweepChunk(800, 1, 20)).toBe(SWEEP_CHUNK);
    expect(nextSweepChunk(300, 15, 20)).toBe(300);
  });
});
