/**
 * One session, as the session page, `show` and the stream read it: the header
 * (`GET /api/sessions/{id}`) and its steps (`GET /api/sessions/{id}/events`).
 * Pure translation of SessionReads rows into the shapes of docs/contracts.md.
 *
 * Steps: a PreToolUse and its PostToolUse/PostToolUseFailure (same tool_use_id)
 * are one step, with the id `tool:<tool_use_id>`; everything else is a step of
 * its own, with its event id. Pages are in time order (ts, then event id) over
 * a snapshot of the ingest sequence taken by the first page, so paging never
 * skips or repeats a step however much arrives meanwhile; what arrived after
 * the snapshot is read with the `live` cursor, as whole steps to upsert by id.
 */
import type { SessionRow } from './store';
import { toSession } from './store/rows';
import type { EventRow, Position, SessionReader } from './session-reads';

export const DEFAULT_PAGE = 500;
export const MAX_PAGE = 5000;

export type StepKind = 'tool' | 'turn' | 'prompt' | 'request' | 'start' | 'end' | 'stop' | 'subagent_stop' | 'wait' | 'task' | 'compact' | 'error' | 'event';
export type StepStatus = 'ok' | 'failed' | 'unfinished' | 'denied' | null;

export interface Step {
  id: string;
  /** The newest ingest position among the step's events (SQLite: rowid; PostgreSQL: transaction id). */
  seq: number;
  kind: StepKind;
  event: string;
  event_ids: string[];
  at: string;
  at_ms: number;
  end_ms: number | null;
  duration_ms: number | null;
  status: StepStatus;
  source: string;
  tool_name: string | null;
  tool_use_id: string | null;
  success: boolean | null;
  error: string | null;
  exit_code: number | null;
  model: string | null;
  input_tokens: number | null;
  output_tokens: number | null;
  cache_creation_input_tokens: number | null;
  cache_read_input_tokens: number | null;
  cost_usd: number | null;
  agent_id: string | null;
  agent_type: string | null;
  subagent_type: string | null;
  prompt_length: number | null;
  prompt: string | null;
  notification_type: string | null;
  message: string | null;
  reason: string | null;
  /** Of a request: claude_code (its own cost) or estimate (our price table). */
  cost_source: string | null;
  /** Of a tool call: time spent waiting for a person (a permission prompt): Claude Code's blocked_on_user span, else Pre → Post minus the run. */
  wait_ms: number;
  /** Of a tool call: its run as Claude Code's tool.execution span measured it (null without traces). */
  run_ms: number | null;
  /** Where the split into wait and run came from: `hooks` (times of PreToolUse/PostToolUse) or `trace` (Claude Code's spans). */
  timing: 'hooks' | 'trace' | null;
}

/** Pre → Post minus the tool's own duration below this is hook latency, not waiting. */
const WAIT_MIN_MS = 1000;

/**
 * A cursor: `s/t/e` pages a snapshot (the whole position s, after the row at time t with event id e);
 * `a` (and `r`, PostgreSQL's row within transaction a) is "what arrived after that position".
 */
type Cursor = { s: number; t: number; e: string } | { a: number; r?: number };

export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

export function decodeCursor(v: string): Cursor | null {
  // A stream message's id (a whole position) works too: "what arrived after that message".
  if (/^\d{1,15}$/.test(v)) return { a: Number(v) };
  try {
    const c = JSON.parse(Buffer.from(v, 'base64url').toString('utf8')) as Record<string, unknown>;
    const whole = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
    if (whole(c.a)) return c.r === undefined ? { a: c.a } : whole(c.r) ? { a: c.a, r: c.r } : null;
    // Times are whole milliseconds (PostgreSQL's bigint takes nothing else: a crafted cursor is a 400, not a 500).
    if (whole(c.s) && Number.isSafeInteger(c.t) && typeof c.e === 'string') return { s: c.s, t: c.t as number, e: c.e };
  } catch {
    /* not ours */
  }
  return null;
}

const KIND: Record<string, StepKind> = {
  PreToolUse: 'tool',
  PostToolUse: 'tool',
  PostToolUseFailure: 'tool',
  tool_result: 'tool',
  tool_decision: 'tool',
  tool_span: 'tool',
  tool_wait: 'tool',
  tool_execution: 'tool',
  llm_request: 'request',
  interaction: 'turn',
  UserPromptSubmit: 'prompt',
  user_prompt: 'prompt',
  api_error: 'error',
  usage: 'request',
  SessionStart: 'start',
  SessionEnd: 'end',
  Stop: 'stop',
  SubagentStop: 'subagent_stop',
  SubagentStart: 'event',
  Notification: 'wait',
  PermissionRequest: 'wait',
  PreCompact: 'compact',
  ralph_task_started: 'task',
  ralph_task_completed: 'task',
  task_started: 'task',
  task_completed: 'task',
  run_started: 'task',
  run_completed: 'task',
};

