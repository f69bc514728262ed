/**
 * The cardinality limiter of /metrics, pure: which values of a high-cardinality
 * label (project, label, tool, model, loop) keep a series of their own and which
 * are summed into `other` — as Netflix Spectator's and OpenTelemetry's limiters do.
 *
 * A value keeps its own series once it holds one of the label's `cap` slots.
 * Slots are persisted by the store (table metric_label_slots, keyed by
 * (dimension, slot) and unique by (dimension, value)), so the assignment is
 * sticky across scrapes, restarts and replicas: a value is never evicted, and
 * `other` is the sum of values that never got a slot, hence every exposed
 * counter only grows. Two replicas claiming the same free slot at once: the
 * store keeps the first (INSERT … ON CONFLICT DO NOTHING) and the loser's value
 * tries the next free slot at a later scrape; the slots bound the count whatever
 * the race.
 */

export const OTHER = 'other';

/** Dimensions the limiter bounds, and their default caps (`serve --metrics-max-projects` etc.). */
export const LIMITED_DIMENSIONS = ['project', 'label', 'tool', 'model', 'loop'] as const;
export type Dimension = (typeof LIMITED_DIMENSIONS)[number];
export type MetricCaps = Record<Dimension, number>;
export const DEFAULT_METRIC_CAPS: MetricCaps = { project: 25, label: 50, tool: 30, model: 20, loop: 50 };

export interface MetricSlot {
  dimension: string;
  slot: number;
  value: string;
}

/**
 * The slots to claim now: admitted values keep theirs; the free slots below the
 * cap go to the busiest values without one (ties: the smaller value, so two
 * replicas reading the same totals claim the same slots). Raising the cap opens
 * slots [old cap, new cap); lowering it evicts nobody, it only stops admission
 * while more values than the cap hold slots.
 */
export function slotsToClaim(dimension: string, held: MetricSlot[], activity: Map<string, number>, cap: number): MetricSlot[] {
  const mine = held.filter((s) => s.dimension === dimension);
  const admitted = new Set(mine.map((s) => s.value));
  const taken = new Set(mine.map((s) => s.slot));
  const free: number[] = [];
  for (let i = 0; i < cap; i++) if (!taken.has(i)) free.push(i);
  if (free.length === 0) return [];
  const waiting = [...activity.entries()]
    .filter(([v]) => !admitted.has(v) && v !== OTHER)
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0));
  return waiting.slice(0, free.length).map(([value], i) => ({ dimension, slot: free[i]!, value }));
}

/** The values of each dimension that keep their own series. */
export type Admitted = Map<string, Set<string>>;

export function admittedOf(slots: MetricSlot[]): Admitted {
  const m: Admitted = new Map();
  for (const s of slots) (m.get(s.dimension) ?? m.set(s.dimension, new Set()).get(s.dimension)!).add(s.value);
  return m;
}

/** A value as exposed: itself when admitted, else `other`. */
export const limited = (admitted: Admitted, dimension: Dimension, value: string): string => (admitted.get(dimension)?.has(value) ? value : OTHER);

/** The key of a loop (a ralph project and label pair, limited as one value); JSON, as PostgreSQL's text holds no NUL. */
export const loopKey = (project: string, label: string): string => JSON.stringify([project, label]);
