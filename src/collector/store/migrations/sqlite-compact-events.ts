/**
 * SQLite migration 4 (issue 17, "smaller rows"): events move from the wide
 * harness_events table (every column text, the body whole) to
 * harness_event_rows (STRICT, integers for every repeated string through
 * harness_names, a 16-byte id, the body as layout + residue: ../event-codec.ts),
 * and harness_events becomes a view with the old columns (minus `body`, which
 * the readers rebuild in JS), so ad-hoc SQL and the reads keep their shape.
 * Every old row is rewritten with its rowid kept (the stream's positions stay
 * valid); a body the codec cannot give back byte for byte is kept verbatim.
 */
import type Database from 'better-sqlite3';
import { decodeBody, encodeEvent, encodeId, factKeyHash, KNOWN_KINDS, splitState, type EncodedEvent, type EventColumns } from '../event-codec';

const uuidText = (x: string) => `lower(substr(hex(${x}), 1, 8) || '-' || substr(hex(${x}), 9, 4) || '-' || substr(hex(${x}), 13, 4) || '-' || substr(hex(${x}), 17, 4) || '-' || substr(hex(${x}), 21))`;
const nameOf = (col: string) => `(SELECT n.name FROM harness_names n WHERE n.id = ${col})`;

/**
 * One row per tool call, API request or metric series (facts.ts); sid, kind, skey, model, shape:
 * harness_names ids; khash: the key's factKeyHash (migration 10; the key text before). The state as
 * its key list (shape) and a JSON array of its values (event-codec.ts splitState).
 */
const FACT_ROWS_TABLE = (name = 'harness_fact_rows') => `
  CREATE TABLE ${name} (
    sid INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    khash INTEGER NOT NULL,
    skey INTEGER NOT NULL,
    model INTEGER,
    ts_ms INTEGER NOT NULL,
    unpriced INTEGER NOT NULL DEFAULT 0,
    shape INTEGER NOT NULL,
    vals TEXT NOT NULL,
    PRIMARY KEY (sid, kind, khash)
  ) WITHOUT ROWID, STRICT;
`;

export const COMPACT_TABLES = `
  -- Found by a hash of the name (nameHash), not by an index of the text: context tuples are long, an index would hold each twice.
  CREATE TABLE harness_names (id INTEGER PRIMARY KEY, h INTEGER NOT NULL, name TEXT NOT NULL) STRICT;
  CREATE INDEX harness_names_h ON harness_names(h);
  INSERT INTO harness_names (id, h, name) VALUES ${KNOWN_KINDS.map((k, i) => `(${i + 1}, ${nameHash(k)}, '${k}')`).join(', ')};
  -- seq: the ingest order (the old rowid). recv: received_ms - ts_ms. skey, kind, ctx, layout, tool, model: harness_names ids
  -- (ctx: the [source, session_id, run_id, task_id, label, project, context] tuple as JSON text).
  CREATE TABLE harness_event_rows (
    seq INTEGER PRIMARY KEY,
    eid ANY NOT NULL UNIQUE,
    kind INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    recv INTEGER NOT NULL,
    skey INTEGER NOT NULL,
    ctx INTEGER NOT NULL,
    layout INTEGER NOT NULL,
    tool INTEGER, tool_use_id TEXT, success INTEGER, duration_ms REAL, exit_code INTEGER, error TEXT, model INTEGER,
    input_tokens INTEGER, output_tokens INTEGER, cache_creation_input_tokens INTEGER, cache_read_input_tokens INTEGER,
    cost_usd REAL, num_turns INTEGER,
    residue TEXT
  ) STRICT;
${FACT_ROWS_TABLE()}
`;

