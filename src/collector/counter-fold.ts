/**
 * Folding the stored counter rows into /metrics' families, cheap when it repeats.
 *
 * Where a row goes — which value of a limited dimension it makes busier, which
 * family samples it adds to, which histogram group and bucket it counts in —
 * depends only on its metric and labels, and for the family samples on who is
 * admitted (metric-limits.ts). A scrape used to work that out again for every
 * row and family (label objects built, JSON.stringify as the key), most of a
 * scrape at ~5,000 rows. Here it is worked out once per row and kept as numbered
 * places; a scrape looks each row's plan up once and adds the row's value into
 * its places. The values are read from the store at every scrape (only where a
 * row goes is kept), so the output is exactly what folding afresh gives.
 *
 * A row is known by its labels object within its metric (the stores hand out one
 * frozen object per label text, store/label-sets.ts; a store handing out fresh
 * objects only misses the memo, and must not change an object it handed out).
 * The sample places are dropped whenever the admitted set differs from the one
 * they were made with (a slot was claimed, here or by another replica).
 *
 * Order is the one folding afresh gives: a family's samples in the order their
 * first row comes in, the histogram's groups in the order their first bucket row
 * (then sum row) comes in, values summed in row order (the same floats).
 */
import { loopKey, LIMITED_DIMENSIONS, type Admitted, type Dimension } from './metric-limits';
import type { Sample } from './prometheus';
import type { CounterTotal } from './store';

type Labels = Readonly<Record<string, string>>;

/** The labels a row keeps in family number `family` (null: not in it), given who is admitted. */
export type FamilyLabels = (family: number, l: Labels) => Labels | null;

/** A histogram group (source, outcome) with one scrape's counts per bucket index and sum. */
export interface HistogramGroup {
  labels: Labels;
  counts: number[];
  sum: number;
}

const HISTOGRAM_BUCKETS = 'task_duration_seconds_bucket';
const HISTOGRAM_SUM = 'task_duration_seconds_sum';

/** Numbered places for keys, each with what it stands for. */
class Places<T> {
  private readonly index = new Map<string, number>();
  readonly items: T[] = [];

  of(key: string, item: () => T): number {
    let i = this.index.get(key);
    if (i === undefined) {
      i = this.items.length;
      this.items.push(item());
      this.index.set(key, i);
    }
    return i;
  }
}

/** One scrape's sums into numbered places: a place's first value is taken as it is (not added to 0), and the order places are first reached in is kept. */
class Sums {
  readonly values: number[] = [];
  readonly reached: number[] = [];
  private readonly seen: boolean[] = [];

  add(i: number, v: number): void {
    if (this.seen[i]) this.values[i]! += v;
    else {
      this.seen[i] = true;
      this.values[i] = v;
      this.reached.push(i);
    }
  }
}

/** Where one row goes. */
interface RowPlan {
  /** Activity places it adds its value to, then those it only places (adds 0 to). */
  busier: number[];
  placed: number[];
  /** Family sample places, made for the admitted set of generation `samplesOf`. */
  samples: number[];
  samplesOf: number;
  /** Histogram group place (-1: not a histogram row) and bucket index. */
  group: number;
  bucket: number;
}

/** The signature of an admitted set (the same slots in any order give the same one). */
function admittedSignature(adm: Admitted): string {
  return LIMITED_DIMENSIONS.map((d) => JSON.stringify([...(adm.get(d) ?? [])].sort())).join('\n');
}

export class CounterFold {
  private readonly familiesOf = new Map<string, number[]>();
  private readonly plans = new Map<string, WeakMap<Labels, RowPlan>>();
  private readonly activityPlaces = new Places<{ dimension: Dimension; value: string }>();
  private readonly groupPlaces = new Places<Labels>();
  private admittedAs: string | null = null;
  private generation = 0;
  private samplePlaces = new Places<{ family: number; labels: Labels }>();

  /** `families`: the stored counter each exposed family sums, in the order `samples` answers them. */
  constructor(private readonly families: ReadonlyArray<{ from: string }>) {
    families.forEach((f, i) => (this.familiesOf.get(f.from) ?? this.familiesOf.set(f.from, []).get(f.from)!).push(i));
  }

  /** One scrape of `counters` (read from the store for it). */
  scrape(counters: readonly CounterTotal[]): CounterScrape {
    const plans: RowPlan[] = new Array(counters.length);
    for (let i = 0; i < counters.length; i++) plans[i] = this.planOf(counters[i]!);
    return new CounterScrape(this, counters, plans);
  }

  private planOf(c: CounterTotal): RowPlan {
    let byLabels = this.plans.get(c.metric);
    if (byLabels === undefined) this.plans.set(c.metric, (byLabels = new WeakMap()));
    let plan = byLabels.get(c.labels);
    if (plan === undefined) byLabels.set(c.labels, (plan = this.newPlan(c)));
    return plan;
  }

