/**
 * PostgreSQL schema, versioned like SQLite's (`sqlite.ts`): the same tables and
 * columns, with 64-bit integers for times and token counts. Applied by
 * `PostgresStore.migrate` once, under an advisory lock, however many replicas
 * start at the same moment; each version is recorded in
 * `claude_metrics_migrations`. Append only; never edit one that has shipped.
 */
import { FACT_KEY_HASH_SQL } from '../event-codec';

export const POSTGRES_MIGRATIONS: Array<{ name: string; sql: string }> = [
  {
    name: 'events, sessions, facts, counters, jobs',
    sql: `
    CREATE TABLE harness_events (
      event_id TEXT PRIMARY KEY,
      event TEXT NOT NULL,
      source TEXT NOT NULL,
      ts TEXT NOT NULL,
      ts_ms BIGINT NOT NULL,
      received_ms BIGINT NOT NULL,
      session_key TEXT NOT NULL,
      session_id TEXT, run_id TEXT, task_id TEXT, label TEXT, project TEXT,
      tool_name TEXT, tool_use_id TEXT, success SMALLINT, duration_ms DOUBLE PRECISION, exit_code BIGINT, error TEXT,
      model TEXT, input_tokens BIGINT, output_tokens BIGINT, cache_creation_input_tokens BIGINT, cache_read_input_tokens BIGINT,
      cost_usd DOUBLE PRECISION, num_turns BIGINT,
      body TEXT NOT NULL
    );
    CREATE INDEX harness_events_ts ON harness_events(ts_ms);

    CREATE TABLE harness_sessions (
      id TEXT PRIMARY KEY,
      claude_session_id TEXT, run_id TEXT,
      source TEXT, project TEXT, label TEXT, task_id TEXT,
      started_ms BIGINT, last_seen_ms BIGINT, completed_ms BIGINT,
      completion_event_id TEXT,
      duration_ms DOUBLE PRECISION, success SMALLINT, exit_code BIGINT, error TEXT, error_ms BIGINT,
      tool_calls_count BIGINT NOT NULL DEFAULT 0, tool_failures BIGINT NOT NULL DEFAULT 0,
      model TEXT, model_ms BIGINT, num_turns BIGINT, events_count BIGINT NOT NULL DEFAULT 0,
      usage_events BIGINT NOT NULL DEFAULT 0,
      input_tokens BIGINT NOT NULL DEFAULT 0, output_tokens BIGINT NOT NULL DEFAULT 0,
      cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0, cache_read_input_tokens BIGINT NOT NULL DEFAULT 0,
      cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
      result_input_tokens BIGINT, result_output_tokens BIGINT,
      result_cache_creation_input_tokens BIGINT, result_cache_read_input_tokens BIGINT, result_cost_usd DOUBLE PRECISION,
      claude_cost_requests BIGINT NOT NULL DEFAULT 0, estimate_cost_requests BIGINT NOT NULL DEFAULT 0, unpriced_requests BIGINT NOT NULL DEFAULT 0,
      lines_added BIGINT NOT NULL DEFAULT 0, lines_removed BIGINT NOT NULL DEFAULT 0, commits BIGINT NOT NULL DEFAULT 0, pull_requests BIGINT NOT NULL DEFAULT 0,
      active_time_s DOUBLE PRECISION NOT NULL DEFAULT 0
    );
    CREATE INDEX harness_sessions_started ON harness_sessions(started_ms);
    CREATE INDEX harness_sessions_last_seen ON harness_sessions(last_seen_ms);

    -- Facts (facts.ts): one API request, tool call or OTel metric series, whichever paths reported it.
    CREATE TABLE harness_facts (
      session_id TEXT NOT NULL,
      kind TEXT NOT NULL,
      key TEXT NOT NULL,
      session_key TEXT NOT NULL,
      model TEXT,
      ts_ms BIGINT NOT NULL,
      unpriced SMALLINT NOT NULL DEFAULT 0,
      state TEXT NOT NULL,
      PRIMARY KEY (session_id, kind, key)
    );
    CREATE INDEX harness_facts_ts ON harness_facts(ts_ms);
    CREATE INDEX harness_facts_unpriced ON harness_facts(model) WHERE unpriced = 1;

    -- A series is spread over a few shards (by backend) so that concurrent
    -- transactions of several replicas do not queue on one hot row; reads sum them.
    CREATE TABLE counters (
      metric TEXT NOT NULL,
      labels TEXT NOT NULL,
      shard SMALLINT NOT NULL,
      value DOUBLE PRECISION NOT NULL,
      PRIMARY KEY (metric, labels, shard)
    );

    -- Periodic jobs shared by the replicas (retention): who ran last, when.
    CREATE TABLE collector_jobs (
      name TEXT PRIMARY KEY,
      last_run_ms BIGINT NOT NULL,
      setting TEXT
    );
    `,
  },
  {
    // The plan's harness_sessions timestamps, as SQLite's migration 3: ISO-8601 UTC with
    // milliseconds (what toISOString gives), generated from the millisecond columns so they never
    // disagree. A generated column needs an IMMUTABLE expression; to_char is only STABLE because
    // of locale-dependent patterns (TM…), which this format does not use, so the wrapper may say
    // IMMUTABLE. Integer interval arithmetic keeps the milliseconds exact.
    name: "the plan's started_at / completed_at",
    sql: `
    CREATE FUNCTION claude_metrics_iso_ms(ms BIGINT) RETURNS TEXT LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT AS
      $$ SELECT to_char(TIMESTAMP '1970-01-01 00:00:00' + ms * INTERVAL '1 millisecond', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;
    ALTER TABLE harness_sessions
      ADD COLUMN started_at TEXT GENERATED ALWAYS AS (claude_metrics_iso_ms(started_ms)) STORED,
      ADD COLUMN completed_at TEXT GENERATED ALWAYS AS (claude_metrics_iso_ms(completed_ms)) STORED;
    `,
  },
  {
    // The session page, the live stream and "waiting on you" (../session-reads-postgres.ts). The
    // ingest order across replicas: the storing transaction's id (xid8) and a serial within it;
    // a reader takes only transactions below its snapshot's xmin, which makes "after (tx, ord)"
    // gap-free under concurrent commits (a sequence alone is not: a later commit can hold a
    // smaller number). A volatile default rewrites the table once (every existing event gets this
    // migration's transaction). Then the indexes SQLite's SESSION_INDEXES makes, event ids in "C"
    // order (bytewise, as SQLite's) so that one order serves the pages whatever the locale.
    name: 'session reads: ingest order (tx, ord) and per-session indexes',
    sql: `
    ALTER TABLE harness_events
      ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
      ADD COLUMN ord BIGSERIAL;
    CREATE INDEX harness_events_tx ON harness_events(tx, ord);
    CREATE INDEX harness_events_session ON harness_events(session_key, ts_ms, event_id COLLATE "C");
    CREATE INDEX harness_events_session_tx ON harness_events(session_key, tx, ord);
    CREATE INDEX harness_events_session_tool ON harness_events(session_key, tool_use_id) WHERE tool_use_id IS NOT NULL;
    CREATE INDEX harness_events_waiting ON harness_events(ts_ms) WHERE event IN ('Notification', 'PermissionRequest');
    CREATE INDEX harness_sessions_claude ON harness_sessions(claude_session_id);
    CREATE INDEX harness_sessions_task ON harness_sessions(task_id);
    CREATE INDEX harness_sessions_run ON harness_sessions(run_id);
    `,
  },
  {
    // Aggregates kept at ingest (../../rollups.ts), as SQLite's migration 4, each row spread over a
    // few shards (by backend, like counters) so that replicas do not queue on today's hot rows;
    // reads sum the shards. Filled right after this migration, under the migration lock, from the
    // sessions with the same pure rules ingest uses (`aggregates_state` says a rebuild is due).
    name: 'aggregates kept at ingest: session and tool rollups, filter values, ingest totals',
    sql: `
    CREATE TABLE session_rollups (
      day BIGINT NOT NULL,
      seen_day BIGINT NOT NULL,
      source TEXT NOT NULL,
      project TEXT NOT NULL,
      label TEXT NOT NULL,
      shard SMALLINT NOT NULL,
      sessions BIGINT NOT NULL DEFAULT 0,
      tasks BIGINT NOT NULL DEFAULT 0,
      succeeded BIGINT NOT NULL DEFAULT 0,
      failed BIGINT NOT NULL DEFAULT 0,
      tool_calls BIGINT NOT NULL DEFAULT 0,
      input_tokens BIGINT NOT NULL DEFAULT 0,
      output_tokens BIGINT NOT NULL DEFAULT 0,
      cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0,
      cache_read_input_tokens BIGINT NOT NULL DEFAULT 0,
      -- Whole numbers, as double precision: exact below 2^53 as in JS, and a cost too large for an integer is still stored.
      cost_nano DOUBLE PRECISION NOT NULL DEFAULT 0,
      cost_micro DOUBLE PRECISION NOT NULL DEFAULT 0,
      PRIMARY KEY (day, seen_day, source, project, label, shard)
    );
    CREATE INDEX session_rollups_seen ON session_rollups(seen_day);
    CREATE TABLE session_dim_rollups (
      dim TEXT NOT NULL,
      value TEXT NOT NULL,
      day BIGINT NOT NULL,
      seen_day BIGINT NOT NULL,
      shard SMALLINT NOT NULL,
      sessions BIGINT NOT NULL DEFAULT 0,
      tasks BIGINT NOT NULL DEFAULT 0,
      succeeded BIGINT NOT NULL DEFAULT 0,
      failed BIGINT NOT NULL DEFAULT 0,
      tool_calls BIGINT NOT NULL DEFAULT 0,
      input_tokens BIGINT NOT NULL DEFAULT 0,
      output_tokens BIGINT NOT NULL DEFAULT 0,
      cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0,
      cache_read_input_tokens BIGINT NOT NULL DEFAULT 0,
      cost_nano DOUBLE PRECISION NOT NULL DEFAULT 0,
      cost_micro DOUBLE PRECISION NOT NULL DEFAULT 0,
      PRIMARY KEY (dim, value, day, seen_day, shard)
    );
    CREATE TABLE tool_rollups (
      dim TEXT NOT NULL,
      value TEXT NOT NULL,
      day BIGINT NOT NULL,
      tool TEXT NOT NULL,
      shard SMALLINT NOT NULL,
      calls BIGINT NOT NULL DEFAULT 0,
      failures BIGINT NOT NULL DEFAULT 0,
      dur_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
      dur_count BIGINT NOT NULL DEFAULT 0,
      PRIMARY KEY (dim, value, day, tool, shard)
    );
    CREATE TABLE filter_values (
      dim TEXT NOT NULL,
      value TEXT NOT NULL,
      shard SMALLINT NOT NULL,
      sessions BIGINT NOT NULL,
      PRIMARY KEY (dim, value, shard)
    );
    CREATE TABLE ingest_totals (
      name TEXT NOT NULL,
      shard SMALLINT NOT NULL,
      value DOUBLE PRECISION NOT NULL,
      PRIMARY KEY (name, shard)
    );
    CREATE TABLE aggregates_state (
      name TEXT PRIMARY KEY,
      value TEXT NOT NULL
    );
    INSERT INTO aggregates_state (name, value) VALUES ('rebuild', 'due');
    `,
  },
  {
    // /metrics' cardinality limiter (metric-limits.ts): the values of a label that hold one of its
    // capped slots keep their own series, shared by every replica. New and self-contained.
    name: 'metrics: label slots of the cardinality limiter',
    sql: `
    CREATE TABLE metric_label_slots (
      dimension TEXT NOT NULL,
      slot INTEGER NOT NULL,
      value TEXT NOT NULL,
      PRIMARY KEY (dimension, slot),
      UNIQUE (dimension, value)
    );
    `,
  },
  {
    // The edges of a window, as SQLite's migration 7: sessions per last-seen UTC hour and
    // (source, project, label), tool calls per dimension, hour and tool, and each combination's
    // latest last-seen time (a MAX) for /metrics; sharded like the other aggregates. Filled right
    // after this migration, under the migration lock, by the rebuild (`aggregates_state`).
    name: 'aggregates kept at ingest: hourly session and tool rollups, latest last-seen per combination',
    sql: `
    CREATE TABLE session_hour_rollups (
      hour BIGINT NOT NULL,
      source TEXT NOT NULL,
      project TEXT NOT NULL,
      label TEXT NOT NULL,
      shard SMALLINT NOT NULL,
      sessions BIGINT NOT NULL DEFAULT 0,
      tasks BIGINT NOT NULL DEFAULT 0,
      succeeded BIGINT NOT NULL DEFAULT 0,
      failed BIGINT NOT NULL DEFAULT 0,
      tool_calls BIGINT NOT NULL DEFAULT 0,
      input_tokens BIGINT NOT NULL DEFAULT 0,
      output_tokens BIGINT NOT NULL DEFAULT 0,
      cache_creation_input_tokens BIGINT NOT NULL DEFAULT 0,
      cache_read_input_tokens BIGINT NOT NULL DEFAULT 0,
      cost_nano DOUBLE PRECISION NOT NULL DEFAULT 0,
      cost_micro DOUBLE PRECISION NOT NULL DEFAULT 0,
      PRIMARY KEY (hour, source, project, label, shard)
    );
    CREATE TABLE tool_hour_rollups (
      dim TEXT NOT NULL,
      value TEXT NOT NULL,
      hour BIGINT NOT NULL,
      tool TEXT NOT NULL,
      shard SMALLINT NOT NULL,
      calls BIGINT NOT NULL DEFAULT 0,
      failures BIGINT NOT NULL DEFAULT 0,
      dur_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
      dur_count BIGINT NOT NULL DEFAULT 0,
      PRIMARY KEY (dim, value, hour, tool, shard)
    );
    CREATE INDEX tool_hour_rollups_hour ON tool_hour_rollups(hour);
    CREATE TABLE session_last_seen (
      source TEXT NOT NULL,
      project TEXT NOT NULL,
      label TEXT NOT NULL,
      shard SMALLINT NOT NULL,
      last_seen_ms BIGINT NOT NULL,
      PRIMARY KEY (source, project, label, shard)
    );
    CREATE INDEX session_last_seen_ms ON session_last_seen(last_seen_ms);
    INSERT INTO aggregates_state (name, value) VALUES ('rebuild', 'due') ON CONFLICT (name) DO UPDATE SET value = excluded.value;
    `,
  },
  {
    // As SQLite's migration 9: only retention read the facts' time index, and it now walks them in
    // key order (PostgresStore.sweep); one index fewer to store and to update on every fact upsert.
    name: 'facts without a time index',
    sql: `
    DROP INDEX IF EXISTS harness_facts_ts;
    `,
  },
  {
    // Compact rows, as SQLite's migrations 4 and 8 within what SQL alone can do (../event-codec.ts):
    // an event no longer keeps its JSON body beside the columns that repeat half of it. Its session
    // key (and a fact's), the body's key order (its layout) and its hook context (host, cwd, git: the same on every
    // event of a session) are interned in harness_event_parts, shared by the replicas; what no
    // column holds stays in \`residue\` as a JSON object, which the session reads query by path.
    // The ISO \`ts\` is ts_ms's. The per-session indexes are on the key's id, and the time-ordered
    // one no longer carries the event id (it only broke ties within a millisecond, which the read
    // sorts). Rows stored before keep their body whole as their residue under the layout
    // "verbatim" (the codec gives it back as it is), so no body is re-encoded here; the space they
    // free is reused by new rows (VACUUM FULL gives it back to the disk, docs/collector.md).
    // Idempotent, as 7 is: a database whose version record was rolled back by hand runs it again unharmed.
    name: 'compact event rows: interned session keys, layouts and contexts, the residue instead of the body',
    sql: `
    CREATE TABLE IF NOT EXISTS harness_event_parts (
      id INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
      text TEXT NOT NULL
    );
    -- By digest: a B-tree entry cannot hold a long text (a context with a deep cwd). convert_to is only
    -- STABLE (it reads the server's encoding, which a database never changes), so the wrapper may
    -- say IMMUTABLE, as claude_metrics_iso_ms does; SHA-256, so that no two texts share an entry.
    CREATE OR REPLACE FUNCTION claude_metrics_digest(t TEXT) RETURNS BYTEA LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURNS NULL ON NULL INPUT AS
      $$ SELECT sha256(convert_to(t, 'UTF8')) $$;
    CREATE UNIQUE INDEX IF NOT EXISTS harness_event_parts_text ON harness_event_parts (claude_metrics_digest(text));
    INSERT INTO harness_event_parts (id, text) VALUES (1, '"verbatim"') ON CONFLICT DO NOTHING;
    SELECT setval(pg_get_serial_sequence('harness_event_parts', 'id'), (SELECT max(id) FROM harness_event_parts));
    DO $$ BEGIN
      IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'harness_events' AND column_name = 'body') THEN
        INSERT INTO harness_event_parts (text) SELECT DISTINCT session_key FROM harness_events ORDER BY 1 ON CONFLICT DO NOTHING;
        ALTER TABLE harness_events ADD COLUMN skey INTEGER, ADD COLUMN layout_id INTEGER, ADD COLUMN context_id INTEGER, ADD COLUMN residue TEXT;
        UPDATE harness_events e SET skey = p.id, layout_id = 1, residue = e.body
          FROM harness_event_parts p WHERE claude_metrics_digest(p.text) = claude_metrics_digest(e.session_key);
        DROP INDEX harness_events_session, harness_events_session_tx, harness_events_session_tool;
        ALTER TABLE harness_events ALTER COLUMN skey SET NOT NULL, ALTER COLUMN layout_id SET NOT NULL, DROP COLUMN body, DROP COLUMN ts, DROP COLUMN session_key;
        CREATE INDEX harness_events_session ON harness_events(skey, ts_ms);
        CREATE INDEX harness_events_session_tx ON harness_events(skey, tx, ord);
        CREATE INDEX harness_events_session_tool ON harness_events(skey, tool_use_id) WHERE tool_use_id IS NOT NULL;
      END IF;
      -- A fact's session (the one it counts in) by the same id.
      IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'harness_facts' AND column_name = 'session_key') THEN
        INSERT INTO harness_event_parts (text) SELECT DISTINCT session_key FROM harness_facts ORDER BY 1 ON CONFLICT DO NOTHING;
        ALTER TABLE harness_facts ADD COLUMN skey INTEGER;
        UPDATE harness_facts f SET skey = p.id FROM harness_event_parts p WHERE claude_metrics_digest(p.text) = claude_metrics_digest(f.session_key);
        ALTER TABLE harness_facts ALTER COLUMN skey SET NOT NULL, DROP COLUMN session_key;
      END IF;
    END $$;
    `,
  },
  {
    // A fact's primary key without text (issue 17, "smaller rows"), as SQLite's migration 10: its
    // session id interned in harness_event_parts (sid), its kind as a code (1 usage, 2 tool, 3 metric:
    // event-rows-postgres.ts FACT_KIND_CODES), its key as its 52-bit hash (event-codec.ts
    // factKeyHash, the same in SQL). The three texts were ~80 bytes of each row and again of its
    // primary key. The rows move to a new table (no dead versions left behind), in the order of the
    // new key. Idempotent: a table that already has \`khash\` is left alone.
    name: 'facts keyed by ids and a key hash',
    sql: `
    DO $$ BEGIN
      IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'harness_facts' AND column_name = 'key') THEN
        INSERT INTO harness_event_parts (text) SELECT DISTINCT session_id FROM harness_facts ORDER BY 1 ON CONFLICT DO NOTHING;
        CREATE TABLE harness_facts_v9 (
          khash BIGINT NOT NULL,
          ts_ms BIGINT NOT NULL,
          sid INTEGER NOT NULL,
          skey INTEGER NOT NULL,
          kind SMALLINT NOT NULL,
          unpriced SMALLINT NOT NULL DEFAULT 0,
          model TEXT,
          state TEXT NOT NULL
        );
        INSERT INTO harness_facts_v9 (khash, ts_ms, sid, skey, kind, unpriced, model, state)
          SELECT ${FACT_KEY_HASH_SQL('f.key')}, f.ts_ms, p.id, f.skey, CASE f.kind WHEN 'usage' THEN 1 WHEN 'tool' THEN 2 ELSE 3 END, f.unpriced, f.model, f.state
          FROM harness_facts f JOIN harness_event_parts p ON claude_metrics_digest(p.text) = claude_metrics_digest(f.session_id) AND p.text = f.session_id
          ORDER BY 3, 5, 1;
        DROP TABLE harness_facts;
        ALTER TABLE harness_facts_v9 RENAME TO harness_facts;
        ALTER TABLE harness_facts ADD CONSTRAINT harness_facts_pkey PRIMARY KEY (sid, kind, khash);
        CREATE INDEX harness_facts_unpriced ON harness_facts(model) WHERE unpriced = 1;
      END IF;
    END $$;
    `,
  },
  {
    // Counters by series id (issue 17, a cheaper /metrics): each (metric, labels) once in
    // counter_series, its shards' values in counter_values keyed by (series, shard). A scrape sums
    // the values by an integer and names each series from what the replica has already read
    // (counter-series-postgres.ts), instead of grouping and sending every row's two texts.
    // `counters` stays, as a view with the old columns, for ad-hoc SQL and the reads that filter by metric.
    // Idempotent: a database that already has counter_values is left alone.
    name: 'counters by series id',
    sql: `
    DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'counter_values') THEN
        CREATE TABLE counter_series (
          id INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
          metric TEXT NOT NULL,
          labels TEXT NOT NULL,
          UNIQUE (metric, labels)
        );
        INSERT INTO counter_series (metric, labels) SELECT DISTINCT metric, labels FROM counters ORDER BY 1, 2;
        CREATE TABLE counter_values (
          series INTEGER NOT NULL,
          shard SMALLINT NOT NULL,
          value DOUBLE PRECISION NOT NULL,
          PRIMARY KEY (series, shard)
        );
        INSERT INTO counter_values (series, shard, value)
          SELECT s.id, c.shard, c.value FROM counters c JOIN counter_series s ON s.metric = c.metric AND s.labels = c.labels ORDER BY 1, 2;
        DROP TABLE counters;
        CREATE VIEW counters AS SELECT s.metric, s.labels, v.shard, v.value FROM counter_values v JOIN counter_series s ON s.id = v.series;
      END IF;
    END $$;
    `,
  },
];
