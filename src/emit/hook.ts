/**
 * Claude Code hook JSON → the event's hook-specific fields. Pure and tolerant:
 * unknown events and fields are kept (as metadata), wrong types are dropped
 * field by field, and content (prompts, tool input/output, messages) never
 * leaves as text unless opted in — only its size does.
 */
import { redactContent, maskSecrets } from '../redact';

export type Json = Record<string, unknown>;

export interface HookFields {
  event: string;
  session_id?: string;
  tool_name?: string;
  tool_use_id?: string;
  agent_id?: string;
  model?: string;
  success?: boolean;
  duration_ms?: number;
  error?: string;
  permission_mode?: string;
  cwd?: string;
  transcript_path?: string;
  hook: Record<string, unknown>;
  attrs: Record<string, string | number | boolean>;
  content?: Record<string, string>;
}

/** Fields whose value is what the user or the model wrote: sizes only by default. */
const CONTENT_KEYS = new Set(['prompt', 'tool_input', 'tool_response', 'message', 'last_assistant_message', 'custom_instructions', 'tool_output', 'output', 'result', 'summary']);
/** Fields handled explicitly, not repeated under `hook`. */
const HANDLED = new Set(['hook_event_name', 'session_id', 'tool_name', 'tool_use_id', 'agent_id', 'transcript_path', 'agent_transcript_path', 'cwd', 'permission_mode', 'duration_ms', 'error', 'model']);
/** Unknown string fields whose name suggests content are treated as content too. */
const CONTENT_LIKE = /prompt|message|content|input|output|response|text|instruction|summary|body|diff|command/i;

const MAX_META_STRING = 200;

export function str(v: unknown, max = 256): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v.slice(0, max) : undefined;
}

function sizeOf(v: unknown): number {
  if (typeof v === 'string') return v.length;
  try {
    return JSON.stringify(v)?.length ?? 0;
  } catch {
    return -1; // too deep or cyclic: still say it was there
  }
}

/** Did a tool call fail? PostToolUse's `tool_response` shape differs per tool; look for the common markers. */
export function toolSucceeded(response: unknown): boolean {
  if (response === null || typeof response !== 'object' || Array.isArray(response)) return true;
  const r = response as Json;
  if (r.is_error === true || r.isError === true || r.success === false || r.interrupted === true) return false;
  if (typeof r.error === 'string' && r.error.length > 0) return false;
  return true;
}

export function mapHook(hook: Json, opts: { includeContent: boolean; maxContentBytes: number }): HookFields {
  const event = str(hook.hook_event_name, 128) ?? 'unknown_hook';
  const out: HookFields = { event, hook: {}, attrs: {} };
  out.session_id = str(hook.session_id);
  out.tool_name = str(hook.tool_name);
  out.tool_use_id = str(hook.tool_use_id);
  out.agent_id = str(hook.agent_id);
  out.permission_mode = str(hook.permission_mode, 64);
  out.cwd = str(hook.cwd, 4096);
  out.transcript_path = str(hook.transcript_path, 4096);
  if (typeof hook.model === 'string') out.model = str(hook.model);
  else if (hook.model && typeof hook.model === 'object') out.model = str((hook.model as Json).id) ?? str((hook.model as Json).display_name);
  if (typeof hook.duration_ms === 'number' && Number.isFinite(hook.duration_ms) && hook.duration_ms >= 0) out.duration_ms = hook.duration_ms;

  if (event === 'PostToolUse') out.success = toolSucceeded(hook.tool_response);
  if (event === 'PostToolUseFailure') {
    out.success = false;
    const err = typeof hook.error === 'string' ? hook.error : hook.error !== undefined ? safeString(hook.error) : undefined;
    // Error text can quote tool output: masked and short even in metadata mode.
    if (err) out.error = maskSecrets(err.slice(0, 2000)).slice(0, 500);
  } else if (typeof hook.error === 'string' && hook.error) out.error = maskSecrets(hook.error.slice(0, 2000)).slice(0, 500);

  // The Task/Agent tool's subagent type is a bounded, useful dimension; nothing else of tool_input is.
  const input = hook.tool_input;
  if (input && typeof input === 'object' && !Array.isArray(input)) {
    const sub = str((input as Json).subagent_type, 64);
    if (sub) out.attrs.subagent_type = sub;
  }

  for (const [key, value] of Object.entries(hook)) {
    if (HANDLED.has(key)) continue;
    const k = key.slice(0, 64);
    const isContent = CONTENT_KEYS.has(key) || (typeof value === 'string' && CONTENT_LIKE.test(key));
    if (isContent) {
      if (value === undefined || value === null) continue;
      out.hook[`${k}_size`] = sizeOf(value);
      if (opts.includeContent) (out.content ??= {})[k] = redactContent(value, opts.maxContentBytes);
      continue;
    }
    if (typeof value === 'boolean' || value === null) out.hook[k] = value;
    else if (typeof value === 'number') out.hook[k] = Number.isFinite(value) ? value : null;
    else if (typeof value === 'string') out.hook[k] = maskSecrets(value.slice(0, MAX_META_STRING));
    else if (isSmallScalarObject(value)) {
      // e.g. `effort: {level: "medium"}` → effort_level: "medium"
      for (const [sub, v] of Object.entries(value)) out.hook[`${k}_${sub}`.slice(0, 64)] = typeof v === 'string' ? maskSecrets(v.slice(0, MAX_META_STRING)) : v;
    } else if (value !== undefined) out.hook[`${k}_size`] = sizeOf(value);
  }
  // SessionStart's `source` (startup/resume/clear/compact) would clash with ours.
  if ('source' in out.hook) {
    out.hook.start_source = out.hook.source;
    delete out.hook.source;
  }
  return out;
}

/** A flat object of at most four short scalars (and keys not named like content). */
function isSmallScalarObject(v: unknown): v is Record<string, string | number | boolean | null> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
  const entries = Object.entries(v);
  return (
    entries.length > 0 &&
    entries.length <= 4 &&
    entries.every(([k, x]) => !CONTENT_LIKE.test(k) && (x === null || typeof x === 'number' || typeof x === 'boolean' || (typeof x === 'string' && x.length <= 64)))
  );
}

function safeString(v: unknown): string | undefined {
  try {
    return JSON.stringify(v);
  } catch {
    return undefined;
  }
}
