/**
 * /metrics' folding with kept row places (src/collector/counter-fold.ts) against
 * folding from scratch (the straightforward rules, written out here as the
 * oracle): over scrapes whose values grow, whose rows multiply (in between the
 * old ones, as a table ordered by labels gets them) and whose admitted set
 * changes (a raised cap), the families are the same — series, values to the
 * bit, and order — and so is the activity that decides the claims.
 */
import { describe, expect, it } from 'vitest';
import { activityOf, COUNTER_FAMILIES, metricFamilies } from '../../src/collector/metric-families';
import { admittedOf, limited, type Admitted, type MetricCaps, type MetricSlot } from '../../src/collector/metric-limits';
import { DURATION_BUCKETS_S, histogramSamples, serialize, type MetricFamily, type Sample } from '../../src/collector/prometheus';
import { CounterFold } from '../../src/collector/counter-fold';
import { LabelSets } from '../../src/collector/store/label-sets';
import type { CounterTotal, Store } from '../../src/collector/store';
import { rng } from '../helpers/random';

type Labels = Record<string, string>;

/** Folding from scratch: each family sums its rows by the labels it keeps (JSON as the key), the histogram by (source, outcome). */
function foldAfresh(counters: CounterTotal[], adm: Admitted): MetricFamily[] {
  const lim = (d: Parameters<typeof limited>[1], v: string | undefined) => limited(adm, d, v ?? '');
  const out: MetricFamily[] = COUNTER_FAMILIES.map((f) => {
    const m = new Map<string, Sample>();
    for (const r of counters) {
      if (r.metric !== f.from) continue;
      const l = f.labels(r.labels, lim);
      if (!l) continue;
      const k = JSON.stringify(l);
      const s = m.get(k);
      if (s) s.value += r.value;
      else m.set(k, { labels: l, value: r.value });
    }
    const samples = [...m.values()];
    if (f.name === 'duplicates_total' && samples.length === 0) samples.push({ labels: {}, value: 0 });
    return { name: `claude_harness_${f.name}`, help: f.help, type: 'counter', samples };
  });
  const groups = new Map<string, { labels: Labels; counts: number[]; sum: number }>();
  const group = (l: Labels) => {
    const labels = { source: l.source!, outcome: l.outcome! };
    const k = JSON.stringify(labels);
    return groups.get(k) ?? groups.set(k, { labels, counts: [], sum: 0 }).get(k)!;
  };
  for (const b of counters.filter((c) => c.metric === 'task_duration_seconds_bucket')) {
    const g = group(b.labels);
    const i = Number(b.labels.b);
    g.counts[i] = (g.counts[i] ?? 0) + b.value;
  }
  for (const s of counters.filter((c) => c.metric === 'task_duration_seconds_sum')) group(s.labels).sum += s.value;
  const hist = [...groups.values()].flatMap((g) => histogramSamples(g.labels, DURATION_BUCKETS_S, g.counts, g.sum));
  out.push({ name: 'claude_harness_task_duration_seconds', help: 'Duration of completed sessions and tasks in seconds, by source and outcome.', type: 'histogram', samples: hist });
  return out;
}

/** A table of counter rows ordered by (metric, labels text) as SQLite's is; `rows()` hands out the labels as a store does. */
class CounterTable {
  private readonly values = new Map<string, number>();
  private readonly sets = new LabelSets();

  bump(metric: string, labels: Labels, by: number): void {
    const k = `${metric}\u0000${JSON.stringify(labels)}`;
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }

  /** `memo`: one frozen object per label text (the stores); else a fresh object per row and read. */
  rows(memo: boolean): CounterTotal[] {
    return [...this.values.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, value]) => {
        const [metric, text] = k.split('\u0000') as [string, string];
        return { metric, labels: memo ? this.sets.of(text) : (JSON.parse(text) as Labels), value };
      });
  }
}

function storeOf(table: CounterTable, memo: boolean): Store & { slots: MetricSlot[] } {
  const slots: MetricSlot[] = [];
  return {
    slots,
    activeWindowMs: 1_800_000,
    counters: async () => table.rows(memo),
    metricSlots: async () => [...slots],
    claimMetricSlots: async (claims: MetricSlot[]) => {
      for (const c of claims) if (!slots.some((s) => s.dimension === c.dimension && (s.slot === c.slot || s.value === c.value))) slots.push(c);
    },
    allSessions: async () => [],
    lastSeen: async () => [],
  } as unknown as Store & { slots: MetricSlot[] };
}

