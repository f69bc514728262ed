/**
 * SQLite schema, versioned: migration i brings `PRAGMA user_version` from i to
 * i + 1. Append only; never edit one that has shipped. The PostgreSQL schema
 * (`postgres.ts`) keeps the same tables and columns.
 */
import type Database from 'better-sqlite3';
import { compactEvents, hashFactKeys } from './sqlite-compact-events';

/** A migration: SQL, or a function when rows must be rewritten by code (run inside the migration's transaction). */
export type SqliteMigration = string | ((db: Database.Database) => void);

export const SQLITE_MIGRATIONS: SqliteMigration[] = [
  // 1: events, sessions, counters
  `
  CREATE TABLE harness_events (
    event_id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    source TEXT NOT NULL,
    ts TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    session_key TEXT NOT NULL,
    session_id TEXT, run_id TEXT, task_id TEXT, label TEXT, project TEXT,
    tool_name TEXT, tool_use_id TEXT, success INTEGER, duration_ms REAL, exit_code INTEGER, error TEXT,
    model TEXT, input_tokens INTEGER, output_tokens INTEGER, cache_creation_input_tokens INTEGER, cache_read_input_tokens INTEGER,
    cost_usd REAL, num_turns INTEGER,
    body TEXT NOT NULL
  );
  CREATE INDEX harness_events_ts ON harness_events(ts_ms);

  CREATE TABLE harness_sessions (
    id TEXT PRIMARY KEY,
    claude_session_id TEXT, run_id TEXT,
    source TEXT, project TEXT, label TEXT, task_id TEXT,
    started_ms INTEGER, last_seen_ms INTEGER, completed_ms INTEGER,
    completion_event_id TEXT,
    duration_ms REAL, success INTEGER, exit_code INTEGER, error TEXT, error_ms INTEGER,
    tool_calls_count INTEGER NOT NULL DEFAULT 0, tool_failures INTEGER NOT NULL DEFAULT 0,
    model TEXT, model_ms INTEGER, num_turns INTEGER, events_count INTEGER NOT NULL DEFAULT 0,
    usage_events INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0, cache_read_input_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    result_input_tokens INTEGER, result_output_tokens INTEGER,
    result_cache_creation_input_tokens INTEGER, result_cache_read_input_tokens INTEGER, result_cost_usd REAL
  );
  CREATE INDEX harness_sessions_started ON harness_sessions(started_ms);
  CREATE INDEX harness_sessions_last_seen ON harness_sessions(last_seen_ms);

  CREATE TABLE counters (
    metric TEXT NOT NULL,
    labels TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (metric, labels)
  ) WITHOUT ROWID;
  `,
  // 2: facts (one API request, tool call or OTel metric series, whichever paths reported it; see facts.ts),
  // where each session's cost came from, and what Claude Code's OTel metrics add to a session.
  `
  CREATE TABLE harness_facts (
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    session_key TEXT NOT NULL,
    model TEXT,
    ts_ms INTEGER NOT NULL,
    unpriced INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    PRIMARY KEY (session_id, kind, key)
  ) WITHOUT ROWID;
  CREATE INDEX harness_facts_ts ON harness_facts(ts_ms);
  CREATE INDEX harness_facts_unpriced ON harness_facts(model) WHERE unpriced = 1;
  ALTER TABLE harness_sessions ADD COLUMN claude_cost_requests INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE harness_sessions ADD COLUMN estimate_cost_requests INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE harness_sessions ADD COLUMN unpriced_requests INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE harness_sessions ADD COLUMN lines_added INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE harness_sessions ADD COLUMN lines_removed INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE harness_sessions ADD COLUMN commits INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE harness_sessions ADD COLUMN pull_requests INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE harness_sessions ADD COLUMN active_time_s REAL NOT NULL DEFAULT 0;
  INSERT OR IGNORE INTO harness_facts (session_id, kind, key, session_key, model, ts_ms, unpriced, state)
    SELECT coalesce(session_id, session_key), 'usage',
      CASE WHEN json_extract(body, '$.request_id') IS NOT NULL THEN 'req:' || json_extract(body, '$.request_id')
           WHEN json_extract(body, '$.message_id') IS NOT NULL THEN 'msg:' || json_extract(body, '$.message_id')
           ELSE 'event:' || event_id END,
      session_key, model, ts_ms, CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END,
      json_object('model', model, 'input_tokens', coalesce(input_tokens, 0), 'output_tokens', coalesce(output_tokens, 0),
        'cache_creation_input_tokens', coalesce(cache_creation_input_tokens, 0), 'cache_read_input_tokens', coalesce(cache_read_input_tokens, 0),
        'claude_cost', NULL, 'estimate', cost_usd)
    FROM harness_events WHERE event = 'usage' ORDER BY ts_ms;
  UPDATE harness_sessions SET estimate_cost_requests = usage_events WHERE usage_events > 0;
  INSERT OR IGNORE INTO harness_facts (session_id, kind, key, session_key, model, ts_ms, state)
    SELECT coalesce(session_id, session_key), 'tool', coalesce('tool:' || tool_use_id, 'event:' || event_id), session_key, NULL, ts_ms,
      CASE WHEN success = 0 THEN '{"failed":true}' ELSE '{"failed":false}' END
    FROM harness_events WHERE event IN ('PostToolUse', 'PostToolUseFailure');
  `,
  // 3: the plan's harness_sessions timestamps, ISO-8601 UTC with milliseconds (what toISOString
  // gives), generated from the millisecond columns so they can never disagree. VIRTUAL: computed
  // on read, so ALTER TABLE adds them without rewriting a row, and ingest writes nothing more.
  `
  ALTER TABLE harness_sessions ADD COLUMN started_at TEXT GENERATED ALWAYS AS
    (strftime('%Y-%m-%dT%H:%M:%S', started_ms / 1000, 'unixepoch') || printf('.%03dZ', started_ms % 1000)) VIRTUAL;
  ALTER TABLE harness_sessions ADD COLUMN completed_at TEXT GENERATED ALWAYS AS
    (strftime('%Y-%m-%dT%H:%M:%S', completed_ms / 1000, 'unixepoch') || printf('.%03dZ', completed_ms % 1000)) VIRTUAL;
  `,
  // 4: smaller rows (issue 17): harness_events becomes a view over harness_event_rows (interned names,
  // a 16-byte id, the body as layout + residue; event-codec.ts), every old row rewritten losslessly.
  compactEvents,
  // 5: aggregates kept at ingest (../../rollups.ts): session sums per (day, day last seen, source,
  // project, label) and per single dimension, tool calls per dimension, day and tool, the values /api/filters lists with how many sessions have each, ingest totals.
  // Filled by the store right after this migration (from the sessions, with the same pure rules
  // ingest uses; `aggregates_state` says a rebuild is due), as `serve --rebuild-aggregates` does.
  `
  CREATE TABLE session_rollups (
    day INTEGER NOT NULL,
    seen_day INTEGER NOT NULL,
    source TEXT NOT NULL,
    project TEXT NOT NULL,
    label TEXT NOT NULL,
    sessions INTEGER NOT NULL DEFAULT 0,
    tasks INTEGER NOT NULL DEFAULT 0,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    tool_calls INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_input_tokens INTEGER NOT NULL DEFAULT 0,
    cost_nano INTEGER NOT NULL DEFAULT 0,
    cost_micro INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, seen_day, source, project, label)
  ) WITHOUT ROWID;
  CREATE INDEX session_rollups_seen ON session_rollups(seen_day);
  CREATE TABLE session_dim_rollups (
    dim TEXT NOT NULL,
    value TEXT NOT NULL,
    day INTEGER NOT NULL,
    seen_day INTEGER NOT NULL,
    sessions INTEGER NOT NULL DEFAULT 0,
    tasks INTEGER NOT NULL DEFAULT 0,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    tool_calls INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_input_tokens INTEGER NOT NULL DEFAULT 0,
    cost_nano INTEGER NOT NULL DEFAULT 0,
    cost_micro INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dim, value, day, seen_day)
  ) WITHOUT ROWID;
  CREATE TABLE tool_rollups (
    dim TEXT NOT NULL,
    value TEXT NOT NULL,
    day INTEGER NOT NULL,
    tool TEXT NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    dur_sum REAL NOT NULL DEFAULT 0,
    dur_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dim, value, day, tool)
  ) WITHOUT ROWID;
  CREATE TABLE filter_values (
    dim TEXT NOT NULL,
    value TEXT NOT NULL,
    sessions INTEGER NOT NULL,
    PRIMARY KEY (dim, value)
  ) WITHOUT ROWID;
  CREATE TABLE ingest_totals (
    name TEXT PRIMARY KEY,
    value REAL NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE aggregates_state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO aggregates_state (name, value) VALUES ('rebuild', 'due');
  `,
  // 6: /metrics' cardinality limiter (metric-limits.ts): the values of a label that hold one of
  // its capped slots keep their own series, sticky across restarts. New and self-contained.
  `
  CREATE TABLE metric_label_slots (
    dimension TEXT NOT NULL,
    slot INTEGER NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (dimension, slot),
    UNIQUE (dimension, value)
  ) WITHOUT ROWID, STRICT;
  `,
  // 7: the edges of a window (issue 17): a window that starts inside a day (`since=7d`) read that
  // first day's sessions and tool events raw, which grows with events per day. Sessions per last-seen
  // UTC hour and (source, project, label), and tool calls per dimension, hour and tool, so that only
  // the part of one hour is read raw; and each (source, project, label)'s latest last-seen time, a
  // MAX kept at ingest, for /metrics' last-event gauges (which read a week of sessions before).
  // Filled from the sessions and events right after this migration, as migration 5's tables
  // (`aggregates_state` says a rebuild is due), by the same pure rules ingest uses.
  `
  CREATE TABLE session_hour_rollups (
    hour INTEGER NOT NULL,
    source TEXT NOT NULL,
    project TEXT NOT NULL,
    label TEXT NOT NULL,
    sessions INTEGER NOT NULL DEFAULT 0,
    tasks INTEGER NOT NULL DEFAULT 0,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    tool_calls INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_input_tokens INTEGER NOT NULL DEFAULT 0,
    cost_nano INTEGER NOT NULL DEFAULT 0,
    cost_micro INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, source, project, label)
  ) WITHOUT ROWID;
  CREATE TABLE tool_hour_rollups (
    dim TEXT NOT NULL,
    value TEXT NOT NULL,
    hour INTEGER NOT NULL,
    tool TEXT NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    dur_sum REAL NOT NULL DEFAULT 0,
    dur_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (dim, value, hour, tool)
  ) WITHOUT ROWID;
  CREATE INDEX tool_hour_rollups_hour ON tool_hour_rollups(hour);
  CREATE TABLE session_last_seen (
    source TEXT NOT NULL,
    project TEXT NOT NULL,
    label TEXT NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (source, project, label)
  ) WITHOUT ROWID;
  CREATE INDEX session_last_seen_ms ON session_last_seen(last_seen_ms);
  INSERT INTO aggregates_state (name, value) VALUES ('rebuild', 'due') ON CONFLICT(name) DO UPDATE SET value = excluded.value;
  `,
  // 8: the session index without the event id (issue 17, "smaller rows"): (skey, ts_ms) and the
  // rowid find a session's range in time order as before; the id only breaks ties of one
  // millisecond, which SQLite sorts after the range read. ~20 bytes less per stored event
  // (dbstat: the index went from 39.9 to 20.2 of the ~370 bytes an event costs).
  `
  DROP INDEX harness_events_session;
  CREATE INDEX harness_events_session ON harness_event_rows(skey, ts_ms);
  `,
  // 9: no time index on the facts (issue 17, "smaller rows"): only retention read it, and it now
  // walks the facts in key order instead (SqliteStore.sweep). ~35 bytes less per stored event
  // (dbstat at 100k: 35.2 of ~355), and one index entry fewer to move on every fact upsert.
  `
  DROP INDEX IF EXISTS harness_facts_ts;
  `,
  // 10: a fact's key as its 52-bit hash, not its text (issue 17, "smaller rows"; sqlite-compact-events.ts).
  hashFactKeys,
];