type Body = Record<string, unknown> & { hook?: Record<string, unknown>; attrs?: Record<string, unknown>; content?: Record<string, unknown> };

function parse(body: string): Body {
  try {
    return JSON.parse(body) as Body;
  } catch {
    return {};
  }
}

const strOf = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
const numOf = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const boolOf = (v: number | null): boolean | null => (v === null ? null : v === 1);

/** One event alone as a step. */
function single(r: EventRow): Step {
  const b = parse(r.body);
  const h = b.hook ?? {};
  const kind = KIND[r.event] ?? 'event';
  const content = b.content ?? {};
  const requestKey = r.event === 'usage' || r.event === 'llm_request' ? (strOf(b.request_id) ? `req:${b.request_id as string}` : strOf(b.message_id) ? `msg:${b.message_id as string}` : null) : null;
  return {
    // One API request reported by the transcript and by OTel is one step (the key the cost facts use).
    id: r.tool_use_id && KIND[r.event] === 'tool' ? `tool:${r.tool_use_id}` : requestKey ?? r.event_id,
    seq: r.seq,
    kind,
    event: r.event,
    event_ids: [r.event_id],
    at: new Date(r.ts_ms).toISOString(),
    at_ms: r.ts_ms,
    end_ms: null,
    duration_ms: r.duration_ms,
    status: r.success === null ? null : r.success === 1 ? 'ok' : 'failed',
    source: r.source,
    tool_name: r.tool_name,
    tool_use_id: r.tool_use_id,
    success: boolOf(r.success),
    error: r.error,
    exit_code: r.exit_code,
    model: r.model,
    input_tokens: r.input_tokens,
    output_tokens: r.output_tokens,
    cache_creation_input_tokens: r.cache_creation_input_tokens,
    cache_read_input_tokens: r.cache_read_input_tokens,
    cost_usd: r.cost_usd,
    agent_id: strOf(b.agent_id),
    agent_type: strOf(h.agent_type) ?? strOf(b.attrs?.agent_type),
    subagent_type: strOf(b.attrs?.subagent_type),
    prompt_length: numOf(h.prompt_size) ?? numOf(b.attrs?.prompt_length),
    prompt: strOf(content.prompt),
    notification_type: strOf(h.notification_type) ?? (r.event === 'PermissionRequest' ? 'permission_request' : null),
    message: strOf(h.message) ?? strOf(content.message),
    reason: strOf(h.reason) ?? strOf(b.result_subtype),
    wait_ms: 0,
    run_ms: null,
    timing: null,
    cost_source: r.event === 'usage' ? (strOf(b.cost_source) ?? (r.cost_usd !== null ? 'estimate' : null)) : null,
  };
}

/**
 * A tool call's events (time order) as one step: started at the Pre, ended by
 * the Post (its own duration_ms when the client sent one). No Post: unfinished
 * while the session runs, else denied or interrupted.
 */
