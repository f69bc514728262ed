/**
 * The Prometheus families of GET /metrics, from the store's counters and recent
 * sessions. The store keeps each counter at full resolution (the labels fold.ts
 * bumps); what is exposed is bounded:
 *
 * - no family crosses two high-cardinality labels: a total by source and event,
 *   and beside it one by project and one by label (each the same total, summed
 *   differently), so a family's series sum to the true total;
 * - each high-cardinality label keeps at most its cap of values, the rest summed
 *   into `other` (metric-limits.ts), sticky through the store's slots table so
 *   every counter only grows across scrapes, restarts and replicas.
 *
 * The one pair kept together is a ralph loop's (project, label): the loop
 * alerts page per loop. Loops are limited as one dimension of their own.
 */
import { histogramSamples, DURATION_BUCKETS_S, type MetricFamily, type Sample } from './prometheus';
import { admittedOf, DEFAULT_METRIC_CAPS, LIMITED_DIMENSIONS, limited, loopKey, OTHER, slotsToClaim, type Admitted, type Dimension, type MetricCaps } from './metric-limits';
import { CounterFold } from './counter-fold';
import type { CounterTotal, Store } from './store';

const DAY_MS = 86_400_000;
type Labels = Record<string, string>;

/** An exposed counter family: which stored counter it sums, and the labels it keeps (null: the series is not in this family). */
interface CounterFamily {
  name: string;
  from: string;
  help: string;
  labels: (l: Labels, lim: Limiter) => Labels | null;
}

type Limiter = (dimension: Dimension, value: string | undefined) => string;

const ralph = (l: Labels, lim: Limiter): Labels | null => {
  if (l.source !== 'ralph') return null;
  const own = lim('loop', loopKey(l.project ?? '', l.label ?? '')) !== OTHER;
  return own ? { project: l.project ?? '', label: l.label ?? '' } : { project: OTHER, label: OTHER };
};

export const COUNTER_FAMILIES: CounterFamily[] = [
  { name: 'events_total', from: 'events_total', help: 'Events accepted by the collector (duplicates excluded), by source and event.', labels: (l) => ({ source: l.source!, event: l.event! }) },
  { name: 'events_by_project_total', from: 'events_total', help: 'Events accepted, by project (the busiest projects by name, the rest as other).', labels: (l, lim) => ({ project: lim('project', l.project) }) },
  { name: 'events_by_label_total', from: 'events_total', help: 'Events accepted, by label (the busiest labels by name, the rest as other).', labels: (l, lim) => ({ label: lim('label', l.label) }) },
  { name: 'sessions_completed_total', from: 'sessions_completed_total', help: 'Sessions and tasks completed, by source and outcome.', labels: (l) => ({ source: l.source!, outcome: l.outcome! }) },
  { name: 'sessions_completed_by_project_total', from: 'sessions_completed_total', help: 'Sessions and tasks completed, by project and outcome.', labels: (l, lim) => ({ project: lim('project', l.project), outcome: l.outcome! }) },
  { name: 'sessions_completed_by_label_total', from: 'sessions_completed_total', help: 'Sessions and tasks completed, by label and outcome.', labels: (l, lim) => ({ label: lim('label', l.label), outcome: l.outcome! }) },
  { name: 'ralph_tasks_completed_total', from: 'sessions_completed_total', help: 'Tasks of ralph loops completed, by loop (project and label) and outcome.', labels: (l, lim) => { const k = ralph(l, lim); return k && { ...k, outcome: l.outcome! }; } },
  { name: 'tool_calls_total', from: 'tool_calls_total', help: 'Tool calls (PostToolUse / PostToolUseFailure), by source, tool and outcome.', labels: (l, lim) => ({ source: l.source!, tool: lim('tool', l.tool), outcome: l.outcome! }) },
  { name: 'tool_calls_by_project_total', from: 'tool_calls_total', help: 'Tool calls, by project and outcome.', labels: (l, lim) => ({ project: lim('project', l.project), outcome: l.outcome! }) },
  { name: 'tokens_total', from: 'tokens_total', help: 'Tokens of API requests (transcript usage and OTel api_request, each request once), by source, model and kind.', labels: (l, lim) => ({ source: l.source!, model: lim('model', l.model), kind: l.kind! }) },
  { name: 'tokens_by_project_total', from: 'tokens_total', help: 'Tokens of API requests, by project and kind.', labels: (l, lim) => ({ project: lim('project', l.project), kind: l.kind! }) },
  { name: 'cost_usd_total', from: 'cost_usd_total', help: 'Cost in USD of API requests: Claude Code\'s own figure (OTel, transcript costUSD) where known, else the price table\'s estimate; unpriced models add nothing. By source and model.', labels: (l, lim) => ({ source: l.source!, model: lim('model', l.model) }) },
  { name: 'cost_usd_by_project_total', from: 'cost_usd_total', help: 'Cost in USD of API requests, by project.', labels: (l, lim) => ({ project: lim('project', l.project) }) },
  { name: 'run_reported_cost_usd_total', from: 'run_reported_cost_usd_total', help: 'Cost in USD reported by Claude Code results of claude-metrics run tasks, by source.', labels: (l) => ({ source: l.source! }) },
  { name: 'run_reported_cost_usd_by_project_total', from: 'run_reported_cost_usd_total', help: 'Cost in USD reported by Claude Code results of run tasks, by project.', labels: (l, lim) => ({ project: lim('project', l.project) }) },
  // OTel metrics: source is low-cardinality, so source × limited project stays bounded.
  { name: 'lines_of_code_total', from: 'lines_of_code_total', help: 'Lines of code added and removed, from Claude Code\'s OTel metrics.', labels: (l, lim) => ({ source: l.source!, project: lim('project', l.project), type: l.type! }) },
  { name: 'commits_total', from: 'commits_total', help: 'Git commits made by Claude Code, from its OTel metrics.', labels: (l, lim) => ({ source: l.source!, project: lim('project', l.project) }) },
  { name: 'pull_requests_total', from: 'pull_requests_total', help: 'Pull requests created by Claude Code, from its OTel metrics.', labels: (l, lim) => ({ source: l.source!, project: lim('project', l.project) }) },
  { name: 'active_time_seconds_total', from: 'active_time_seconds_total', help: 'Active time in seconds (type user or cli), from Claude Code\'s OTel metrics.', labels: (l, lim) => ({ source: l.source!, project: lim('project', l.project), type: l.type! }) },
  { name: 'otlp_ignored_total', from: 'otlp_ignored_total', help: 'OTLP log records and data points read and deliberately not kept (names not mapped), by signal.', labels: (l) => l },
  { name: 'duplicates_total', from: 'duplicates_total', help: 'Events received again and ignored (same event_id).', labels: (l) => l },
  { name: 'retention_deleted_total', from: 'retention_deleted_total', help: 'Rows retention deleted (older than --retention-days), by table.', labels: (l) => l },
  { name: 'rejects_total', from: 'rejects_total', help: 'Events or requests rejected, by reason.', labels: (l) => l },
];

