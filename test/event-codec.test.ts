/**
 * The compact event row (src/collector/store/event-codec.ts): a body split into
 * columns, context tuple, layout and residue comes back byte for byte.
 */
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { COMPACT_TABLES, nameHash, Names } from '../src/collector/store/migrations/sqlite-compact-events';
import { columnsOf, decodeBody, decodeId, decodeObjectBody, encodeEvent, encodeId, encodeParts, factKeyHash, residueObject, residueObjectOf } from '../src/collector/store/event-codec';

const roundTrip = (e: Record<string, unknown>) => {
  const c = columnsOf(e as never);
  const enc = encodeEvent(e, c);
  return { body: decodeBody({ ...c, ...enc }), enc };
};

describe('event codec', () => {
  it('ids: a lowercase UUID is 16 bytes, anything else its text; both come back', () => {
    const u = '01a101c8-196d-7d4b-bd44-c934dd21e3b1';
    expect((encodeId(u) as Buffer).length).toBe(16);
    expect(decodeId(encodeId(u))).toBe(u);
    for (const id of ['e-done', '01A101C8-196D-7D4B-BD44-C934DD21E3B1', 'otel:abc.1']) expect(decodeId(encodeId(id))).toBe(id);
  });

  const events: Array<Record<string, unknown>> = [
    { schema_version: 1, event_id: '01a101c8-196d-7d4b-bd44-c934dd21e3b1', event: 'PostToolUse', source: 'interactive', timestamp: '2026-10-03T12:40:53.703Z', session_id: 's1', project: 'api', duration_ms: 346, success: true, tool_name: 'Edit', tool_use_id: 'toolu_1', context: { host: 'h', cwd: '/x', emitter_version: '0.1.0' }, hook: { tool_input_size: 1769 } },
    { event_id: 'u1', event: 'usage', source: 'api', timestamp: '2026-10-03T12:40:53+00:00', model: 'm', usage: { output_tokens: 5, input_tokens: 7 }, cost_usd: 0.0148517, cost_source: 'estimate', message_id: 'msg_1' },
    { event_id: 'u2', event: 'usage', source: 'api', timestamp: '2026-10-03T12:40:53.000Z', usage: null, success: null, error: null, cost_usd: null, label: null },
    { event_id: 'x', event: 'odd_kind', source: 'cron', timestamp: '2026-10-03T12:40:53.000Z', extra: { nested: [1, 'two', null, { __proto__: 1 }] }, '7': 'numeric key', 'ü': '\u2028 \ud800', exit_code: -3, num_turns: 0, context: null },
    { event_id: 'h', event: 'PreToolUse', source: 'interactive', timestamp: '2026-10-03T12:40:53.000Z', hook: { a: 1, nested: { b: 2 } }, attrs: { x: null, y: true, z: 'q', __proto__x: 1 } },
    { event_id: 'h2', event: 'PreToolUse', source: 'interactive', timestamp: '2026-10-03T12:40:53.000Z', hook: {}, attrs: [1, 2], content: { 'a.txt': 'x' } },
    { event: 'SessionEnd', source: 'interactive', event_id: 'y', timestamp: '2026-10-03T12:40:53.000Z', success: false, duration_ms: 0.1, attrs: { decision: 'reject' }, usage: { input_tokens: 1, output_tokens: 2, cache_creation_input_tokens: 3, cache_read_input_tokens: 4 } },
  ];
  it.each(events.map((e, i) => [i, e] as const))('event %i comes back as JSON.stringify wrote it', (_i, e) => {
    expect(roundTrip(e).body).toBe(JSON.stringify(e));
  });

  it.each(events.map((e, i) => [i, e] as const))('event %i comes back from PostgreSQL\'s parts (the residue as an object) as JSON.stringify wrote it', (_i, e) => {
    const c = columnsOf(e as never);
    const parts = encodeParts(e, c);
    const residue = residueObjectOf(parts.layout, parts.residue);
    // The object form is what residueObject gives SQLite's reads, so SQL reads the same paths on both stores.
    const enc = encodeEvent(e, c);
    expect(residue).toBe(residueObject(enc.layout, enc.residue));
    expect(decodeObjectBody(JSON.stringify(parts.layout), parts.tuple, residue, c)).toBe(JSON.stringify(e));
  });

  it('keeps in the residue only what no column holds', () => {
    const hook = roundTrip(events[0]!).enc;
    expect(hook.residue).toBe('[1769]');
    expect(residueObject(hook.layout, hook.residue)).toBe('{"hook":{"tool_input_size":1769}}');
    const usage = roundTrip(events[1]!).enc;
    expect(usage.residue).toBe('["2026-10-03T12:40:53+00:00","msg_1"]');
    expect(residueObject(usage.layout, usage.residue)).toBe('{"timestamp":"2026-10-03T12:40:53+00:00","message_id":"msg_1"}');
    const odd = roundTrip(events[3]!).enc;
    expect(JSON.parse(residueObject(odd.layout, odd.residue)!)).toEqual({ '7': 'numeric key', extra: (events[3] as { extra: unknown }).extra, 'ü': '\u2028 \ud800', context: null });
    expect(roundTrip({ event_id: 'z', event: 'Stop', source: 'api', timestamp: '2026-10-03T12:40:53.000Z' }).enc.residue).toBeNull();
  });

  it('a body that disagrees with its columns keeps its own values (old rows)', () => {
    const c = columnsOf(events[0] as never);
    const body = { event: 'ralph_task_started', success: 'yes', usage: { input_tokens: 99 } };
    expect(decodeBody({ ...c, ...encodeEvent(body, c) })).toBe(JSON.stringify(body));
  });
});

describe('fact key hashes', () => {
  it('are the first 52 bits of the key text\'s SHA-256 (values from Python hashlib: int(sha256(k).hexdigest()[:13], 16))', () => {
    expect(factKeyHash('tool:toolu_abc')).toBe(3938643665845115);
    expect(factKeyHash('req:req_011CU')).toBe(2853428785684915);
    expect(factKeyHash('')).toBe(4005573543169985);
    expect(factKeyHash('é')).toBe(1312358796624700); // UTF-8, as PostgreSQL's convert_to
  });
  it('are whole numbers below 2^52, exact in JS, and differ for keys that differ by one character', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 20_000; i++) {
      const h = factKeyHash(`tool:toolu_${i}`);
      expect(Number.isSafeInteger(h) && h >= 0 && h < 2 ** 52).toBe(true);
      seen.add(h);
    }
    expect(seen.size).toBe(20_000);
  });
});

describe('interned names', () => {
  it('hashes are safe integers; a name added in a transaction that rolls back is forgotten, not reused for another', () => {
    for (const n of ['', 'a', 'PreToolUse', '["interactive","s",null]', 'ü\u0000x'.repeat(50)]) expect(Number.isSafeInteger(nameHash(n))).toBe(true);
    expect(new Set(['a', 'b', 'ab', 'ba'].map(nameHash)).size).toBe(4);
    const db = new Database(':memory:');
    db.exec(COMPACT_TABLES);
    const names = new Names(db);
    expect(names.id('Notification')).toBe(1); // the fixed kinds
    expect(() =>
      db.transaction(() => {
        names.id('lost');
        throw new Error('rolled back');
      })(),
    ).toThrow('rolled back');
    names.rollback();
    const other = names.id('other');
    const lost = names.id('lost');
    expect(lost).not.toBe(other);
    expect(db.prepare('SELECT name FROM harness_names WHERE id = ?').pluck().get(lost)).toBe('lost');
    expect(names.find('never')).toBeUndefined();
    db.close();
  });
});
