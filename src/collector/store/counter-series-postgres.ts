/**
 * PostgreSQL's counter series (migration 10): each (metric, labels) once in
 * counter_series with an integer id, its shards' values in counter_values. A
 * series' id never changes once given, so each replica keeps the ids it has
 * seen in memory: ingest writes values by id, and a scrape sums them by id and
 * names each series from memory (the label set parsed once, label-sets.ts),
 * reading the texts only of series it has not met yet.
 *
 * A new series is added inside the ingest transaction that first counts it
 * (the counts are only known after the fold, inside it), in (metric, labels)
 * order, so two transactions adding the same new series wait for each other,
 * never in a cycle. Its id is remembered only once that transaction committed:
 * a rolled-back one leaves nothing in memory the database does not have.
 */
import type { PoolClient } from 'pg';
import { LabelSets, type LabelSet } from './label-sets';

type Query = <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<R[]>;

/** Past this many series the maps start over (a bounded /metrics stores ~5,000 at 10M events). */
const MAX_CACHED = 200_000;

const keyOf = (metric: string, labels: string) => `${metric}\u0000${labels}`;

export interface SeriesName {
  metric: string;
  labels: LabelSet;
}

/** Ids a transaction added; `commit` them once it has committed. */
export type StagedSeries = Map<string, number>;

export class PostgresCounterSeries {
  private readonly idOf = new Map<string, number>();
  private readonly nameOf = new Map<number, SeriesName>();
  private readonly labelSets = new LabelSets();

  /** The id of each (metric, labels), in the order given; series not stored yet are added in this transaction. */
  async ids(c: PoolClient, rows: ReadonlyArray<{ metric: string; labels: string }>, staged: StagedSeries): Promise<number[]> {
    const missing = new Map<string, { metric: string; labels: string }>();
    for (const r of rows) {
      const k = keyOf(r.metric, r.labels);
      if (!this.idOf.has(k) && !staged.has(k)) missing.set(k, r);
    }
    if (missing.size > 0) {
      const m = [...missing.values()];
      const metrics = m.map((r) => r.metric);
      const labels = m.map((r) => r.labels);
      await c.query(
        `INSERT INTO counter_series (metric, labels) SELECT * FROM unnest($1::text[], $2::text[]) AS t(m, l) ORDER BY m COLLATE "C", l COLLATE "C" ON CONFLICT DO NOTHING`,
        [metrics, labels],
      );
      // A statement of its own, so that a series another transaction added and committed meanwhile is seen.
      const got = await c.query<{ id: number; metric: string; labels: string }>(
        'SELECT s.id, s.metric, s.labels FROM counter_series s JOIN unnest($1::text[], $2::text[]) AS t(m, l) ON s.metric = t.m AND s.labels = t.l',
        [metrics, labels],
      );
      for (const r of got.rows) staged.set(keyOf(r.metric, r.labels), r.id);
    }
    return rows.map((r) => {
      const k = keyOf(r.metric, r.labels);
      const id = this.idOf.get(k) ?? staged.get(k);
      if (id === undefined) throw new Error(`counter series without an id: ${r.metric} ${r.labels}`);
      return id;
    });
  }

  /** After the transaction that staged them committed. */
  commit(staged: StagedSeries): void {
    if (this.idOf.size + staged.size > MAX_CACHED) this.idOf.clear();
    for (const [k, id] of staged) this.idOf.set(k, id);
  }

  /** The metric and parsed labels of each id (all stored: they come from counter_values), reading only those not met yet. */
  async names(query: Query, ids: Iterable<number>): Promise<Map<number, SeriesName>> {
    const all = [...ids];
    let unknown = all.filter((id) => !this.nameOf.has(id));
    if (unknown.length > 0) {
      if (this.nameOf.size + unknown.length > MAX_CACHED) {
        this.nameOf.clear();
        unknown = all;
      }
      for (const r of await query<{ id: number; metric: string; labels: string }>('SELECT id, metric, labels FROM counter_series WHERE id = ANY($1::int[])', [unknown])) {
        this.nameOf.set(r.id, { metric: r.metric, labels: this.labelSets.of(r.labels) });
      }
    }
    return this.nameOf;
  }
}