function toolStep(rows: EventRow[], sessionDone: boolean): Step {
  const pre = rows.find((r) => r.event === 'PreToolUse');
  // The hook's Post first; Claude Code's OTel tool_result when the hooks did not report one.
  const post = rows.find((r) => r.event === 'PostToolUse' || r.event === 'PostToolUseFailure') ?? rows.find((r) => r.event === 'tool_result');
  const decision = rows.find((r) => r.event === 'tool_decision');
  // Claude Code's own spans, when its traces are on: the wait for a person and the run, measured.
  const span = rows.find((r) => r.event === 'tool_span');
  const wait = rows.find((r) => r.event === 'tool_wait');
  const exec = rows.find((r) => r.event === 'tool_execution');
  const first = pre ?? post ?? span ?? rows[0]!;
  const step = single(first);
  step.event_ids = rows.map((r) => r.event_id);
  step.seq = Math.max(...rows.map((r) => r.seq));
  if (post) {
    const p = single(post);
    step.event = pre ? 'PreToolUse' : post.event;
    step.success = p.success;
    step.status = p.success === false ? 'failed' : 'ok';
    step.error = p.error;
    step.exit_code = p.exit_code;
    step.duration_ms = post.duration_ms ?? (pre ? Math.max(0, post.ts_ms - pre.ts_ms) : null);
    step.agent_id ??= p.agent_id;
    step.subagent_type ??= p.subagent_type;
    if (pre) {
      step.end_ms = Math.max(pre.ts_ms, post.ts_ms);
      // Pre → Post took longer than the tool ran: the rest was spent waiting (for a permission answer).
      const gap = step.end_ms - pre.ts_ms - (post.duration_ms ?? step.end_ms - pre.ts_ms);
      step.wait_ms = gap >= WAIT_MIN_MS ? gap : 0;
      step.timing = 'hooks';
    } else {
      // Only the Post: it ended at its own time and began duration_ms before.
      step.end_ms = post.ts_ms;
      if (post.duration_ms !== null) {
        step.at_ms = post.ts_ms - post.duration_ms;
        step.at = new Date(step.at_ms).toISOString();
      }
    }
  } else {
    const rejected = decision && /^(reject|deny|denied)/i.test(String(parse(decision.body).attrs?.decision ?? ''));
    step.status = rejected || sessionDone ? 'denied' : 'unfinished';
    step.duration_ms = null;
    step.end_ms = null;
  }
  if (!post && exec) {
    // Only the trace saw it finish.
    step.status = exec.success === 0 ? 'failed' : 'ok';
    step.success = exec.success === null ? null : exec.success === 1;
    step.duration_ms = exec.duration_ms;
    const spanEnd = span && span.duration_ms !== null ? span.ts_ms + span.duration_ms : exec.duration_ms !== null ? exec.ts_ms + exec.duration_ms : null;
    step.end_ms = spanEnd;
  }
  if (wait || exec) {
    step.timing = 'trace';
    step.wait_ms = wait?.duration_ms ?? 0;
    if (exec?.duration_ms !== null && exec?.duration_ms !== undefined) step.run_ms = exec.duration_ms;
    if (wait) step.reason = strOf(parse(wait.body).attrs?.decision) ?? step.reason;
  }
  if (decision) step.reason = strOf(parse(decision.body).attrs?.decision) ?? step.reason;
  step.tool_name ??= rows.map((r) => r.tool_name).find((t) => t !== null) ?? null;
  return step;
}

export interface SessionHeader extends SessionRow {
  claude_version: string | null;
  host: string | null;
  user: string | null;
  cwd: string | null;
  git_branch: string | null;
  git_commit: string | null;
  permission_mode: string | null;
  entrypoint: string | null;
  end_reason: string | null;
  prompts: number;
  requests: number;
  waits: number;
  subagents: Array<{ agent_id: string; agent_type: string | null; events: number; first_at: string; last_at: string; tokens: number; cost_usd: number }>;
  /** Where tokens and cost came from, and whether the sources agree. */
  sources: {
    requests: { count: number; claude_code: number; estimate: number; unpriced: number; tokens: number; cost_usd: number };
    run_result: { tokens: number; cost_usd: number } | null;
    disagree: boolean;
    unpriced_models: string[];
  };
  matches: string[];
}

/** The events that end a session (normalize's completions but a lone API request), as SessionReader.endEvent reads them. */
const END_EVENTS = new Set(['SessionEnd', 'ralph_task_completed', 'task_completed', 'run_completed']);

/**
 * The session an id means and whether it has ended: all a page of steps needs
 * (the header's aggregates read every event of the session; a page must not).
 */
export async function resolveSession(reads: SessionReader, id: string): Promise<{ key: string; done: boolean } | undefined> {
  const key = (await reads.resolve(id))[0];
  const raw = key === undefined ? undefined : await reads.session(key);
  if (key === undefined || !raw) return undefined;
  return { key, done: raw.completed_ms !== null && raw.completed_ms !== undefined };
}

