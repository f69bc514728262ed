-- Reference schema for a Python router that accepts claude-metrics events
-- (POST /metrics/harness), the same events `claude-metrics serve` stores.
-- harness_events: one row per event_id (the idempotency key end to end).
-- harness_sessions: one row per session key, folded from its events.
CREATE TABLE IF NOT EXISTS harness_events (
  event_id     TEXT PRIMARY KEY,
  event        TEXT NOT NULL,
  source       TEXT NOT NULL,          -- interactive | ralph | api | cron | backfill
  ts           TEXT NOT NULL,          -- UTC ISO-8601
  received_at  TEXT NOT NULL,
  session_key  TEXT NOT NULL,
  session_id   TEXT, run_id TEXT, task_id TEXT, label TEXT, project TEXT,
  tool_name    TEXT, success INTEGER, duration_ms REAL, exit_code INTEGER, error TEXT,
  model        TEXT,
  input_tokens INTEGER, output_tokens INTEGER,
  cache_creation_input_tokens INTEGER, cache_read_input_tokens INTEGER,
  cost_usd     REAL, num_turns INTEGER,
  body         TEXT NOT NULL           -- the event as received (JSON)
);
CREATE INDEX IF NOT EXISTS harness_events_session ON harness_events(session_key);
CREATE INDEX IF NOT EXISTS harness_events_ts ON harness_events(ts);

-- Key: coalesce(run_id, session_id, 'task:' || source || ':' || label || ':' || task_id).
-- Recomputed from harness_events on every insert, so late, out-of-order and
-- duplicate deliveries all give the same row.
CREATE TABLE IF NOT EXISTS harness_sessions (
  id               TEXT PRIMARY KEY,
  source           TEXT,               -- api | ralph | interactive | ...
  project          TEXT,
  label            TEXT,
  task_id          TEXT,
  claude_session_id TEXT,
  run_id           TEXT,
  started_at       TEXT,
  completed_at     TEXT,
  duration_ms      REAL,
  success          INTEGER,            -- 1 / 0 / NULL while running
  tool_calls_count INTEGER NOT NULL DEFAULT 0,
  error            TEXT,
  model            TEXT,
  num_turns        INTEGER,
  input_tokens     INTEGER NOT NULL DEFAULT 0,
  output_tokens    INTEGER NOT NULL DEFAULT 0,
  cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
  cache_read_input_tokens     INTEGER NOT NULL DEFAULT 0,
  cost_usd         REAL NOT NULL DEFAULT 0,
  events_count     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS harness_sessions_started ON harness_sessions(started_at);
