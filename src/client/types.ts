/**
 * The collector's JSON API (docs/contracts.md), as types. The collector's own
 * handlers are checked against these at compile time (test/client.test.ts), so
 * a field renamed on one side fails the type check. No runtime code here.
 */

/** One row of `harness_sessions`: a Claude Code session, a `claude-metrics run` task, or a shell task. */
export interface Session {
  /** The row key: `run:<run_id>`, `session:<claude session id>` or `task:<source>:<label>:<task_id>`. */
  id: string;
  claude_session_id: string | null;
  run_id: string | null;
  source: string | null;
  project: string | null;
  label: string | null;
  task_id: string | null;
  started_at: string | null;
  completed_at: string | null;
  last_seen_at: string | null;
  duration_ms: number | null;
  /** null while the session runs (or when its outcome is unknown). */
  success: boolean | null;
  /** Not completed, with an event in the last 30 minutes. */
  active: boolean;
  exit_code: number | null;
  tool_calls_count: number;
  tool_failures: number;
  error: string | null;
  model: string | null;
  num_turns: number | null;
  events_count: number;
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cost_usd: number;
  /** Where cost_usd came from: Claude Code's own figure (OTLP), our estimate from prices, or nothing priced. */
  cost_source: CostSource;
  /** Requests whose model has no price and no Claude Code cost: tokens counted, cost not. */
  unpriced_requests: number;
  /** From Claude Code's OpenTelemetry metrics, when it sends them (0 otherwise). */
  lines_added: number;
  lines_removed: number;
  commits: number;
  pull_requests: number;
  active_time_s: number;
}

export type CostSource = 'claude_code' | 'estimate' | 'none';

export interface SessionsPage {
  sessions: Session[];
  /** Rows matching the filter, over all pages. */
  total: number;
}

/**
 * `GET /api/sessions/{id}`: the session row and what its page shows (context,
 * counts, subagents, where tokens and cost came from). Older collectors have
 * no such route: the client then returns a `not_found` error value.
 */
export interface SessionDetail extends Session {
  claude_version?: string | null;
  host?: string | null;
  user?: string | null;
  cwd?: string | null;
  git_branch?: string | null;
  git_commit?: string | null;
  entrypoint?: string | null;
  end_reason?: string | null;
  prompts?: number;
  requests?: number;
  subagents?: Array<{ agent_id: string; agent_type: string | null; events: number; first_at: string; last_at: string; tokens: number; cost_usd: number }>;
  [key: string]: unknown;
}

export interface Outcomes {
  tasks: number;
  succeeded: number;
  failed: number;
  /** succeeded / tasks, null when there were no tasks. */
  success_rate: number | null;
}

export interface TokenCounts {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

export interface Breakdown extends Outcomes {
  tool_calls: number;
  tokens: number;
  cost_usd: number;
}

export interface Summary {
  generated_at: string;
  /** Sessions completed today (UTC), and tokens and cost of today's sessions. */
  today: Outcomes & TokenCounts & { tool_calls: number; tokens: number; cost_usd: number };
  last_7d: Outcomes & { tokens: number; cost_usd: number };
  /** Sessions not completed with an event in the last 30 minutes; `ralph` = running Ralph loop tasks. */
  active: { total: number; ralph: number; by_source: Record<string, number> };
  ingest: { events: number; duplicates: number; rejects: number; rejects_by_reason: Record<string, number> };
  by_project: Array<Breakdown & { project: string }>;
  by_label: Array<Breakdown & { label: string }>;
  top_tools: Array<{ tool: string; calls: number; failures: number; avg_duration_ms: number | null }>;
  /** Models with tokens but no price and no Claude Code cost: their cost is unknown, not zero. */
  unpriced_models?: Array<{ model: string; requests: number }>;
}

export interface DailyRow extends TokenCounts {
  /** YYYY-MM-DD (UTC). */
  date: string;
  source: string;
  tasks: number;
  succeeded: number;
  failed: number;
  tool_calls: number;
  tokens: number;
  cost_usd: number;
}

export interface Daily {
  /** First day of the window (YYYY-MM-DD). */
  from: string;
  /** One row per day and source that had sessions, in date then source order. */
  days: DailyRow[];
}

export interface Filters {
  sources: string[];
  projects: string[];
  labels: string[];
}

export interface ApiConfig {
  router_metrics_url: string | null;
  auth: boolean;
}
