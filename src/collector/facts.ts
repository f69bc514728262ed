/**
 * Facts: what one API request, one tool call or one metric series contributed,
 * whichever paths reported it. The same request reaches the collector from the
 * transcript (hooks, `backfill`) and from Claude Code's own OpenTelemetry; both
 * are kept as events, but a session counts the request once, through its fact.
 *
 * Pure and order-independent: a fact is the fold of its contributions with
 * commutative, idempotent rules (max per token kind, Claude Code's cost over an
 * estimate), and a session row changes by the difference between the fact
 * before and after a contribution. Any order of arrival, and any replay, gives
 * the same fact and the same row. The store only loads and saves facts.
 */

/** Where a cost figure came from, in order of precedence. */
export type CostSource = 'claude_code' | 'estimate' | 'none';

export interface UsageFact {
  model: string | null;
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  /** Claude Code's own cost of the request (OTel `cost_usd`, a transcript `costUSD`). */
  claude_cost: number | null;
  /** Our price table's estimate; null when the model is unpriced. */
  estimate: number | null;
}

const TOKEN_KINDS = ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'] as const;

const maxOrNull = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.max(a, b));

/**
 * Folds a contribution into a fact. Tokens: the largest per kind (a streamed
 * transcript repeats a message with growing counts; OTel reports the final
 * ones; the largest is what the API served). Costs: the largest of each kind,
 * so a replay or a reorder gives the same figure.
 */
export function foldUsage(prev: UsageFact | undefined, c: UsageFact): UsageFact {
  if (!prev) return { ...c };
  const out: UsageFact = { ...prev, model: prev.model ?? c.model, claude_cost: maxOrNull(prev.claude_cost, c.claude_cost), estimate: maxOrNull(prev.estimate, c.estimate) };
  for (const k of TOKEN_KINDS) out[k] = Math.max(prev[k], c[k]);
  // The model name: the first non-null wins in either order only when both agree; prefer the lexically smaller for determinism.
  if (prev.model !== null && c.model !== null && c.model < prev.model) out.model = c.model;
  return out;
}

/** The cost a fact counts with: Claude Code's own when known, else the estimate, else nothing (unpriced). */
export function factCost(f: UsageFact): { cost: number; source: CostSource } {
  if (f.claude_cost !== null) return { cost: f.claude_cost, source: 'claude_code' };
  if (f.estimate !== null) return { cost: f.estimate, source: 'estimate' };
  return { cost: 0, source: 'none' };
}

/** How a session row changes when one of its facts goes from `prev` to `next`. */
export interface UsageDelta {
  usage_event: number;
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cost_usd: number;
  claude_cost_requests: number;
  estimate_cost_requests: number;
  unpriced_requests: number;
}

export function usageDelta(prev: UsageFact | undefined, next: UsageFact): UsageDelta {
  const n = factCost(next);
  const p = prev ? factCost(prev) : undefined;
  const count = (s: CostSource) => (n.source === s ? 1 : 0) - (p?.source === s ? 1 : 0);
  return {
    usage_event: prev ? 0 : 1,
    input_tokens: next.input_tokens - (prev?.input_tokens ?? 0),
    output_tokens: next.output_tokens - (prev?.output_tokens ?? 0),
    cache_creation_input_tokens: next.cache_creation_input_tokens - (prev?.cache_creation_input_tokens ?? 0),
    cache_read_input_tokens: next.cache_read_input_tokens - (prev?.cache_read_input_tokens ?? 0),
    cost_usd: n.cost - (p?.cost ?? 0),
    claude_cost_requests: count('claude_code'),
    estimate_cost_requests: count('estimate'),
    unpriced_requests: count('none'),
  };
}

/**
 * The key that makes the transcript's and OTel's report of one request the same
 * fact: Claude Code's session and the API's request id (the transcript's
 * `requestId` is OTel's `request_id`). Without a request id, the message id;
 * without either, the event itself (counted once, never merged).
 */
export function usageFactKey(e: { event_id: string; request_id?: string | null; message_id?: string | null }): string {
  if (e.request_id) return `req:${e.request_id}`;
  if (e.message_id) return `msg:${e.message_id}`;
  return `event:${e.event_id}`;
}

/** One tool call, reported by PostToolUse(Failure) hooks and by OTel `tool_result`. */
export interface ToolFact {
  failed: boolean;
}

export const foldTool = (prev: ToolFact | undefined, c: ToolFact): ToolFact => ({ failed: (prev?.failed ?? false) || c.failed });

export function toolDelta(prev: ToolFact | undefined, next: ToolFact): { tool_call: number; tool_failure: number } {
  return { tool_call: prev ? 0 : 1, tool_failure: (next.failed ? 1 : 0) - (prev?.failed ? 1 : 0) };
}

/**
 * One OTel metric series. A delta point is its own fact (its id already
 * includes its time window, so a replay is a duplicate event); a cumulative
 * series keeps its largest value since its start time.
 */
export interface MetricFact {
  value: number;
}

export const foldMetric = (prev: MetricFact | undefined, c: MetricFact): MetricFact => ({ value: Math.max(prev?.value ?? -Infinity, c.value) });

export const metricDelta = (prev: MetricFact | undefined, next: MetricFact): number => next.value - (prev?.value ?? 0);

/** The folded cost columns of a session row, as stored. */
export interface SessionCostColumns {
  usage_events: number;
  cost_usd: number;
  claude_cost_requests: number;
  estimate_cost_requests: number;
  unpriced_requests: number;
  result_cost_usd: number | null;
}

/**
 * A session's cost and where it came from. Claude Code's own figure wins:
 * a `run` result's `total_cost_usd` covers the whole session; otherwise the sum
 * over its requests, each at Claude Code's cost when known. `estimate` means at
 * least one request is priced by our table; `none` that nothing is priced.
 */
export function sessionCost(r: SessionCostColumns): { cost_usd: number; cost_source: CostSource } {
  if (r.result_cost_usd !== null && r.result_cost_usd !== undefined) return { cost_usd: r.result_cost_usd, cost_source: 'claude_code' };
  if (r.estimate_cost_requests > 0) return { cost_usd: r.cost_usd, cost_source: 'estimate' };
  if (r.claude_cost_requests > 0) return { cost_usd: r.cost_usd, cost_source: 'claude_code' };
  // Facts from before cost sources were recorded (schema 1) carry only a sum: those are estimates.
  if (r.usage_events > 0 && r.cost_usd > 0 && r.unpriced_requests === 0) return { cost_usd: r.cost_usd, cost_source: 'estimate' };
  return { cost_usd: r.cost_usd, cost_source: 'none' };
}
