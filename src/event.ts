/**
 * The wire event: one versioned schema shared by the emitter, the spool and the
 * collector. Field names are snake_case because that is what the shell loops and
 * the router already send. Only the collector validates (emit never loads zod),
 * so this is classic `zod`: its objects compile a parser (JIT) and validate a
 * typical event in ~2 µs, where `zod/mini`'s interpreted objects took ~10 µs.
 */
import * as z from 'zod';
import type { EventId } from './ids';

export { uuidv7, deterministicId, canonicalJson, usageEventId } from './ids';
export type { EventId } from './ids';


import { SOURCES } from './ids';
export { SOURCES, isSource, SCHEMA_VERSION } from './ids';
export type { Source } from './ids';

/** Largest batch the collector takes in one request. */
export const MAX_BATCH_EVENTS = 1000;

const text = (max: number) => z.string().max(max);
const optText = (max: number) => text(max).nullable().optional();
const count = z.int().gte(0);
const nonNegative = z.number().gte(0);

/** Event ids: UUIDv7 for born-once events, UUID-shaped sha256 digests for derived ones. */
export const EventIdSchema = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:-]+$/);

export const TokenUsageSchema = z.object({
  input_tokens: count.optional(),
  output_tokens: count.optional(),
  cache_creation_input_tokens: count.optional(),
  cache_read_input_tokens: count.optional(),
});
export type TokenUsage = z.infer<typeof TokenUsageSchema>;

/** Where the event was produced. Metadata only. */
export const ContextSchema = z.looseObject({
  host: optText(256),
  user: optText(128),
  cwd: optText(4096),
  git_branch: optText(256),
  git_commit: optText(64),
  claude_version: optText(64),
  entrypoint: optText(64),
  permission_mode: optText(64),
  emitter_version: optText(64),
});

const AttrValue = z.union([text(1024), z.number(), z.boolean()]).nullable();

export const HarnessEventSchema = z.looseObject({
  schema_version: z.int().optional(),
  event_id: EventIdSchema,
  event: z.string().min(1).max(128),
  source: z.enum(SOURCES),
  timestamp: z.string().min(10).max(40).refine((s) => !Number.isNaN(Date.parse(s)), 'not a date-time'),
  // correlation
  session_id: optText(256),
  run_id: optText(256),
  task_id: optText(256),
  label: optText(256),
  project: optText(256),
  // outcome and size
  duration_ms: nonNegative.nullable().optional(),
  success: z.boolean().nullable().optional(),
  exit_code: z.int().nullable().optional(),
  error: optText(4096),
  tool_name: optText(256),
  tool_use_id: optText(256),
  agent_id: optText(256),
  // usage (transcript `usage` events and `run` results)
  model: optText(256),
  message_id: optText(256),
  request_id: optText(256),
  usage: TokenUsageSchema.nullable().optional(),
  cost_usd: nonNegative.nullable().optional(),
  /** Whose figure cost_usd is: Claude Code's own (OTel, a result, a transcript costUSD) or our price table's. */
  cost_source: z.enum(['claude_code', 'estimate']).nullable().optional(),
  num_turns: count.nullable().optional(),
  duration_api_ms: nonNegative.nullable().optional(),
  result_subtype: optText(64),
  is_error: z.boolean().nullable().optional(),
  // context, free-form attributes, opt-in content, unknown hook metadata
  context: ContextSchema.nullable().optional(),
  attrs: z.record(text(64), AttrValue).nullable().optional(),
  content: z.record(text(64), z.nullable(text(1_000_000))).nullable().optional(),
  hook: z.record(text(64), z.unknown()).nullable().optional(),
});
export type HarnessEvent = z.infer<typeof HarnessEventSchema>;

export const BatchSchema = z.object({ events: z.array(z.unknown()).min(1).max(MAX_BATCH_EVENTS) });

/** What the collector answers to an accepted request (2xx). */
export interface IngestResponse {
  accepted: number;
  duplicates: number;
  rejected: Array<{ index: number; event_id?: string; reason: string }>;
}

