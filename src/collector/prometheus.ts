/**
 * Prometheus text exposition (format 0.0.4), as a pure serializer: metric
 * families in, text out, deterministic order, so it is tested with fixtures.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface Sample {
  /** Suffix such as `_bucket`, `_sum`, `_count`; empty for plain samples. */
  suffix?: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(15)));
}

/**
 * The text of a frozen label set, kept: /metrics' counter samples carry the same frozen objects
 * scrape after scrape (counter-fold.ts). Only frozen ones, as nothing can change them afterwards.
 */
const frozenLabelText = new WeakMap<Readonly<Record<string, string>>, string>();

function labelText(labels: Readonly<Record<string, string>>): string {
  if (!Object.isFrozen(labels)) return labelTextOf(labels);
  let text = frozenLabelText.get(labels);
  if (text === undefined) frozenLabelText.set(labels, (text = labelTextOf(labels)));
  return text;
}

function labelTextOf(labels: Readonly<Record<string, string>>): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return '';
  // `le` last, the others sorted: stable output, conventional bucket lines.
  keys.sort((a, b) => (a === 'le' ? 1 : b === 'le' ? -1 : a < b ? -1 : a > b ? 1 : 0));
  return `{${keys.map((k) => `${k}="${escapeLabelValue(labels[k]!)}"`).join(',')}}`;
}

export function serialize(families: MetricFamily[]): string {
  const out: string[] = [];
  for (const f of [...families].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    const lines = f.samples.map((s) => ({ key: `${f.name}${s.suffix ?? ''}${labelText(s.labels)}`, s }));
    if (f.type !== 'histogram') lines.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const { key, s } of lines) out.push(`${key} ${formatValue(s.value)}`);
  }
  return `${out.join('\n')}\n`;
}

/** Default buckets for task durations in seconds: 1 s to 4 h. */
export const DURATION_BUCKETS_S = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400];

/**
 * Cumulative histogram samples from per-bucket counts (counts[i] for
 * le=buckets[i], last entry for +Inf) plus sum and count.
 */
export function histogramSamples(labels: Record<string, string>, buckets: number[], counts: number[], sum: number): Sample[] {
  const samples: Sample[] = [];
  let cumulative = 0;
  buckets.forEach((b, i) => {
    cumulative += counts[i] ?? 0;
    samples.push({ suffix: '_bucket', labels: { ...labels, le: formatValue(b) }, value: cumulative });
  });
  cumulative += counts[buckets.length] ?? 0;
  samples.push({ suffix: '_bucket', labels: { ...labels, le: '+Inf' }, value: cumulative });
  samples.push({ suffix: '_sum', labels, value: sum });
  samples.push({ suffix: '_count', labels, value: cumulative });
  return samples;
}

/** Index of the first bucket whose upper bound holds `v` (buckets.length = +Inf). */
export function bucketIndex(buckets: number[], v: number): number {
  for (let i = 0; i < buckets.length; i++) if (v <= buckets[i]!) return i;
  return buckets.length;
}