/** Some more traffic: integer counts and fractional costs and durations (whose sums depend on their order), new combinations among old ones. */
function traffic(table: CounterTable, r: () => number, n: number): void {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const projects = Array.from({ length: 12 }, (_, i) => `p${i}`);
  const labels = Array.from({ length: 9 }, (_, i) => `l${i}`);
  for (let i = 0; i < n; i++) {
    const source = pick(['interactive', 'ralph', 'otel']);
    const project = pick(projects);
    const label = pick(labels);
    table.bump('events_total', { source, project, label, event: pick(['Stop', 'PostToolUse', 'SessionStart']) }, 1 + Math.floor(r() * 5));
    table.bump('tool_calls_total', { source, project, tool: pick(['Bash', 'Read', 'Edit', 'Grep', 'Task']), outcome: pick(['success', 'failure']) }, 1);
    const model = pick(['opus', 'sonnet', 'haiku', 'mystery']);
    table.bump('tokens_total', { source, project, model, kind: pick(['input', 'output']) }, Math.floor(r() * 1000));
    if (model !== 'mystery') table.bump('cost_usd_total', { source, project, model }, r() * 0.37);
    if (r() < 0.3) {
      const h = { source, project, label, outcome: pick(['success', 'failure']) };
      const seconds = r() * 5000;
      table.bump('sessions_completed_total', h, 1);
      table.bump('task_duration_seconds_bucket', { ...h, b: String(Math.floor(r() * 14)) }, 1);
      table.bump('task_duration_seconds_sum', h, seconds);
    }
    if (r() < 0.1) table.bump('lines_of_code_total', { source, project, type: pick(['added', 'removed']) }, Math.floor(r() * 40));
    if (r() < 0.05) table.bump('rejects_total', { reason: pick(['schema', 'too_large']) }, 1);
  }
}

const strip = (fs: MetricFamily[]) => JSON.parse(JSON.stringify(fs.filter((f) => COUNTER_FAMILIES.some((c) => `claude_harness_${c.name}` === f.name) || f.name.endsWith('task_duration_seconds')))) as MetricFamily[];

describe('counter folding with kept row places', () => {
  for (const seed of [1, 17, 2026]) {
    it(`gives what folding from scratch gives, scrape after scrape (seed ${seed})`, async () => {
      const r = rng(seed);
      const table = new CounterTable();
      const memoized = storeOf(table, true);
      const fresh = storeOf(table, false);
      let caps: MetricCaps = { project: 4, label: 3, tool: 2, model: 1, loop: 3 };
      for (let scrape = 0; scrape < 8; scrape++) {
        traffic(table, r, 40);
        if (scrape === 4) caps = { project: 7, label: 6, tool: 3, model: 2, loop: 6 }; // new slots: the places are made again
        const now = Date.now();
        const got = await metricFamilies(memoized, now, caps);
        const again = await metricFamilies(fresh, now, caps);
        const rows = table.rows(false);
        const want = foldAfresh(rows, admittedOf(memoized.slots));
        expect(strip(got)).toEqual(strip(want));
        expect(strip(again)).toEqual(strip(want));
        expect(memoized.slots).toEqual(fresh.slots);
      }
    });
  }

  it('activity is activityOf, in its order, from the same row plans whatever the scrape', () => {
    const table = new CounterTable();
    const r = rng(5);
    const fold = new CounterFold(COUNTER_FAMILIES);
    for (let scrape = 0; scrape < 4; scrape++) {
      traffic(table, r, 30);
      const rows = table.rows(true);
      const got = fold.scrape(rows).activity();
      const want = activityOf(rows);
      expect([...got].map(([d, m]) => [d, [...m]])).toEqual([...want].map(([d, m]) => [d, [...m]]));
    }
  });

  it('label sets: one frozen object per text', () => {
    const sets = new LabelSets(2);
    const a = sets.of('{"source":"x","project":"p"}');
    expect(sets.of('{"source":"x","project":"p"}')).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(a).toEqual({ source: 'x', project: 'p' });
    sets.of('{"a":"1"}');
    sets.of('{"b":"2"}'); // past its bound it starts afresh: a new object, the same labels
    expect(sets.of('{"source":"x","project":"p"}')).toEqual(a);
  });

  it('serialize keeps the text of a frozen label set only: a label object changed after a scrape is written as it is now', () => {
    const family = (labels: Record<string, string>): MetricFamily[] => [{ name: 'x_total', help: 'h', type: 'counter', samples: [{ labels, value: 1 }] }];
    const frozen = Object.freeze({ b: '2', a: 'say "hi"' });
    expect(serialize(family(frozen))).toBe(serialize(family({ ...frozen })));
    expect(serialize(family(frozen))).toContain('x_total{a="say \\"hi\\"",b="2"} 1');
    const open: Record<string, string> = { a: '1' };
    serialize(family(open));
    open.a = '9';
    expect(serialize(family(open))).toContain('x_total{a="9"} 1');
  });
});
