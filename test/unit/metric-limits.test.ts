/**
 * The /metrics cardinality limiter alone (src/collector/metric-limits.ts) and
 * the families built on it (metric-families.ts): busiest-first admission with
 * deterministic ties, no eviction, a raised cap admitting more, and families
 * whose series sum to the stored totals.
 */
import { describe, expect, it } from 'vitest';
import { admittedOf, limited, OTHER, slotsToClaim, type MetricSlot } from '../../src/collector/metric-limits';
import { metricFamilies } from '../../src/collector/metric-families';
import type { CounterTotal, Store } from '../../src/collector/store';

const act = (o: Record<string, number>) => new Map(Object.entries(o));

describe('slotsToClaim', () => {
  it('admits the busiest first, ties by the smaller value, up to the cap', () => {
    expect(slotsToClaim('project', [], act({ b: 5, a: 5, c: 9, d: 1 }), 3)).toEqual([
      { dimension: 'project', slot: 0, value: 'c' },
      { dimension: 'project', slot: 1, value: 'a' },
      { dimension: 'project', slot: 2, value: 'b' },
    ]);
  });

  it('never evicts: an admitted value keeps its slot however quiet it becomes, a newcomer waits', () => {
    const held: MetricSlot[] = [{ dimension: 'project', slot: 0, value: 'quiet' }, { dimension: 'project', slot: 1, value: 'x' }];
    expect(slotsToClaim('project', held, act({ quiet: 0, x: 1, loud: 1000 }), 2)).toEqual([]);
    expect(limited(admittedOf(held), 'project', 'loud')).toBe(OTHER);
    expect(limited(admittedOf(held), 'project', 'quiet')).toBe('quiet');
  });

  it('a raised cap opens the slots above the old one to the busiest waiting values; a lowered one evicts nobody', () => {
    const held: MetricSlot[] = [{ dimension: 'label', slot: 0, value: 'a' }, { dimension: 'label', slot: 1, value: 'b' }];
    expect(slotsToClaim('label', held, act({ a: 1, b: 1, c: 3, d: 7, e: 2 }), 4)).toEqual([
      { dimension: 'label', slot: 2, value: 'd' },
      { dimension: 'label', slot: 3, value: 'c' },
    ]);
    expect(slotsToClaim('label', held, act({ a: 1, b: 1, c: 3 }), 1)).toEqual([]);
  });

  it('fills a slot freed by a lost race first (the lowest free one), and never claims "other"; dimensions are separate', () => {
    const held: MetricSlot[] = [{ dimension: 'tool', slot: 1, value: 'Bash' }, { dimension: 'project', slot: 0, value: 'p' }];
    expect(slotsToClaim('tool', held, act({ Bash: 9, [OTHER]: 100, Read: 2 }), 3)).toEqual([{ dimension: 'tool', slot: 0, value: 'Read' }]);
  });
});

/** A store that only serves counters and slots (what metricFamilies reads). */
function fakeStore(counters: CounterTotal[], slots: MetricSlot[] = []): Store {
  return {
    activeWindowMs: 1_800_000,
    counters: async () => counters,
    metricSlots: async () => [...slots],
    claimMetricSlots: async (claims: MetricSlot[]) => {
      for (const c of claims) if (!slots.some((s) => s.dimension === c.dimension && (s.slot === c.slot || s.value === c.value))) slots.push(c);
    },
    allSessions: async () => [],
    lastSeen: async () => [],
  } as unknown as Store;
}

describe('metricFamilies', () => {
  const counters: CounterTotal[] = [];
  for (let p = 0; p < 6; p++)
    for (let l = 0; l < 4; l++) counters.push({ metric: 'events_total', labels: { source: p % 2 ? 'ralph' : 'interactive', project: `p${p}`, label: `l${l}`, event: 'Stop' }, value: 10 * p + l + 1 });
  const total = counters.reduce((a, c) => a + c.value, 0);
  const family = (fs: Awaited<ReturnType<typeof metricFamilies>>, name: string) => fs.find((f) => f.name === `claude_harness_${name}`)!.samples;

  it('caps each label, `other` carries the rest, every family sums to the stored total, and slots stick', async () => {
    const slots: MetricSlot[] = [];
    const fs = await metricFamilies(fakeStore(counters, slots), Date.now(), { project: 2, label: 3, tool: 1, model: 1, loop: 2 });
    const byProject = family(fs, 'events_by_project_total');
    expect(byProject.map((s) => s.labels.project).sort()).toEqual(['other', 'p4', 'p5']);
    expect(family(fs, 'events_by_label_total').length).toBe(4);
    for (const name of ['events_total', 'events_by_project_total', 'events_by_label_total']) expect(family(fs, name).reduce((a, s) => a + s.value, 0)).toBe(total);
    expect(family(fs, 'events_total').every((s) => Object.keys(s.labels).sort().join() === 'event,source')).toBe(true);

    // p0 becomes the busiest: it still goes to other, p4 and p5 keep their series (sticky).
    const busier = [...counters, { metric: 'events_total', labels: { source: 'interactive', project: 'p0', label: 'l0', event: 'Stop' }, value: 10_000 }];
    const again = family(await metricFamilies(fakeStore(busier, slots), Date.now(), { project: 2, label: 3, tool: 1, model: 1, loop: 2 }), 'events_by_project_total');
    expect(again.map((s) => s.labels.project).sort()).toEqual(['other', 'p4', 'p5']);
    const before = new Map(byProject.map((s) => [s.labels.project, s.value]));
    for (const s of again) expect(s.value).toBeGreaterThanOrEqual(before.get(s.labels.project)!);
  });

  it('a store that takes no writes still serves its counters, the values waiting for a slot as other', async () => {
    const store = { ...fakeStore(counters), claimMetricSlots: async () => Promise.reject(new Error('SQLITE_FULL')) } as unknown as Store;
    const fs = await metricFamilies(store, Date.now(), { project: 2, label: 3, tool: 1, model: 1, loop: 2 });
    expect(family(fs, 'events_by_project_total')).toEqual([{ labels: { project: 'other' }, value: total }]);
  });
});