/** The session row plus what the page's header needs; undefined when the id matches nothing. */
export async function sessionHeader(reads: SessionReader, id: string, now = Date.now()): Promise<SessionHeader | undefined> {
  const keys = await reads.resolve(id);
  if (keys.length === 0) return undefined;
  const key = keys[0]!;
  const raw = await reads.session(key);
  if (!raw) return undefined;
  const row = toSession(raw, now);
  const n = (v: unknown) => (typeof v === 'number' ? v : 0);
  // The folded row already says how the session ended and whether any request went unpriced: the reads that
  // would walk the whole session for those are made only when the row cannot answer.
  const completion = typeof raw.completion_event_id === 'string' ? raw.completion_event_id : null;
  const endEvent = async () => {
    if (raw.completed_ms === null || raw.completed_ms === undefined) return undefined; // any end event would have completed it
    const e = completion === null ? undefined : await reads.event(completion);
    return e && END_EVENTS.has(e.event) ? e : reads.endEvent(key);
  };
  const unpricedModels = async () => (n(raw.unpriced_requests) === 0 ? [] : reads.unpricedModels(key));
  const [ctxBody, end, c, subagents, unpriced] = await Promise.all([reads.contextBody(key), endEvent(), reads.counts(key), reads.subagents(key), unpricedModels()]);
  const ctx = (parse(ctxBody ?? '{}').context ?? {}) as Record<string, unknown>;
  const endBody = end ? parse(end.body) : {};
  const tok = (a: unknown, b: unknown, d: unknown, e: unknown) => [a, b, d, e].reduce<number>((s, x) => s + (typeof x === 'number' ? x : 0), 0);
  const requests = { count: n(raw.usage_events), claude_code: n(raw.claude_cost_requests), estimate: n(raw.estimate_cost_requests), unpriced: n(raw.unpriced_requests), tokens: tok(raw.input_tokens, raw.output_tokens, raw.cache_creation_input_tokens, raw.cache_read_input_tokens), cost_usd: Math.round(n(raw.cost_usd) * 1e9) / 1e9 };
  const runResult = raw.result_cost_usd !== null && raw.result_cost_usd !== undefined ? { tokens: tok(raw.result_input_tokens, raw.result_output_tokens, raw.result_cache_creation_input_tokens, raw.result_cache_read_input_tokens), cost_usd: raw.result_cost_usd as number } : null;
  // Beyond rounding: more than a cent and 1% apart (a run's total also covers requests no transcript line reached).
  const disagree = requests.count > 0 && runResult !== null && Math.abs(requests.cost_usd - runResult.cost_usd) > Math.max(0.01, 0.01 * Math.max(requests.cost_usd, runResult.cost_usd));
  return {
    ...row,
    claude_version: strOf(ctx.claude_version),
    host: strOf(ctx.host),
    user: strOf(ctx.user),
    cwd: strOf(ctx.cwd),
    git_branch: strOf(ctx.git_branch),
    git_commit: strOf(ctx.git_commit),
    permission_mode: strOf(ctx.permission_mode),
    entrypoint: strOf(ctx.entrypoint),
    end_reason: end ? (strOf(endBody.hook?.reason) ?? strOf(endBody.result_subtype) ?? end.error ?? (end.success === 0 ? 'failed' : end.event)) : null,
    prompts: c.prompts,
    requests: c.requests,
    waits: c.waits,
    subagents: subagents.map((s) => ({ agent_id: s.agent_id, agent_type: s.agent_type, events: s.events, first_at: new Date(s.first_ms).toISOString(), last_at: new Date(s.last_ms).toISOString(), tokens: s.tokens, cost_usd: Math.round(s.cost_usd * 1e9) / 1e9 })),
    sources: { requests, run_result: runResult, disagree, unpriced_models: unpriced },
    matches: keys.slice(1),
  };
}

export interface StepsPage {
  session_id: string;
  snapshot: number;
  steps: Step[];
  /** More of this snapshot: pass as `after`. */
  next: string | null;
  /** What arrived after everything read so far: pass as `after` (again and again while the session runs). */
  live: string;
}