/** The reads' indexes (session-reads-sqlite.ts) and retention's; built after the rows are in. */
export const COMPACT_INDEXES = `
  CREATE INDEX harness_events_ts ON harness_event_rows(ts_ms);
  -- Migration 8 narrows this one to (skey, ts_ms) (migrations/sqlite.ts).
  CREATE INDEX harness_events_session ON harness_event_rows(skey, ts_ms, eid);
  CREATE INDEX harness_events_session_tool ON harness_event_rows(skey, tool_use_id) WHERE tool_use_id IS NOT NULL;
  CREATE INDEX harness_events_waiting ON harness_event_rows(ts_ms) WHERE kind IN (1, 2);
  CREATE INDEX harness_facts_ts ON harness_fact_rows(ts_ms);
  CREATE INDEX harness_facts_unpriced ON harness_fact_rows(model) WHERE unpriced = 1;
`;

/** The old columns but the key (its hash, khash) and state (rebuilt in JS from shape and vals: event-codec.ts joinState). */
const FACTS_VIEW = `
  CREATE VIEW harness_facts AS SELECT
    i.name AS session_id, k.name AS kind, f.khash, s.name AS session_key, ${nameOf('f.model')} AS model, f.ts_ms, f.unpriced, ${nameOf('f.shape')} AS shape, f.vals
  FROM harness_fact_rows f JOIN harness_names i ON i.id = f.sid JOIN harness_names k ON k.id = f.kind JOIN harness_names s ON s.id = f.skey;
`;

export const EVENTS_VIEW = `
  CREATE VIEW harness_events AS SELECT
    r.seq, r.eid, r.kind, r.skey,
    CASE WHEN typeof(r.eid) = 'blob' THEN ${uuidText('r.eid')} ELSE r.eid END AS event_id,
    k.name AS event,
    json_extract(c.name, '$[0]') AS source,
    strftime('%Y-%m-%dT%H:%M:%S', r.ts_ms / 1000, 'unixepoch') || printf('.%03dZ', r.ts_ms % 1000) AS ts,
    r.ts_ms, r.ts_ms + r.recv AS received_ms,
    s.name AS session_key,
    json_extract(c.name, '$[1]') AS session_id, json_extract(c.name, '$[2]') AS run_id, json_extract(c.name, '$[3]') AS task_id,
    json_extract(c.name, '$[4]') AS label, json_extract(c.name, '$[5]') AS project,
    ${nameOf('r.tool')} AS tool_name, r.tool_use_id, r.success, r.duration_ms, r.exit_code, r.error, ${nameOf('r.model')} AS model,
    r.input_tokens, r.output_tokens, r.cache_creation_input_tokens, r.cache_read_input_tokens, r.cost_usd, r.num_turns,
    c.name AS tuple, ${nameOf('r.layout')} AS layout, r.residue
  FROM harness_event_rows r JOIN harness_names k ON k.id = r.kind JOIN harness_names s ON s.id = r.skey JOIN harness_names c ON c.id = r.ctx;
  ${FACTS_VIEW}
`;

export const INSERT_FACT = `INSERT INTO harness_fact_rows (sid, kind, khash, skey, model, ts_ms, unpriced, shape, vals) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT(sid, kind, khash) DO UPDATE SET model = excluded.model, ts_ms = excluded.ts_ms, unpriced = excluded.unpriced, shape = excluded.shape, vals = excluded.vals`;
export const GET_FACT = `SELECT s.name AS session_key, ${nameOf('f.model')} AS model, f.ts_ms, f.unpriced, ${nameOf('f.shape')} AS shape, f.vals
  FROM harness_fact_rows f JOIN harness_names s ON s.id = f.skey WHERE f.sid = ? AND f.kind = ? AND f.khash = ?`;

/** A harness_fact_rows row (INSERT_FACT's order) of a fact as fold.ts writes it, its state already an object. */
export function factValues(names: Names, f: { session_id: string; kind: string; key: string; session_key: string; model: string | null; ts_ms: number; unpriced: number; state: unknown }): unknown[] {
  const st = splitState(f.state);
  return [names.id(f.session_id), names.id(f.kind), factKeyHash(f.key), names.id(f.session_key), f.model === null ? null : names.id(f.model), f.ts_ms, f.unpriced, names.id(st.shape), st.vals];
}