/** How busy each value of a dimension is (what decides who gets a slot first): events, tool calls, tokens. */
export function activityOf(counters: CounterTotal[]): Map<Dimension, Map<string, number>> {
  const m = new Map<Dimension, Map<string, number>>(LIMITED_DIMENSIONS.map((d) => [d, new Map()]));
  const add = (d: Dimension, v: string | undefined, by: number) => {
    const a = m.get(d)!;
    a.set(v ?? '', (a.get(v ?? '') ?? 0) + by);
  };
  for (const c of counters) {
    if (c.metric === 'events_total') {
      add('project', c.labels.project, c.value);
      add('label', c.labels.label, c.value);
      if (c.labels.source === 'ralph') add('loop', loopKey(c.labels.project ?? '', c.labels.label ?? ''), c.value);
    } else if (c.metric === 'tool_calls_total') add('tool', c.labels.tool, c.value);
    else if (c.metric === 'tokens_total') add('model', c.labels.model, c.value);
    else if (c.metric === 'cost_usd_total') add('model', c.labels.model, 0);
    // A counter fed outside events_total (OTel metrics, run costs) still needs its project placed.
    else if (c.labels.project !== undefined) add('project', c.labels.project, 0);
  }
  return m;
}

/** Reads the slots, claims free ones for the busiest waiting values (`activity`: activityOf the counters), and returns who is admitted. */
export async function admitted(store: Store, activity: Map<Dimension, Map<string, number>>, caps: MetricCaps): Promise<Admitted> {
  let held = await store.metricSlots();
  const claims = LIMITED_DIMENSIONS.flatMap((d) => slotsToClaim(d, held, activity.get(d)!, caps[d]));
  if (claims.length > 0) {
    try {
      await store.claimMetricSlots(claims);
      held = await store.metricSlots(); // another replica may have won a slot: the table decides
    } catch {
      // A store that takes no writes now (a full disk, a read-only database) still serves its
      // counters: the waiting values stay in `other` (still monotonic) and claim at a later scrape.
    }
  }
  return admittedOf(held);
}

/**
 * Each store's row places in the families (counter-fold.ts), kept from scrape to scrape: only
 * where a row goes, never a value, so a scrape still reads and sums every counter afresh.
 */
const folds = new WeakMap<Store, CounterFold>();
const foldOf = (store: Store): CounterFold => folds.get(store) ?? folds.set(store, new CounterFold(COUNTER_FAMILIES)).get(store)!;

