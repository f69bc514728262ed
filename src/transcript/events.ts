/**
 * Usage lines → `usage` events. The event id is derived from the session, the
 * message id and the request id (ccusage's dedupe key), so reading a transcript
 * again, from a hook or from backfill, never counts a message twice.
 */
import { hostname } from 'node:os';
import type { HarnessEvent, Source } from '../event';
import { deterministicId, SCHEMA_VERSION, usageEventId } from '../ids';
import { VERSION } from '../version';
import type { PriceTable } from './pricing';
import type { UsageLine } from './reader';

export interface UsageContext {
  sessionId: string;
  source: Source;
  project: string;
  prices: PriceTable;
  runId?: string;
  taskId?: string;
  label?: string;
  agentId?: string | null;
  /** Distinguishes lines without a message id (never deduplicated) by file. */
  fileKey: string;
  claudeVersion?: string | null;
}

export function usageEvent(line: UsageLine, ctx: UsageContext): HarnessEvent {
  const id = line.messageId ? usageEventId(ctx.sessionId, line.messageId, line.requestId ?? undefined) : deterministicId('usage-noid', ctx.sessionId, ctx.fileKey, String(line.offset));
  // Claude Code's own figure (older versions wrote costUSD per line) beats our estimate;
  // a model without a price stays unpriced (null), never charged at a guessed rate.
  const t = line.tokens;
  const empty = t.input_tokens + t.output_tokens + t.cache_creation_input_tokens + t.cache_read_input_tokens === 0;
  const cost = line.costUSD ?? ctx.prices.costOrNull(line.model, line.tokens) ?? (empty ? 0 : null);
  const e: HarnessEvent = {
    schema_version: SCHEMA_VERSION,
    event_id: id,
    event: 'usage',
    source: ctx.source,
    timestamp: new Date(Date.parse(line.timestamp)).toISOString(),
    session_id: ctx.sessionId,
    project: ctx.project,
    model: line.model,
    usage: { ...line.tokens },
    cost_usd: cost === null ? null : Math.round(cost * 1e9) / 1e9,
    cost_source: line.costUSD !== null ? 'claude_code' : cost === null ? null : 'estimate',
    context: { host: hostname(), cwd: line.cwd ?? undefined, claude_version: ctx.claudeVersion ?? undefined, emitter_version: VERSION },
  };
  if (line.messageId) e.message_id = line.messageId;
  if (line.requestId) e.request_id = line.requestId;
  if (ctx.runId) e.run_id = ctx.runId;
  if (ctx.taskId) e.task_id = ctx.taskId;
  if (ctx.label) e.label = ctx.label;
  if (ctx.agentId) e.agent_id = ctx.agentId;
  return e;
}
