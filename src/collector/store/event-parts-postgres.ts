/**
 * The interned parts of PostgreSQL's compact event rows (migration 8): each
 * distinct session key, layout and hook context text once in
 * harness_event_parts, an event row holding their integer ids. Shared by the replicas; an id, once given to a
 * text, never changes, so each replica keeps what it has seen in memory.
 *
 * A text gets its id in a statement of its own, committed before the events
 * that use it: a transaction that rolls back leaves a part nobody uses (a few
 * bytes), never an id in memory that the database forgot.
 */
export const VERBATIM_LAYOUT_ID = 1;

/** The digest harness_event_parts is unique on (its index's expression). */
export const DIGEST = (text: string) => `claude_metrics_digest(${text})`;
/** The id of the part whose text is the SQL expression `text`, or NULL: a lookup that stores nothing (reads). */
export const PART_ID = (text: string) => `(SELECT k.id FROM harness_event_parts k WHERE ${DIGEST('k.text')} = ${DIGEST(text)} AND k.text = ${text})`;

type Query = <R extends Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<R[]>;

/** Past this many texts each map starts over (distinct contexts grow with sessions, not events). */
const MAX_CACHED = 50_000;

export class PostgresEventParts {
  private readonly idOf = new Map<string, number>();
  private readonly textOf = new Map<number, string>([[VERBATIM_LAYOUT_ID, '"verbatim"']]);

  constructor(private readonly query: Query) {}

  /**
   * The id of each text, interning those not stored yet. A text missing from the answer could not
   * be interned (another text with the same digest): the caller stores that event whole.
   */
  async ids(texts: Iterable<string>): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const missing: string[] = [];
    for (const t of texts) {
      const id = this.idOf.get(t);
      if (id !== undefined) out.set(t, id);
      else if (!out.has(t)) missing.push(t);
    }
    if (missing.length === 0) return out;
    const wanted = new Set(missing);
    const unique = [...wanted].sort();
    // Two statements: when another replica inserts the same text meanwhile, this INSERT waits for
    // it and skips the row, and the SELECT (a new snapshot) then sees it.
    await this.query('INSERT INTO harness_event_parts (text) SELECT t FROM unnest($1::text[]) AS t ON CONFLICT DO NOTHING', [unique]);
    const rows = await this.query<{ id: number; text: string }>(`SELECT id, text FROM harness_event_parts WHERE ${DIGEST('text')} = ANY(SELECT ${DIGEST('t')} FROM unnest($1::text[]) AS t)`, [unique]);
    for (const r of rows) {
      if (!wanted.has(r.text)) continue; // a digest shared by another text
      this.remember(r.text, Number(r.id));
      out.set(r.text, Number(r.id));
    }
    return out;
  }

  /** The texts of these ids (read from the database once each). */
  async texts(ids: Iterable<number | null>): Promise<Map<number, string>> {
    const out = new Map<number, string>();
    const missing = new Set<number>();
    for (const v of ids) {
      if (v === null) continue;
      const id = Number(v);
      const t = this.textOf.get(id);
      if (t !== undefined) out.set(id, t);
      else missing.add(id);
    }
    if (missing.size > 0) {
      for (const r of await this.query<{ id: number; text: string }>('SELECT id, text FROM harness_event_parts WHERE id = ANY($1::int[])', [[...missing]])) {
        this.remember(r.text, Number(r.id));
        out.set(Number(r.id), r.text);
      }
    }
    return out;
  }

  private remember(text: string, id: number): void {
    if (this.idOf.size >= MAX_CACHED) this.idOf.clear();
    if (this.textOf.size >= MAX_CACHED) {
      this.textOf.clear();
      this.textOf.set(VERBATIM_LAYOUT_ID, '"verbatim"');
    }
    this.idOf.set(text, id);
    this.textOf.set(id, text);
  }
}