/** "30 minutes", "1 minute", "5 seconds", "1500 ms": the active window as a help text says it. */
function formatWindow(ms: number): string {
  const unit = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;
  if (ms % 60_000 === 0) return unit(ms / 60_000, 'minute');
  if (ms % 1000 === 0) return unit(ms / 1000, 'second');
  return `${ms} ms`;
}

export async function metricFamilies(store: Store, now = Date.now(), caps: MetricCaps = DEFAULT_METRIC_CAPS): Promise<MetricFamily[]> {
  const counters = await store.counters();
  const scrape = foldOf(store).scrape(counters);
  const adm = await admitted(store, scrape.activity(), caps);
  const lim: Limiter = (d, v) => limited(adm, d, v ?? '');

  const families: MetricFamily[] = [];
  const counterSamples = scrape.samples(adm, (i, l) => COUNTER_FAMILIES[i]!.labels(l, lim));
  COUNTER_FAMILIES.forEach((f, i) => {
    const samples = counterSamples[i]!;
    if (f.name === 'duplicates_total' && samples.length === 0) samples.push({ labels: {}, value: 0 });
    families.push({ name: `claude_harness_${f.name}`, help: f.help, type: 'counter', samples });
  });

  // The duration histogram by source and outcome only (its buckets multiply every label).
  const hist = scrape.histogram().flatMap((g) => histogramSamples(g.labels, DURATION_BUCKETS_S, g.counts, g.sum));
  families.push({ name: 'claude_harness_task_duration_seconds', help: 'Duration of completed sessions and tasks in seconds, by source and outcome.', type: 'histogram', samples: hist });

  // Gauges, computed now, over the sessions seen in the last 7 days: the latest last-seen time of each
  // (source, project, label) among them (kept at ingest, store.lastSeen) gives every series and the
  // latest event; the active ones (an event within the active window, so a few) add their count.
  const weekAgo = now - 7 * DAY_MS;
  const [latest, recent] = await Promise.all([store.lastSeen(weekAgo), store.allSessions({ sinceMs: Math.max(weekAgo, now - store.activeWindowMs) }, now)]);
  const gauges = { bySource: new Map<string, Sample>(), byProject: new Map<string, Sample>(), loop: new Map<string, Sample>() };
  const lastOf = { bySource: new Map<string, Sample>(), byProject: new Map<string, Sample>(), loop: new Map<string, Sample>() };
  const put = (m: Map<string, Sample>, labels: Labels, v: number, max: boolean) => {
    const k = JSON.stringify(labels);
    const s = m.get(k) ?? m.set(k, { labels, value: 0 }).get(k)!;
    s.value = max ? Math.max(s.value, v) : s.value + v;
  };
  const seriesOf = (r: { source: string | null; project: string | null; label: string | null }): Array<[keyof typeof gauges, Labels | null]> => {
    const source = r.source ?? 'unknown';
    const project = (r.project ?? '').slice(0, 128);
    const label = (r.label ?? '').slice(0, 128);
    return [
      ['bySource', { source }],
      ['byProject', { project: lim('project', project) }],
      ['loop', ralph({ source, project, label }, lim)],
    ];
  };
  for (const l of latest) {
    for (const [g, labels] of seriesOf(l)) {
      if (!labels) continue;
      put(gauges[g], labels, 0, false);
      put(lastOf[g], labels, l.last_seen_ms / 1000, true);
    }
  }
  for (const r of recent) {
    if (!r.active) continue;
    for (const [g, labels] of seriesOf(r)) if (labels) put(gauges[g], labels, 1, false);
  }
  const window = formatWindow(store.activeWindowMs);
  const gauge = (name: string, help: string, m: Map<string, Sample>): MetricFamily => ({ name: `claude_harness_${name}`, help, type: 'gauge', samples: [...m.values()] });
  families.push(
    gauge('active_sessions', `Sessions started and not completed, with an event in the last ${window}, by source.`, gauges.bySource),
    gauge('active_sessions_by_project', `Active sessions (an event in the last ${window}, not completed), by project.`, gauges.byProject),
    gauge('ralph_active_tasks', `Tasks of ralph loops in flight (an event in the last ${window}, not completed), by loop (project and label).`, gauges.loop),
    gauge('last_event_timestamp_seconds', 'Unix time of the latest event, by source.', lastOf.bySource),
    gauge('last_event_by_project_timestamp_seconds', 'Unix time of the latest event, by project.', lastOf.byProject),
    gauge('ralph_last_event_timestamp_seconds', 'Unix time of the latest event of a ralph loop, by loop (project and label).', lastOf.loop),
  );
  return families;
}