/** A name's lookup key: two 32-bit hashes (FNV-1a and a multiplicative one) over its UTF-16 units, as 53 bits (a collision only costs a second comparison). */
export function nameHash(name: string): number {
  let a = 0x811c9dc5;
  let b = name.length;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    a = Math.imul(a ^ c, 16777619);
    b = (Math.imul(b, 31) + c) | 0;
  }
  return (a >>> 0) * 2 ** 21 + ((b >>> 0) >>> 11);
}

/**
 * Interned strings of one connection. Ids are cached; one added inside a
 * transaction that then rolls back is forgotten (`rollback`), so the cache never
 * names a row that is not there.
 */
export class Names {
  private readonly ids = new Map<string, number>();
  private pending: string[] = [];
  private readonly get: Database.Statement;
  private readonly add: Database.Statement;

  constructor(db: Database.Database) {
    this.get = db.prepare('SELECT id FROM harness_names WHERE h = ? AND name = ?').pluck();
    this.add = db.prepare('INSERT INTO harness_names (h, name) VALUES (?, ?) RETURNING id').pluck();
  }

  id(name: string): number {
    let id = this.ids.get(name);
    if (id !== undefined) return id;
    const h = nameHash(name);
    id = this.get.get(h, name) as number | undefined;
    if (id === undefined) {
      id = this.add.get(h, name) as number;
      this.pending.push(name);
    }
    this.ids.set(name, id);
    return id;
  }

  /** The id of a name if it is stored (a read never adds one). */
  find(name: string): number | undefined {
    const known = this.ids.get(name);
    if (known !== undefined) return known;
    const id = this.get.get(nameHash(name), name) as number | undefined;
    if (id !== undefined) this.ids.set(name, id);
    return id;
  }

  commit(): void {
    this.pending = [];
  }

  rollback(): void {
    for (const n of this.pending) this.ids.delete(n);
    this.pending = [];
  }
}

export const ROW_COLUMNS = ['seq', 'eid', 'kind', 'ts_ms', 'recv', 'skey', 'ctx', 'layout', 'tool', 'tool_use_id', 'success', 'duration_ms', 'exit_code', 'error', 'model', 'input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens', 'cost_usd', 'num_turns', 'residue'] as const;
export const INSERT_ROW = `INSERT INTO harness_event_rows (${ROW_COLUMNS.join(', ')}) VALUES (${ROW_COLUMNS.map(() => '?').join(', ')}) ON CONFLICT(eid) DO NOTHING`;

/** A harness_event_rows row in ROW_COLUMNS order. `seq` null: the next one. */
export function rowValues(names: Names, c: EventColumns, body: Record<string, unknown> | string, receivedMs: number, sessionKey: string, seq: number | null = null): unknown[] {
  const enc = typeof body === 'string' ? encodeStored(body, c) : encodeEvent(body, c);
  return [
    seq, encodeId(c.event_id), names.id(c.event), c.ts_ms, receivedMs - c.ts_ms, names.id(sessionKey), names.id(enc.tuple), names.id(enc.layout),
    c.tool_name === null ? null : names.id(c.tool_name), c.tool_use_id, c.success, c.duration_ms, c.exit_code, c.error, c.model === null ? null : names.id(c.model),
    c.input_tokens, c.output_tokens, c.cache_creation_input_tokens, c.cache_read_input_tokens, c.cost_usd, c.num_turns, enc.residue,
  ];
}

/** An old row's body: split when it parses to an object that comes back identical, else kept whole. */
function encodeStored(text: string, cols: EventColumns): EncodedEvent {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      const enc = encodeEvent(parsed as Record<string, unknown>, cols);
      if (decodeBody({ ...cols, ...enc }) === text) return enc;
    }
  } catch {
    /* kept whole below */
  }
  return { ...encodeEvent({}, cols), layout: '"verbatim"', residue: text };
}