/** A page of a session's steps. `after` is a cursor from an earlier page, or null for the first. */
export async function sessionSteps(reads: SessionReader, key: string, sessionDone: boolean, after: string | null, limit: number): Promise<StepsPage | { error: string }> {
  const cursor = after === null ? null : decodeCursor(after);
  if (after !== null && cursor === null) return { error: 'after: not a cursor from this API' };
  if (cursor && 'a' in cursor) {
    // Arrivals after a position, each as its whole current step.
    const after: Position = { seq: cursor.a, ord: cursor.r };
    const rows = await reads.since(key, after, limit + 1);
    const more = rows.length > limit;
    const got = more ? rows.slice(0, limit) : rows;
    const lastRow = got[got.length - 1];
    // Cut inside one transaction (PostgreSQL), the next read goes on from this row; else from the whole transaction.
    const upTo: Position = lastRow ? { seq: lastRow.seq, ord: more ? lastRow.ord : undefined } : after;
    const bySeq = new Map<string, Step>();
    // As of this page's end: a Post on the next page brings the step again, with that event new.
    const tools = await reads.toolUses(key, [...new Set(got.filter((r) => KIND[r.event] === 'tool' && r.tool_use_id).map((r) => r.tool_use_id!))], upTo);
    for (const r of got) {
      if (KIND[r.event] === 'tool' && r.tool_use_id) {
        const id = `tool:${r.tool_use_id}`;
        if (!bySeq.has(id)) bySeq.set(id, toolStep(tools.get(r.tool_use_id) ?? [r], sessionDone));
      } else {
        const st = single(r);
        bySeq.set(`${st.id}\u0000${r.event_id}`, st);
      }
    }
    const steps = mergeSame([...bySeq.values()]).sort(byTime);
    const live = encodeCursor(upTo.ord === undefined ? { a: upTo.seq } : { a: upTo.seq, r: upTo.ord });
    return { session_id: key, snapshot: upTo.seq, steps, next: more ? live : null, live };
  }
  const pos = cursor ?? { s: await reads.highWater(), t: -Number.MAX_SAFE_INTEGER, e: '' };
  const rows = await reads.page(key, { snapshot: pos.s, ts_ms: pos.t, event_id: pos.e }, limit + 1);
  const more = rows.length > limit;
  const got = more ? rows.slice(0, limit) : rows;
  const tools = await reads.toolUses(key, [...new Set(got.filter((r) => KIND[r.event] === 'tool' && r.tool_use_id).map((r) => r.tool_use_id!))], { seq: pos.s });
  const steps = mergeSame(got.map((r) => (KIND[r.event] === 'tool' && r.tool_use_id ? toolStep(tools.get(r.tool_use_id) ?? [r], sessionDone) : single(r))));
  const lastRow = got[got.length - 1];
  return {
    session_id: key,
    snapshot: pos.s,
    steps,
    next: more && lastRow ? encodeCursor({ s: pos.s, t: lastRow.ts_ms, e: lastRow.event_id }) : null,
    live: encodeCursor({ a: pos.s }),
  };
}

/**
 * Steps with the same id in one page (an API request from the transcript and
 * from OTel) become one: the largest count per token kind, Claude Code's cost
 * over our estimate, as the cost facts fold them. Across pages the client merges the same way.
 */
export function mergeSame(steps: Step[]): Step[] {
  const out: Step[] = [];
  const at = new Map<string, Step>();
  for (const s of steps) {
    const prev = at.get(s.id);
    if (!prev) {
      at.set(s.id, s);
      out.push(s);
      continue;
    }
    if (s.kind !== 'request') continue; // a tool step is already whole
    for (const k of ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'] as const) prev[k] = Math.max(prev[k] ?? 0, s[k] ?? 0);
    prev.event_ids = [...new Set([...prev.event_ids, ...s.event_ids])];
    prev.seq = Math.max(prev.seq, s.seq);
    if (s.cost_source === 'claude_code' || prev.cost_usd === null) {
      prev.cost_usd = s.cost_usd ?? prev.cost_usd;
      prev.cost_source = s.cost_source ?? prev.cost_source;
    }
    prev.duration_ms ??= s.duration_ms;
    prev.model ??= s.model;
  }
  return out;
}

function byTime(a: Step, b: Step): number {
  return a.at_ms - b.at_ms || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** The stored body of one event (the page's "raw metadata"), or undefined. */
export async function rawEvent(reads: SessionReader, eventId: string): Promise<{ session_id: string; seq: number; event: unknown } | undefined> {
  const r = await reads.event(eventId);
  if (!r) return undefined;
  return { session_id: r.session_key, seq: r.seq, event: parse(r.body) };
}

/** Sessions blocked on a person now, with how long they have waited. */
export async function waitingSessions(reads: SessionReader, now = Date.now(), windowMs = 24 * 3_600_000) {
  const rows = await reads.waiting(now - windowMs);
  const out = [];
  for (const w of rows) {
    const s = await reads.session(w.session_key);
    if (!s || s.completed_ms !== null) continue;
    const b = parse(w.body);
    const h = b.hook ?? {};
    const row = toSession(s, now);
    out.push({
      id: row.id,
      source: row.source,
      project: row.project,
      label: row.label,
      task_id: row.task_id,
      claude_session_id: row.claude_session_id,
      host: strOf((b.context as Record<string, unknown> | undefined)?.host),
      user: strOf((b.context as Record<string, unknown> | undefined)?.user),
      since: new Date(w.since_ms).toISOString(),
      waited_ms: Math.max(0, now - w.since_ms),
      event: w.event,
      kind: strOf(h.notification_type) ?? (w.event === 'PermissionRequest' ? 'permission_request' : 'notification'),
      tool_name: strOf(b.tool_name) ?? w.tool_name,
      message: strOf(h.message),
    });
  }
  return { waiting: out.sort((a, b) => b.waited_ms - a.waited_ms), generated_at: new Date(now).toISOString() };
}