  private newPlan(c: CounterTotal): RowPlan {
    const plan: RowPlan = { busier: [], placed: [], samples: [], samplesOf: -1, group: -1, bucket: 0 };
    const add = (dimension: Dimension, v: string | undefined, counts: boolean) => {
      const value = v ?? '';
      (counts ? plan.busier : plan.placed).push(this.activityPlaces.of(`${dimension}\u0000${value}`, () => ({ dimension, value })));
    };
    const l = c.labels;
    // What decides who gets a slot first (metric-families.ts activityOf): events, tool calls, tokens.
    if (c.metric === 'events_total') {
      add('project', l.project, true);
      add('label', l.label, true);
      if (l.source === 'ralph') add('loop', loopKey(l.project ?? '', l.label ?? ''), true);
    } else if (c.metric === 'tool_calls_total') add('tool', l.tool, true);
    else if (c.metric === 'tokens_total') add('model', l.model, true);
    else if (c.metric === 'cost_usd_total') add('model', l.model, false);
    // A counter fed outside events_total (OTel metrics, run costs) still needs its project placed.
    else if (l.project !== undefined) add('project', l.project, false);
    if (c.metric === HISTOGRAM_BUCKETS || c.metric === HISTOGRAM_SUM) {
      const labels = Object.freeze({ source: l.source!, outcome: l.outcome! });
      plan.group = this.groupPlaces.of(JSON.stringify(labels), () => labels);
      plan.bucket = Number(l.b);
    }
    return plan;
  }

  /** Activity places as (dimension, value). */
  activityPlace(i: number): { dimension: Dimension; value: string } {
    return this.activityPlaces.items[i]!;
  }

  groupLabels(i: number): Labels {
    return this.groupPlaces.items[i]!;
  }

  /** The generation of the sample places for `adm`: new places (and plans made again) once it differs from the last one. */
  samplesFor(adm: Admitted): number {
    const signature = admittedSignature(adm);
    if (signature !== this.admittedAs) {
      this.admittedAs = signature;
      this.generation++;
      this.samplePlaces = new Places();
    }
    return this.generation;
  }

  /** A row's family sample places for the current generation, made now if its plan has older ones. */
  samplesOf(c: CounterTotal, plan: RowPlan, generation: number, labelsOf: FamilyLabels): number[] {
    if (plan.samplesOf === generation) return plan.samples;
    const places = this.samplePlaces;
    const samples: number[] = [];
    for (const family of this.familiesOf.get(c.metric) ?? []) {
      const labels = labelsOf(family, c.labels);
      if (labels) samples.push(places.of(`${family}\u0000${JSON.stringify(labels)}`, () => ({ family, labels: Object.freeze(labels) })));
    }
    plan.samples = samples;
    plan.samplesOf = generation;
    return samples;
  }

  samplePlace(i: number): { family: number; labels: Labels } {
    return this.samplePlaces.items[i]!;
  }

  get familyCount(): number {
    return this.families.length;
  }
}

/** The rows of one scrape with their plans: activity first (it decides the claims), then the samples for who is admitted. */
export class CounterScrape {
  constructor(
    private readonly fold: CounterFold,
    private readonly counters: readonly CounterTotal[],
    private readonly plans: readonly RowPlan[],
  ) {}

  /** How busy each value of a dimension is: the maps metric-families.ts activityOf gives, in the same order. */
  activity(): Map<Dimension, Map<string, number>> {
    const sums = new Sums();
    for (let r = 0; r < this.counters.length; r++) {
      const plan = this.plans[r]!;
      const v = this.counters[r]!.value;
      for (const i of plan.busier) sums.add(i, v);
      for (const i of plan.placed) sums.add(i, 0);
    }
    const m = new Map<Dimension, Map<string, number>>(LIMITED_DIMENSIONS.map((d) => [d, new Map()]));
    for (const i of sums.reached) {
      const { dimension, value } = this.fold.activityPlace(i);
      m.get(dimension)!.set(value, sums.values[i]!);
    }
    return m;
  }

  /** Each family's samples (in the fold's `families` order); `labels` must depend on nothing but `adm` (the limiter bound to it). */
  samples(adm: Admitted, labels: FamilyLabels): Sample[][] {
    const generation = this.fold.samplesFor(adm);
    const sums = new Sums();
    for (let r = 0; r < this.counters.length; r++) {
      const c = this.counters[r]!;
      for (const i of this.fold.samplesOf(c, this.plans[r]!, generation, labels)) sums.add(i, c.value);
    }
    const out: Sample[][] = Array.from({ length: this.fold.familyCount }, () => []);
    for (const i of sums.reached) {
      const { family, labels: l } = this.fold.samplePlace(i);
      out[family]!.push({ labels: l, value: sums.values[i]! });
    }
    return out;
  }

  /** The duration histogram's groups: bucket counts from the bucket rows, then sums from the sum rows. */
  histogram(): HistogramGroup[] {
    const groups: HistogramGroup[] = [];
    const byPlace: Array<HistogramGroup | undefined> = [];
    const group = (i: number) => {
      let g = byPlace[i];
      if (g === undefined) groups.push((g = byPlace[i] = { labels: this.fold.groupLabels(i), counts: [], sum: 0 }));
      return g;
    };
    for (let r = 0; r < this.counters.length; r++) {
      const c = this.counters[r]!;
      if (c.metric !== HISTOGRAM_BUCKETS) continue;
      const { group: i, bucket } = this.plans[r]!;
      const g = group(i);
      g.counts[bucket] = (g.counts[bucket] ?? 0) + c.value;
    }
    for (let r = 0; r < this.counters.length; r++) if (this.counters[r]!.metric === HISTOGRAM_SUM) group(this.plans[r]!.group).sum += this.counters[r]!.value;
    return groups;
  }
}