/** Migration 4: the old table's rows, in rowid order, into the compact table; then the view and indexes. */
export function compactEvents(db: Database.Database): void {
  db.exec(COMPACT_TABLES);
  const names = new Names(db);
  const insert = db.prepare(INSERT_ROW);
  const page = db.prepare('SELECT rowid AS seq, * FROM harness_events WHERE rowid > ? ORDER BY rowid LIMIT 5000');
  for (let after = 0; ; ) {
    const rows = page.all(after) as Array<EventColumns & { seq: number; received_ms: number; session_key: string; body: string }>;
    if (rows.length === 0) break;
    for (const r of rows) insert.run(rowValues(names, r, r.body, r.received_ms, r.session_key, r.seq));
    after = rows[rows.length - 1]!.seq;
  }
  const putFact = db.prepare(INSERT_FACT);
  const facts = db.prepare('SELECT * FROM harness_facts WHERE (session_id, kind, key) > (?, ?, ?) ORDER BY session_id, kind, key LIMIT 5000');
  for (let after = ['', '', '']; ; ) {
    const rows = facts.all(...after) as Array<{ session_id: string; kind: string; key: string; session_key: string; model: string | null; ts_ms: number; unpriced: number; state: string }>;
    if (rows.length === 0) break;
    for (const f of rows) putFact.run(factValues(names, { ...f, state: JSON.parse(f.state) as unknown }));
    const last = rows[rows.length - 1]!;
    after = [last.session_id, last.kind, last.key];
  }
  db.exec('DROP TABLE harness_events');
  db.exec('DROP TABLE harness_facts');
  db.exec(COMPACT_INDEXES);
  db.exec(EVENTS_VIEW);
}

/** The harness_events view's columns a body is rebuilt from (decodeBody of the row): for tools and tests reading the file. */
export const BODY_PARTS = 'event_id, event, source, ts_ms, session_id, run_id, task_id, label, project, tool_name, tool_use_id, success, duration_ms, exit_code, error, model, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd, num_turns, tuple, layout, residue';

/**
 * Migration 10 (issue 17, "smaller rows"): a fact's key text (30–40 bytes, in the row and again in
 * the primary key) becomes its 52-bit hash (event-codec.ts factKeyHash): ~25 bytes less per fact.
 * A file that went through migration 4 with this version already has the hash; only older ones are rewritten.
 */
export function hashFactKeys(db: Database.Database): void {
  const cols = db.prepare("SELECT name FROM pragma_table_info('harness_fact_rows')").pluck().all() as string[];
  if (!cols.includes('key')) return;
  db.exec(FACT_ROWS_TABLE('harness_fact_rows_v10'));
  const put = db.prepare('INSERT INTO harness_fact_rows_v10 (sid, kind, khash, skey, model, ts_ms, unpriced, shape, vals) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING');
  const page = db.prepare('SELECT sid, kind, key, skey, model, ts_ms, unpriced, shape, vals FROM harness_fact_rows WHERE (sid, kind, key) > (?, ?, ?) ORDER BY sid, kind, key LIMIT 5000').raw();
  for (let after: unknown[] = [-1, -1, '']; ; ) {
    const rows = page.all(...after) as unknown[][];
    if (rows.length === 0) break;
    for (const r of rows) put.run(r[0], r[1], factKeyHash(r[2] as string), ...r.slice(3));
    after = rows[rows.length - 1]!.slice(0, 3);
  }
  db.exec(`
    DROP VIEW IF EXISTS harness_facts;
    DROP TABLE harness_fact_rows;
    ALTER TABLE harness_fact_rows_v10 RENAME TO harness_fact_rows;
    CREATE INDEX harness_facts_unpriced ON harness_fact_rows(model) WHERE unpriced = 1;
    ${FACTS_VIEW}
  `);
}
