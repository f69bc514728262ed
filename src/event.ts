/**
 * The wire event: one versioned schema shared by the emitter, the spool and the
 * collector. Field names are snake_case because that is what the shell loops and
 * the router already send. Built on `zod/mini` so the hot path stays small.
 */
import * as z from 'zod/mini';
import type { EventId } from './ids';

export { uuidv7, deterministicId, canonicalJson, usageEventId } from './ids';
export type { EventId } from './ids';


import { SOURCES } from './ids';
export { SOURCES, isSource, SCHEMA_VERSION } from './ids';
export type { Source } from './ids';

/** Largest batch the collector takes in one request. */
export const MAX_BATCH_EVENTS = 1000;

const text = (max: number) => z.string().check(z.maxLength(max));
const optText = (max: number) => z.optional(z.nullable(text(max)));
const count = z.int().check(z.gte(0));
const nonNegative = z.number().check(z.gte(0));

/** Event ids: UUIDv7 for born-once events, UUID-shaped sha256 digests for derived ones. */
export const EventIdSchema = z.string().check(z.minLength(1), z.maxLength(128), z.regex(/^[A-Za-z0-9._:-]+$/));

export const TokenUsageSchema = z.object({
  input_tokens: z.optional(count),
  output_tokens: z.optional(count),
  cache_creation_input_tokens: z.optional(count),
  cache_read_input_tokens: z.optional(count),
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

const AttrValue = z.nullable(z.union([text(1024), z.number(), z.boolean()]));

export const HarnessEventSchema = z.looseObject({
  schema_version: z.optional(z.int()),
  event_id: EventIdSchema,
  event: z.string().check(z.minLength(1), z.maxLength(128)),
  source: z.enum(SOURCES),
  timestamp: z.string().check(z.minLength(10), z.maxLength(40), z.refine((s) => !Number.isNaN(Date.parse(s)), 'not a date-time')),
  // correlation
  session_id: optText(256),
  run_id: optText(256),
  task_id: optText(256),
  label: optText(256),
  project: optText(256),
  // outcome and size
  duration_ms: z.optional(z.nullable(nonNegative)),
  success: z.optional(z.nullable(z.boolean())),
  exit_code: z.optional(z.nullable(z.int())),
  error: optText(4096),
  tool_name: optText(256),
  tool_use_id: optText(256),
  agent_id: optText(256),
  // usage (transcript `usage` events and `run` results)
  model: optText(256),
  message_id: optText(256),
  request_id: optText(256),
  usage: z.optional(z.nullable(TokenUsageSchema)),
  cost_usd: z.optional(z.nullable(nonNegative)),
  num_turns: z.optional(z.nullable(count)),
  duration_api_ms: z.optional(z.nullable(nonNegative)),
  result_subtype: optText(64),
  is_error: z.optional(z.nullable(z.boolean())),
  // context, free-form attributes, opt-in content, unknown hook metadata
  context: z.optional(z.nullable(ContextSchema)),
  attrs: z.optional(z.nullable(z.record(text(64), AttrValue))),
  content: z.optional(z.nullable(z.record(text(64), z.nullable(text(1_000_000))))),
  hook: z.optional(z.nullable(z.record(text(64), z.unknown()))),
});
export type HarnessEvent = z.infer<typeof HarnessEventSchema>;

export const BatchSchema = z.object({ events: z.array(z.unknown()).check(z.minLength(1), z.maxLength(MAX_BATCH_EVENTS)) });

/** What the collector answers to an accepted request (2xx). */
export interface IngestResponse {
  accepted: number;
  duplicates: number;
  rejected: Array<{ index: number; event_id?: string; reason: string }>;
}

